/**
 * The multi-process one-time pre-key race: 4 child processes claim from one store at once (SQLite
 * file, Redis); every key is handed out exactly once and none is lost.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import Redis from 'ioredis';
import { ready } from '../../lib/sodium';
import { randomBytes } from '../../lib/crypto';
import { AgentStore, RedisStore, SqliteStore } from '../../lib/store';
import { clearPrefix, collect, describeRedis, makeAgent, randomNamespace, spawnFixture, waitForLine } from './helpers';

const WORKERS = 4;
const KEYS = 1000;
const DID = 'did:mesh:bob';

interface WorkerResult {
  got: number[];
  ms: number;
  calls: number;
}

async function seed(store: AgentStore): Promise<number[]> {
  await store.storeBundle(DID, makeAgent().getPublicBundle());
  const ids = Array.from({ length: KEYS }, (_, i) => i);
  for (let i = 0; i < KEYS; i += 500) {
    await store.addOneTimePreKeys(
      DID,
      ids.slice(i, i + 500).map((keyId) => ({ keyId, publicKey: randomBytes(32) })),
    );
  }
  return ids;
}

async function race(args: string[], mode: 'claim' | 'consume', ids: number[]): Promise<WorkerResult[]> {
  const workers = Array.from({ length: WORKERS }, () => {
    const child = spawnFixture('claim-worker.ts', [...args, DID, mode, String(ids.length)]);
    return { child, out: collect(child) };
  });
  await Promise.all(workers.map((w) => waitForLine(w.out.lines, (l) => l === 'ready', 60_000)));
  workers.forEach((w) => w.child.stdin?.end('go\n'));
  const exits = await Promise.all(workers.map((w) => w.out.exited));
  workers.forEach((w, i) => {
    if (exits[i].code !== 0) throw new Error(`worker ${i} failed: ${w.out.stderr()}`);
  });
  return workers.map((w) => JSON.parse(w.out.lines[w.out.lines.length - 1]) as WorkerResult);
}

function checkExactlyOnce(results: WorkerResult[], ids: number[]): void {
  const all = results.flatMap((r) => r.got).sort((a, b) => a - b);
  expect(all.length).toBe(ids.length); // none handed out twice...
  expect(all).toEqual(ids); // ...and none lost
}

function report(label: string, results: WorkerResult[]): void {
  const ms = Math.max(...results.map((r) => r.ms));
  const calls = results.reduce((n, r) => n + r.calls, 0);
  // A figure for the record, not an assertion.
  console.log(
    `[store race] ${label}: ${WORKERS} processes, ${calls} calls in ${ms.toFixed(0)} ms = ${Math.round((calls / ms) * 1000)} calls/s; per worker ${results.map((r) => r.got.length).join('/')}`,
  );
}

describe('one-time pre-key race across processes: SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-race-'));
  beforeAll(() => ready());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`hands out each of ${KEYS} keys exactly once to ${WORKERS} claiming processes`, async () => {
    const path = join(dir, 'claim.sqlite');
    const store = new SqliteStore(path);
    const ids = await seed(store);
    const results = await race(['sqlite', path, '-'], 'claim', ids);
    checkExactlyOnce(results, ids);
    expect(store.countOneTimePreKeys(DID)).toBe(0);
    report('SQLite claimBundle', results);
    store.close();
  });

  it('lets exactly one process consume each key by id', async () => {
    const path = join(dir, 'consume.sqlite');
    const store = new SqliteStore(path);
    const ids = await seed(store);
    const results = await race(['sqlite', path, '-'], 'consume', ids);
    checkExactlyOnce(results, ids);
    report('SQLite consumeOneTimeKey', results);
    store.close();
  });
});

describeRedis('one-time pre-key race across processes: Redis', (url) => {
  const ns = randomNamespace();
  let client: Redis;
  beforeAll(async () => {
    await ready();
    client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: (n) => (n > 3 ? null : 100) });
    await client.ping();
  });
  afterAll(async () => {
    await clearPrefix(client, ns);
    client.disconnect();
  });

  it(`hands out each of ${KEYS} keys exactly once to ${WORKERS} claiming processes`, async () => {
    const store = new RedisStore({ client, namespace: `${ns}-claim` });
    const ids = await seed(store);
    const results = await race(['redis', url, `${ns}-claim`], 'claim', ids);
    checkExactlyOnce(results, ids);
    expect(await store.countOneTimePreKeys(DID)).toBe(0);
    report('Redis claimBundle', results);
  });

  it('lets exactly one process consume each key by id', async () => {
    const store = new RedisStore({ client, namespace: `${ns}-consume` });
    const ids = await seed(store);
    const results = await race(['redis', url, `${ns}-consume`], 'consume', ids);
    checkExactlyOnce(results, ids);
    report('Redis consumeOneTimeKey', results);
  });
});
