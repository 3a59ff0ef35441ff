/**
 * `npm run demo:mesh`: a relay + registry server and two agent processes (scripts/examples/mesh/bob.ts and
 * scripts/examples/mesh/alice.ts), trust-gated, on loopback. It shows, in order: a message and its answer; the relay's view
 * of a message for an offline agent (ciphertext only); a `kill -9` of the server and its restart on the same
 * SQLite file, with nothing lost; and a refused untrusted agent. Every step waits for the line it expects
 * (bounded), so the run stops by itself; `spec/mesh/demo-mesh.spec.ts` asserts its output.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { randomBytes, toBase64, toHex } from '../lib/crypto';
import { ready } from '../lib/sodium';
import { AgentIdentity } from '../lib/trust';

const root = join(__dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'agentmesh-demo-'));
const db = join(dir, 'relay.sqlite');
const children = new Set<ChildProcess>();
const seen: string[] = [];
const waiters: { re: RegExp; from: number; resolve: (line: string) => void }[] = [];

const t0 = Date.now();

function say(line: string): void {
  process.stdout.write(process.env.DEMO_TIMES ? `[${((Date.now() - t0) / 1000).toFixed(1)}] ${line}\n` : `${line}\n`);
}

/** Forwards a child's lines to stdout and to whoever waits for them. */
function watch(child: ChildProcess, prefix = ''): void {
  let buf = '';
  const onData = (d: Buffer): void => {
    buf += String(d);
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = prefix + buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim().length === 0) continue;
      seen.push(line);
      say(line);
      for (const w of [...waiters]) {
        if (w.re.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', (d: Buffer) => {
    // Server log lines and agent errors: shown only when asked for.
    if (process.env.DEMO_VERBOSE) process.stderr.write(d);
  });
}

/** The next line matching `re` from now on (or already seen since `from`), within `ms`. */
function waitFor(re: RegExp, ms = 20_000, from = seen.length): Promise<string> {
  const hit = seen.slice(from).find((l) => re.test(l));
  if (hit) return Promise.resolve(hit);
  return new Promise((resolve, reject) => {
    const w = { re, from, resolve };
    waiters.push(w);
    const t = setTimeout(() => {
      waiters.splice(waiters.indexOf(w), 1);
      reject(new Error(`demo: timed out waiting for ${re}`));
    }, ms);
    t.unref();
  });
}

function run(args: string[], env: Record<string, string>): ChildProcess {
  // `node --import tsx`, not the tsx wrapper (which forks): signals reach the process itself.
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function startServer(port: number): ChildProcess {
  const code = `import('./lib/server/index.ts').then((m) => (m.runServe ?? m.default.runServe)(['--port', '${port}', '--db', ${JSON.stringify(db)}]))`;
  const child = run(['-e', code], {});
  watch(child, 'server: ');
  return child;
}

function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** What the relay keeps for `did`, read from its database (the relay's whole view of a stored message). */
function relayView(did: string): string[] {
  const conn = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return (conn.prepare('SELECT frame FROM relay_inbox WHERE recipient = ? ORDER BY seq').all(did) as { frame: string }[]).map(
      (r) => r.frame,
    );
  } finally {
    conn.close();
  }
}

async function main(): Promise<void> {
  await ready();
  say('== agentmesh-e2e mesh demo: a relay, two agents, end to end encrypted ==');
  const seeds = { alice: randomBytes(32), bob: randomBytes(32), mallory: randomBytes(32) };
  const ids = {
    alice: AgentIdentity.fromSeed(seeds.alice),
    bob: AgentIdentity.fromSeed(seeds.bob),
    mallory: AgentIdentity.fromSeed(seeds.mallory),
  };
  // The registry both sides trust (in production: your identity registry): Mallory scores 300 of 1000.
  const trust = JSON.stringify([
    { did: ids.alice.did, publicKey: toBase64(ids.alice.publicKey), trustScore: 850 },
    { did: ids.bob.did, publicKey: toBase64(ids.bob.publicKey), trustScore: 900 },
    { did: ids.mallory.did, publicKey: toBase64(ids.mallory.publicKey), trustScore: 300 },
  ]);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let server = startServer(port);
  await waitFor(/^server: listening on /);

  const agentEnv = (name: keyof typeof seeds): Record<string, string> => ({
    MESH_URL: url,
    MESH_SEED: toHex(seeds[name]),
    MESH_STORE: join(dir, `${name}.sqlite`),
    MESH_STORAGE_KEY: toHex(randomBytes(32)),
    MESH_TRUST: trust,
    MESH_NAME: name,
    MESH_PEER: ids.bob.did,
  });
  const bobEnv = agentEnv('bob');
  let bob = run(['scripts/examples/mesh/bob.ts'], bobEnv);
  watch(bob);
  await waitFor(/^bob: ready /);
  const alice = run(['scripts/examples/mesh/alice.ts'], agentEnv('alice'));
  watch(alice);
  await waitFor(/^alice: ready /);

  say('-- 1. Alice writes to Bob (trust handshake both ways, X3DH, Double Ratchet)');
  let mark = seen.length;
  alice.stdin?.write('hello bob\n');
  await waitFor(/^bob: received "hello bob"/, 20_000, mark);
  await waitFor(/^alice: got "ack: hello bob"/, 20_000, mark);

  say('-- 2. Bob goes offline; Alice writes anyway: the relay keeps the message for him');
  await stop(bob, 'SIGTERM');
  mark = seen.length;
  alice.stdin?.write('transfer approved: invoice 42\n');
  await waitFor(/^alice: sent "transfer approved: invoice 42"/, 20_000, mark);
  const stored = relayView(ids.bob.did);
  const frame = JSON.parse(stored[stored.length - 1] as string) as Record<string, unknown>;
  const shown = {
    type: frame.type,
    from: String(frame.from).slice(0, 17) + '…',
    to: String(frame.to).slice(0, 17) + '…',
    header: frame.header,
    ciphertext: String(frame.ciphertext).slice(0, 32) + '…',
  };
  say(`relay's view: ${JSON.stringify(shown)}`);
  say(`relay's view holds the plaintext: ${stored.some((f) => f.includes('invoice 42')) ? 'yes' : 'no'}`);

  say('-- 3. kill -9 of the server; it restarts on the same SQLite file');
  await stop(server, 'SIGKILL');
  say('server: killed (SIGKILL)');
  server = startServer(port);
  await waitFor(/^server: listening on /);

  say('-- 4. Bob comes back (his sessions resume from his SQLite store): nothing was lost');
  mark = seen.length;
  bob = run(['scripts/examples/mesh/bob.ts'], bobEnv);
  watch(bob);
  await waitFor(/^bob: received "transfer approved: invoice 42"/, 20_000, mark);
  await waitFor(/^alice: got "ack: transfer approved: invoice 42"/, 20_000, mark);

  say('-- 5. Mallory (trust score 300) tries to reach Bob');
  const mallory = run(['scripts/examples/mesh/alice.ts'], agentEnv('mallory'));
  watch(mallory);
  await waitFor(/^mallory: ready /);
  mark = seen.length;
  mallory.stdin?.write('let me in\n');
  await waitFor(/^mallory: refused: TRUST_REJECTED/, 20_000, mark);
  await waitFor(/^bob: refused .*trust_score_too_low/, 20_000, mark);
  say('== done: every message delivered, the relay saw only ciphertext, the untrusted agent was refused ==');
  mallory.stdin?.end();
  alice.stdin?.end();
}

async function cleanup(): Promise<void> {
  await Promise.all([...children].map((c) => stop(c, 'SIGTERM')));
  rmSync(dir, { recursive: true, force: true });
}

const overall = setTimeout(() => {
  say('demo: took too long, stopping');
  void cleanup().then(() => process.exit(1));
}, 90_000);

main().then(
  async () => {
    clearTimeout(overall);
    await cleanup();
  },
  async (e: unknown) => {
    clearTimeout(overall);
    say(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
    await cleanup();
    process.exit(1);
  },
);
