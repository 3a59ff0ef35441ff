/**
 * Agent receive bench: Bob (SQLite, synchronous=FULL) drains N messages queued in his mailbox while he was
 * offline (Alice, also on SQLite, queues them with N concurrent sends); prints both rates. Loopback, one process (the server shares the CPU). Not a test: run it with
 *   N=10000 GROUP=1 npx tsx spec/mesh/bench/agent-receive.ts   # groupCommit: true
 *   N=5000 npx tsx spec/mesh/bench/agent-receive.ts            # every message saved and acked alone
 */
import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ready } from '../../../lib/sodium';
import { randomBytes } from '../../../lib/crypto';
import { AgentIdentity } from '../../../lib/trust';
import { MeshAgent } from '../../../lib/mesh';
import { startMeshServer } from '../../../lib/server';
(async () => {
  await ready();
  const N = Number(process.env.N ?? 5000);
  const server = await startMeshServer({ port: 0, relay: { maxPerInbox: 1e6, maxPerSender: 1e6, messagesPerSecond: 1e6, messageBurst: 1e6 }, registry: { registerBurst: 1000, uploadBurst: 1000, bundleFetchBurst: 1000 } });
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  const a = AgentIdentity.generate(), b = AgentIdentity.generate();
  const alice = await MeshAgent.connect({ url: server.url, identity: a, store: join(dir, 'alice.sqlite'), storageKey: randomBytes(32) });
  const opts = { url: server.url, identity: b, groupCommit: process.env.GROUP === '1', store: join(dir, 'bob.sqlite'), storageKey: randomBytes(32) };
  let bob = await MeshAgent.connect(opts);
  bob.on('message', () => undefined);
  await alice.send(b.did, 'warm');
  await new Promise((r) => setTimeout(r, 300));
  await bob.close();
  // Bob offline while Alice queues N at the relay; then Bob drains his mailbox: the receive rate alone.
  const sends: Promise<string>[] = [];
  const ts = performance.now();
  for (let i = 0; i < N; i++) sends.push(alice.send(b.did, `message ${i} ${'x'.repeat(100)}`));
  await Promise.all(sends);
  const tsend = performance.now() - ts;
  console.log(`sent ${N} concurrently in ${tsend.toFixed(0)} ms: ${(N / tsend * 1000).toFixed(0)} msg/s (Alice on SQLite FULL, each frame out only after its save)`);
  let n = 0; let done!: () => void; const all = new Promise<void>((r) => (done = r));
  const t0 = performance.now();
  bob = await MeshAgent.connect(opts);
  const tc = performance.now();
  bob.on('message', () => { if (++n === N) done(); });
  await all;
  const t = performance.now() - tc;
  console.log(`received ${N} in ${t.toFixed(0)} ms: ${(N / t * 1000).toFixed(0)} msg/s, ${(t * 1000 / N).toFixed(0)} µs/msg (SQLite FULL, groupCommit ${opts.groupCommit}); connect ${(tc - t0).toFixed(0)} ms`);
  await alice.close(); await bob.close(); await server.close();
})();
