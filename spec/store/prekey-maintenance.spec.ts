import { ready } from '../../lib/sodium';
import fc from 'fast-check';
import { ed25519KeyPair, fromUtf8, randomBytes, toHex, utf8 } from '../../lib/crypto';
import { PreKeyBundle, X3DHKeyManager } from '../../lib/x3dh';
import { SecureChannel } from '../../lib/channel';
import { InMemoryStore, PreKeyStore, PublicOneTimePreKey, StorageCipher, StoredKeyManager, maintainPreKeys } from '../../lib/store';
import { FAULTS, Fault, faultyStore } from './faulty';
import { makeAgent, makePqAgent } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';
import {
  DEFAULT_MIN_KEM_PRE_KEYS,
  DEFAULT_MIN_ONE_TIME_PRE_KEYS,
  DEFAULT_SIGNED_PRE_KEY_GRACE_MS,
  DEFAULT_SIGNED_PRE_KEY_MAX_AGE_MS,
  DEFAULT_TARGET_KEM_PRE_KEYS,
  DEFAULT_TARGET_ONE_TIME_PRE_KEYS,
  MAX_KEM_PRE_KEYS_IN_STATE,
} from '../../lib/limits';

const BOB = 'did:mesh:bob';
const DAY = 24 * 3600 * 1000;
/** The KEM figures of a classic run: nothing done. */
const CLASSIC = { kemRotatedTo: null, retiredKemPreKeys: [], addedKemPreKeys: 0 };

describe('maintainPreKeys', () => {
  let cipher: StorageCipher;
  let clock: number;
  beforeAll(async () => {
    await ready();
    cipher = new StorageCipher(randomBytes(32));
  });
  beforeEach(() => {
    clock = Date.now();
    // Key managers stamp signed pre-keys with Date.now(): drive it, so "days" pass instantly.
    jest.spyOn(Date, 'now').mockImplementation(() => clock);
  });
  afterEach(() => jest.restoreAllMocks());

  async function setup(): Promise<{ store: InMemoryStore; keys: StoredKeyManager }> {
    const store = new InMemoryStore();
    const keys = await StoredKeyManager.create({ store, cipher, did: BOB }, makeAgent());
    return { store, keys };
  }

  it('has documented defaults', () => {
    expect([
      DEFAULT_MIN_ONE_TIME_PRE_KEYS,
      DEFAULT_TARGET_ONE_TIME_PRE_KEYS,
      DEFAULT_SIGNED_PRE_KEY_MAX_AGE_MS,
      DEFAULT_SIGNED_PRE_KEY_GRACE_MS,
    ]).toEqual([20, 100, 7 * DAY, 14 * DAY]);
  });

  it('publishes the bundle and fills the pool, saving private keys first; then does nothing until needed', async () => {
    const { store, keys } = await setup();
    expect(await maintainPreKeys(keys, store)).toEqual({
      rotatedTo: null,
      retired: [],
      addedOneTimePreKeys: 100,
      publishedBundle: true,
      ...CLASSIC,
    });
    expect(store.countOneTimePreKeys(BOB)).toBe(100);
    const saved = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    expect(saved.manager.oneTimePreKeyIds.length).toBe(100);
    const b = store.getBundle(BOB);
    expect(toHex(b?.oneTimePreKey as Uint8Array)).toBe(
      toHex(saved.manager.getOneTimePreKey(b?.oneTimePreKeyId as number)?.keyPair.publicKey as Uint8Array),
    );
    expect(await maintainPreKeys(keys, store)).toEqual({
      rotatedTo: null,
      retired: [],
      addedOneTimePreKeys: 0,
      publishedBundle: false,
      ...CLASSIC,
    });
    for (let i = 0; i < 80; i++) store.claimBundle(BOB);
    expect(await maintainPreKeys(keys, store)).toEqual({
      rotatedTo: null,
      retired: [],
      addedOneTimePreKeys: 0,
      publishedBundle: false,
      ...CLASSIC,
    });
    store.claimBundle(BOB); // 19 left: below the threshold of 20
    expect((await maintainPreKeys(keys, store)).addedOneTimePreKeys).toBe(81);
    expect(store.countOneTimePreKeys(BOB)).toBe(100);
  });

  it('rotates the signed pre-key on schedule and retires the old one after the grace window', async () => {
    const { store, keys } = await setup();
    const policy = { signedPreKeyMaxAgeMs: 7 * DAY, signedPreKeyGraceMs: 3 * DAY, minOneTimePreKeys: 0, targetOneTimePreKeys: 0 };
    await maintainPreKeys(keys, store, policy);
    const oldBundle = store.claimBundle(BOB);
    const inFlight = SecureChannel.createSender(makeAgent(), oldBundle!); // made before the rotation
    const lastResortOld = SecureChannel.createSender(makeAgent(), oldBundle!).establishment;
    clock += 7 * DAY - 1;
    expect((await maintainPreKeys(keys, store, policy)).rotatedTo).toBeNull();
    clock += 1;
    expect(await maintainPreKeys(keys, store, policy)).toEqual({
      rotatedTo: 1,
      retired: [],
      addedOneTimePreKeys: 0,
      publishedBundle: true,
      ...CLASSIC,
    });
    expect(store.getBundle(BOB)?.signedPreKeyId).toBe(1);
    // An establishment made from the old bundle still completes within the grace window.
    const bob = await keys.acceptChannel(inFlight.establishment, { sessions: store, peerDid: 'did:mesh:alice' });
    expect(fromUtf8(await bob.receive(inFlight.channel.send(utf8('in flight'))))).toBe('in flight');
    clock += 3 * DAY - 1;
    expect((await maintainPreKeys(keys, store, policy)).retired).toEqual([]);
    clock += 1;
    expect(await maintainPreKeys(keys, store, policy)).toEqual({
      rotatedTo: null,
      retired: [0],
      addedOneTimePreKeys: 0,
      publishedBundle: false,
      ...CLASSIC,
    });
    expect(keys.manager.signedPreKeyIds).toEqual([1]);
    // The replay records of the retired key are gone, and establishments with it now fail.
    expect(store.markEstablishment(BOB, 0, 'seen-under-0')).toBe(true);
    await expectE2EErrorAsync(() => keys.acceptChannel(lastResortOld, { sessions: store, peerDid: 'did:mesh:carol' }), 'SPK_NOT_FOUND');
  });

  it('forgets the replay records of a retired key', async () => {
    const { store, keys } = await setup();
    const policy = { signedPreKeyMaxAgeMs: DAY, signedPreKeyGraceMs: DAY, minOneTimePreKeys: 0, targetOneTimePreKeys: 0 };
    await maintainPreKeys(keys, store, policy);
    store.markEstablishment(BOB, 0, 'fp');
    clock += DAY;
    await maintainPreKeys(keys, store, policy);
    expect(store.markEstablishment(BOB, 0, 'fp')).toBe(false);
    clock += DAY;
    expect((await maintainPreKeys(keys, store, policy)).retired).toEqual([0]);
    expect(store.markEstablishment(BOB, 0, 'fp')).toBe(true);
  });

  it('makes a first signed pre-key for a manager without one', async () => {
    const store = new InMemoryStore();
    const id = ed25519KeyPair();
    const keys = await StoredKeyManager.create({ store, cipher, did: BOB }, X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey));
    expect(await maintainPreKeys(keys, store, { targetOneTimePreKeys: 5, minOneTimePreKeys: 5 })).toEqual({
      rotatedTo: 0,
      retired: [],
      addedOneTimePreKeys: 5,
      publishedBundle: true,
      ...CLASSIC,
    });
  });

  it('serves the last resort when the pool runs dry: each such establishment accepted once', async () => {
    const { store, keys } = await setup();
    await maintainPreKeys(keys, store, { minOneTimePreKeys: 2, targetOneTimePreKeys: 2 });
    expect([store.claimBundle(BOB)?.oneTimePreKeyId, store.claimBundle(BOB)?.oneTimePreKeyId]).toEqual([0, 1]);
    const dry = store.claimBundle(BOB);
    expect(dry?.oneTimePreKey).toBeUndefined();
    const { channel, establishment } = SecureChannel.createSender(makeAgent(), dry!);
    const bob = await keys.acceptChannel(establishment, { sessions: store, peerDid: 'did:mesh:alice' });
    expect(fromUtf8(await bob.receive(channel.send(utf8('no one-time key left'))))).toBe('no one-time key left');
    await expectE2EErrorAsync(
      () => keys.acceptChannel(establishment, { sessions: store, peerDid: 'did:mesh:eve' }),
      'DUPLICATE_MESSAGE',
      'establishment_replay',
    );
  });

  it('validates its arguments', async () => {
    const { store, keys } = await setup();
    await expectE2EErrorAsync(() => maintainPreKeys({} as never, store), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => maintainPreKeys(keys, {} as never), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => maintainPreKeys(keys, store, null as never), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => maintainPreKeys(keys, store, { minOneTimePreKeys: 10, targetOneTimePreKeys: 5 }), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => maintainPreKeys(keys, store, { targetOneTimePreKeys: 10001 }), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => maintainPreKeys(keys, store, { signedPreKeyGraceMs: -1 }), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => maintainPreKeys(keys, store, { signedPreKeyMaxAgeMs: 1.5 }), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => maintainPreKeys(keys, store, { now: 5 as never }), 'INVALID_ARGUMENT');
    expect(keys.version).toBe(1);
  });

  it('refuses to publish over another identity for the same DID', async () => {
    const { store, keys } = await setup();
    store.storeBundle(BOB, makeAgent().getPublicBundle());
    await expectE2EErrorAsync(() => maintainPreKeys(keys, store), 'IDENTITY_MISMATCH', 'identity_changed');
  });
});

describe('maintainPreKeys: KEM pre-keys', () => {
  let cipher: StorageCipher;
  let clock: number;
  beforeAll(async () => {
    await ready();
    cipher = new StorageCipher(randomBytes(32));
  });
  beforeEach(() => {
    clock = Date.now();
    // Key managers stamp pre-keys with Date.now(): drive it, so "days" pass instantly.
    jest.spyOn(Date, 'now').mockImplementation(() => clock);
  });
  afterEach(() => jest.restoreAllMocks());

  /** Only what a policy about KEM pre-keys looks at: no one-time pre-keys. */
  const NO_OTKS = { minOneTimePreKeys: 0, targetOneTimePreKeys: 0 };

  async function setupPq(): Promise<{ store: InMemoryStore; keys: StoredKeyManager; lastResort: number }> {
    const store = new InMemoryStore();
    const keys = await StoredKeyManager.create({ store, cipher, did: BOB }, makePqAgent());
    return { store, keys, lastResort: (keys.manager.lastResortKemPreKey as { keyId: number }).keyId };
  }

  /** Claims every one-time KEM pre-key of the directory; checks each has its private half (same public key) in the saved manager. */
  async function drainAndCheck(store: InMemoryStore, lastResort: number): Promise<number[]> {
    const saved = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    const ids: number[] = [];
    for (;;) {
      const b = store.claimBundle(BOB) as PreKeyBundle;
      const mine = saved.manager.getKemPreKey(b.kemPreKeyId as number);
      expect(toHex(mine?.publicKey as Uint8Array)).toBe(toHex(b.kemPreKey as Uint8Array));
      if (b.kemPreKeyId === lastResort) return ids;
      expect(mine?.lastResort).toBe(false);
      ids.push(b.kemPreKeyId as number);
    }
  }

  it('has documented defaults', () => {
    expect([DEFAULT_MIN_KEM_PRE_KEYS, DEFAULT_TARGET_KEM_PRE_KEYS]).toEqual([20, 100]);
  });

  it('keeps a classic manager classic by default (also with a directory without KEM methods); postQuantum: true makes it post-quantum', async () => {
    const store = new InMemoryStore();
    const keys = await StoredKeyManager.create({ store, cipher, did: BOB }, makeAgent());
    const classicDirectory = {
      countOneTimePreKeys: (d: string) => store.countOneTimePreKeys(d),
      getBundle: (d: string) => store.getBundle(d),
      storeBundle: (d: string, b: PreKeyBundle) => store.storeBundle(d, b),
      addOneTimePreKeys: (d: string, k: readonly PublicOneTimePreKey[]) => store.addOneTimePreKeys(d, k),
    } as unknown as PreKeyStore;
    expect(await maintainPreKeys(keys, classicDirectory)).toEqual({
      rotatedTo: null,
      retired: [],
      addedOneTimePreKeys: 100,
      publishedBundle: true,
      ...CLASSIC,
    });
    expect([keys.manager.lastResortKemPreKey, keys.manager.kemPreKeyIds, store.getBundle(BOB)?.kemPreKey]).toEqual([null, [], undefined]);
    await expectE2EErrorAsync(() => maintainPreKeys(keys, classicDirectory, { postQuantum: true }), 'INVALID_ARGUMENT');
    expect(keys.version).toBe(2);
    const r = await maintainPreKeys(keys, store, { postQuantum: true });
    const lastResort = (keys.manager.lastResortKemPreKey as { keyId: number }).keyId;
    expect(r).toEqual({
      rotatedTo: null,
      retired: [],
      addedOneTimePreKeys: 0,
      publishedBundle: true,
      kemRotatedTo: lastResort,
      retiredKemPreKeys: [],
      addedKemPreKeys: 100,
    });
    expect(store.countKemPreKeys(BOB)).toBe(100);
    // From now on the manager is post-quantum: the default keeps it so.
    expect((await maintainPreKeys(keys, store)).kemRotatedTo).toBeNull();
    expect((await drainAndCheck(store, lastResort)).length).toBe(100);
  });

  it('refills the one-time KEM pool (private halves saved first), publishing the bundle with the last-resort KEM pre-key', async () => {
    const { store, keys, lastResort } = await setupPq();
    expect(await maintainPreKeys(keys, store, NO_OTKS)).toEqual({
      rotatedTo: null,
      retired: [],
      addedOneTimePreKeys: 0,
      publishedBundle: true,
      kemRotatedTo: null,
      retiredKemPreKeys: [],
      addedKemPreKeys: 100,
    });
    expect(store.countKemPreKeys(BOB)).toBe(100);
    const saved = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    expect(saved.manager.kemPreKeyIds.length).toBe(101);
    // Above the floor: nothing made. The bundle is written again (the pool hides the last-resort key).
    expect(await maintainPreKeys(keys, store, NO_OTKS)).toMatchObject({ addedKemPreKeys: 0, kemRotatedTo: null, publishedBundle: true });
    for (let i = 0; i < 80; i++) store.claimBundle(BOB);
    expect((await maintainPreKeys(keys, store, NO_OTKS)).addedKemPreKeys).toBe(0);
    store.claimBundle(BOB); // 19 left: below the floor of 20
    expect((await maintainPreKeys(keys, store, NO_OTKS)).addedKemPreKeys).toBe(81);
    expect(store.countKemPreKeys(BOB)).toBe(100);
    expect((await drainAndCheck(store, lastResort)).length).toBe(100);
    // The pool empty, the directory shows its last-resort key: ours, so the bundle is not written again.
    expect(await maintainPreKeys(keys, store, { ...NO_OTKS, minKemPreKeys: 0, targetKemPreKeys: 0 })).toMatchObject({
      publishedBundle: false,
      addedKemPreKeys: 0,
    });
    expect(await maintainPreKeys(keys, store, { ...NO_OTKS, minKemPreKeys: 5, targetKemPreKeys: 7 })).toMatchObject({ addedKemPreKeys: 7 });
  });

  it('rotates the last-resort KEM pre-key with the signed pre-key and retires the replaced one after the grace window', async () => {
    const { store, keys, lastResort: old } = await setupPq();
    const policy = { ...NO_OTKS, minKemPreKeys: 0, targetKemPreKeys: 0, signedPreKeyMaxAgeMs: 7 * DAY, signedPreKeyGraceMs: 3 * DAY };
    await maintainPreKeys(keys, store, policy);
    const oldBundle = store.claimBundle(BOB) as PreKeyBundle;
    expect(oldBundle.kemPreKeyId).toBe(old);
    const inFlight = SecureChannel.createSender(makeAgent(), oldBundle); // made before the rotation
    const late = SecureChannel.createSender(makeAgent(), oldBundle).establishment; // accepted only after the grace window
    clock += 7 * DAY - 1;
    expect(await maintainPreKeys(keys, store, policy)).toMatchObject({ rotatedTo: null, kemRotatedTo: null, publishedBundle: false });
    clock += 1;
    const r = await maintainPreKeys(keys, store, policy);
    const current = (keys.manager.lastResortKemPreKey as { keyId: number }).keyId;
    expect(current).toBeGreaterThan(old);
    expect(r).toEqual({
      rotatedTo: 1,
      retired: [],
      addedOneTimePreKeys: 0,
      publishedBundle: true,
      kemRotatedTo: current,
      retiredKemPreKeys: [],
      addedKemPreKeys: 0,
    });
    expect([store.getBundle(BOB)?.signedPreKeyId, store.getBundle(BOB)?.kemPreKeyId]).toEqual([1, current]);
    // An establishment made from the old bundle still completes within the grace window.
    const bob = await keys.acceptChannel(inFlight.establishment, { sessions: store, peerDid: 'did:mesh:alice' });
    expect(bob.postQuantum).toBe(true);
    expect(fromUtf8(await bob.receive(inFlight.channel.send(utf8('in flight'))))).toBe('in flight');
    clock += 3 * DAY - 1;
    expect(await maintainPreKeys(keys, store, policy)).toMatchObject({ retired: [], retiredKemPreKeys: [] });
    clock += 1;
    expect(await maintainPreKeys(keys, store, policy)).toEqual({
      rotatedTo: null,
      retired: [0],
      addedOneTimePreKeys: 0,
      publishedBundle: false,
      kemRotatedTo: null,
      retiredKemPreKeys: [old],
      addedKemPreKeys: 0,
    });
    expect([keys.manager.signedPreKeyIds, keys.manager.kemPreKeyIds]).toEqual([[1], [current]]);
    await expectE2EErrorAsync(() => keys.acceptChannel(late, { sessions: store, peerDid: 'did:mesh:carol' }), 'KEM_NOT_FOUND');
  });

  it('rotates the last-resort KEM pre-key on its own schedule too, and keeps one-time KEM pre-keys through rotations', async () => {
    const { store, keys, lastResort: first } = await setupPq();
    const policy = { ...NO_OTKS, minKemPreKeys: 3, targetKemPreKeys: 3, signedPreKeyMaxAgeMs: 7 * DAY, signedPreKeyGraceMs: DAY };
    await maintainPreKeys(keys, store, policy);
    clock += 5 * DAY;
    await keys.update((m) => void m.generateSignedPreKey()); // rotated by hand: the schedules part
    expect(await maintainPreKeys(keys, store, policy)).toMatchObject({
      rotatedTo: null,
      kemRotatedTo: null,
      retired: [],
      publishedBundle: true,
    });
    clock += 2 * DAY;
    const r = await maintainPreKeys(keys, store, policy);
    const second = (keys.manager.lastResortKemPreKey as { keyId: number }).keyId;
    expect(r).toMatchObject({ rotatedTo: null, kemRotatedTo: second, retired: [0], retiredKemPreKeys: [], publishedBundle: true });
    clock += DAY;
    expect(await maintainPreKeys(keys, store, policy)).toMatchObject({ retiredKemPreKeys: [first], addedKemPreKeys: 0 });
    expect((await drainAndCheck(store, second)).length).toBe(3);
  });

  it('rotates the last-resort KEM pre-key whenever the signed pre-key rotates, so a manager made post-quantum later joins its schedule', async () => {
    const store = new InMemoryStore();
    const keys = await StoredKeyManager.create({ store, cipher, did: BOB }, makeAgent());
    const policy = { ...NO_OTKS, minKemPreKeys: 0, targetKemPreKeys: 0, signedPreKeyMaxAgeMs: 7 * DAY, signedPreKeyGraceMs: DAY };
    await maintainPreKeys(keys, store, policy);
    clock += 3 * DAY;
    const first = (await maintainPreKeys(keys, store, { ...policy, postQuantum: true })).kemRotatedTo as number;
    expect(first).not.toBeNull();
    clock += 4 * DAY; // the signed pre-key is 7 days old, the last-resort KEM pre-key 4
    const r = await maintainPreKeys(keys, store, policy);
    expect(r).toMatchObject({ rotatedTo: 1, publishedBundle: true });
    expect(r.kemRotatedTo).toBe((keys.manager.lastResortKemPreKey as { keyId: number }).keyId);
    expect(r.kemRotatedTo).toBeGreaterThan(first);
    expect([store.getBundle(BOB)?.signedPreKeyId, store.getBundle(BOB)?.kemPreKeyId]).toEqual([1, r.kemRotatedTo]);
  });

  it('postQuantum: false leaves the KEM pre-keys as they are (and needs no KEM methods)', async () => {
    const { store, keys, lastResort } = await setupPq();
    clock += 30 * DAY;
    const directory = { ...bind(store), countKemPreKeys: undefined, addKemPreKeys: undefined } as unknown as PreKeyStore;
    expect(await maintainPreKeys(keys, directory, { ...NO_OTKS, postQuantum: false })).toEqual({
      rotatedTo: 1,
      retired: [],
      addedOneTimePreKeys: 0,
      publishedBundle: true,
      ...CLASSIC,
    });
    expect([keys.manager.kemPreKeyIds, store.getBundle(BOB)?.kemPreKeyId]).toEqual([[lastResort], lastResort]);
    await expectE2EErrorAsync(() => maintainPreKeys(keys, directory, NO_OTKS), 'INVALID_ARGUMENT'); // the default: post-quantum
  });

  it('never publishes a key whose private half is not saved, whatever fails (saves, publications, replies)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom(...FAULTS), { maxLength: 12 }), async (faults) => {
        const { store: inner, keys: created, lastResort } = await setupPq();
        let i = 0;
        let on = false;
        const f = faultyStore(inner, () => (on && i < faults.length ? faults[i++] : 'ok'));
        const keys = (await StoredKeyManager.load({ store: f.store, cipher, did: BOB })) as StoredKeyManager;
        created.manager.wipe();
        on = true; // every store and directory call from here on may fail, before or after it reaches the store
        const policy = { minOneTimePreKeys: 3, targetOneTimePreKeys: 3, minKemPreKeys: 3, targetKemPreKeys: 3 };
        let done = false;
        for (let attempt = 0; attempt < 20 && !done; attempt++) {
          try {
            await maintainPreKeys(keys, f.store, policy);
            done = true;
          } catch (e) {
            expect((e as { code?: string }).code).toMatch(/^(STORE_ERROR|STALE_STATE)$/);
          }
          // After every run, failed or not: each one-time KEM pre-key the directory holds has its private half saved.
          const saved = (await StoredKeyManager.load({ store: inner, cipher, did: BOB })) as StoredKeyManager;
          const peek = inner.getBundle(BOB);
          if (peek?.kemPreKeyId !== undefined) expect(saved.manager.getKemPreKey(peek.kemPreKeyId)).toBeDefined();
          saved.manager.wipe();
        }
        expect(done).toBe(true);
        f.off();
        const pooled = inner.countKemPreKeys(BOB);
        expect(pooled).toBeGreaterThanOrEqual(3);
        expect((await drainAndCheck(inner, lastResort)).length).toBe(pooled);
      }),
      { numRuns: 60 },
    );
  }, 120_000);

  it('a failed save publishes nothing; after a failed publication the next run publishes a new batch', async () => {
    const { store: inner, lastResort } = await setupPq();
    let fault: Fault = 'before';
    const f = faultyStore(inner, () => fault, ['saveKeyManager']);
    const keys = (await StoredKeyManager.load({ store: f.store, cipher, did: BOB })) as StoredKeyManager;
    await expectE2EErrorAsync(() => maintainPreKeys(keys, inner, NO_OTKS), 'STORE_ERROR', 'backend');
    expect([inner.getBundle(BOB), inner.countKemPreKeys(BOB), keys.version, keys.manager.kemPreKeyIds]).toEqual([null, 0, 1, [lastResort]]);
    fault = 'ok';
    let publishFault: Fault = 'before';
    const d = faultyStore(inner, () => publishFault, ['addKemPreKeys']);
    await expectE2EErrorAsync(() => maintainPreKeys(keys, d.store, NO_OTKS), 'STORE_ERROR', 'backend');
    expect([inner.countKemPreKeys(BOB), keys.version, keys.manager.kemPreKeyIds.length]).toEqual([0, 2, 101]); // saved, not published
    expect(inner.getBundle(BOB)?.kemPreKeyId).toBe(lastResort);
    publishFault = 'ok';
    expect(await maintainPreKeys(keys, d.store, NO_OTKS)).toMatchObject({ addedKemPreKeys: 100 });
    // The batch whose publication failed stays saved, unpublished (it may have been published: the reply could be what was lost).
    expect(keys.manager.kemPreKeyIds.length).toBe(201);
    expect((await drainAndCheck(inner, lastResort)).length).toBe(100);
  });

  it('never lets the manager hold more KEM pre-keys than a saved manager may (one-time keys claimed and never used stay)', async () => {
    const { store, keys } = await setupPq();
    await keys.update((m) => {
      for (let i = 0; i < 4; i++) m.generateKemPreKeys(1000); // 4,000 made and "claimed", never used
    });
    const r = await maintainPreKeys(keys, store, NO_OTKS);
    expect(r.addedKemPreKeys).toBe(MAX_KEM_PRE_KEYS_IN_STATE - 64 - 4001);
    store.claimBundle(BOB); // the pool below its floor again: no room left, nothing made
    expect((await maintainPreKeys(keys, store, NO_OTKS)).addedKemPreKeys).toBe(0);
    const saved = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    expect(saved.manager.kemPreKeyIds.length).toBe(MAX_KEM_PRE_KEYS_IN_STATE - 64);
  }, 60_000);

  it('validates the KEM policy, and the directory’s count', async () => {
    const { store, keys } = await setupPq();
    for (const bad of [
      { postQuantum: 'yes' },
      { postQuantum: 1 },
      { minKemPreKeys: -1 },
      { minKemPreKeys: 1.5 },
      { targetKemPreKeys: 1001 },
      { minKemPreKeys: 10, targetKemPreKeys: 5 },
    ]) {
      await expectE2EErrorAsync(() => maintainPreKeys(keys, store, bad as never), 'INVALID_ARGUMENT');
    }
    for (const count of [-1, 1.5, '3', null]) {
      const directory = { ...bind(store), countKemPreKeys: () => count } as unknown as PreKeyStore;
      await expectE2EErrorAsync(() => maintainPreKeys(keys, directory), 'STORE_ERROR', 'corrupt');
    }
    expect([keys.version, store.getBundle(BOB)]).toEqual([1, null]);
  });
});

/** The PreKeyStore methods of `store`, bound, as a plain object (to build directories from). */
function bind(store: InMemoryStore): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of [
    'storeBundle',
    'getBundle',
    'consumeOneTimeKey',
    'claimBundle',
    'addOneTimePreKeys',
    'countOneTimePreKeys',
    'addKemPreKeys',
    'consumeKemPreKey',
    'countKemPreKeys',
    'removeBundle',
  ] as const) {
    out[m] = (store[m] as (...a: unknown[]) => unknown).bind(store);
  }
  return out;
}
