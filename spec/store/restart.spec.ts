/**
 * Restart from the SQLite file: key managers, sessions and trust bridges are rebuilt from the store
 * alone, the sessions keep working, and one-time pre-keys published before the restart still work.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ready } from '../../lib/sodium';
import { fromUtf8, randomBytes, utf8 } from '../../lib/crypto';
import { PersistentChannel, SqliteStore, StorageCipher, StoredKeyManager, maintainPreKeys } from '../../lib/store';
import { AgentIdentity, EncryptedTrustBridge, InMemoryIdentityRegistry, LocalTrustNetwork } from '../../lib/trust';
import { expectE2EErrorAsync } from '../helpers/expect-error';

const dir = mkdtempSync(join(tmpdir(), 'agentmesh-restart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('restart from the SQLite file', () => {
  beforeAll(() => ready());

  it('rebuilds key managers, bridges and sessions, which keep working', async () => {
    const path = join(dir, 'agents.sqlite');
    const storageKey = randomBytes(32);
    const alice = AgentIdentity.generate();
    const bob = AgentIdentity.generate();
    const registry = new InMemoryIdentityRegistry();
    registry.register({ did: alice.did, publicKey: alice.publicKey, trustScore: 850 });
    registry.register({ did: bob.did, publicKey: bob.publicKey, trustScore: 850 });
    const where = (store: SqliteStore, cipher: StorageCipher, local: string, peer: string) => ({
      store,
      cipher,
      localDid: local,
      peerDid: peer,
    });

    // ---- First run ----
    let store = new SqliteStore(path);
    let cipher = new StorageCipher(storageKey);
    const aliceKeys = await StoredKeyManager.create({ store, cipher, did: alice.did }, alice.createKeyManager());
    const bobKeys = await StoredKeyManager.create({ store, cipher, did: bob.did }, bob.createKeyManager());
    await maintainPreKeys(aliceKeys, store, { minOneTimePreKeys: 5, targetOneTimePreKeys: 5 });
    await maintainPreKeys(bobKeys, store, { minOneTimePreKeys: 5, targetOneTimePreKeys: 5 });
    let network = new LocalTrustNetwork();
    let aliceBridge = new EncryptedTrustBridge({
      identity: alice,
      keyManager: aliceKeys.manager,
      registry,
      preKeyStore: store,
      transport: network,
    });
    let bobBridge = new EncryptedTrustBridge({
      identity: bob,
      keyManager: bobKeys.manager,
      registry,
      preKeyStore: store,
      transport: network,
    });
    const opened = await aliceBridge.openSecureChannel(bob.did); // trust handshake, then a bundle claimed from SQLite
    const establishment = aliceBridge.getSession(bob.did)?.establishment;
    expect(establishment?.usedOneTimeKeyId).toBe(0);
    const accepted = await bobBridge.acceptSecureChannel(alice.did, establishment!);
    await bobKeys.save(); // the bridge consumed Bob's one-time key in place: keep that
    const a1 = await PersistentChannel.create(where(store, cipher, alice.did, bob.did), opened);
    const b1 = await PersistentChannel.create(where(store, cipher, bob.did, alice.did), accepted);
    expect(fromUtf8(await b1.receive(await a1.send(utf8('before the restart'))))).toBe('before the restart');
    const inFlight = await a1.send(utf8('sent before, received after the restart'));
    expect(fromUtf8(await a1.receive(await b1.send(utf8('reply before'))))).toBe('reply before');
    aliceBridge.closeAllSessions();
    bobBridge.closeAllSessions();
    await a1.close();
    await b1.close();
    store.close();
    cipher.wipe();

    // ---- Restart: everything comes from the file and the storage key ----
    store = new SqliteStore(path);
    cipher = new StorageCipher(storageKey);
    const aliceKeys2 = (await StoredKeyManager.load({ store, cipher, did: alice.did })) as StoredKeyManager;
    const bobKeys2 = (await StoredKeyManager.load({ store, cipher, did: bob.did })) as StoredKeyManager;
    expect(bobKeys2.manager.oneTimePreKeyIds).toEqual([1, 2, 3, 4]);
    expect(store.countOneTimePreKeys(bob.did)).toBe(4);
    const a2 = (await PersistentChannel.load(where(store, cipher, alice.did, bob.did))) as PersistentChannel;
    const b2 = (await PersistentChannel.load(where(store, cipher, bob.did, alice.did))) as PersistentChannel;
    expect(fromUtf8(await b2.receive(inFlight))).toBe('sent before, received after the restart');
    expect(fromUtf8(await a2.receive(await b2.send(utf8('after the restart'))))).toBe('after the restart');
    expect(fromUtf8(await b2.receive(await a2.send(utf8('and on'))))).toBe('and on');
    await expectE2EErrorAsync(() => b2.receive(inFlight), 'DUPLICATE_MESSAGE');

    // The bridges restart from the stored key managers; a new channel uses a key published before the restart.
    network = new LocalTrustNetwork();
    aliceBridge = new EncryptedTrustBridge({
      agentDid: alice.did,
      keyManager: aliceKeys2.manager,
      registry,
      preKeyStore: store,
      transport: network,
    });
    bobBridge = new EncryptedTrustBridge({
      agentDid: bob.did,
      keyManager: bobKeys2.manager,
      registry,
      preKeyStore: store,
      transport: network,
    });
    const reopened = await aliceBridge.openSecureChannel(bob.did);
    const e2 = aliceBridge.getSession(bob.did)?.establishment;
    expect(e2?.usedOneTimeKeyId).toBe(1);
    const reaccepted = await bobBridge.acceptSecureChannel(alice.did, e2!);
    await bobKeys2.save();
    expect(fromUtf8(reaccepted.receive(reopened.send(utf8('a new channel after the restart'))))).toBe('a new channel after the restart');
    expect(((await StoredKeyManager.load({ store, cipher, did: bob.did })) as StoredKeyManager).manager.oneTimePreKeyIds).toEqual([
      2, 3, 4,
    ]);
    aliceBridge.closeAllSessions();
    bobBridge.closeAllSessions();
    store.close();
  });
});
