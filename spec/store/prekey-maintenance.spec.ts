import { ready } from '../../lib/sodium';
import { ed25519KeyPair, fromUtf8, randomBytes, toHex, utf8 } from '../../lib/crypto';
import { X3DHKeyManager } from '../../lib/x3dh';
import { SecureChannel } from '../../lib/channel';
import { InMemoryStore, StorageCipher, StoredKeyManager, maintainPreKeys } from '../../lib/store';
import { makeAgent } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';
import {
  DEFAULT_MIN_ONE_TIME_PRE_KEYS,
  DEFAULT_SIGNED_PRE_KEY_GRACE_MS,
  DEFAULT_SIGNED_PRE_KEY_MAX_AGE_MS,
  DEFAULT_TARGET_ONE_TIME_PRE_KEYS,
} from '../../lib/limits';

const BOB = 'did:mesh:bob';
const DAY = 24 * 3600 * 1000;

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
    expect(await maintainPreKeys(keys, store)).toEqual({ rotatedTo: null, retired: [], addedOneTimePreKeys: 100, publishedBundle: true });
    expect(store.countOneTimePreKeys(BOB)).toBe(100);
    const saved = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
    expect(saved.manager.oneTimePreKeyIds.length).toBe(100);
    const b = store.getBundle(BOB);
    expect(toHex(b?.oneTimePreKey as Uint8Array)).toBe(
      toHex(saved.manager.getOneTimePreKey(b?.oneTimePreKeyId as number)?.keyPair.publicKey as Uint8Array),
    );
    expect(await maintainPreKeys(keys, store)).toEqual({ rotatedTo: null, retired: [], addedOneTimePreKeys: 0, publishedBundle: false });
    for (let i = 0; i < 80; i++) store.claimBundle(BOB);
    expect(await maintainPreKeys(keys, store)).toEqual({ rotatedTo: null, retired: [], addedOneTimePreKeys: 0, publishedBundle: false });
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
