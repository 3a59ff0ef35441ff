/**
 * Post-quantum acceptances through `StoredKeyManager`, on every backend (memory, SQLite, Redis): an
 * establishment naming a one-time KEM pre-key spends it together with the session (the key-manager
 * write), exactly once across processes; one under the last-resort KEM pre-key (and no one-time
 * pre-key) is recorded against replay; a failed acceptance spends nothing; the keys and the
 * sessions' post-quantum flag survive a restart.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import Redis from 'ioredis';
import { ready } from '../../lib/sodium';
import { fromUtf8, randomBytes, utf8 } from '../../lib/crypto';
import { ChannelEstablishment, SecureChannel } from '../../lib/channel';
import { PreKeyBundle, X3DHKeyManager } from '../../lib/x3dh';
import {
  AgentStore,
  InMemoryStore,
  PersistentChannel,
  RedisStore,
  SqliteStore,
  StorageCipher,
  StoredKeyManager,
  establishmentFingerprint,
} from '../../lib/store';
import { faultyStore, Fault } from './faulty';
import { clearPrefix, describeRedis, makeAgent, makePqAgent, publicKems, publicOtks, randomNamespace } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';

const BOB = 'did:mesh:bob';
const ALICE = 'did:mesh:alice';
const AD = utf8(`${ALICE}|${BOB}`);

/** How a suite gets a fresh store, and the same data through a new store object (a restart). */
interface Backend {
  open(): Promise<AgentStore>;
  restart(previous: AgentStore): Promise<AgentStore>;
}

function pqAcceptance(name: string, backend: Backend): void {
  describe(`${name}: post-quantum acceptances`, () => {
    let cipher: StorageCipher;
    let store: AgentStore;
    beforeAll(async () => {
      await ready();
      cipher = new StorageCipher(randomBytes(32));
    });
    beforeEach(async () => {
      store = await backend.open();
    });
    afterEach(async () => {
      await store.close();
    });

    /** Bob's key manager saved in `store` and his bundle published there (last-resort KEM pre-key, `kems` one-time ones, `otks` one-time pre-keys). */
    async function publishBob(otks: number, kems: number): Promise<{ bobMgr: X3DHKeyManager; keys: StoredKeyManager }> {
      const bobMgr = makePqAgent(otks, kems);
      const keys = await StoredKeyManager.create({ store, cipher, did: BOB }, bobMgr);
      await store.storeBundle(BOB, bobMgr.getPublicBundle());
      if (otks > 0) await store.addOneTimePreKeys(BOB, publicOtks(bobMgr));
      if (kems > 0) await store.addKemPreKeys(BOB, publicKems(bobMgr));
      return { bobMgr, keys };
    }

    /** Alice claims Bob's bundle from the store and starts a channel. */
    async function aliceStarts(): Promise<{ channel: SecureChannel; establishment: ChannelEstablishment; bundle: PreKeyBundle }> {
      const bundle = (await store.claimBundle(BOB)) as PreKeyBundle;
      const { channel, establishment } = SecureChannel.createSender(makeAgent(), bundle, AD, { requirePostQuantum: true });
      return { channel, establishment: ChannelEstablishment.from(establishment), bundle };
    }

    /** The KEM pre-key ids of the key manager saved in the store (read directly, not through a StoredKeyManager). */
    async function savedKemIds(s: AgentStore = store): Promise<number[]> {
      const rec = await s.loadKeyManager(BOB);
      const m = X3DHKeyManager.fromBytes(cipher.open(rec?.data as Uint8Array, `agentmesh-keys\u0000${BOB}`));
      const ids = m.kemPreKeyIds.sort((a, b) => a - b);
      m.wipe();
      return ids;
    }

    /** Whether the store holds a replay record of `e` (and leaves it as it was). */
    async function recorded(e: ChannelEstablishment): Promise<boolean> {
      const fresh = await store.markEstablishment(BOB, e.signedPreKeyId as number, establishmentFingerprint(e));
      if (fresh) await store.forgetEstablishments(BOB, e.signedPreKeyId as number);
      return !fresh;
    }

    it('spends a one-time KEM pre-key with the session, exactly once across two managers sharing the store', async () => {
      const { bobMgr, keys } = await publishBob(0, 2);
      const other = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
      const [k0, k1] = publicKems(bobMgr).map((k) => k.keyId);
      const lastResort = (bobMgr.lastResortKemPreKey as { keyId: number }).keyId;
      const { channel, establishment: e, bundle } = await aliceStarts();
      expect([bundle.kemPreKeyId, e.kemPreKeyId, e.usedOneTimeKeyId, e.postQuantum]).toEqual([k0, k0, undefined, true]);
      const bob = await keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: AD });
      expect(bob.postQuantum).toBe(true);
      expect(fromUtf8(await bob.receive(channel.send(utf8('post-quantum hello'))))).toBe('post-quantum hello');
      // The key-manager write spent the key; no replay record was needed.
      expect([keys.version, keys.manager.getKemPreKey(k0), await savedKemIds()]).toEqual([2, undefined, [lastResort, k1]]);
      expect(await recorded(e)).toBe(false);
      // The other process holds an older state that still has the key: its save is stale, it reloads, and the key is gone.
      expect(other.manager.getKemPreKey(k0)?.lastResort).toBe(false);
      await expectE2EErrorAsync(
        () => other.acceptChannel(e, { sessions: store, peerDid: 'did:mesh:mallory', associatedData: AD }),
        'KEM_NOT_FOUND',
      );
      await expectE2EErrorAsync(
        () => keys.acceptChannel(e, { sessions: store, peerDid: 'did:mesh:mallory', associatedData: AD }),
        'KEM_NOT_FOUND',
      );
      expect(await store.listSessions(BOB)).toEqual([ALICE]);
      // The second one-time KEM pre-key is still good, for the other process too.
      const next = await aliceStarts();
      expect(next.establishment.kemPreKeyId).toBe(k1);
      const bob2 = await other.acceptChannel(next.establishment, { sessions: store, peerDid: 'did:mesh:carol', associatedData: AD });
      expect([bob2.postQuantum, other.version, await savedKemIds()]).toEqual([true, 3, [lastResort]]);
    });

    it('records an establishment under the last-resort KEM pre-key (no one-time key) against replay: DUPLICATE_MESSAGE', async () => {
      const { bobMgr, keys } = await publishBob(0, 0);
      const lastResort = (bobMgr.lastResortKemPreKey as { keyId: number }).keyId;
      const { channel, establishment: e } = await aliceStarts();
      expect([e.kemPreKeyId, e.usedOneTimeKeyId]).toEqual([lastResort, undefined]);
      const bob = await keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: AD });
      expect(bob.postQuantum).toBe(true);
      expect(fromUtf8(await bob.receive(channel.send(utf8('last resort'))))).toBe('last resort');
      expect([keys.version, await savedKemIds()]).toEqual([1, [lastResort]]); // nothing spent, nothing saved
      expect(await recorded(e)).toBe(true);
      await expectE2EErrorAsync(
        () => keys.acceptChannel(e, { sessions: store, peerDid: 'did:mesh:mallory', associatedData: AD }),
        'DUPLICATE_MESSAGE',
        'establishment_replay',
      );
      const other = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
      await expectE2EErrorAsync(
        () => other.acceptChannel(e, { sessions: store, peerDid: 'did:mesh:mallory', associatedData: AD }),
        'DUPLICATE_MESSAGE',
        'establishment_replay',
      );
      // Another initiator under the same last-resort key: a new establishment, accepted.
      const second = await aliceStarts();
      expect(
        (await other.acceptChannel(second.establishment, { sessions: store, peerDid: 'did:mesh:carol', associatedData: AD })).postQuantum,
      ).toBe(true);
      expect((await store.listSessions(BOB)).sort()).toEqual([ALICE, 'did:mesh:carol'].sort());
    });

    it('spends a one-time pre-key and a one-time KEM pre-key in one key-manager write', async () => {
      const { bobMgr, keys } = await publishBob(1, 1);
      const [kem] = publicKems(bobMgr).map((k) => k.keyId);
      const { establishment: e } = await aliceStarts();
      expect([e.usedOneTimeKeyId, e.kemPreKeyId]).toEqual([0, kem]);
      await keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: AD });
      expect([keys.version, keys.manager.oneTimePreKeyIds, keys.manager.getKemPreKey(kem)]).toEqual([2, [], undefined]);
      expect(await recorded(e)).toBe(false);
      const restarted = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
      expect(restarted.manager.oneTimePreKeyIds).toEqual([]);
      await expectE2EErrorAsync(
        () => restarted.acceptChannel(e, { sessions: store, peerDid: 'did:mesh:mallory', associatedData: AD }),
        'KEM_NOT_FOUND',
      );
    });

    it('spends the one-time pre-key of an establishment under the last-resort KEM pre-key, and keeps the last-resort key', async () => {
      const { bobMgr, keys } = await publishBob(1, 0);
      const lastResort = (bobMgr.lastResortKemPreKey as { keyId: number }).keyId;
      const { establishment: e } = await aliceStarts();
      expect([e.usedOneTimeKeyId, e.kemPreKeyId]).toEqual([0, lastResort]);
      await keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: AD });
      expect([keys.version, keys.manager.oneTimePreKeyIds, await savedKemIds()]).toEqual([2, [], [lastResort]]);
      expect(await recorded(e)).toBe(false);
      await expectE2EErrorAsync(
        () => keys.acceptChannel(e, { sessions: store, peerDid: 'did:mesh:mallory', associatedData: AD }),
        'OTK_NOT_FOUND',
      );
    });

    it('with a separate session store: saves the spent KEM pre-key first, records a last-resort one', async () => {
      const sessions = new InMemoryStore();
      const { bobMgr, keys } = await publishBob(0, 1);
      const lastResort = (bobMgr.lastResortKemPreKey as { keyId: number }).keyId;
      const first = await aliceStarts();
      const bob = await keys.acceptChannel(first.establishment, { sessions, peerDid: ALICE, associatedData: AD });
      expect([bob.postQuantum, keys.version, await savedKemIds()]).toEqual([true, 2, [lastResort]]);
      await expectE2EErrorAsync(
        () => keys.acceptChannel(first.establishment, { sessions, peerDid: 'did:mesh:x', associatedData: AD }),
        'KEM_NOT_FOUND',
      );
      const second = await aliceStarts();
      expect(second.establishment.kemPreKeyId).toBe(lastResort);
      await keys.acceptChannel(second.establishment, { sessions, peerDid: 'did:mesh:carol', associatedData: AD });
      expect([keys.version, await recorded(second.establishment)]).toEqual([2, true]);
      await expectE2EErrorAsync(
        () => keys.acceptChannel(second.establishment, { sessions, peerDid: 'did:mesh:y', associatedData: AD }),
        'DUPLICATE_MESSAGE',
        'establishment_replay',
      );
    });

    it('spends nothing when the store fails halfway, and accepts the same establishment on retry', async () => {
      const { bobMgr } = await publishBob(0, 1);
      const [kem] = publicKems(bobMgr).map((k) => k.keyId);
      const lastResort = (bobMgr.lastResortKemPreKey as { keyId: number }).keyId;
      const { channel, establishment: e } = await aliceStarts();
      let fault: Fault = 'before';
      const f = faultyStore(store, () => fault, ['saveAcceptance']);
      const keys = (await StoredKeyManager.load({ store: f.store, cipher, did: BOB })) as StoredKeyManager;
      for (const k of ['before', 'before-reject', 'before-odd'] as Fault[]) {
        fault = k;
        await expectE2EErrorAsync(
          () => keys.acceptChannel(e, { sessions: f.store, peerDid: ALICE, associatedData: AD }),
          'STORE_ERROR',
          'backend',
        );
        // Nothing spent: the key is in the saved state and in this process's, no session, no replay record.
        expect([await savedKemIds(), keys.version, keys.manager.getKemPreKey(kem)?.lastResort]).toEqual([[lastResort, kem], 1, false]);
        expect([await store.loadSession(BOB, ALICE), await recorded(e)]).toEqual([null, false]);
      }
      // Written, but the reply is lost: the acceptance finds its session and is done, the key spent.
      fault = 'after';
      const bob = await keys.acceptChannel(e, { sessions: f.store, peerDid: ALICE, associatedData: AD });
      expect(f.log.map(([, k]) => k)).toEqual(['before', 'before-reject', 'before-odd', 'after']);
      expect([bob.postQuantum, keys.version, await savedKemIds()]).toEqual([true, 2, [lastResort]]);
      expect(fromUtf8(await bob.receive(channel.send(utf8('after the faults'))))).toBe('after the faults');
      fault = 'ok';
      await expectE2EErrorAsync(
        () => keys.acceptChannel(e, { sessions: f.store, peerDid: 'did:mesh:x', associatedData: AD }),
        'KEM_NOT_FOUND',
      );
    });

    it('refuses a classic establishment under requirePostQuantum, spending nothing; refuses held keys in channelOptions', async () => {
      const bobMgr = makeAgent(1); // no KEM pre-key: a classic bundle
      const keys = await StoredKeyManager.create({ store, cipher, did: BOB }, bobMgr);
      const { establishment: e } = SecureChannel.createSender(makeAgent(), bobMgr.getPublicBundle({ otkId: 0 }), AD);
      await expectE2EErrorAsync(
        () => keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: AD, requirePostQuantum: true }),
        'POST_QUANTUM_REQUIRED',
      );
      await expectE2EErrorAsync(
        () =>
          keys.acceptChannel(e, {
            sessions: store,
            peerDid: ALICE,
            associatedData: AD,
            channelOptions: { requirePostQuantum: true } as never,
          }),
        'POST_QUANTUM_REQUIRED',
      );
      for (const bad of [{ requirePostQuantum: 'yes' }, { channelOptions: { requirePostQuantum: 1 } }]) {
        await expectE2EErrorAsync(
          () => keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: AD, ...(bad as object) }),
          'INVALID_ARGUMENT',
        );
      }
      const held = bobMgr.getOneTimePreKey(0);
      await expectE2EErrorAsync(
        () =>
          keys.acceptChannel(e, {
            sessions: store,
            peerDid: ALICE,
            associatedData: AD,
            channelOptions: { heldOneTimePreKey: held } as never,
          }),
        'INVALID_ARGUMENT',
      );
      expect([keys.version, keys.manager.oneTimePreKeyIds, await store.loadSession(BOB, ALICE)]).toEqual([1, [0], null]);
      const bob = await keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: AD, requirePostQuantum: false });
      expect([bob.postQuantum, keys.manager.oneTimePreKeyIds]).toEqual([false, []]);
    });

    it('finds a KEM pre-key another process made since it loaded (KEM_NOT_FOUND reloads once)', async () => {
      const { keys } = await publishBob(0, 0);
      const other = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
      const made = await other.update((m) => m.generateKemPreKeys(1));
      await store.addKemPreKeys(BOB, made);
      const { establishment: e } = await aliceStarts();
      expect(e.kemPreKeyId).toBe(made[0].keyId);
      expect(keys.manager.getKemPreKey(made[0].keyId)).toBeUndefined();
      const bob = await keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: AD });
      expect([bob.postQuantum, keys.version, keys.manager.getKemPreKey(made[0].keyId)]).toEqual([true, 3, undefined]);
    });

    it('keeps the KEM pre-keys and the post-quantum sessions across a restart', async () => {
      const { bobMgr, keys } = await publishBob(0, 2);
      const ids = bobMgr.kemPreKeyIds.sort((a, b) => a - b);
      const { channel, establishment: e } = await aliceStarts();
      const bob = await keys.acceptChannel(e, { sessions: store, peerDid: ALICE, associatedData: AD });
      const alice = await PersistentChannel.create({ store, cipher, localDid: ALICE, peerDid: BOB }, channel);
      expect(alice.postQuantum).toBe(true);
      expect(fromUtf8(await bob.receive(await alice.send(utf8('before the restart'))))).toBe('before the restart');
      store = await backend.restart(store);
      const keys2 = (await StoredKeyManager.load({ store, cipher, did: BOB })) as StoredKeyManager;
      expect(keys2.manager.kemPreKeyIds.sort((a, b) => a - b)).toEqual(ids.filter((id) => id !== e.kemPreKeyId));
      expect(keys2.manager.lastResortKemPreKey?.keyId).toBe(bobMgr.lastResortKemPreKey?.keyId);
      const [bobAgain, aliceAgain] = await Promise.all([
        PersistentChannel.load({ store, cipher, localDid: BOB, peerDid: ALICE }),
        PersistentChannel.load({ store, cipher, localDid: ALICE, peerDid: BOB }),
      ]);
      expect([bobAgain?.postQuantum, aliceAgain?.postQuantum]).toEqual([true, true]);
      const reply = await (bobAgain as PersistentChannel).send(utf8('after the restart'));
      expect(fromUtf8(await (aliceAgain as PersistentChannel).receive(reply))).toBe('after the restart');
      await expectE2EErrorAsync(
        () => keys2.acceptChannel(e, { sessions: store, peerDid: 'did:mesh:x', associatedData: AD }),
        'KEM_NOT_FOUND',
      );
      // The store's KEM pool survived too: the next claim names the other one-time KEM pre-key, which the restarted manager answers.
      const next = await aliceStarts();
      expect(
        (await keys2.acceptChannel(next.establishment, { sessions: store, peerDid: 'did:mesh:carol', associatedData: AD })).postQuantum,
      ).toBe(true);
    });
  });
}

pqAcceptance('InMemoryStore', {
  open: async () => new InMemoryStore(),
  restart: async (previous) => previous, // nothing to re-open: the same memory
});

const dir = mkdtempSync(join(tmpdir(), 'agentmesh-pq-acceptance-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const paths = new WeakMap<object, string>();
pqAcceptance('SqliteStore', {
  open: async () => {
    const path = join(dir, `store-${++files}.sqlite`);
    const s = new SqliteStore(path, { synchronous: 'NORMAL' });
    paths.set(s, path);
    return s;
  },
  restart: async (previous) => {
    const path = paths.get(previous) as string;
    await previous.close();
    const s = new SqliteStore(path);
    paths.set(s, path);
    return s;
  },
});

describeRedis('RedisStore', (url) => {
  const ns = randomNamespace();
  const clients: Redis[] = [];
  const client = (): Redis => {
    const c = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy: (n) => (n > 3 ? null : 100) });
    clients.push(c);
    return c;
  };
  afterAll(async () => {
    await clearPrefix(clients[0], ns).catch(() => undefined);
    clients.forEach((c) => c.disconnect());
  });
  let suite = 0;
  pqAcceptance('RedisStore', {
    open: async () => new RedisStore({ client: clients[0] ?? client(), namespace: `${ns}-${++suite}` }),
    restart: async (previous) => new RedisStore({ client: client(), namespace: (previous as RedisStore).namespace }),
  });
});
