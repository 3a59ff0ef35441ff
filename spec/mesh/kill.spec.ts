/**
 * Crash safety of a receiving agent: the receiver runs in its own process (SQLite store) and is killed with
 * SIGKILL twice mid-stream. Every message the relay took from the sender reaches the application; a message
 * is handled twice only if a kill fell between its handler and the save of its session (at most one per kill).
 */
import { ChildProcess, spawn } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ready } from '../../lib/sodium';
import { randomBytes, toHex } from '../../lib/crypto';
import { AgentIdentity } from '../../lib/trust';
import { MeshAgent } from '../../lib/mesh';
import { startMeshServer, MeshServer } from '../../lib/server';
import { until } from './helpers';

let server: MeshServer;
let dir: string;

beforeAll(async () => {
  await ready();
  dir = mkdtempSync(join(tmpdir(), 'mesh-kill-'));
  server = await startMeshServer({ port: 0, registry: { registerBurst: 1000, uploadBurst: 1000, bundleFetchBurst: 1000 } });
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function lines(log: string): string[] {
  return existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.length > 0)
    : [];
}

test('kill -9 of the receiving agent twice mid-stream: every relay-taken message delivered, none lost', async () => {
  const seed = randomBytes(32);
  const bobId = AgentIdentity.fromSeed(seed);
  const log = join(dir, 'delivered.log');
  const env = {
    ...process.env,
    MESH_URL: server.url,
    MESH_SEED: toHex(seed),
    MESH_STORE: join(dir, 'bob.sqlite'),
    MESH_KEY: toHex(randomBytes(32)),
    MESH_LOG: log,
  };
  const start = async (): Promise<ChildProcess> => {
    // `node --import tsx` (not the tsx wrapper, which would fork): the signal hits the agent's own process.
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures', 'receiver.ts')], {
      env,
      cwd: join(__dirname, '..', '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr?.on('data', (d: Buffer) => process.stderr.write(d));
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        if (String(d).includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`receiver exited ${code}`)));
    });
    child.once('exit', () => {
      child.stdout?.destroy();
      child.stderr?.destroy();
    });
    return child;
  };
  const alice = await MeshAgent.connect({ url: server.url, identity: AgentIdentity.generate() });
  let child = await start();
  const total = 150;
  const sent: string[] = [];
  const sending = (async () => {
    for (let i = 0; i < total; i++) {
      sent.push(await alice.send(bobId.did, `n${i}`));
      await new Promise((r) => setTimeout(r, 4));
    }
  })();
  for (const at of [40, 90]) {
    await until(() => lines(log).length >= at, 20000, `${at} deliveries`);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    child = await start();
  }
  await sending;
  await until(() => new Set(lines(log).map((l) => l.split(' ')[0])).size >= total, 20000, 'all deliveries');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const ids = lines(log).map((l) => l.split(' ')[0]);
  expect(new Set(ids)).toEqual(new Set(sent));
  const twice = ids.length - new Set(ids).size;
  process.stdout.write(`kill -9 test: ${sent.length} sent, ${new Set(ids).size} delivered, ${twice} handled twice\n`);
  expect(twice).toBeLessThanOrEqual(2);
  await alice.close();
}, 60000);
