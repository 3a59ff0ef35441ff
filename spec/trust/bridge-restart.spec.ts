/**
 * An agent whose bridge publishes to a persistent pre-key store restarts cleanly: with a key
 * manager that was not saved (its old published keys are taken down), and with a saved one
 * (`StoredKeyManager`: establishments made before the restart are accepted after it, and a
 * one-time pre-key spent by an authenticated session stays spent across restarts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ready } from '../../lib/sodium';
import { fromUtf8, randomBytes, utf8 } from '../../lib/crypto';
import { StorageCipher, StoredKeyManager } from '../../lib/store';
import { SqliteStore } from '../../lib/sqlite';
import { AgentIdentity, EncryptedTrustBridge, InMemoryIdentityRegistry, LocalTrustNetwork } from '../../lib/trust';
import { rejectionOf } from '../helpers/expect-error';

beforeAll(() => ready());

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bridge-restart-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function agents() {
  const [alice, bob] = [AgentIdentity.generate(), AgentIdentity.generate()];
  const registry = new InMemoryIdentityRegistry();
  for (const id of [alice, bob]) registry.register({ did: id.did, publicKey: id.publicKey, trustScore: 900 });
  const network = new LocalTrustNetwork();
  const store = new SqliteStore(join(dir, 'agents.sqlite'));
  const alicesBridge = new EncryptedTrustBridge({ identity: alice, registry, transport: network, preKeyStore: store });
  return { alice, bob, registry, network, store, alicesBridge };
}

describe('EncryptedTrustBridge over a persistent pre-key store, restarted', () => {
  test('with a key manager that was not saved: no crash, the old record is taken down, opens work again', async () => {
    const w = agents();
    const bob1 = new EncryptedTrustBridge({ identity: w.bob, registry: w.registry, transport: w.network, preKeyStore: w.store });
    await bob1.publishPrekeyBundle();
    const ac = await w.alicesBridge.openSecureChannel(w.bob.did); // claims Bob's bundle from the store
    const bc = await bob1.acceptSecureChannel(w.alice.did, w.alicesBridge.getSession(w.bob.did)!.establishment);
    expect(fromUtf8(await bob1.receive(w.alice.did, ac.send(utf8('before'))))).toBe('before');
    expect(bc.isClosed).toBe(false);
    bob1.close(); // the process ends; its key manager (not saved) is gone

    const bob2 = new EncryptedTrustBridge({ identity: w.bob, registry: w.registry, transport: w.network, preKeyStore: w.store });
    await bob2.publishPrekeyBundle(); // was INVALID_STATE otk_id_reused
    const ac2 = await w.alicesBridge.openSecureChannel(w.bob.did);
    await bob2.acceptSecureChannel(w.alice.did, w.alicesBridge.getSession(w.bob.did)!.establishment);
    expect(fromUtf8(await bob2.receive(w.alice.did, ac2.send(utf8('after'))))).toBe('after');
    w.store.close();
  });

  test('with a StoredKeyManager: an establishment from before the restart is accepted after it; its one-time key stays spent', async () => {
    const w = agents();
    const cipher = new StorageCipher(randomBytes(32));
    const location = { store: w.store, cipher, did: w.bob.did };
    const keys1 = await StoredKeyManager.create(location, w.bob.createKeyManager());
    const bob1 = new EncryptedTrustBridge({
      agentDid: w.bob.did,
      keyManager: keys1,
      registry: w.registry,
      transport: w.network,
      preKeyStore: w.store,
    });
    await bob1.publishPrekeyBundle();
    const ac = await w.alicesBridge.openSecureChannel(w.bob.did);
    const establishment = w.alicesBridge.getSession(w.bob.did)!.establishment;
    expect(establishment.usedOneTimeKeyId).toBeDefined();
    bob1.close(); // Bob restarts before Alice's establishment arrives

    const keys2 = (await StoredKeyManager.load(location))!;
    const bob2 = new EncryptedTrustBridge({
      agentDid: w.bob.did,
      keyManager: keys2,
      registry: w.registry,
      transport: w.network,
      preKeyStore: w.store,
    });
    await bob2.publishPrekeyBundle(); // the saved manager's record is kept, its pool topped up
    // Alice's verification was recorded by bob1; she answers bob2's challenge afresh.
    await w.alicesBridge.verifyPeer(w.bob.did);
    await bob2.acceptSecureChannel(w.alice.did, establishment);
    expect(fromUtf8(await bob2.receive(w.alice.did, ac.send(utf8('across the restart'))))).toBe('across the restart');
    expect(keys2.manager.getOneTimePreKey(establishment.usedOneTimeKeyId!)).toBeUndefined();
    bob2.close();

    // A third run: the spent one-time key is gone from what was saved, so a replay cannot recreate the session.
    const keys3 = (await StoredKeyManager.load(location))!;
    expect(keys3.manager.getOneTimePreKey(establishment.usedOneTimeKeyId!)).toBeUndefined();
    const bob3 = new EncryptedTrustBridge({
      agentDid: w.bob.did,
      keyManager: keys3,
      registry: w.registry,
      transport: w.network,
      preKeyStore: w.store,
    });
    await w.alicesBridge.verifyPeer(w.bob.did);
    const e = await rejectionOf(bob3.acceptSecureChannel(w.alice.did, establishment));
    expect(e.code).toBe('OTK_NOT_FOUND');
    w.store.close();
  });

  test('a signing identity made from a StoredKeyManager follows its newest state', async () => {
    const w = agents();
    const cipher = new StorageCipher(randomBytes(32));
    const keys = await StoredKeyManager.create({ store: w.store, cipher, did: w.bob.did }, w.bob.createKeyManager());
    const identity = AgentIdentity.fromKeyManager(keys, w.bob.did);
    await keys.update((m) => m.generateOneTimePreKeys(3)); // replaces (and wipes) the manager object
    expect(identity.verify(identity.sign(utf8('still signs')), utf8('still signs'))).toBe(true);
    w.store.close();
  });
});
