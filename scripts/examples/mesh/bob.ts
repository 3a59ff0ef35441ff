/**
 * Bob, one agent of the two-file mesh example (the other is alice.ts). Run a server, then Bob, then
 * Alice, on any machines that reach the server:
 *
 *   npx agentmesh-e2e serve --host 0.0.0.0 --port 8083 --db relay.sqlite     # or: npm run demo:mesh
 *   MESH_URL=http://server:8083 npx tsx scripts/examples/mesh/bob.ts
 *
 * Bob keeps his keys and sessions in SQLite (sealed with MESH_STORAGE_KEY), so a restart resumes every
 * session; he answers every message. With MESH_TRUST (a JSON list of `{did, publicKey, trustScore}`, the
 * registry both agents trust) he only talks to agents scoring at least 700.
 */
import { ready, randomBytes, fromHex, toHex, fromBase64, AgentIdentity, InMemoryIdentityRegistry } from 'agentmesh-e2e';
import { MeshAgent, MeshTrustOptions } from 'agentmesh-e2e/mesh';

/** The trust registry from MESH_TRUST, if given. */
function trustFromEnv(): MeshTrustOptions | undefined {
  const list = process.env.MESH_TRUST;
  if (!list) return undefined;
  const registry = new InMemoryIdentityRegistry();
  for (const e of JSON.parse(list) as { did: string; publicKey: string; trustScore: number }[]) {
    registry.register({ did: e.did, publicKey: fromBase64(e.publicKey), trustScore: e.trustScore });
  }
  return { registry, minTrustScore: 700 };
}

async function main(): Promise<void> {
  await ready();
  // In production: the seed and storage key come from your secret manager.
  const identity = process.env.MESH_SEED ? AgentIdentity.fromSeed(fromHex(process.env.MESH_SEED)) : AgentIdentity.generate();
  const storageKey = process.env.MESH_STORAGE_KEY ? fromHex(process.env.MESH_STORAGE_KEY) : randomBytes(32);
  const trust = trustFromEnv();
  const bob = await MeshAgent.connect({
    url: process.env.MESH_URL ?? 'http://127.0.0.1:8083',
    identity,
    store: process.env.MESH_STORE ?? 'bob.sqlite',
    storageKey,
    ...(trust ? { trust } : {}),
  });
  if (!process.env.MESH_STORAGE_KEY) console.log(`bob: storage key ${toHex(storageKey)} (keep it to restart)`);
  console.log(`bob: ready ${bob.did}`);

  // Acknowledged to the relay only after this returns (and Bob's session is saved).
  bob.on('message', async (m) => {
    console.log(`bob: received "${m.text()}"`);
    await bob.send(m.from, `ack: ${m.text()}`);
  });
  bob.on('rejected', (e) => console.log(`bob: refused ${e.peer.slice(0, 17)}… (${e.reason})`));
  bob.on('error', (e) => console.error(`bob: ${e.code} ${e.reason ?? ''} ${e.message}`));

  const stop = (): void => void bob.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: unknown) => {
  console.error('bob failed:', e);
  process.exit(1);
});
