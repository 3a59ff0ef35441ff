/**
 * The conformance suite every store passes (in memory, SQLite, Redis). Every call is awaited, since
 * a store may answer synchronously or with a promise.
 */
import { ready } from '../../lib/sodium';
import { randomBytes, toHex, utf8 } from '../../lib/crypto';
import { AgentStore, PublicKemPreKeyEntry } from '../../lib/store';
import { SecureChannel } from '../../lib/channel';
import { PreKeyBundle, X3DHKeyManager } from '../../lib/x3dh';
import { kemPreKeySignedBytes } from '../../lib/x3dh/kem-prekey';
import { classicBundle, makeAgent, makePqAgent, plain, publicKems, publicOtks } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';
import { MAX_INBOX_ENTRIES } from '../../lib/limits';

/** How a suite gets a fresh, empty store (and, for persistent ones, the same store re-opened). */
export interface StoreFactory {
  open(): Promise<AgentStore>;
  reopen?(previous: AgentStore): Promise<AgentStore>;
}

// Lone surrogates: no UTF-8 form (SQLite would store U+FFFD, making two DIDs one; Redis keys would throw URIError).
const BAD_IDS: unknown[] = ['', 42, null, undefined, {}, 'a'.repeat(1025), 'did:mesh:\u0000x', 'did:mesh:\uD800', 'did:\uDC00x', 'x\uDBFF'];
const BAD_INBOX_IDS: unknown[] = ['', 7, null, 'a b', 'é', 'x'.repeat(129), 'a:b'];
const BAD_KEY_IDS: unknown[] = [-1, 1.5, 2 ** 32, '1', null];

export function storeConformance(name: string, factory: StoreFactory): void {
  describe(`${name}: store conformance`, () => {
    let store: AgentStore;
    let n = 0;
    const did = (): string => `did:mesh:conf-${++n}`;

    beforeAll(() => ready());
    beforeEach(async () => {
      store = await factory.open();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('PreKeyStore', () => {
      it('follows the tutorial: store, get, consume once', async () => {
        const bob = makeAgent(10);
        const bundle = bob.getPublicBundle({ otkId: 0 });
        const d = did();
        await store.storeBundle(d, bundle);
        expect(plain(await store.getBundle(d))).toEqual(plain(bundle));
        expect(await store.consumeOneTimeKey(d, 0)).toBe(true);
        expect(await store.consumeOneTimeKey(d, 0)).toBe(false);
        const after = await store.getBundle(d);
        expect(after?.oneTimePreKey).toBeUndefined();
        expect(after?.oneTimePreKeyId).toBeUndefined();
        expect(toHex(after?.signedPreKey as Uint8Array)).toBe(toHex(bundle.signedPreKey));
      });

      it('answers null, false and 0 for an unknown DID', async () => {
        const d = did();
        expect(await store.getBundle(d)).toBeNull();
        expect(await store.claimBundle(d)).toBeNull();
        expect(await store.consumeOneTimeKey(d, 0)).toBe(false);
        expect(await store.countOneTimePreKeys(d)).toBe(0);
        expect(await store.removeBundle(d)).toBe(false);
      });

      it('claims the lowest id first, each once, then falls back to the bundle without one', async () => {
        const bob = makeAgent(3);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        const keys = publicOtks(bob);
        await store.addOneTimePreKeys(d, [keys[2], keys[0], keys[1]]);
        expect(await store.countOneTimePreKeys(d)).toBe(3);
        const peek = await store.getBundle(d);
        expect(peek?.oneTimePreKeyId).toBe(0);
        const claimed: (number | undefined)[] = [];
        for (let i = 0; i < 5; i++) claimed.push((await store.claimBundle(d))?.oneTimePreKeyId);
        expect(claimed).toEqual([0, 1, 2, undefined, undefined]);
        expect(await store.countOneTimePreKeys(d)).toBe(0);
        const lastResort = await store.claimBundle(d);
        expect(plain(lastResort)).toEqual(plain(bob.getPublicBundle()));
        expect(await store.consumeOneTimeKey(d, 1)).toBe(false);
      });

      it('hands out the key a bundle carries with the right public key', async () => {
        const bob = makeAgent(2);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle({ otkId: 1 }));
        const b = await store.claimBundle(d);
        expect(b?.oneTimePreKeyId).toBe(1);
        expect(toHex(b?.oneTimePreKey as Uint8Array)).toBe(toHex(bob.getOneTimePreKey(1)?.keyPair.publicKey as Uint8Array));
      });

      it('stores an identical bundle again as a no-op (also with its one-time key), and replaces the signed pre-key', async () => {
        const bob = makeAgent(2);
        const d = did();
        const bundle = bob.getPublicBundle({ otkId: 0 });
        await store.storeBundle(d, bundle);
        await store.storeBundle(d, bundle);
        await store.storeBundle(d, bob.getPublicBundle({ otkId: 0 }));
        expect(await store.countOneTimePreKeys(d)).toBe(1);
        expect(plain(await store.getBundle(d))).toEqual(plain(bundle));
        await store.storeBundle(d, bob.getPublicBundle());
        expect(await store.countOneTimePreKeys(d)).toBe(1);
        // The same identity with a new signed pre-key (a rotation) replaces it; the pool stays.
        bob.generateSignedPreKey();
        await store.storeBundle(d, bob.getPublicBundle({ otkId: 1 }));
        const now = await store.getBundle(d);
        expect([now?.signedPreKeyId, now?.oneTimePreKeyId, await store.countOneTimePreKeys(d)]).toEqual([1, 0, 2]);
        // An older bundle published again puts the older signed pre-key back (last write wins), as in every store.
        await store.storeBundle(d, bundle);
        expect((await store.getBundle(d))?.signedPreKeyId).toBe(0);
      });

      it('never puts a claimed key back in the pool, and keeps the pool when the signed pre-key rotates', async () => {
        const bob = makeAgent(3);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle({ otkId: 0 }));
        await store.addOneTimePreKeys(d, publicOtks(bob).slice(1));
        expect(await store.consumeOneTimeKey(d, 0)).toBe(true);
        await store.storeBundle(d, bob.getPublicBundle({ otkId: 0 })); // an old bundle published again
        expect(await store.countOneTimePreKeys(d)).toBe(2);
        bob.generateSignedPreKey();
        await store.storeBundle(d, bob.getPublicBundle());
        const b = await store.getBundle(d);
        expect(b?.signedPreKeyId).toBe(1);
        expect(b?.oneTimePreKeyId).toBe(1);
        expect(await store.countOneTimePreKeys(d)).toBe(2);
      });

      it('adds one-time keys atomically and refuses re-used ids', async () => {
        const bob = makeAgent(4);
        const keys = publicOtks(bob);
        const d = did();
        await expectE2EErrorAsync(() => store.addOneTimePreKeys(d, keys), 'INVALID_STATE', 'no_bundle');
        await store.storeBundle(d, bob.getPublicBundle());
        await store.addOneTimePreKeys(d, keys.slice(0, 2));
        await store.addOneTimePreKeys(d, keys.slice(0, 2)); // same keys again: nothing changes
        expect(await store.countOneTimePreKeys(d)).toBe(2);
        expect(await store.consumeOneTimeKey(d, 0)).toBe(true);
        await expectE2EErrorAsync(() => store.addOneTimePreKeys(d, [keys[2], keys[0]]), 'INVALID_STATE', 'otk_id_reused');
        await expectE2EErrorAsync(
          () => store.addOneTimePreKeys(d, [keys[3], { keyId: 1, publicKey: keys[3].publicKey }]),
          'INVALID_STATE',
          'otk_id_reused',
        );
        expect(await store.countOneTimePreKeys(d)).toBe(1);
        const other = makeAgent(1);
        await expectE2EErrorAsync(
          () =>
            store.storeBundle(d, {
              ...bob.getPublicBundle(),
              oneTimePreKey: other.getOneTimePreKey(0)?.keyPair.publicKey,
              oneTimePreKeyId: 1,
            }),
          'INVALID_STATE',
          'otk_id_reused',
        );
      });

      it('refuses a bundle with another identity until the DID is removed', async () => {
        const d = did();
        const bob = makeAgent(1);
        const mallory = makeAgent(1);
        await store.storeBundle(d, bob.getPublicBundle({ otkId: 0 }));
        await expectE2EErrorAsync(() => store.storeBundle(d, mallory.getPublicBundle()), 'IDENTITY_MISMATCH', 'identity_changed');
        expect(toHex((await store.getBundle(d))?.identityKeyEd as Uint8Array)).toBe(toHex(bob.identityKeyEd));
        expect(await store.removeBundle(d)).toBe(true);
        expect(await store.getBundle(d)).toBeNull();
        expect(await store.countOneTimePreKeys(d)).toBe(0);
        await store.storeBundle(d, mallory.getPublicBundle({ otkId: 0 }));
        expect(toHex((await store.getBundle(d))?.identityKeyEd as Uint8Array)).toBe(toHex(mallory.identityKeyEd));
        // The claim history went with the removal: key id 0 of the new identity is fresh.
        expect(await store.consumeOneTimeKey(d, 0)).toBe(true);
      });

      it('checks bundles as initiate does', async () => {
        const bob = makeAgent(0);
        const good = bob.getPublicBundle();
        const d = did();
        const sig = Uint8Array.from(good.signedPreKeySignature);
        sig[0] ^= 1;
        await expectE2EErrorAsync(() => store.storeBundle(d, { ...good, signedPreKeySignature: sig }), 'BAD_SIGNATURE');
        await expectE2EErrorAsync(
          () => store.storeBundle(d, { ...good, identityKey: makeAgent().identityKey.publicKey }),
          'IDENTITY_MISMATCH',
        );
        await expectE2EErrorAsync(() => store.storeBundle(d, { ...good, signedPreKey: new Uint8Array(31) }), 'INVALID_KEY');
        await expectE2EErrorAsync(() => store.storeBundle(d, { ...good, oneTimePreKeyId: 3 }), 'MALFORMED_MESSAGE');
        await expectE2EErrorAsync(() => store.storeBundle(d, null as never), 'MALFORMED_MESSAGE');
        expect(await store.getBundle(d)).toBeNull();
      });

      it('validates every argument', async () => {
        const bob = makeAgent(1);
        const b = bob.getPublicBundle();
        for (const bad of BAD_IDS) {
          const x = bad as string;
          await expectE2EErrorAsync(() => store.storeBundle(x, b), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.getBundle(x), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.claimBundle(x), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.consumeOneTimeKey(x, 0), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.addOneTimePreKeys(x, publicOtks(bob)), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.countOneTimePreKeys(x), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.removeBundle(x), 'INVALID_ARGUMENT');
        }
        const d = did();
        await store.storeBundle(d, b);
        for (const bad of BAD_KEY_IDS) {
          await expectE2EErrorAsync(() => store.consumeOneTimeKey(d, bad as number), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(
            () => store.addOneTimePreKeys(d, [{ keyId: bad as number, publicKey: new Uint8Array(32) }]),
            'INVALID_ARGUMENT',
          );
        }
        await expectE2EErrorAsync(() => store.addOneTimePreKeys(d, []), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(() => store.addOneTimePreKeys(d, 'keys' as never), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(() => store.addOneTimePreKeys(d, [null as never]), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(
          () => store.addOneTimePreKeys(d, new Array(10001).fill({ keyId: 1, publicKey: new Uint8Array(32) })),
          'INVALID_ARGUMENT',
        );
        const k = { keyId: 7, publicKey: new Uint8Array(32).fill(9) };
        await expectE2EErrorAsync(() => store.addOneTimePreKeys(d, [k, k]), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(() => store.addOneTimePreKeys(d, [{ keyId: 7, publicKey: new Uint8Array(33) }]), 'INVALID_KEY');
        expect(await store.countOneTimePreKeys(d)).toBe(0);
      });

      it('keeps DIDs that share prefixes or contain separators apart', async () => {
        const ids = ['did:mesh:x', 'did:mesh:x:y', 'did:mesh:{x}', 'did:mesh:x%3Ay', 'did:mesh:ü*?[]'];
        const agents = ids.map(() => makeAgent(1));
        for (let i = 0; i < ids.length; i++) await store.storeBundle(ids[i] + n, agents[i].getPublicBundle({ otkId: 0 }));
        for (let i = 0; i < ids.length; i++) {
          const got = await store.claimBundle(ids[i] + n);
          expect(toHex(got?.identityKeyEd as Uint8Array)).toBe(toHex(agents[i].identityKeyEd));
          expect(got?.oneTimePreKeyId).toBe(0);
        }
      });

      it('keeps sessions, inboxes and key managers of DIDs that share prefixes or contain separators apart', async () => {
        const ids = [
          'did:mesh:x',
          'did:mesh:x:y',
          'did:mesh:{x}',
          'did:mesh:x%3Ay',
          'did:mesh:ü*?[]',
          'did:mesh:\u00e9',
          'did:mesh:e\u0301',
          's',
          'si',
          'k',
          '{',
          '}',
          ':',
          '%',
          '\u{1F600}'.repeat(511),
        ].map((x) => x + n);
        for (const [i, a] of ids.entries()) {
          await store.saveSessionWithInbox(a, ids[(i + 1) % ids.length], utf8(`s${i}`), 0, { id: 'm', data: utf8(`p${i}`) });
          await store.saveKeyManager(a, utf8(`k${i}`), 0);
        }
        for (const [i, a] of ids.entries()) {
          const peer = ids[(i + 1) % ids.length];
          expect(Buffer.from((await store.loadSession(a, peer))?.data as Uint8Array).toString()).toBe(`s${i}`);
          expect((await store.listInbox(a, peer)).map((r) => Buffer.from(r.data).toString())).toEqual([`p${i}`]);
          expect(Buffer.from((await store.loadKeyManager(a))?.data as Uint8Array).toString()).toBe(`k${i}`);
          expect(await store.listSessions(a)).toEqual([peer]);
        }
      });

      it('returns copies that callers cannot use to change the store', async () => {
        const bob = makeAgent(1);
        const d = did();
        const bundle = bob.getPublicBundle({ otkId: 0 });
        await store.storeBundle(d, bundle);
        const keep = toHex(bundle.signedPreKey);
        bundle.signedPreKey.fill(0);
        const got = await store.getBundle(d);
        expect(toHex(got?.signedPreKey as Uint8Array)).toBe(keep);
        got?.signedPreKey.fill(1);
        expect(toHex((await store.getBundle(d))?.signedPreKey as Uint8Array)).toBe(keep);
      });
      it('keeps no view of caller Buffers (bundle fields, one-time keys) and returns plain Uint8Arrays', async () => {
        const bob = makeAgent(2);
        const d = did();
        const b = bob.getPublicBundle({ otkId: 0 });
        const asBuffers = {
          ...b,
          identityKey: Buffer.from(b.identityKey),
          identityKeyEd: Buffer.from(b.identityKeyEd),
          signedPreKey: Buffer.from(b.signedPreKey),
          signedPreKeySignature: Buffer.from(b.signedPreKeySignature),
          oneTimePreKey: Buffer.from(b.oneTimePreKey as Uint8Array),
        };
        const keep = plain(b);
        await store.storeBundle(d, asBuffers);
        for (const v of Object.values(asBuffers)) if (v instanceof Uint8Array) v.fill(0);
        const otk = publicOtks(bob)[1];
        const otkBuf = Buffer.from(otk.publicKey);
        await store.addOneTimePreKeys(d, [{ keyId: 1, publicKey: otkBuf }]);
        otkBuf.fill(0);
        const got = await store.getBundle(d);
        expect(plain(got)).toEqual(keep);
        for (const v of Object.values(got as object)) if (v instanceof Uint8Array) expect(v.constructor).toBe(Uint8Array);
        expect((await store.claimBundle(d))?.oneTimePreKeyId).toBe(0);
        const second = await store.claimBundle(d);
        expect(toHex(second?.oneTimePreKey as Uint8Array)).toBe(toHex(otk.publicKey));
        expect(second?.oneTimePreKey?.constructor).toBe(Uint8Array);
      });
    });

    describe('PreKeyStore: KEM pre-keys', () => {
      /** [one-time pre-key id, KEM pre-key id] of a bundle, `undefined` for none. */
      const ids = (b: PreKeyBundle | null): [number | undefined, number | undefined] => [b?.oneTimePreKeyId, b?.kemPreKeyId];
      const lastResortOf = (m: X3DHKeyManager): number => (m.lastResortKemPreKey as { keyId: number }).keyId;

      it('publishes the last-resort KEM pre-key with the bundle and hands it out, verified, when the KEM pool is empty', async () => {
        const bob = makePqAgent();
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        expect(plain(await store.getBundle(d))).toEqual(plain(bob.getPublicBundle()));
        const claimed = await store.claimBundle(d);
        expect(plain(claimed)).toEqual(plain(bob.getPublicBundle()));
        expect(await store.countKemPreKeys(d)).toBe(0);
        // The initiator's checks pass: a post-quantum session under the last-resort key.
        const { channel, establishment } = SecureChannel.createSender(makeAgent(), claimed as PreKeyBundle, utf8('ad'));
        expect([channel.postQuantum, establishment.kemPreKeyId]).toEqual([true, lastResortOf(bob)]);
        channel.close();
      });

      it('claims one one-time pre-key and one one-time KEM pre-key per claim, lowest ids first, each once, then the last resorts', async () => {
        const bob = makePqAgent(2, 3);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        await store.addOneTimePreKeys(d, publicOtks(bob));
        const kems = publicKems(bob);
        await store.addKemPreKeys(d, [kems[2], kems[0], kems[1]]);
        expect([await store.countOneTimePreKeys(d), await store.countKemPreKeys(d)]).toEqual([2, 3]);
        const [k0, k1, k2] = kems.map((k) => k.keyId);
        const lr = lastResortOf(bob);
        expect(ids(await store.getBundle(d))).toEqual([0, k0]); // a peek takes nothing
        expect(ids(await store.getBundle(d))).toEqual([0, k0]);
        const got: [number | undefined, number | undefined][] = [];
        for (let i = 0; i < 5; i++) got.push(ids(await store.claimBundle(d)));
        expect(got).toEqual([
          [0, k0],
          [1, k1],
          [undefined, k2],
          [undefined, lr],
          [undefined, lr],
        ]);
        expect([await store.countOneTimePreKeys(d), await store.countKemPreKeys(d)]).toEqual([0, 0]);
        expect(plain(await store.getBundle(d))).toEqual(plain(bob.getPublicBundle()));
      });

      it('hands out each one-time KEM pre-key with its own public key and signature', async () => {
        const bob = makePqAgent(0, 2);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        await store.addKemPreKeys(d, publicKems(bob));
        for (const k of publicKems(bob)) {
          const b = await store.claimBundle(d);
          expect(plain(b)).toEqual(plain(bob.getPublicBundle({ kemId: k.keyId })));
          const { channel } = SecureChannel.createSender(makeAgent(), b as PreKeyBundle, utf8('ad'));
          expect(channel.postQuantum).toBe(true);
          channel.close();
        }
      });

      it('keeps a classic DID classic, and without a last-resort KEM pre-key falls back to the classic bundle', async () => {
        const bob = makeAgent(1);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        const classic = await store.claimBundle(d);
        expect(plain(classic)).toEqual(plain(bob.getPublicBundle()));
        expect(classic && 'kemPreKey' in classic).toBe(false);
        // One-time KEM pre-keys without a last-resort one: handed out, then the classic bundle again.
        const kems = bob.generateKemPreKeys(1);
        await store.addKemPreKeys(d, kems);
        expect(ids(await store.claimBundle(d))).toEqual([undefined, kems[0].keyId]);
        const after = await store.claimBundle(d);
        expect(plain(after)).toEqual(plain(bob.getPublicBundle()));
        expect(after?.kemPreKey).toBeUndefined();
      });

      it('replaces the last-resort KEM pre-key with the one a bundle carries, and keeps it when a bundle carries none', async () => {
        const bob = makePqAgent(2, 1);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle({ otkId: 0 }));
        await store.addKemPreKeys(d, publicKems(bob));
        const first = lastResortOf(bob);
        // A signed pre-key rotation published without a KEM pre-key (an older publisher): the last resort stays.
        bob.generateSignedPreKey();
        await store.storeBundle(d, classicBundle(bob.getPublicBundle({ otkId: 1 })));
        const peek = await store.getBundle(d);
        expect([peek?.signedPreKeyId, peek?.oneTimePreKeyId, await store.countOneTimePreKeys(d), await store.countKemPreKeys(d)]).toEqual([
          1, 0, 2, 1,
        ]);
        await store.claimBundle(d);
        await store.claimBundle(d);
        expect(plain(await store.claimBundle(d))).toEqual(plain(bob.getPublicBundle()));
        expect((await store.getBundle(d))?.kemPreKeyId).toBe(first);
        // A new last-resort key, published: it replaces the old one.
        bob.generateLastResortKemPreKey();
        expect(lastResortOf(bob)).not.toBe(first);
        await store.storeBundle(d, bob.getPublicBundle());
        expect(plain(await store.claimBundle(d))).toEqual(plain(bob.getPublicBundle()));
        await store.storeBundle(d, classicBundle(bob.getPublicBundle()));
        expect(plain(await store.getBundle(d))).toEqual(plain(bob.getPublicBundle()));
        // An identical bundle again is a no-op.
        await store.storeBundle(d, bob.getPublicBundle());
        expect(plain(await store.getBundle(d))).toEqual(plain(bob.getPublicBundle()));
      });

      it('refuses a bundle whose KEM pre-key is signed by another identity (BAD_SIGNATURE), and changes nothing', async () => {
        const bob = makePqAgent();
        const other = makePqAgent();
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        const lr = other.lastResortKemPreKey as PublicKemPreKeyEntry;
        const forged = { ...bob.getPublicBundle(), kemPreKey: lr.publicKey, kemPreKeyId: 77, kemPreKeySignature: lr.signature };
        await expectE2EErrorAsync(() => store.storeBundle(d, forged), 'BAD_SIGNATURE');
        await expectE2EErrorAsync(() => store.storeBundle(did(), forged), 'BAD_SIGNATURE');
        const wrongLength = { ...bob.getPublicBundle(), kemPreKey: new Uint8Array(1183) };
        await expectE2EErrorAsync(() => store.storeBundle(d, wrongLength), 'INVALID_KEY');
        expect(plain(await store.getBundle(d))).toEqual(plain(bob.getPublicBundle()));
      });

      it('adds one-time KEM pre-keys atomically: no_bundle, a re-add is a no-op, a re-used id is refused (kem_id_reused)', async () => {
        const bob = makePqAgent(0, 4);
        const keys = publicKems(bob);
        const d = did();
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, keys), 'INVALID_STATE', 'no_bundle');
        await store.storeBundle(d, bob.getPublicBundle());
        await store.addKemPreKeys(d, keys.slice(0, 2));
        await store.addKemPreKeys(d, keys.slice(0, 2)); // the same keys again: nothing changes
        expect(await store.countKemPreKeys(d)).toBe(2);
        expect(await store.consumeKemPreKey(d, keys[0].keyId)).toBe(true);
        // A claimed id, alongside a new key: refused, and the new key is not added either.
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [keys[2], keys[0]]), 'INVALID_STATE', 'kem_id_reused');
        // A pooled id with another (validly signed) key.
        const swapped = { keyId: keys[1].keyId, publicKey: keys[3].publicKey, signature: keys[3].signature };
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [keys[3], swapped]), 'INVALID_STATE', 'kem_id_reused');
        expect(await store.countKemPreKeys(d)).toBe(1);
        expect((await store.claimBundle(d))?.kemPreKeyId).toBe(keys[1].keyId);
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [keys[1]]), 'INVALID_STATE', 'kem_id_reused'); // claimed by a claim
        await store.addKemPreKeys(d, keys.slice(2));
        expect(await store.countKemPreKeys(d)).toBe(2);
      });

      it('verifies each KEM pre-key against the stored identity: BAD_SIGNATURE, INVALID_KEY, and nothing added', async () => {
        const bob = makePqAgent(0, 2);
        const other = makePqAgent(0, 1);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        const [good, good2] = publicKems(bob);
        const foreign = publicKems(other)[0]; // validly signed, by another identity
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [good2, foreign]), 'BAD_SIGNATURE');
        // Bob's own key signed by the other identity, with the context the KEM signatures use.
        const resigned = { ...good2, signature: other.signWithIdentityKey(kemPreKeySignedBytes(good2.publicKey)) };
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [good, resigned]), 'BAD_SIGNATURE');
        // Bob's signature over the raw key (no context): a signature of something else.
        const raw = { ...good2, signature: bob.signWithIdentityKey(good2.publicKey) };
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [raw]), 'BAD_SIGNATURE');
        const flipped = Uint8Array.from(good2.signature);
        flipped[5] ^= 1;
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [{ ...good2, signature: flipped }]), 'BAD_SIGNATURE');
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [{ ...good2, signature: new Uint8Array(63) }]), 'BAD_SIGNATURE');
        for (const len of [0, 32, 1183, 1185, 1568]) {
          await expectE2EErrorAsync(() => store.addKemPreKeys(d, [good, { ...good2, publicKey: new Uint8Array(len) }]), 'INVALID_KEY');
        }
        expect(await store.countKemPreKeys(d)).toBe(0);
        expect((await store.claimBundle(d))?.kemPreKeyId).toBe(lastResortOf(bob));
        // Another DID's identity does not count: the keys of Bob are refused for Carol's DID.
        const carol = did();
        await store.storeBundle(carol, other.getPublicBundle());
        await expectE2EErrorAsync(() => store.addKemPreKeys(carol, [good]), 'BAD_SIGNATURE');
        await store.addKemPreKeys(d, [good, good2]);
        expect([await store.countKemPreKeys(d), await store.countKemPreKeys(carol)]).toEqual([2, 0]);
      });

      it('verifies KEM pre-keys under the identity stored when they are written (the DID re-keyed while they were read)', async () => {
        const bob = makePqAgent(0, 2);
        const eve = makePqAgent();
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        const [k0, k1] = publicKems(bob);
        let rekeyed: Promise<unknown> | null = null;
        // The caller's code runs while the store reads the list: it re-keys the DID to Eve.
        const hostile = Object.defineProperty({ keyId: k1.keyId, signature: k1.signature }, 'publicKey', {
          enumerable: true,
          get: () => {
            rekeyed ??= (async () => {
              const removing = store.removeBundle(d);
              const storing = store.storeBundle(d, eve.getPublicBundle()); // issued right away: a Redis client sends both in order
              await removing;
              await storing;
            })();
            return k1.publicKey;
          },
        });
        await store.removeBundle(did()); // the scripts a Redis store runs are loaded: the re-key's two commands stay in order
        const outcome = (async () => store.addKemPreKeys(d, [k0, hostile as PublicKemPreKeyEntry]))();
        await Promise.allSettled([outcome, rekeyed]);
        await rekeyed;
        await expectE2EErrorAsync(outcome, 'BAD_SIGNATURE');
        expect(await store.countKemPreKeys(d)).toBe(0); // Bob's keys never entered Eve's pool
        expect(plain(await store.claimBundle(d))).toEqual(plain(eve.getPublicBundle()));
      });

      it('consumes a one-time KEM pre-key by id once; never the last-resort one; answers false and 0 for an unknown DID', async () => {
        const bob = makePqAgent(0, 2);
        const [k0, k1] = publicKems(bob);
        const d = did();
        expect(await store.consumeKemPreKey(d, k0.keyId)).toBe(false);
        expect(await store.countKemPreKeys(d)).toBe(0);
        await store.storeBundle(d, bob.getPublicBundle());
        await store.addKemPreKeys(d, [k0, k1]);
        expect(await store.consumeKemPreKey(d, k1.keyId)).toBe(true);
        expect(await store.consumeKemPreKey(d, k1.keyId)).toBe(false);
        expect(await store.consumeKemPreKey(d, lastResortOf(bob))).toBe(false);
        expect(await store.consumeKemPreKey(d, 999)).toBe(false);
        expect(await store.consumeOneTimeKey(d, k0.keyId)).toBe(false); // the pools are apart
        expect(await store.countKemPreKeys(d)).toBe(1);
        expect(ids(await store.claimBundle(d))).toEqual([undefined, k0.keyId]);
        expect(await store.consumeKemPreKey(d, k0.keyId)).toBe(false);
        expect((await store.claimBundle(d))?.kemPreKeyId).toBe(lastResortOf(bob));
      });

      it('removes the KEM pool, the last-resort KEM pre-key and the KEM claim history with the bundle', async () => {
        const bob = makePqAgent(1, 3);
        const keys = publicKems(bob);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle({ otkId: 0 }));
        await store.addKemPreKeys(d, keys);
        expect(await store.consumeKemPreKey(d, keys[0].keyId)).toBe(true);
        expect(await store.removeBundle(d)).toBe(true);
        expect(await store.removeBundle(d)).toBe(false);
        expect([await store.getBundle(d), await store.claimBundle(d), await store.countKemPreKeys(d)]).toEqual([null, null, 0]);
        expect(await store.consumeKemPreKey(d, keys[1].keyId)).toBe(false);
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, keys), 'INVALID_STATE', 'no_bundle');
        // Published again without a KEM pre-key: the old last-resort key is gone, so the bundle is classic.
        await store.storeBundle(d, classicBundle(bob.getPublicBundle()));
        expect((await store.getBundle(d))?.kemPreKey).toBeUndefined();
        await store.addKemPreKeys(d, keys); // the history went too: a claimed id may be added again
        expect(await store.countKemPreKeys(d)).toBe(3);
        // Re-keyed to another identity: the new identity's keys only.
        expect(await store.removeBundle(d)).toBe(true);
        const eve = makePqAgent(0, 1);
        await store.storeBundle(d, eve.getPublicBundle());
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, keys), 'BAD_SIGNATURE');
        await store.addKemPreKeys(d, publicKems(eve));
        expect(plain(await store.claimBundle(d))).toEqual(plain(eve.getPublicBundle({ kemId: publicKems(eve)[0].keyId })));
      });

      it('keeps the DIDs’ KEM pools apart', async () => {
        const [a, b] = [makePqAgent(0, 1), makePqAgent(0, 1)];
        const [da, db] = [`did:mesh:x${n}`, `did:mesh:x${n}:y`];
        await store.storeBundle(da, a.getPublicBundle());
        await store.storeBundle(db, b.getPublicBundle());
        await store.addKemPreKeys(da, publicKems(a));
        expect([await store.countKemPreKeys(da), await store.countKemPreKeys(db)]).toEqual([1, 0]);
        expect((await store.claimBundle(db))?.kemPreKeyId).toBe(lastResortOf(b));
        expect(toHex((await store.claimBundle(da))?.kemPreKey as Uint8Array)).toBe(toHex(publicKems(a)[0].publicKey));
      });

      it('hands out each one-time KEM pre-key exactly once to concurrent claims, and each id to exactly one consumer', async () => {
        const bob = makePqAgent(20, 40);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        await store.addOneTimePreKeys(d, publicOtks(bob));
        await store.addKemPreKeys(d, publicKems(bob).slice(0, 30));
        const got = await Promise.all(Array.from({ length: 50 }, () => store.claimBundle(d)));
        const otks = got.map((b) => b?.oneTimePreKeyId).filter((x): x is number => x !== undefined);
        const kems = got.map((b) => b?.kemPreKeyId as number).filter((x) => x !== lastResortOf(bob));
        expect(otks.sort((x, y) => x - y)).toEqual(publicOtks(bob).map((k) => k.keyId));
        expect(kems.sort((x, y) => x - y)).toEqual(
          publicKems(bob)
            .slice(0, 30)
            .map((k) => k.keyId),
        );
        expect(got.filter((b) => b?.kemPreKeyId === lastResortOf(bob)).length).toBe(20);
        // Every claim is a whole bundle: the KEM key a claim names is the one it carries.
        for (const b of got) expect(plain(b)).toEqual(plain(bob.getPublicBundle({ otkId: b?.oneTimePreKeyId, kemId: b?.kemPreKeyId })));
        const rest = publicKems(bob).slice(30);
        await store.addKemPreKeys(d, rest);
        const consumed = await Promise.all(rest.flatMap((k) => Array.from({ length: 5 }, () => store.consumeKemPreKey(d, k.keyId))));
        expect(consumed.filter((x) => x).length).toBe(rest.length);
        expect(await store.countKemPreKeys(d)).toBe(0);
      });

      it('stores KEM pre-keys by value and returns copies', async () => {
        const bob = makePqAgent(0, 1);
        const d = did();
        const bundle = bob.getPublicBundle();
        const k = publicKems(bob)[0];
        const mine = { keyId: k.keyId, publicKey: Uint8Array.from(k.publicKey), signature: Uint8Array.from(k.signature) };
        await store.storeBundle(d, bundle);
        await store.addKemPreKeys(d, [mine]);
        (bundle.kemPreKey as Uint8Array).fill(0);
        mine.publicKey.fill(0);
        mine.signature.fill(0);
        const peek = await store.getBundle(d);
        expect(toHex(peek?.kemPreKey as Uint8Array)).toBe(toHex(k.publicKey));
        peek?.kemPreKey?.fill(1);
        peek?.kemPreKeySignature?.fill(1);
        expect(plain(await store.claimBundle(d))).toEqual(plain(bob.getPublicBundle({ kemId: k.keyId })));
        expect(plain(await store.claimBundle(d))).toEqual(plain(bob.getPublicBundle()));
      });

      it('validates the KEM arguments', async () => {
        const bob = makePqAgent(0, 1);
        const [k] = publicKems(bob);
        for (const bad of BAD_IDS) {
          const x = bad as string;
          await expectE2EErrorAsync(() => store.addKemPreKeys(x, [k]), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.consumeKemPreKey(x, 0), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.countKemPreKeys(x), 'INVALID_ARGUMENT');
        }
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        for (const bad of BAD_KEY_IDS) {
          await expectE2EErrorAsync(() => store.consumeKemPreKey(d, bad as number), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.addKemPreKeys(d, [{ ...k, keyId: bad as number }]), 'INVALID_ARGUMENT');
        }
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, []), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, 'keys' as never), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [null as never]), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [{ keyId: 1, publicKey: k.publicKey } as never]), 'BAD_SIGNATURE');
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, new Array(1001).fill(k)), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [k, k]), 'INVALID_ARGUMENT');
        const hostile = Object.defineProperty({ keyId: k.keyId, signature: k.signature }, 'publicKey', {
          enumerable: true,
          get: () => {
            throw new Error('boom');
          },
        });
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, [hostile as never]), 'INVALID_ARGUMENT');
        expect(await store.countKemPreKeys(d)).toBe(0);
      });
    });

    describe('SessionStore', () => {
      const data = (s: string): Uint8Array => utf8(s);

      it('creates, loads and updates with compare-and-swap', async () => {
        const [a, b] = [did(), did()];
        expect(await store.loadSession(a, b)).toBeNull();
        expect(await store.saveSession(a, b, data('v1'), 0)).toBe(1);
        expect(await store.saveSession(a, b, data('v2'), 1)).toBe(2);
        const rec = await store.loadSession(a, b);
        expect(rec?.version).toBe(2);
        expect(Buffer.from(rec?.data as Uint8Array).toString()).toBe('v2');
        expect(await store.loadSession(b, a)).toBeNull();
      });

      it('refuses a stale update (STALE_STATE) and changes nothing', async () => {
        const [a, b] = [did(), did()];
        await store.saveSession(a, b, data('v1'), 0);
        await store.saveSession(a, b, data('v2-process-1'), 1);
        await expectE2EErrorAsync(() => store.saveSession(a, b, data('v2-process-2'), 1), 'STALE_STATE');
        await expectE2EErrorAsync(() => store.saveSession(a, b, data('again'), 0), 'STALE_STATE');
        await expectE2EErrorAsync(() => store.saveSession(a, b, data('ahead'), 5), 'STALE_STATE');
        const rec = await store.loadSession(a, b);
        expect([rec?.version, Buffer.from(rec?.data as Uint8Array).toString()]).toEqual([2, 'v2-process-1']);
        await expectE2EErrorAsync(() => store.saveSession(did(), b, data('new'), 1), 'STALE_STATE');
      });

      it('deletes, lists, and keeps counting versions after a re-create', async () => {
        const [a, b, c] = [did(), did(), did()];
        await store.saveSession(a, c, data('ac'), 0);
        await store.saveSession(a, b, data('ab'), 0);
        await store.saveSession(a, b, data('ab2'), 1);
        await store.saveSession(b, a, data('ba'), 0);
        expect(await store.listSessions(a)).toEqual([b, c].sort());
        expect(await store.deleteSession(a, b)).toBe(true);
        expect(await store.deleteSession(a, b)).toBe(false);
        expect(await store.loadSession(a, b)).toBeNull();
        expect(await store.listSessions(a)).toEqual([c]);
        await expectE2EErrorAsync(() => store.saveSession(a, b, data('from the deleted session'), 2), 'STALE_STATE');
        expect(await store.saveSession(a, b, data('new session'), 0)).toBe(3);
        await expectE2EErrorAsync(() => store.saveSession(a, b, data('old writer'), 2), 'STALE_STATE');
        expect(await store.listSessions(did())).toEqual([]);
      });

      it('stores bytes exactly and by value', async () => {
        const [a, b] = [did(), did()];
        const bytes = randomBytes(4096);
        bytes[0] = 0;
        const keep = toHex(bytes);
        await store.saveSession(a, b, bytes, 0);
        bytes.fill(7);
        const rec = await store.loadSession(a, b);
        expect(toHex(rec?.data as Uint8Array)).toBe(keep);
        rec?.data.fill(1);
        expect(toHex((await store.loadSession(a, b))?.data as Uint8Array)).toBe(keep);
      });

      it('saves a session and an inbox entry in one write; loads, lists oldest first, deletes', async () => {
        const [a, b] = [did(), did()];
        await expectE2EErrorAsync(() => store.saveSessionWithInbox(a, b, data('s1'), 1, { id: 'm0', data: data('p0') }), 'STALE_STATE');
        expect(await store.saveSessionWithInbox(a, b, data('s1'), 0, { id: 'm1', data: data('p1') })).toBe(1);
        expect(await store.saveSession(a, b, data('s2'), 1)).toBe(2);
        expect(await store.saveSessionWithInbox(a, b, data('s3'), 2, { id: 'm3', data: data('p3') })).toBe(3);
        expect(await store.saveSessionWithInbox(a, b, data('s4'), 3, { id: 'M-2_x', data: data('p4') })).toBe(4);
        const rec = await store.loadSession(a, b);
        expect([rec?.version, Buffer.from(rec?.data as Uint8Array).toString()]).toEqual([4, 's4']);
        const e = await store.loadInboxEntry(a, b, 'm3');
        expect([e?.id, e?.version, Buffer.from(e?.data as Uint8Array).toString()]).toEqual(['m3', 3, 'p3']);
        expect(await store.loadInboxEntry(a, b, 'nope')).toBeNull();
        expect(await store.loadInboxEntry(b, a, 'm3')).toBeNull();
        const list = await store.listInbox(a, b);
        expect(list.map((r) => [r.id, r.version, Buffer.from(r.data).toString()])).toEqual([
          ['m1', 1, 'p1'],
          ['m3', 3, 'p3'],
          ['M-2_x', 4, 'p4'],
        ]);
        expect(list.every((r) => r.data.constructor === Uint8Array)).toBe(true);
        expect(await store.deleteInboxEntry(a, b, 'm3')).toBe(true);
        expect(await store.deleteInboxEntry(a, b, 'm3')).toBe(false);
        expect((await store.listInbox(a, b)).map((r) => r.id)).toEqual(['m1', 'M-2_x']);
        expect(await store.listInbox(b, a)).toEqual([]);
      });

      it('refuses the whole write when any part is refused, and changes nothing', async () => {
        const [a, b] = [did(), did()];
        await store.saveSessionWithInbox(a, b, data('s1'), 0, { id: 'm1', data: data('p1') });
        await expectE2EErrorAsync(() => store.saveSessionWithInbox(a, b, data('s2'), 0, { id: 'm2', data: data('p2') }), 'STALE_STATE');
        await expectE2EErrorAsync(
          () => store.saveSessionWithInbox(a, b, data('s2'), 1, { id: 'm1', data: data('other') }),
          'INVALID_STATE',
          'inbox_id_reused',
        );
        expect((await store.loadSession(a, b))?.version).toBe(1);
        expect((await store.listInbox(a, b)).map((r) => [r.id, Buffer.from(r.data).toString()])).toEqual([['m1', 'p1']]);
      });

      it(`holds at most ${MAX_INBOX_ENTRIES} entries per session (INVALID_STATE, inbox_full)`, async () => {
        const [a, b] = [did(), did()];
        let v = 0;
        for (let i = 0; i < MAX_INBOX_ENTRIES; i++)
          v = await store.saveSessionWithInbox(a, b, data('s'), v, { id: `m${i}`, data: data('p') });
        await expectE2EErrorAsync(
          () => store.saveSessionWithInbox(a, b, data('s'), v, { id: 'over', data: data('p') }),
          'INVALID_STATE',
          'inbox_full',
        );
        expect((await store.loadSession(a, b))?.version).toBe(v);
        expect(await store.saveSession(a, b, data('still saves without a new entry'), v)).toBe(v + 1);
        await store.deleteInboxEntry(a, b, 'm0');
        expect(await store.saveSessionWithInbox(a, b, data('s'), v + 1, { id: 'over', data: data('p') })).toBe(v + 2);
        expect(await store.saveSessionWithInbox(did(), b, data('s'), 0, { id: 'm0', data: data('p') })).toBe(1); // per session
      }, 120_000);

      it('deletes the inbox with its session; a re-created session starts empty', async () => {
        const [a, b] = [did(), did()];
        await store.saveSessionWithInbox(a, b, data('s1'), 0, { id: 'm1', data: data('p1') });
        await store.saveSessionWithInbox(b, a, data('t1'), 0, { id: 'm1', data: data('q1') });
        expect(await store.deleteSession(a, b)).toBe(true);
        expect(await store.listInbox(a, b)).toEqual([]);
        expect(await store.loadInboxEntry(a, b, 'm1')).toBeNull();
        expect(await store.saveSessionWithInbox(a, b, data('s2'), 0, { id: 'm1', data: data('p2') })).toBe(2);
        expect((await store.listInbox(b, a)).map((r) => Buffer.from(r.data).toString())).toEqual(['q1']);
        expect(await store.deleteInboxEntry(did(), did(), 'm1')).toBe(false);
      });

      it('stores inbox bytes by value and returns owned copies', async () => {
        const [a, b] = [did(), did()];
        const bytes = Buffer.from(randomBytes(64)); // a Buffer: the store must not keep a view of it
        const keep = toHex(bytes);
        await store.saveSessionWithInbox(a, b, data('s'), 0, { id: 'm', data: bytes });
        bytes.fill(0);
        const got = await store.loadInboxEntry(a, b, 'm');
        expect(toHex(got?.data as Uint8Array)).toBe(keep);
        got?.data.fill(1);
        expect(toHex((await store.listInbox(a, b))[0].data)).toBe(keep);
      });

      it('validates the inbox arguments', async () => {
        const [a, b] = [did(), did()];
        for (const bad of BAD_IDS) {
          const x = bad as string;
          await expectE2EErrorAsync(() => store.saveSessionWithInbox(x, b, data('s'), 0, { id: 'm', data: data('p') }), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.loadInboxEntry(a, x, 'm'), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.listInbox(x, b), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.deleteInboxEntry(a, x, 'm'), 'INVALID_ARGUMENT');
        }
        for (const bad of BAD_INBOX_IDS) {
          await expectE2EErrorAsync(
            () => store.saveSessionWithInbox(a, b, data('s'), 0, { id: bad as string, data: data('p') }),
            'INVALID_ARGUMENT',
          );
          await expectE2EErrorAsync(() => store.loadInboxEntry(a, b, bad as string), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.deleteInboxEntry(a, b, bad as string), 'INVALID_ARGUMENT');
        }
        for (const entry of [null, 'x', { id: 'm' }, { id: 'm', data: new Uint8Array(0) }, { id: 'm', data: 'p' }]) {
          await expectE2EErrorAsync(() => store.saveSessionWithInbox(a, b, data('s'), 0, entry as never), 'INVALID_ARGUMENT');
        }
        await expectE2EErrorAsync(
          () => store.saveSessionWithInbox(a, b, data('s'), 0, { id: 'm', data: new Uint8Array(16 * 1024 * 1024 + 1) }),
          'MESSAGE_TOO_LARGE',
        );
        await expectE2EErrorAsync(
          () => store.saveSessionWithInbox(a, b, new Uint8Array(0), 0, { id: 'm', data: data('p') }),
          'INVALID_ARGUMENT',
        );
        await expectE2EErrorAsync(() => store.saveSessionWithInbox(a, b, data('s'), -1, { id: 'm', data: data('p') }), 'INVALID_ARGUMENT');
        expect(await store.loadSession(a, b)).toBeNull();
        expect(await store.listInbox(a, b)).toEqual([]);
      });

      it('keeps no view of caller Buffers in sessions, key managers and acceptances; returns plain Uint8Arrays', async () => {
        const [a, b, c] = [did(), did(), did()];
        const bytes = (): Buffer => Buffer.from(randomBytes(48));
        const [s1, k1, s2, k2] = [bytes(), bytes(), bytes(), bytes()];
        const keep = [s1, k1, s2, k2].map((x) => toHex(x));
        await store.saveSession(a, b, s1, 0);
        await store.saveKeyManager(a, k1, 0);
        await store.saveAcceptance({
          did: a,
          peerDid: c,
          keyManager: { data: k2, expectedVersion: 1 },
          session: { data: s2, expectedVersion: 0 },
        });
        for (const x of [s1, k1, s2, k2]) x.fill(0);
        const recs = [await store.loadSession(a, b), await store.loadKeyManager(a), await store.loadSession(a, c)];
        expect(recs.map((r) => toHex(r?.data as Uint8Array))).toEqual([keep[0], keep[3], keep[2]]);
        expect(recs.every((r) => r?.data.constructor === Uint8Array)).toBe(true);
      });

      it('validates every argument', async () => {
        const [a, b] = [did(), did()];
        for (const bad of BAD_IDS) {
          const x = bad as string;
          await expectE2EErrorAsync(() => store.loadSession(x, b), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.loadSession(a, x), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.saveSession(x, b, data('x'), 0), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.saveSession(a, x, data('x'), 0), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.deleteSession(x, b), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.listSessions(x), 'INVALID_ARGUMENT');
        }
        for (const v of [-1, 1.5, '0', null, Number.MAX_SAFE_INTEGER + 1]) {
          await expectE2EErrorAsync(() => store.saveSession(a, b, data('x'), v as number), 'INVALID_ARGUMENT');
        }
        await expectE2EErrorAsync(() => store.saveSession(a, b, new Uint8Array(0), 0), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(() => store.saveSession(a, b, 'text' as never, 0), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(() => store.saveSession(a, b, new Uint8Array(16 * 1024 * 1024 + 1), 0), 'MESSAGE_TOO_LARGE');
        expect(await store.loadSession(a, b)).toBeNull();
      });
    });

    describe('KeyManagerStore', () => {
      it('saves key-manager state with compare-and-swap, apart from sessions', async () => {
        const a = did();
        expect(await store.loadKeyManager(a)).toBeNull();
        expect(await store.saveKeyManager(a, utf8('k1'), 0)).toBe(1);
        await expectE2EErrorAsync(() => store.saveKeyManager(a, utf8('k1b'), 0), 'STALE_STATE');
        expect(await store.saveKeyManager(a, utf8('k2'), 1)).toBe(2);
        expect(await store.loadSession(a, a)).toBeNull();
        const rec = await store.loadKeyManager(a);
        expect([rec?.version, Buffer.from(rec?.data as Uint8Array).toString()]).toEqual([2, 'k2']);
        expect(await store.deleteKeyManager(a)).toBe(true);
        expect(await store.deleteKeyManager(a)).toBe(false);
        expect(await store.loadKeyManager(a)).toBeNull();
        expect(await store.saveKeyManager(a, utf8('k3'), 0)).toBe(3);
      });

      it('records each establishment once per signed pre-key, until forgotten', async () => {
        const a = did();
        const fp = toHex(randomBytes(32));
        expect(await store.markEstablishment(a, 4, fp)).toBe(true);
        expect(await store.markEstablishment(a, 4, fp)).toBe(false);
        expect(await store.markEstablishment(a, 5, fp)).toBe(true);
        expect(await store.markEstablishment(did(), 4, fp)).toBe(true);
        await store.forgetEstablishments(a, 4);
        expect(await store.markEstablishment(a, 4, fp)).toBe(true);
        expect(await store.markEstablishment(a, 5, fp)).toBe(false);
        await store.saveKeyManager(a, utf8('k'), 0);
        await store.deleteKeyManager(a);
        expect(await store.markEstablishment(a, 5, fp)).toBe(true);
      });

      it('writes an acceptance with a one-time key (key manager + session) in one step, or nothing', async () => {
        const [a, p] = [did(), did()];
        await store.saveKeyManager(a, utf8('k1'), 0);
        const w = {
          did: a,
          peerDid: p,
          keyManager: { data: utf8('k2'), expectedVersion: 1 },
          session: { data: utf8('s1'), expectedVersion: 0 },
        };
        await expectE2EErrorAsync(
          () => store.saveAcceptance({ ...w, keyManager: { data: utf8('k2'), expectedVersion: 0 } }),
          'STALE_STATE',
          'key_manager',
        );
        await store.saveSession(a, p, utf8('taken'), 0);
        await expectE2EErrorAsync(() => store.saveAcceptance(w), 'STALE_STATE', 'session');
        expect((await store.loadKeyManager(a))?.version).toBe(1); // nothing of the refused writes
        expect(Buffer.from((await store.loadSession(a, p))?.data as Uint8Array).toString()).toBe('taken');
        expect(await store.saveAcceptance({ ...w, session: { data: utf8('s2'), expectedVersion: 1 } })).toEqual({
          keyManagerVersion: 2,
          sessionVersion: 2,
        });
        const k = await store.loadKeyManager(a);
        const s2 = await store.loadSession(a, p);
        expect([
          k?.version,
          Buffer.from(k?.data as Uint8Array).toString(),
          s2?.version,
          Buffer.from(s2?.data as Uint8Array).toString(),
        ]).toEqual([2, 'k2', 2, 's2']);
        expect(await store.listSessions(a)).toEqual([p]);
      });

      it('writes an acceptance without a one-time key (replay record + session) in one step, or nothing', async () => {
        const [a, p, q] = [did(), did(), did()];
        const fp = toHex(randomBytes(32));
        await store.saveSession(a, p, utf8('taken'), 0);
        const w = {
          did: a,
          peerDid: p,
          establishment: { signedPreKeyId: 3, fingerprint: fp },
          session: { data: utf8('s'), expectedVersion: 0 },
        };
        await expectE2EErrorAsync(() => store.saveAcceptance(w), 'STALE_STATE', 'session');
        expect(await store.markEstablishment(a, 3, fp)).toBe(true); // the refused write recorded nothing
        await store.forgetEstablishments(a, 3);
        expect(await store.saveAcceptance({ ...w, peerDid: q })).toEqual({ keyManagerVersion: null, sessionVersion: 1 });
        await expectE2EErrorAsync(
          () => store.saveAcceptance({ ...w, session: { data: utf8('s'), expectedVersion: 1 } }),
          'DUPLICATE_MESSAGE',
          'establishment_replay',
        );
        expect(Buffer.from((await store.loadSession(a, p))?.data as Uint8Array).toString()).toBe('taken');
        expect(await store.markEstablishment(a, 3, fp)).toBe(false);
        expect(await store.markEstablishment(a, 4, fp)).toBe(true);
        expect((await store.listSessions(a)).sort()).toEqual([p, q].sort());
        await store.saveKeyManager(a, utf8('k'), 0);
        await store.deleteKeyManager(a); // deletes the replay records too
        expect(await store.saveAcceptance({ ...w, peerDid: did() })).toEqual({ keyManagerVersion: null, sessionVersion: 1 });
      });

      it('validates an acceptance', async () => {
        const a = did();
        const session = { data: utf8('s'), expectedVersion: 0 };
        const km = { data: utf8('k'), expectedVersion: 0 };
        const est = { signedPreKeyId: 0, fingerprint: 'fp' };
        const bad: unknown[] = [
          null,
          'x',
          { did: a, peerDid: a, session },
          { did: a, peerDid: a, session, keyManager: km, establishment: est },
          { did: '', peerDid: a, session, keyManager: km },
          { did: a, peerDid: 'x\uD800', session, keyManager: km },
          { did: a, peerDid: a, session: { data: utf8('s'), expectedVersion: -1 }, keyManager: km },
          { did: a, peerDid: a, session: null, keyManager: km },
          { did: a, peerDid: a, session, keyManager: { data: new Uint8Array(0), expectedVersion: 0 } },
          { did: a, peerDid: a, session, establishment: { signedPreKeyId: -1, fingerprint: 'fp' } },
          { did: a, peerDid: a, session, establishment: { signedPreKeyId: 0, fingerprint: 'a b' } },
          { did: a, peerDid: a, session, establishment: null },
        ];
        for (const w of bad) await expectE2EErrorAsync(() => store.saveAcceptance(w as never), 'INVALID_ARGUMENT');
        expect(await store.loadSession(a, a)).toBeNull();
        expect(await store.loadKeyManager(a)).toBeNull();
      });

      it('validates every argument', async () => {
        const a = did();
        for (const bad of BAD_IDS) {
          const x = bad as string;
          await expectE2EErrorAsync(() => store.loadKeyManager(x), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.saveKeyManager(x, utf8('k'), 0), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.deleteKeyManager(x), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.markEstablishment(x, 0, 'fp'), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.forgetEstablishments(x, 0), 'INVALID_ARGUMENT');
        }
        for (const bad of BAD_KEY_IDS) {
          await expectE2EErrorAsync(() => store.markEstablishment(a, bad as number, 'fp'), 'INVALID_ARGUMENT');
          await expectE2EErrorAsync(() => store.forgetEstablishments(a, bad as number), 'INVALID_ARGUMENT');
        }
        for (const fp of ['', 'a b', 'x'.repeat(257), 7, 'é']) {
          await expectE2EErrorAsync(() => store.markEstablishment(a, 0, fp as string), 'INVALID_ARGUMENT');
        }
        await expectE2EErrorAsync(() => store.saveKeyManager(a, new Uint8Array(0), 0), 'INVALID_ARGUMENT');
        await expectE2EErrorAsync(() => store.saveKeyManager(a, utf8('k'), -1), 'INVALID_ARGUMENT');
      });
    });

    if (factory.reopen) {
      const reopen = factory.reopen;
      it('keeps everything across a re-open', async () => {
        const bob = makeAgent(2);
        const [d, peer] = [did(), did()];
        await store.storeBundle(d, bob.getPublicBundle());
        await store.addOneTimePreKeys(d, publicOtks(bob));
        expect((await store.claimBundle(d))?.oneTimePreKeyId).toBe(0);
        await store.saveSession(d, peer, utf8('s'), 0);
        await store.saveKeyManager(d, utf8('k'), 0);
        await store.markEstablishment(d, 0, 'fp');
        await store.saveSessionWithInbox(peer, d, utf8('s'), 0, { id: 'm1', data: utf8('sealed message') });
        store = await reopen(store);
        expect((await store.listInbox(peer, d)).map((r) => [r.id, r.version, Buffer.from(r.data).toString()])).toEqual([
          ['m1', 1, 'sealed message'],
        ]);
        expect((await store.claimBundle(d))?.oneTimePreKeyId).toBe(1);
        expect(await store.consumeOneTimeKey(d, 0)).toBe(false);
        expect((await store.loadSession(d, peer))?.version).toBe(1);
        expect((await store.loadKeyManager(d))?.version).toBe(1);
        expect(await store.markEstablishment(d, 0, 'fp')).toBe(false);
        expect(await store.listSessions(d)).toEqual([peer]);
      });

      it('keeps the KEM pool, the last-resort KEM pre-key and the KEM claim history across a re-open', async () => {
        const bob = makePqAgent(0, 3);
        const keys = publicKems(bob);
        const d = did();
        await store.storeBundle(d, bob.getPublicBundle());
        await store.addKemPreKeys(d, keys);
        expect((await store.claimBundle(d))?.kemPreKeyId).toBe(keys[0].keyId);
        expect(await store.consumeKemPreKey(d, keys[1].keyId)).toBe(true);
        store = await reopen(store);
        expect(await store.countKemPreKeys(d)).toBe(1);
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, keys.slice(0, 1)), 'INVALID_STATE', 'kem_id_reused');
        await expectE2EErrorAsync(() => store.addKemPreKeys(d, keys.slice(1, 2)), 'INVALID_STATE', 'kem_id_reused');
        expect(plain(await store.claimBundle(d))).toEqual(plain(bob.getPublicBundle({ kemId: keys[2].keyId })));
        expect(plain(await store.claimBundle(d))).toEqual(plain(bob.getPublicBundle()));
      });
    }
  });
}
