/**
 * The trust bridge's post-quantum sessions (PQXDH) against the same adversary as `bridge-findings.spec.ts`:
 * Mallory, registered with a good score, who also relays. PQ channels both ways (bundles handed over, and
 * claimed from a store); a forgery naming the genuine one-time KEM pre-key, delivered first, cannot make the
 * genuine establishment fail; a directory or relay that strips the KEM pre-key meets `POST_QUANTUM_REQUIRED`
 * under `requirePostQuantum`; held KEM secrets are wiped (authenticated, expired, closed).
 */
import { ready } from '../../lib/sodium';
import { fromUtf8, randomBytes, utf8, x25519KeyPair } from '../../lib/crypto';
import { ChannelEstablishment } from '../../lib/channel';
import { HeldKemPreKey, PreKeyBundle, X3DHKeyManager } from '../../lib/x3dh';
import { InMemoryStore } from '../../lib/store/memory';
import { StorageCipher, StoredKeyManager } from '../../lib/store';
import { AgentIdentity, EncryptedTrustBridge, EncryptedTrustBridgeOptions, LocalTrustNetwork } from '../../lib/trust';
import { expectE2EErrorAsync, rejectionOf } from '../helpers/expect-error';
import { FakeClock, registryWith } from './helpers';

beforeAll(() => ready());
afterEach(() => jest.restoreAllMocks());

/** Alice and Bob honest; Mallory registered with score 900, able to relay. Every bridge requires post-quantum sessions unless told. */
function world(options: Partial<EncryptedTrustBridgeOptions> = { requirePostQuantum: true }) {
  const clock = new FakeClock();
  const [alice, bob, mallory] = [0, 1, 2].map(() => AgentIdentity.generate());
  const registry = registryWith({ id: alice, trustScore: 850 }, { id: bob, trustScore: 920 }, { id: mallory, trustScore: 900 });
  const network = new LocalTrustNetwork();
  const bridge = (id: AgentIdentity, extra: Partial<EncryptedTrustBridgeOptions> = {}) =>
    new EncryptedTrustBridge({ identity: id, registry, transport: network, now: clock.now, ...options, ...extra });
  return { clock, alice, bob, mallory, registry, network, bridge, aliceBridge: bridge(alice), bobBridge: bridge(bob) };
}
type World = ReturnType<typeof world>;

/** `bundle` without its KEM pre-key: what a downgrading directory or relay hands over. */
function stripped(bundle: PreKeyBundle): PreKeyBundle {
  const { kemPreKey: _k, kemPreKeyId: _i, kemPreKeySignature: _s, ...classic } = bundle;
  return classic;
}

/** Alice opens to Bob with `bundle`; Bob accepts her establishment. */
async function open(w: World, bundle?: PreKeyBundle) {
  const ac = await w.aliceBridge.openSecureChannel(w.bob.did, bundle ?? (await w.bobBridge.publishPrekeyBundle()));
  const genuine = w.aliceBridge.getSession(w.bob.did)!.establishment;
  return { ac, genuine };
}

describe('post-quantum channels through the bridge', () => {
  test('both ways: a bundle with a one-time KEM pre-key, postQuantum on both ends, messages each way', async () => {
    const w = world();
    const bundle = await w.bobBridge.publishPrekeyBundle();
    expect(bundle.kemPreKey?.length).toBe(1184);
    const { ac, genuine } = await open(w, bundle);
    expect(genuine.kemPreKeyId).toBe(bundle.kemPreKeyId);
    const bc = await w.bobBridge.acceptSecureChannel(w.alice.did, genuine);
    expect([ac.postQuantum, bc.postQuantum]).toEqual([true, true]);
    expect(fromUtf8(await w.bobBridge.receive(w.alice.did, ac.send(utf8('pq hello'))))).toBe('pq hello');
    expect(fromUtf8(await w.aliceBridge.receive(w.bob.did, bc.send(utf8('pq back'))))).toBe('pq back');
    // And Bob opening to Alice.
    const cb = await w.bobBridge.openSecureChannel(w.alice.did, await w.aliceBridge.publishPrekeyBundle());
    const ca = await w.aliceBridge.acceptSecureChannel(w.bob.did, w.bobBridge.getSession(w.alice.did)!.establishment);
    expect([cb.postQuantum, ca.postQuantum]).toEqual([true, true]);
    expect(fromUtf8(await w.aliceBridge.receive(w.bob.did, cb.send(utf8('other way'))))).toBe('other way');
    // Each locally published bundle carries its own one-time KEM pre-key.
    const ids = new Set<number>();
    for (let i = 0; i < 5; i++) ids.add((await w.bobBridge.publishPrekeyBundle()).kemPreKeyId!);
    expect(ids.size).toBe(5);
  });

  test('through a pre-key store: claims take one-time KEM pre-keys, each once, refilled on publish; the spent one leaves the store', async () => {
    const w = world();
    const store = new InMemoryStore();
    const alice = w.bridge(w.alice, { preKeyStore: store, oneTimePreKeyPool: 2 });
    const bob = w.bridge(w.bob, { preKeyStore: store, oneTimePreKeyPool: 2 });
    await bob.publishPrekeyBundle(); // pools of 3, one claimed by the returned bundle
    expect(store.countKemPreKeys(w.bob.did)).toBe(2);
    const seen: number[] = [];
    for (let i = 0; i < 2; i++) {
      const ac = await alice.openSecureChannel(w.bob.did);
      const est = alice.getSession(w.bob.did)!.establishment;
      seen.push(est.kemPreKeyId!);
      const bc = await bob.acceptSecureChannel(w.alice.did, est);
      expect(fromUtf8(await bob.receive(w.alice.did, ac.send(utf8(`#${i}`))))).toBe(`#${i}`);
      expect([ac.postQuantum, bc.postQuantum]).toEqual([true, true]);
    }
    expect(new Set(seen).size).toBe(2);
    expect(store.countKemPreKeys(w.bob.did)).toBe(0);
    await bob.publishPrekeyBundle();
    expect(store.countKemPreKeys(w.bob.did)).toBe(2);
    // A bundle peeked (not claimed) from the store: accepting it takes its one-time KEM pre-key off the pool.
    const peeked = store.getBundle(w.bob.did)!;
    const ac = await alice.openSecureChannel(w.bob.did, peeked);
    await bob.acceptSecureChannel(w.alice.did, alice.getSession(w.bob.did)!.establishment);
    expect(store.countKemPreKeys(w.bob.did)).toBe(1);
    expect(store.consumeKemPreKey(w.bob.did, peeked.kemPreKeyId!)).toBe(false);
    expect(fromUtf8(await bob.receive(w.alice.did, ac.send(utf8('peeked'))))).toBe('peeked');
  });

  test('a caller’s key manager: KEM pre-keys published only when it has a last-resort one; classic ↔ PQ bridges interoperate classically', async () => {
    const w = world({});
    const pqManager = w.bob.createKeyManager();
    pqManager.generateLastResortKemPreKey();
    const bob = w.bridge(w.bob, { keyManager: pqManager });
    const pqBundle = await bob.publishPrekeyBundle();
    expect(pqManager.getKemPreKey(pqBundle.kemPreKeyId!)?.lastResort).toBe(false);
    const classicBundle = await w.aliceBridge.publishPrekeyBundle(); // Alice's manager has no KEM pre-key
    expect(classicBundle.kemPreKey).toBeUndefined();
    // Classic Alice opening to PQ Bob: the bundle's KEM pre-key makes it post-quantum anyway.
    const ac = await w.aliceBridge.openSecureChannel(w.bob.did, pqBundle);
    const bc = await bob.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment);
    expect([ac.postQuantum, bc.postQuantum]).toEqual([true, true]);
    // PQ Bob opening to classic Alice: classic.
    const cb = await bob.openSecureChannel(w.alice.did, classicBundle);
    const ca = await w.aliceBridge.acceptSecureChannel(w.bob.did, bob.getSession(w.alice.did)!.establishment);
    expect([cb.postQuantum, ca.postQuantum]).toEqual([false, false]);
    expect(fromUtf8(await w.aliceBridge.receive(w.bob.did, cb.send(utf8('classic'))))).toBe('classic');
  });
});

describe('Mallory delivers a forgery naming the genuine one-time KEM pre-key first', () => {
  /** Mallory's establishment in Alice's name: Alice's public identity, her own ephemeral key, the genuine ids, a ciphertext of her choosing. */
  function forgery(genuine: ChannelEstablishment, ids: { otk?: boolean } = { otk: true }): ChannelEstablishment {
    return ChannelEstablishment.from({
      initiatorIdentityKey: genuine.initiatorIdentityKey,
      ephemeralPublicKey: x25519KeyPair().publicKey,
      usedOneTimeKeyId: ids.otk ? genuine.usedOneTimeKeyId : undefined,
      signedPreKeyId: genuine.signedPreKeyId,
      kemPreKeyId: genuine.kemPreKeyId,
      kemCiphertext: randomBytes(1088),
    });
  }

  test('the genuine establishment is still accepted and authenticates; then the KEM key is spent for good', async () => {
    const w = world();
    const { ac, genuine } = await open(w);
    // Mallory relays: her forgery arrives while Alice's verification is fresh, before Alice's own.
    const dead = await w.bobBridge.acceptSecureChannel(w.alice.did, forgery(genuine));
    const bc = await w.bobBridge.acceptSecureChannel(w.alice.did, genuine); // without the held copy: KEM_NOT_FOUND
    expect(fromUtf8(await w.bobBridge.receive(w.alice.did, ac.send(utf8('mine'))))).toBe('mine');
    expect(w.bobBridge.getSession(w.alice.did)!.channel).toBe(bc);
    expect(bc.postQuantum).toBe(true);
    expect(dead.isClosed).toBe(true);
    // Spent: a retry naming the KEM key alone (no one-time pre-key) finds nothing.
    await w.aliceBridge.verifyPeer(w.bob.did);
    await expectE2EErrorAsync(w.bobBridge.acceptSecureChannel(w.alice.did, forgery(genuine, { otk: false })), 'KEM_NOT_FOUND', null);
  });

  test('with a persisted key manager: the KEM key is spent in the saved state at the first acceptance, yet the genuine one opens', async () => {
    const w = world();
    const store = new InMemoryStore();
    const location = { store, cipher: new StorageCipher(randomBytes(32)), did: w.bob.did };
    const keys = await StoredKeyManager.create(location, w.bob.createKeyManager());
    const bob = w.bridge(w.bob, { keyManager: keys });
    const { ac, genuine } = await open(w, await bob.publishPrekeyBundle());
    await bob.acceptSecureChannel(w.alice.did, forgery(genuine, { otk: false }));
    const saved = await StoredKeyManager.load(location);
    expect(saved!.manager.getKemPreKey(genuine.kemPreKeyId!)).toBeUndefined(); // spent, and saved
    expect(saved!.manager.getOneTimePreKey(genuine.usedOneTimeKeyId!)).toBeDefined(); // the forgery named no one-time pre-key
    await bob.acceptSecureChannel(w.alice.did, genuine);
    expect(fromUtf8(await bob.receive(w.alice.did, ac.send(utf8('persisted'))))).toBe('persisted');
  });

  test('a forgery naming the last-resort KEM pre-key spends nothing: it answers any number of establishments', async () => {
    const w = world();
    const manager = w.bob.createKeyManager();
    const bob = w.bridge(w.bob, { keyManager: manager });
    const otkId = (await bob.publishPrekeyBundle()).oneTimePreKeyId!;
    // The form a drained KEM pool gives: the last-resort KEM pre-key.
    const lastResort = manager.getPublicBundle({ otkId });
    expect(manager.getKemPreKey(lastResort.kemPreKeyId!)?.lastResort).toBe(true);
    const { ac, genuine } = await open(w, lastResort);
    await bob.acceptSecureChannel(w.alice.did, forgery(genuine, { otk: false }));
    await bob.acceptSecureChannel(w.alice.did, genuine);
    expect(fromUtf8(await bob.receive(w.alice.did, ac.send(utf8('last resort'))))).toBe('last resort');
    expect(manager.getKemPreKey(lastResort.kemPreKeyId!)).toBeDefined();
  });
});

describe('a downgrade (the KEM pre-key stripped) under requirePostQuantum', () => {
  test('a given bundle without KEM pre-key: POST_QUANTUM_REQUIRED before the handshake; nothing is sent or spent', async () => {
    const w = world();
    const bundle = await w.bobBridge.publishPrekeyBundle();
    const sent = jest.spyOn(w.network, 'sendChallenge');
    await expectE2EErrorAsync(w.aliceBridge.openSecureChannel(w.bob.did, stripped(bundle)), 'POST_QUANTUM_REQUIRED', null);
    expect(sent).not.toHaveBeenCalled();
    expect(w.aliceBridge.getSession(w.bob.did)).toBeUndefined();
    // The genuine bundle still opens.
    expect((await w.aliceBridge.openSecureChannel(w.bob.did, bundle)).postQuantum).toBe(true);
  });

  test('a directory that strips kem_pre_key on claim: POST_QUANTUM_REQUIRED, no session', async () => {
    const w = world();
    const store = new InMemoryStore();
    const downgrading = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'claimBundle') return (did: string) => stripped(target.claimBundle(did)!);
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const alice = w.bridge(w.alice, { preKeyStore: downgrading });
    await w.bridge(w.bob, { preKeyStore: store }).publishPrekeyBundle();
    await expectE2EErrorAsync(alice.openSecureChannel(w.bob.did), 'POST_QUANTUM_REQUIRED', null);
    expect(alice.getSession(w.bob.did)).toBeUndefined();
  });

  test('per open: requirePostQuantum overrides the bridge’s either way', async () => {
    const w = world({});
    const pq = w.bridge(w.bob, { requirePostQuantum: true });
    const bundle = await pq.publishPrekeyBundle();
    await expectE2EErrorAsync(
      w.aliceBridge.openSecureChannel(w.bob.did, stripped(bundle), { requirePostQuantum: true }),
      'POST_QUANTUM_REQUIRED',
      null,
    );
    const strict = w.bridge(w.alice, { requirePostQuantum: true });
    const classic = await strict.openSecureChannel(w.bob.did, stripped(await pq.publishPrekeyBundle()), { requirePostQuantum: false });
    expect(classic.postQuantum).toBe(false);
    expect((await rejectionOf(w.aliceBridge.openSecureChannel(w.bob.did, bundle, { requirePostQuantum: 1 as never }))).code).toBe(
      'INVALID_ARGUMENT',
    );
    expect(() => w.bridge(w.alice, { requirePostQuantum: 'yes' as never })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  test('accepting: a classic establishment (Alice given a stripped bundle) → POST_QUANTUM_REQUIRED, nothing spent; her PQ one then opens', async () => {
    const w = world({});
    const bob = w.bridge(w.bob, { requirePostQuantum: true });
    const bundle = await bob.publishPrekeyBundle();
    // Mallory relays Bob's bundle to Alice without its KEM pre-key; Alice does not require PQ.
    await w.aliceBridge.openSecureChannel(w.bob.did, stripped(bundle));
    const classic = w.aliceBridge.getSession(w.bob.did)!.establishment;
    expect(classic.postQuantum).toBe(false);
    await expectE2EErrorAsync(bob.acceptSecureChannel(w.alice.did, classic), 'POST_QUANTUM_REQUIRED', null);
    const ac = await w.aliceBridge.openSecureChannel(w.bob.did, bundle);
    const bc = await bob.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment); // same one-time pre-key
    expect(fromUtf8(await bob.receive(w.alice.did, ac.send(utf8('pq only'))))).toBe('pq only');
    expect(bc.postQuantum).toBe(true);
  });
});

describe('held KEM secrets are wiped', () => {
  /** The KEM secrets the bridge exported so far (it holds them until authenticated, expired or closed). */
  function captureHeld(): () => HeldKemPreKey[] {
    const spy = jest.spyOn(X3DHKeyManager.prototype, 'exportKemPreKeySecret');
    return () => spy.mock.results.map((r) => r.value as HeldKemPreKey);
  }
  const wiped = (h: HeldKemPreKey) => h.secretKey.every((b) => b === 0);

  test('at close', async () => {
    const w = world();
    const held = captureHeld();
    const { genuine } = await open(w);
    await w.bobBridge.acceptSecureChannel(w.alice.did, genuine); // not authenticated yet: the copy is held
    expect(held().length).toBe(1);
    expect(wiped(held()[0]!)).toBe(false);
    w.bobBridge.close();
    expect(wiped(held()[0]!)).toBe(true);
  });

  test('once the session authenticates, and once the verification lifetime is over', async () => {
    const w = world();
    const held = captureHeld();
    const first = await open(w);
    await w.bobBridge.acceptSecureChannel(w.alice.did, first.genuine);
    await w.bobBridge.receive(w.alice.did, first.ac.send(utf8('authenticates')));
    expect(wiped(held()[0]!)).toBe(true);
    const second = await open(w);
    await w.bobBridge.acceptSecureChannel(w.alice.did, second.genuine);
    expect(wiped(held()[1]!)).toBe(false);
    w.clock.advance(301_000); // past verifiedPeerTtlSeconds (300)
    const third = await open(w);
    await w.bobBridge.acceptSecureChannel(w.alice.did, third.genuine); // the next acceptance sweeps
    expect(wiped(held()[1]!)).toBe(true);
    expect(wiped(held()[2]!)).toBe(false);
  });

  test('a refused acceptance leaves no copy behind', async () => {
    const w = world();
    const held = captureHeld();
    const { genuine } = await open(w);
    const broken = ChannelEstablishment.from({ ...genuine, signedPreKeyId: 999, kemCiphertext: genuine.kemCiphertext });
    await expectE2EErrorAsync(w.bobBridge.acceptSecureChannel(w.alice.did, broken), 'SPK_NOT_FOUND', null);
    expect(held().length).toBe(1);
    expect(held().every(wiped)).toBe(true);
    await w.bobBridge.acceptSecureChannel(w.alice.did, genuine); // nothing was spent
  });
});
