/**
 * The multi-process one-time pre-key race: 4 child processes claim from one store at once (SQLite
 * file, Redis); every key is handed out exactly once and none is lost. The same for one-time KEM
 * pre-keys, claimed together with one-time pre-keys: each of both exactly once, then the last resort.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import Redis from 'ioredis';
import { ready } from '../../lib/sodium';
import { randomBytes } from '../../lib/crypto';
import { AgentStore, RedisStore, SqliteStore } from '../../lib/store';
import {
  clearPrefix,
  collect,
  describeRedis,
  makeAgent,
  makePqAgent,
  publicKems,
  randomNamespace,
  spawnFixture,
  waitForLine,
} from './helpers';

const WORKERS = 4;
const KEYS = 1000;
const DID = 'did:mesh:bob';

interface WorkerResult {
  got: number[];
  otks: number[];
  ms: number;
  calls: number;
}

const KEM_KEYS = 600;
const PQ_OTKS = 300;

/** A post-quantum bundle (last-resort KEM pre-key id 0), KEM_KEYS one-time KEM pre-keys (1 to KEM_KEYS) and PQ_OTKS one-time pre-keys. */
async function seedPq(store: AgentStore): Promise<{ kemIds: number[]; otkIds: number[] }> {
  const bob = makePqAgent(PQ_OTKS, KEM_KEYS);
  await store.storeBundle(DID, bob.getPublicBundle());
  const kems = publicKems(bob);
  for (let i = 0; i < kems.length; i += 250) await store.addKemPreKeys(DID, kems.slice(i, i + 250));
  const otkIds = bob.oneTimePreKeyIds;
  await store.addOneTimePreKeys(
    DID,
    otkIds.map((keyId) => ({ keyId, publicKey: bob.getOneTimePreKey(keyId)?.keyPair.publicKey as Uint8Array })),
  );
  expect((bob.lastResortKemPreKey as { keyId: number }).keyId).toBe(0);
  return { kemIds: kems.map((k) => k.keyId), otkIds };
}

async function pqRace(label: string, args: string[], store: AgentStore): Promise<void> {
  const { kemIds, otkIds } = await seedPq(store);
  const results = await race(args, 'claim-pq', [0]); // 0: the last-resort id, where the workers stop
  checkExactlyOnce(results, kemIds);
  expect(results.flatMap((r) => r.otks).sort((a, b) => a - b)).toEqual(otkIds);
  expect([await store.countKemPreKeys(DID), await store.countOneTimePreKeys(DID)]).toEqual([0, 0]);
  report(`${label} claimBundle with KEM pre-keys`, results);
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

async function race(args: string[], mode: 'claim' | 'consume' | 'claim-pq' | 'consume-kem', ids: number[]): Promise<WorkerResult[]> {
  const workers = Array.from({ length: WORKERS }, () => {
    const n = mode === 'claim-pq' ? ids[0] : ids.length; // claim-pq: the last-resort id; consume-kem: ids 0 to n
    const child = spawnFixture('claim-worker.ts', [...args, DID, mode, String(n)]);
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

  it(`hands out each of ${KEM_KEYS} one-time KEM pre-keys and ${PQ_OTKS} one-time pre-keys exactly once, then the last resort`, async () => {
    const path = join(dir, 'claim-pq.sqlite');
    const store = new SqliteStore(path);
    await pqRace('SQLite', ['sqlite', path, '-'], store);
    store.close();
  });

  it('lets exactly one process consume each KEM pre-key by id, and none the last-resort one', async () => {
    const path = join(dir, 'consume-kem.sqlite');
    const store = new SqliteStore(path);
    const { kemIds } = await seedPq(store);
    const results = await race(['sqlite', path, '-'], 'consume-kem', kemIds);
    checkExactlyOnce(results, kemIds);
    report('SQLite consumeKemPreKey', results);
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

  it(`hands out each of ${KEM_KEYS} one-time KEM pre-keys and ${PQ_OTKS} one-time pre-keys exactly once, then the last resort`, async () => {
    const store = new RedisStore({ client, namespace: `${ns}-claim-pq` });
    await pqRace('Redis', ['redis', url, `${ns}-claim-pq`], store);
  });

  it('lets exactly one process consume each KEM pre-key by id, and none the last-resort one', async () => {
    const store = new RedisStore({ client, namespace: `${ns}-consume-kem` });
    const { kemIds } = await seedPq(store);
    const results = await race(['redis', url, `${ns}-consume-kem`], 'consume-kem', kemIds);
    checkExactlyOnce(results, kemIds);
    report('Redis consumeKemPreKey', results);
  });
});
