/**
 * Accepting an establishment (findings 2 and 8, store part): replay memory over canonical keys, and
 * nothing spent by a failure — the one-time pre-key, the one-time KEM pre-key or the replay record
 * and the session are one write.
 */
import fc from 'fast-check';
import { ready } from '../../lib/sodium';
import { E2EError } from '../../lib/errors';
import { fromUtf8, randomBytes, utf8 } from '../../lib/crypto';
import { ChannelEstablishment, SecureChannel } from '../../lib/channel';
import { X3DHKeyManager } from '../../lib/x3dh';
import { InMemoryStore, PersistentChannel, StorageCipher, StoredKeyManager, establishmentFingerprint } from '../../lib/store';
import { BackendDown, FAULTS, Fault, faultyStore } from './faulty';
import { makeAgent } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';

const BOB = 'did:mesh:bob';
const ALICE = 'did:mesh:alice';

let cipher: StorageCipher;
beforeAll(async () => {
  await ready();
  cipher = new StorageCipher(randomBytes(32));
});

/** `key` with bit 255 (the top bit, which X25519 ignores) flipped. */
function flipBit255(key: Uint8Array): Uint8Array {
  const k = Uint8Array.from(key);
  k[31] ^= 0x80;
  return k;
}

/** The encoding of u + p (p = 2^255 - 19) of a small u < 19, with bit 255 set or not. */
function plusP(u: number, top: boolean): Uint8Array {
  const k = new Uint8Array(32).fill(0xff);
  k[0] = 0xed + u;
  k[31] = top ? 0xff : 0x7f;
  return k;
}

describe('replay memory over canonical keys (finding 2, store part)', () => {
  it('refuses a replayed last-resort establishment with bit 255 of the ephemeral or identity key flipped', async () => {
    const store = new InMemoryStore();
    const bobMgr = makeAgent(0);
    const keys = await StoredKeyManager.create({ store, cipher, did: BOB }, bobMgr);
    const { channel, establishment: e } = SecureChannel.createSender(makeAgent(), bobMgr.getPublicBundle());
    const old = channel.send(utf8('old message'));
    const bob = await keys.acceptChannel(e, { sessions: store, peerDid: ALICE });
    expect(fromUtf8(await bob.receive(old))).toBe('old message');
    const variants = [
      { ...e, ephemeralPublicKey: flipBit255(e.ephemeralPublicKey) },
      { ...e, initiatorIdentityKey: flipBit255(e.initiatorIdentityKey) },
      { ...e, ephemeralPublicKey: flipBit255(e.ephemeralPublicKey), initiatorIdentityKey: flipBit255(e.initiatorIdentityKey) },
    ];
    for (const [i, v] of variants.entries()) {
      const fields = {
        initiatorIdentityKey: v.initiatorIdentityKey,
        ephemeralPublicKey: v.ephemeralPublicKey,
        usedOneTimeKeyId: v.usedOneTimeKeyId,
        signedPreKeyId: v.signedPreKeyId,
      };
      expect(establishmentFingerprint(fields)).toBe(establishmentFingerprint(e));
      // Accepted again, it would decrypt the old message again: it must be refused. The core now refuses
      // a non-canonical X25519 key outright (INVALID_KEY, in respond), before the store's replay memory.
      await expectE2EErrorAsync(() => keys.acceptChannel(fields, { sessions: store, peerDid: `did:mesh:mallory-${i}` }), 'INVALID_KEY');
    }
    expect(store.listSessions(BOB)).toEqual([ALICE]);
  });

  it('gives every encoding of one X25519 value one fingerprint (bit 255, and values ≥ p)', () => {
    const ik = makeAgent().identityKey.publicKey;
    for (let u = 0; u < 19; u++) {
      const small = new Uint8Array(32);
      small[0] = u;
      const fp = establishmentFingerprint({ initiatorIdentityKey: ik, ephemeralPublicKey: small });
      for (const top of [false, true]) {
        expect(establishmentFingerprint({ initiatorIdentityKey: ik, ephemeralPublicKey: plusP(u, top) })).toBe(fp);
      }
      expect(establishmentFingerprint({ initiatorIdentityKey: ik, ephemeralPublicKey: flipBit255(small) })).toBe(fp);
    }
    const ek = randomBytes(32);
    ek[31] &= 0x7f;
    const other = Uint8Array.from(ek);
    other[0] ^= 1;
    expect(establishmentFingerprint({ initiatorIdentityKey: ik, ephemeralPublicKey: ek })).not.toBe(
      establishmentFingerprint({ initiatorIdentityKey: ik, ephemeralPublicKey: other }),
    );
  });

  it('refuses what is not an establishment with MALFORMED_MESSAGE', async () => {
    for (const bad of [null, {}, 'x', { initiatorIdentityKey: new Uint8Array(32), ephemeralPublicKey: new Uint8Array(31) }]) {
      await expectE2EErrorAsync(() => establishmentFingerprint(bad as never), 'MALFORMED_MESSAGE');
    }
  });
});

describe('acceptChannel spends nothing on a failure (finding 8, store part)', () => {
  it('with a separate session store: checks the slot first, so a STALE_STATE spends no one-time key', async () => {
    const keyStore = new InMemoryStore();
    const sessions = new InMemoryStore();
    const bobMgr = makeAgent(1);
    const keys = await StoredKeyManager.create({ store: keyStore, cipher, did: BOB }, bobMgr);
    const { establishment: e } = SecureChannel.createSender(makeAgent(), bobMgr.getPublicBundle({ otkId: 0 }));
    sessions.saveSession(BOB, ALICE, utf8('taken'), 0);
    await expectE2EErrorAsync(() => keys.acceptChannel(e, { sessions, peerDid: ALICE }), 'STALE_STATE', 'session');
    expect(keys.manager.oneTimePreKeyIds).toEqual([0]);
    const pc = await keys.acceptChannel(e, { sessions, peerDid: ALICE, replaceSession: true });
    expect(pc.version).toBe(2);
    expect(keys.manager.oneTimePreKeyIds).toEqual([]);
    await expectE2EErrorAsync(() => keys.acceptChannel(e, { sessions, peerDid: 'did:mesh:x' }), 'OTK_NOT_FOUND');
    await expectE2EErrorAsync(() => keys.acceptChannel(e, { sessions: {} as never, peerDid: 'did:mesh:x' }), 'INVALID_ARGUMENT');
  });

  it('returns the channel when the atomic write commits but reports a failure (its sealed blob is found in the slot)', async () => {
    for (const withOtk of [true, false]) {
      const inner = new InMemoryStore();
      const bobMgr = makeAgent(1);
      await StoredKeyManager.create({ store: inner, cipher, did: BOB }, bobMgr);
      const { channel, establishment: e } = SecureChannel.createSender(makeAgent(), bobMgr.getPublicBundle(withOtk ? { otkId: 0 } : {}));
      let fault: Fault = 'after';
      const f = faultyStore(inner, () => fault, ['saveAcceptance']);
      const keys = (await StoredKeyManager.load({ store: f.store, cipher, did: BOB })) as StoredKeyManager;
      const bob = await keys.acceptChannel(e, { sessions: f.store, peerDid: ALICE });
      fault = 'ok';
      expect(f.log).toEqual([['saveAcceptance', 'after']]);
      expect([bob.version, keys.version]).toEqual([1, withOtk ? 2 : 1]);
      expect(keys.manager.oneTimePreKeyIds).toEqual(withOtk ? [] : [0]);
      expect(fromUtf8(await bob.receive(channel.send(utf8('hi'))))).toBe('hi');
      await keys.update((m) => void m.generateOneTimePreKeys(1)); // its version is right: no STALE_STATE
    }
  });

  /**
   * What the establishment spends: a one-time pre-key (`otk`), a one-time KEM pre-key (`kem`), or
   * nothing (`none`: classic last resort; `lr-kem`: under the last-resort KEM pre-key), recorded against replay.
   */
  type Spend = 'otk' | 'kem' | 'none' | 'lr-kem';

  /** One establishment accepted against a store that fails at the given points; retried until it sticks. */
  async function acceptUnderFaults(faults: Fault[], spend: Spend, replace: boolean): Promise<void> {
    const inner = new InMemoryStore();
    const withOtk = spend === 'otk';
    const bobMgr = makeAgent(withOtk ? 1 : 0);
    if (spend === 'lr-kem' || spend === 'kem') bobMgr.generateLastResortKemPreKey();
    const kemId = spend === 'kem' ? bobMgr.generateKemPreKeys(1)[0].keyId : undefined;
    await StoredKeyManager.create({ store: inner, cipher, did: BOB }, bobMgr);
    const ad = utf8('ad');
    const { channel, establishment } = SecureChannel.createSender(
      makeAgent(),
      bobMgr.getPublicBundle(withOtk ? { otkId: 0 } : { kemId }),
      ad,
    );
    const e = ChannelEstablishment.from(establishment);
    if (replace) inner.saveSession(BOB, ALICE, utf8('an old session'), 0);
    let i = 0;
    const f = faultyStore(inner, () => (i < faults.length ? faults[i++] : 'ok'));
    const typed = (err: unknown): E2EError => {
      expect(err).toBeInstanceOf(E2EError);
      return err as E2EError;
    };
    // Spent (the key gone from the saved state, or the replay recorded) exactly when the session is saved.
    const spent = (): boolean => {
      if (withOtk) return !savedOtkIds(inner).includes(0);
      if (kemId !== undefined) return !savedKemIds(inner).includes(kemId);
      const fresh = inner.markEstablishment(BOB, 0, establishmentFingerprint(e));
      if (fresh) inner.forgetEstablishments(BOB, 0);
      return !fresh;
    };
    const sessionSaved = (): boolean => {
      const rec = inner.loadSession(BOB, ALICE);
      return rec !== null && rec.version > (replace ? 1 : 0);
    };
    let keys: StoredKeyManager | null = null;
    let accepted: PersistentChannel | null = null;
    let committedUnseen = false;
    for (let attempt = 0; attempt < 60 && accepted === null && !committedUnseen; attempt++) {
      try {
        keys ??= await StoredKeyManager.load({ store: f.store, cipher, did: BOB });
        accepted = await (keys as StoredKeyManager).acceptChannel(e, {
          sessions: f.store,
          peerDid: ALICE,
          associatedData: ad,
          replaceSession: replace,
        });
      } catch (err) {
        const x = typed(err);
        // An earlier attempt committed, reported a failure, and could not look (its check failed too):
        // the retry names the spent establishment or the taken slot, and the session is there to load.
        const spentCodes =
          x.code === 'OTK_NOT_FOUND' ||
          x.code === 'KEM_NOT_FOUND' ||
          x.code === 'DUPLICATE_MESSAGE' ||
          (x.code === 'STALE_STATE' && x.reason === 'session');
        if (spentCodes) committedUnseen = true;
        else expect(x.code).toBe('STORE_ERROR');
        if (x.code === 'STORE_ERROR')
          expect([
            x.reason,
            (x as { cause?: unknown }).cause instanceof BackendDown || typeof (x as { cause?: unknown }).cause === 'string',
          ]).toEqual(['backend', true]);
      }
      expect(spent()).toBe(sessionSaved()); // never one without the other
    }
    expect(accepted !== null || committedUnseen).toBe(true);
    expect(sessionSaved()).toBe(true);
    if (committedUnseen) {
      // Only when a write committed but reported failure and the check after it failed as well.
      expect(f.log.some(([m, k]) => m === 'saveAcceptance' && k.startsWith('after'))).toBe(true);
      expect(f.log.some(([m]) => m === 'loadSession' || m === 'loadKeyManager')).toBe(true);
    }
    // The saved session is the one the initiator talks to.
    f.off();
    const bob = accepted ?? ((await PersistentChannel.load({ store: inner, cipher, localDid: BOB, peerDid: ALICE })) as PersistentChannel);
    expect(fromUtf8(await bob.receive(channel.send(utf8('hello'))))).toBe('hello');
    // And the establishment is spent: never accepted twice.
    const again = (await StoredKeyManager.load({ store: inner, cipher, did: BOB })) as StoredKeyManager;
    await expectE2EErrorAsync(
      () => again.acceptChannel(e, { sessions: inner, peerDid: 'did:mesh:other', associatedData: ad }),
      withOtk ? 'OTK_NOT_FOUND' : kemId !== undefined ? 'KEM_NOT_FOUND' : 'DUPLICATE_MESSAGE',
    );
    expect(bob.postQuantum).toBe(spend === 'kem' || spend === 'lr-kem');
  }

  /** The one-time pre-key ids of the saved key manager, read from the store directly. */
  function savedOtkIds(store: InMemoryStore): number[] {
    const rec = store.loadKeyManager(BOB);
    const m = X3DHKeyManager.fromBytes(cipher.open(rec?.data as Uint8Array, `agentmesh-keys\u0000${BOB}`));
    const ids = m.oneTimePreKeyIds;
    m.wipe();
    return ids;
  }

  /** The KEM pre-key ids of the saved key manager, read from the store directly. */
  function savedKemIds(store: InMemoryStore): number[] {
    const rec = store.loadKeyManager(BOB);
    const m = X3DHKeyManager.fromBytes(cipher.open(rec?.data as Uint8Array, `agentmesh-keys\u0000${BOB}`));
    const ids = m.kemPreKeyIds;
    m.wipe();
    return ids;
  }

  it('succeeds on retry after a failure at any point, and spends the establishment only with the session (generative)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(...FAULTS), { maxLength: 30 }),
        fc.constantFrom<Spend>('otk', 'kem', 'none', 'lr-kem'),
        fc.boolean(),
        (faults, spend, replace) => acceptUnderFaults(faults, spend, replace),
      ),
      { numRuns: 300 },
    );
  }, 300_000);
});
