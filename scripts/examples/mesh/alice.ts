/**
 * Alice, one agent of the two-file mesh example (the other is bob.ts): every line she reads on stdin
 * goes to Bob, end to end encrypted; the relay sees ciphertext only.
 *
 *   MESH_URL=http://server:8083 MESH_PEER=<Bob's DID> npx tsx scripts/examples/mesh/alice.ts
 *
 * A line sent while the relay is down waits in Alice's outbox and goes out when she reconnects; one sent
 * while Bob is offline waits in Bob's mailbox at the relay.
 */
import { createInterface } from 'node:readline';
import { ready, randomBytes, fromHex, fromBase64, AgentIdentity, InMemoryIdentityRegistry } from 'agentmesh-e2e';
import { MeshAgent, MeshTrustOptions } from 'agentmesh-e2e/mesh';

/** The trust registry from MESH_TRUST, if given (see bob.ts). */
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
  const peer = process.env.MESH_PEER;
  if (!peer) throw new Error("set MESH_PEER to Bob's DID");
  const identity = process.env.MESH_SEED ? AgentIdentity.fromSeed(fromHex(process.env.MESH_SEED)) : AgentIdentity.generate();
  const trust = trustFromEnv();
  const alice = await MeshAgent.connect({
    url: process.env.MESH_URL ?? 'http://127.0.0.1:8083',
    identity,
    store: process.env.MESH_STORE ?? 'alice.sqlite',
    storageKey: process.env.MESH_STORAGE_KEY ? fromHex(process.env.MESH_STORAGE_KEY) : randomBytes(32),
    ...(trust ? { trust } : {}),
  });
  const name = process.env.MESH_NAME ?? 'alice';
  console.log(`${name}: ready ${alice.did}`);
  alice.on('message', (m) => console.log(`${name}: got "${m.text()}"`));
  alice.on('session-reset', (e) => console.log(`${name}: ${e.peer.slice(0, 17)}… lost its session; the next message opens a new one`));
  alice.on('disconnected', () => console.log(`${name}: relay connection lost, reconnecting`));

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.length === 0) continue;
    try {
      const id = await alice.send(peer, line); // resolves once the relay has stored it
      console.log(`${name}: sent "${line}" (${id.slice(0, 8)})`);
    } catch (e) {
      const err = e as { code?: string; reason?: string };
      console.log(`${name}: refused: ${err.code ?? 'error'} ${err.reason ?? ''}`.trim());
    }
  }
  await alice.close();
}

main().catch((e: unknown) => {
  console.error('alice failed:', e);
  process.exit(1);
});
