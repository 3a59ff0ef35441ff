/**
 * Example: an agent that survives a restart. Keys and sessions live sealed in one SQLite file
 * (`agentmesh-e2e/sqlite`, which needs `npm install better-sqlite3`); after "restarting" (closing
 * and reopening the store) Bob loads his session and goes on where he was.
 * Run: npx tsx scripts/examples/sqlite-restart.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ready,
  AgentIdentity,
  SecureChannel,
  StorageCipher,
  StoredKeyManager,
  PersistentChannel,
  maintainPreKeys,
  randomBytes,
  utf8,
  fromUtf8,
} from 'agentmesh-e2e';
import { SqliteStore } from 'agentmesh-e2e/sqlite';

async function main(): Promise<void> {
  await ready();
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-example-'));
  const path = join(dir, 'agents.sqlite');
  const storageKey = randomBytes(32); // in production: from your secret manager, the same after a restart
  const ad = utf8('did:mesh:alice|did:mesh:bob');
  try {
    let store = new SqliteStore(path);
    const cipher = new StorageCipher(storageKey);

    // Bob: key manager saved sealed, pre-keys published to the same file.
    const bobKeys = await StoredKeyManager.create({ store, cipher, did: 'did:mesh:bob' }, AgentIdentity.generate().createKeyManager());
    const report = await maintainPreKeys(bobKeys, store);
    console.log(`bob published ${report.addedOneTimePreKeys} one-time pre-keys`);

    // Alice claims a bundle and opens a persistent channel.
    const bundle = await store.claimBundle('did:mesh:bob');
    const { channel, establishment } = SecureChannel.createSender(AgentIdentity.generate().createKeyManager(), bundle!, ad);
    const alice = await PersistentChannel.create({ store, cipher, localDid: 'did:mesh:alice', peerDid: 'did:mesh:bob' }, channel);
    const bob = await bobKeys.acceptChannel(establishment, { sessions: store, peerDid: 'did:mesh:alice', associatedData: ad });
    console.log(`bob read: ${fromUtf8(await bob.receive(await alice.send(utf8('before the restart'))))}`);

    // Restart: close the file, open it again, load the session.
    store.close();
    store = new SqliteStore(path);
    const bobAgain = await PersistentChannel.load({
      store,
      cipher: new StorageCipher(storageKey),
      localDid: 'did:mesh:bob',
      peerDid: 'did:mesh:alice',
    });
    const aliceAgain = await PersistentChannel.load({
      store,
      cipher: new StorageCipher(storageKey),
      localDid: 'did:mesh:alice',
      peerDid: 'did:mesh:bob',
    });
    console.log(`alice read: ${fromUtf8(await aliceAgain!.receive(await bobAgain!.send(utf8('after the restart'))))}`);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
