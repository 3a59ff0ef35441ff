/**
 * Agent receive bench: Bob (SQLite, synchronous=FULL) drains N messages queued in his mailbox while he was
 * offline (Alice, also on SQLite, queues them with N concurrent sends); prints both rates. Loopback, one
 * process (the server shares the CPU), bounded (gives up after --timeout seconds). Not a test: run it with
 *
 *   N=10000 GROUP=1 npx tsx bench/mesh-agent.ts   # groupCommit: true
 *   N=5000 npx tsx bench/mesh-agent.ts            # every message saved and acked alone
 *   npx tsx bench/mesh-agent.ts [--n 5000] [--group-commit] [--timeout 90] [--json]
 *
 * `--json` adds one JSON line (the figures) at the end of stdout; `npm run bench -- --only mesh` reads it.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ready } from '../lib/sodium';
import { randomBytes } from '../lib/crypto';
import { AgentIdentity } from '../lib/trust';
import { MeshAgent } from '../lib/mesh';
import { startMeshServer } from '../lib/server';

/** What `--json` prints. */
export interface AgentReceiveFigures {
  readonly n: number;
  readonly groupCommit: boolean;
  /** Alice's N concurrent sends, each frame out only after its save, msgs/s. */
  readonly sentPerSec: number;
  /** Bob draining his mailbox (from connect until the N-th message handler), msgs/s. */
  readonly receivedPerSec: number;
  readonly receiveMs: number;
  readonly connectMs: number;
}

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const N = Number(flag(args, '--n') ?? process.env.N ?? 5000);
  const groupCommit = args.includes('--group-commit') || process.env.GROUP === '1';
  const timeoutS = Number(flag(args, '--timeout') ?? 120);
  // Bounded: a lost message must not leave the bench waiting for ever.
  await ready();
  const server = await startMeshServer({
    port: 0,
    relay: { maxPerInbox: 1e6, maxPerSender: 1e6, messagesPerSecond: 1e6, messageBurst: 1e6 },
    registry: { registerBurst: 1000, uploadBurst: 1000, bundleFetchBurst: 1000 },
  });
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  setTimeout(() => {
    process.stderr.write(`mesh-agent: gave up after ${timeoutS} s\n`);
    rmSync(dir, { recursive: true, force: true });
    process.exit(1);
  }, timeoutS * 1000).unref();
  try {
    const a = AgentIdentity.generate(),
      b = AgentIdentity.generate();
    const alice = await MeshAgent.connect({ url: server.url, identity: a, store: join(dir, 'alice.sqlite'), storageKey: randomBytes(32) });
    const opts = { url: server.url, identity: b, groupCommit, store: join(dir, 'bob.sqlite'), storageKey: randomBytes(32) };
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
    console.log(
      `sent ${N} concurrently in ${tsend.toFixed(0)} ms: ${((N / tsend) * 1000).toFixed(0)} msg/s (Alice on SQLite FULL, each frame out only after its save)`,
    );
    let n = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const t0 = performance.now();
    bob = await MeshAgent.connect(opts);
    const tc = performance.now();
    bob.on('message', () => {
      if (++n === N) done();
    });
    await all;
    const t = performance.now() - tc;
    console.log(
      `received ${N} in ${t.toFixed(0)} ms: ${((N / t) * 1000).toFixed(0)} msg/s, ${((t * 1000) / N).toFixed(0)} µs/msg (SQLite FULL, groupCommit ${opts.groupCommit}); connect ${(tc - t0).toFixed(0)} ms`,
    );
    await alice.close();
    await bob.close();
    if (args.includes('--json')) {
      const figures: AgentReceiveFigures = {
        n: N,
        groupCommit,
        sentPerSec: (N / tsend) * 1000,
        receivedPerSec: (N / t) * 1000,
        receiveMs: t,
        connectMs: tc - t0,
      };
      console.log(JSON.stringify(figures));
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
