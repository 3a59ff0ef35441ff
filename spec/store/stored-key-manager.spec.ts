import { ready } from '../../lib/sodium';
import { E2EError } from '../../lib/errors';
import { fromUtf8, randomBytes, toHex, utf8 } from '../../lib/crypto';
import { SecureChannel } from '../../lib/channel';
import { X3DHKeyManager } from '../../lib/x3dh';
import {
  InMemoryStore,
  KeyManagerStore,
  PersistentChannel,
  StorageCipher,
  StoredKeyManager,
  establishmentFingerprint,
} from '../../lib/store';
import { makeAgent } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';

const BOB = 'did:mesh:bob';
const ALICE = 'did:mesh:alice';

describe('StoredKeyManager', () => {
  let cipher: StorageCipher;
  beforeAll(async () => {
    await ready();
    cipher = new StorageCipher(randomBytes(32));
  });

  async function setup(otks = 3): Promise<{ store: InMemoryStore; keys: StoredKeyManager; original: X3DHKeyManager }> {
    const store = new InMemoryStore();
    const original = makeAgent(otks);
    const keys = await StoredKeyManager.create({ store, cipher, did: BOB }, original);
    return { store, keys, original };
  }

  it('saves the private side sealed and restores it after a restart', async () => {
    const { store, keys, original } = await setup(3);
    expect([keys.did, keys.version, keys.store]).toEqual([BOB, 1, store]);
    const loaded = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    const m = loaded.manager;
    expect(toHex(m.identityKeyEd)).toBe(toHex(original.identityKeyEd));
    expect(m.signedPreKeyIds).toEqual([0]);
    expect(m.oneTimePreKeyIds).toEqual([0, 1, 2]);
    expect(toHex(m.getOneTimePreKey(2)?.keyPair.privateKey as Uint8Array)).toBe(
      toHex(original.getOneTimePreKey(2)?.keyPair.privateKey as Uint8Array),
    );
    expect(await StoredKeyManager.load({ store, cipher, did: 'did:mesh:nobody' })).toBeNull();
    await expectE2EErrorAsync(() => StoredKeyManager.create({ store, cipher, did: BOB }, original), 'STALE_STATE');
    await expectE2EErrorAsync(
      () => StoredKeyManager.load({ store, cipher: new StorageCipher(randomBytes(32)), did: BOB }),
      'STORE_ERROR',
      'unknown_storage_key',
    );
  });

  it('accepts a channel with a one-time pre-key exactly once, also after a restart', async () => {
    const { store, keys, original } = await setup(3);
    const ad = utf8(`${ALICE}|${BOB}`);
    const { channel, establishment } = SecureChannel.createSender(makeAgent(), original.getPublicBundle({ otkId: 1 }), ad);
    const bob = await keys.acceptChannel(establishment, { sessions: store, peerDid: ALICE, associatedData: ad });
    expect(fromUtf8(await bob.receive(channel.send(utf8('hi'))))).toBe('hi');
    expect(keys.manager.oneTimePreKeyIds).toEqual([0, 2]);
    expect(keys.version).toBe(2);
    await expectE2EErrorAsync(
      () => keys.acceptChannel(establishment, { sessions: store, peerDid: 'did:mesh:other', associatedData: ad }),
      'OTK_NOT_FOUND',
    );
    const restarted = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    expect(restarted.manager.oneTimePreKeyIds).toEqual([0, 2]);
    await expectE2EErrorAsync(
      () => restarted.acceptChannel(establishment, { sessions: store, peerDid: 'did:mesh:other', associatedData: ad }),
      'OTK_NOT_FOUND',
    );
    expect(store.listSessions(BOB)).toEqual([ALICE]);
  });

  it('accepts an establishment without a one-time pre-key once (the replay check of the last resort)', async () => {
    const { store, keys, original } = await setup(0);
    const { channel, establishment } = SecureChannel.createSender(makeAgent(), original.getPublicBundle());
    expect(establishment.usedOneTimeKeyId).toBeUndefined();
    const bob = await keys.acceptChannel(establishment, { sessions: store, peerDid: ALICE });
    expect(fromUtf8(await bob.receive(channel.send(utf8('last resort'))))).toBe('last resort');
    expect(keys.version).toBe(1); // nothing consumed, nothing saved
    await expectE2EErrorAsync(
      () => keys.acceptChannel(establishment, { sessions: store, peerDid: 'did:mesh:mallory' }),
      'DUPLICATE_MESSAGE',
      'establishment_replay',
    );
    const otherProcess = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    await expectE2EErrorAsync(
      () => otherProcess.acceptChannel(establishment, { sessions: store, peerDid: 'did:mesh:mallory' }),
      'DUPLICATE_MESSAGE',
      'establishment_replay',
    );
    expect(store.markEstablishment(BOB, 0, establishmentFingerprint(establishment))).toBe(false);
    expect(store.listSessions(BOB)).toEqual([ALICE]);
  });

  it('lets two processes sharing one identity accept concurrently, each key used once', async () => {
    const { store, original } = await setup(2);
    const p1 = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    const p2 = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    const e0 = SecureChannel.createSender(makeAgent(), original.getPublicBundle({ otkId: 0 })).establishment;
    const e1 = SecureChannel.createSender(makeAgent(), original.getPublicBundle({ otkId: 1 })).establishment;
    await p1.acceptChannel(e0, { sessions: store, peerDid: 'did:mesh:a0' });
    await p2.acceptChannel(e1, { sessions: store, peerDid: 'did:mesh:a1' }); // stale at first: reloads and retries
    expect([p1.version, p2.version]).toEqual([2, 3]);
    expect(p2.manager.oneTimePreKeyIds).toEqual([]);
    await expectE2EErrorAsync(() => p1.acceptChannel(e1, { sessions: store, peerDid: 'did:mesh:a2' }), 'OTK_NOT_FOUND');
    expect(store.listSessions(BOB)).toEqual(['did:mesh:a0', 'did:mesh:a1']);
  });

  it('finds keys another process made since it loaded', async () => {
    const { store } = await setup(0);
    const p1 = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    const p2 = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    await p2.update((m) => {
      m.generateSignedPreKey();
      m.generateOneTimePreKeys(1);
    });
    const e = SecureChannel.createSender(makeAgent(), p2.manager.getPublicBundle({ otkId: 0 })).establishment;
    expect(e.signedPreKeyId).toBe(1);
    const ch = await p1.acceptChannel(e, { sessions: store, peerDid: ALICE });
    expect(ch).toBeInstanceOf(PersistentChannel);
    const lastResort = SecureChannel.createSender(makeAgent(), p2.manager.getPublicBundle()).establishment;
    const p3 = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    await p2.update((m) => void m.generateSignedPreKey());
    const e2 = SecureChannel.createSender(makeAgent(), p2.manager.getPublicBundle()).establishment;
    await p3.acceptChannel(e2, { sessions: store, peerDid: 'did:mesh:x' });
    await p3.acceptChannel(lastResort, { sessions: store, peerDid: 'did:mesh:y' });
  });

  it('updates with compare-and-swap, retrying a bounded number of times', async () => {
    const { store, keys } = await setup(0);
    expect(await keys.update((m) => m.generateOneTimePreKeys(2).map((k) => k.keyId))).toEqual([0, 1]);
    expect(keys.version).toBe(2);
    await expect(
      keys.update(() => {
        throw new E2EError('INVALID_STATE', 'refused by the change');
      }),
    ).rejects.toMatchObject({ code: 'INVALID_STATE' });
    expect(keys.version).toBe(2);
    await expectE2EErrorAsync(() => keys.update('x' as never), 'INVALID_ARGUMENT');
    // A store where someone else always saves first.
    let saves = 0;
    const contested: KeyManagerStore = {
      loadKeyManager: (d) => store.loadKeyManager(d),
      saveKeyManager: (d, data, v) => {
        saves++;
        const cur = store.loadKeyManager(d);
        store.saveKeyManager(d, cur?.data as Uint8Array, cur?.version ?? 0);
        return store.saveKeyManager(d, data, v);
      },
      deleteKeyManager: (d) => store.deleteKeyManager(d),
      markEstablishment: (d, s, f) => store.markEstablishment(d, s, f),
      forgetEstablishments: (d, s) => store.forgetEstablishments(d, s),
    };
    const busy = (await StoredKeyManager.load({ store: contested, cipher, did: BOB })) as StoredKeyManager;
    await expectE2EErrorAsync(() => busy.update((m) => void m.generateOneTimePreKeys(1)), 'STALE_STATE');
    expect(saves).toBe(8);
  });

  it('saves a manager changed in place by its owner, refusing to overwrite a newer state', async () => {
    const { store, keys } = await setup(0);
    keys.manager.generateOneTimePreKeys(2); // as a bridge does to the manager it was given
    expect(await keys.save()).toBe(2);
    expect(((await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager).manager.oneTimePreKeyIds).toEqual([0, 1]);
    const other = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    await other.update((m) => void m.generateSignedPreKey());
    keys.manager.generateOneTimePreKeys(1);
    await expectE2EErrorAsync(() => keys.save(), 'STALE_STATE');
    expect(keys.version).toBe(2);
  });

  it('notices a deleted key manager', async () => {
    const { store, keys } = await setup(0);
    store.deleteKeyManager(BOB);
    await expectE2EErrorAsync(() => keys.refresh(), 'INVALID_STATE', 'deleted');
    await expectE2EErrorAsync(() => keys.update((m) => void m.generateOneTimePreKeys(1)), 'INVALID_STATE', 'deleted');
  });

  it('refuses a tampered or unparsable saved state', async () => {
    const { store } = await setup(0);
    const rec = store.loadKeyManager(BOB);
    const bad = Uint8Array.from(rec?.data as Uint8Array);
    bad[50] ^= 1;
    store.saveKeyManager(BOB, bad, 1);
    await expectE2EErrorAsync(() => StoredKeyManager.load({ store, cipher, did: BOB }), 'STORE_ERROR', 'tampered');
    store.saveKeyManager('did:mesh:junk', cipher.seal(utf8('{"version":1}'), 'agentmesh-keys\u0000did:mesh:junk'), 0);
    await expectE2EErrorAsync(() => StoredKeyManager.load({ store, cipher, did: 'did:mesh:junk' }), 'STORE_ERROR', 'corrupt');
  });

  it('validates its arguments', async () => {
    const { store, keys } = await setup(1);
    const good = { store, cipher, did: 'did:mesh:new' };
    for (const loc of [null, { ...good, cipher: 'k' }, { ...good, store: {} }, { ...good, did: '' }]) {
      await expectE2EErrorAsync(() => StoredKeyManager.create(loc as never, makeAgent()), 'INVALID_ARGUMENT');
      await expectE2EErrorAsync(() => StoredKeyManager.load(loc as never), 'INVALID_ARGUMENT');
    }
    await expectE2EErrorAsync(() => StoredKeyManager.create(good, {} as never), 'INVALID_ARGUMENT');
    const e = SecureChannel.createSender(makeAgent(), keys.manager.getPublicBundle({ otkId: 0 })).establishment;
    await expectE2EErrorAsync(() => keys.acceptChannel(e, null as never), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => keys.acceptChannel(e, { sessions: store, peerDid: '' }), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(
      () => keys.acceptChannel({ initiatorIdentityKey: new Uint8Array(3) } as never, { sessions: store, peerDid: ALICE }),
      'MALFORMED_MESSAGE',
    );
    const wrongSpk = {
      ...e,
      signedPreKeyId: 9,
      usedOneTimeKeyId: undefined,
      initiatorIdentityKey: e.initiatorIdentityKey,
      ephemeralPublicKey: e.ephemeralPublicKey,
    };
    await expectE2EErrorAsync(() => keys.acceptChannel(wrongSpk, { sessions: store, peerDid: ALICE }), 'SPK_NOT_FOUND');
    expect(keys.manager.oneTimePreKeyIds).toEqual([0]);
  });

  it('spends nothing when the session slot is taken: the retry with replaceSession succeeds (finding 8)', async () => {
    const { store, keys, original } = await setup(1);
    const ad = utf8('ad');
    const { channel, establishment: e } = SecureChannel.createSender(makeAgent(), original.getPublicBundle({ otkId: 0 }), ad);
    store.saveSession(BOB, ALICE, utf8('an existing session'), 0);
    await expectE2EErrorAsync(
      () => keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: ad }),
      'STALE_STATE',
      'session',
    );
    expect(keys.manager.oneTimePreKeyIds).toEqual([0]);
    expect((await StoredKeyManager.load({ store, cipher, did: BOB }))?.manager.oneTimePreKeyIds).toEqual([0]);
    const pc = await keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: ad, replaceSession: true });
    expect(pc.version).toBe(2);
    expect(keys.manager.oneTimePreKeyIds).toEqual([]);
    expect(fromUtf8(await pc.receive(channel.send(utf8('ok'))))).toBe('ok');
    await expectE2EErrorAsync(() => keys.acceptChannel(e, { sessions: store, peerDid: 'did:mesh:x', associatedData: ad }), 'OTK_NOT_FOUND');
    // The last resort too: a refused acceptance records nothing, so the retry is accepted.
    const lr = SecureChannel.createSender(makeAgent(), original.getPublicBundle());
    store.saveSession(BOB, 'did:mesh:carol', utf8('taken'), 0);
    await expectE2EErrorAsync(
      () => keys.acceptChannel(lr.establishment, { sessions: store, peerDid: 'did:mesh:carol' }),
      'STALE_STATE',
      'session',
    );
    expect(store.markEstablishment(BOB, 0, establishmentFingerprint(lr.establishment))).toBe(true); // was not marked
    store.forgetEstablishments(BOB, 0);
    await keys.acceptChannel(lr.establishment, { sessions: store, peerDid: 'did:mesh:carol', replaceSession: true });
    await expectE2EErrorAsync(
      () => keys.acceptChannel(lr.establishment, { sessions: store, peerDid: 'did:mesh:dave' }),
      'DUPLICATE_MESSAGE',
      'establishment_replay',
    );
  });

  it('reports errors of a store as they are', async () => {
    const { store, keys, original } = await setup(0);
    const e = SecureChannel.createSender(makeAgent(), original.getPublicBundle()).establishment;
    const broken = jest.spyOn(store, 'saveAcceptance').mockImplementation(() => {
      throw new E2EError('STORE_ERROR', 'down', 'backend');
    });
    await expectE2EErrorAsync(() => keys.acceptChannel(e, { sessions: store, peerDid: ALICE }), 'STORE_ERROR', 'backend');
    broken.mockRestore();
    expect(store.listSessions(BOB)).toEqual([]);
    // Nothing was spent: the same establishment is accepted now.
    await keys.acceptChannel(e, { sessions: store, peerDid: ALICE });
  });
});
