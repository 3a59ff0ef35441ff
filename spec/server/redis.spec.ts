/**
 * Redis: the inbox conformance suite, and two server processes (here: two servers in this process, each with its
 * own Redis connections) sharing one Redis — registry, inboxes, live frames over pub/sub, cross-node 4006, and
 * single-use proofs across nodes. Starts its own redis-server on a free loopback port (skipped if none is installed).
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { Socket, createServer } from 'node:net';
import Redis, { RedisOptions } from 'ioredis';
import { ready } from '../../lib/sodium';
import { buildConnectFrame } from '../../lib/mesh/frames';
import { BusEvent, MeshServer, RedisInboxStore, RedisRelayBus, startMeshServer } from '../../lib/server';
import { expectE2EErrorAsync } from '../helpers/expect-error';
import { inboxConformance } from './inbox-conformance';
import { TestClient, authed, connect, http, message, newAgent, publish, sleep, until } from './helpers';

const haveRedis = spawnSync('redis-server', ['--version']).status === 0;
const d = haveRedis ? describe : describe.skip;
if (!haveRedis) console.warn('[server] SKIPPING Redis tests: redis-server is not installed');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

let redis: ChildProcess | null = null;
let url = '';
let admin: Redis;

beforeAll(async () => {
  await ready();
  if (!haveRedis) return;
  const port = await freePort();
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  url = `redis://127.0.0.1:${port}`;
  admin = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: (n) => (n > 20 ? null : 100) });
  for (let i = 0; i < 50; i++) {
    try {
      await admin.ping();
      break;
    } catch {
      await sleep(100);
    }
  }
});
afterAll(async () => {
  admin?.disconnect();
  redis?.kill('SIGTERM');
});

d('RedisInboxStore', () => {
  let n = 0;
  inboxConformance('conformance', async () => {
    await admin.ping();
    return new RedisInboxStore(admin, `t${n++}:relay:`);
  });
});

d('RedisRelayBus', () => {
  const opened: Redis[] = [];
  function client(options: RedisOptions = {}): Redis {
    const c = new Redis(url, { maxRetriesPerRequest: 2, ...options });
    c.on('error', () => undefined);
    opened.push(c);
    return c;
  }
  afterEach(() => {
    for (const c of opened.splice(0)) c.disconnect();
  });
  let n = 0;

  it('subscribes only once its connection is ready (ioredis may otherwise interleave its handshake: #2037)', async () => {
    for (let i = 0; i < 5; i++) {
      const sub = client();
      const seen: string[] = [];
      const subscribe = sub.subscribe.bind(sub) as (...a: unknown[]) => Promise<unknown>;
      (sub as unknown as { subscribe: (...a: unknown[]) => Promise<unknown> }).subscribe = (...a: unknown[]) => {
        seen.push(sub.status);
        return subscribe(...a);
      };
      expect(sub.status).not.toBe('ready');
      const channel = `bus-ready-${n++}`;
      const bus = new RedisRelayBus(client(), sub, channel);
      const got: BusEvent[] = [];
      bus.onEvent((e) => got.push(e));
      await bus.ready();
      expect(seen).toEqual(['ready']);
      new RedisRelayBus(client(), client(), channel).publish({ t: 'takeover', did: 'did:mesh:00', at: i });
      expect(await until(() => got.length === 1)).toBe(true);
      expect(got).toEqual([{ t: 'takeover', did: 'did:mesh:00', at: i }]);
      await bus.close();
    }
  });

  it('after its subscription connection drops, subscribes again and only then asks for a resync; events flow again', async () => {
    const channel = `bus-resync-${n++}`;
    const bus = new RedisRelayBus(client(), client(), channel);
    const got: BusEvent[] = [];
    let resyncs = 0;
    bus.onEvent((e) => got.push(e));
    bus.onResync(() => resyncs++);
    await bus.ready();
    const other = new RedisRelayBus(client(), client(), channel);
    await other.ready();
    for (let round = 1; round <= 2; round++) {
      // Drops every subscriber connection: both buses reconnect (pub/sub keeps nothing meanwhile).
      await admin.client('KILL', 'TYPE', 'pubsub');
      expect(await until(() => resyncs === round)).toBe(true);
      other.publish({ t: 'takeover', did: 'did:mesh:00', at: round });
      // `other` may still be resubscribing itself, but its publishes go out on its publishing connection.
      expect(await until(() => got.length === round)).toBe(true);
    }
    expect(got.map((e) => (e as { at: number }).at)).toEqual([1, 2]);
    await bus.close();
    await other.close();
  });

  it('no resync after close', async () => {
    const bus = new RedisRelayBus(client(), client(), `bus-closed-${n++}`);
    let resyncs = 0;
    bus.onResync(() => resyncs++);
    await bus.ready();
    await bus.close();
    await admin.client('KILL', 'TYPE', 'pubsub');
    expect(await until(() => resyncs > 0, 500)).toBe(false);
  });

  it('close() before ready() leaves nothing subscribed', async () => {
    const channel = `bus-early-${n++}`;
    const bus = new RedisRelayBus(client(), client(), channel);
    await bus.close();
    await bus.ready();
    await sleep(100);
    expect(await admin.pubsub('NUMSUB', channel)).toEqual([channel, 0]);
  });

  it('ready() fails with STORE_ERROR at once when the subscription client has ended', async () => {
    const ended = client();
    await ended.ping();
    ended.disconnect();
    await until(() => ended.status === 'end');
    const t0 = Date.now();
    await expectE2EErrorAsync(new RedisRelayBus(client(), ended, `bus-ended-${n++}`).ready(), 'STORE_ERROR', 'backend');
    // And a client that ends while connecting (no retries left) fails it without waiting out the timeout.
    const dead = new Redis('redis://127.0.0.1:1', { retryStrategy: () => null, maxRetriesPerRequest: 0 });
    dead.on('error', () => undefined);
    opened.push(dead);
    await expectE2EErrorAsync(new RedisRelayBus(client(), dead, `bus-ended-${n++}`).ready(), 'STORE_ERROR', 'backend');
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('ready() fails with STORE_ERROR after readyTimeoutMs when the subscription connection keeps failing', async () => {
    // Retries forever (lazily connected: the bus starts it), so only the timeout ends the wait.
    const dead = new Redis('redis://127.0.0.1:1', { lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: 0 });
    dead.on('error', () => undefined);
    opened.push(dead);
    const t0 = Date.now();
    const bus = new RedisRelayBus(client(), dead, `bus-dead-${n++}`, 300);
    const e = await expectE2EErrorAsync(bus.ready(), 'STORE_ERROR', 'backend');
    expect(e.message).toBe('Redis does not answer (subscription connection) [backend]');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(dead.status).not.toBe('end');
  });
});

d('two server processes on one Redis', () => {
  let s1: MeshServer;
  let s2: MeshServer;
  let prefix = 0;
  beforeEach(async () => {
    const redisPrefix = `two${prefix++}`;
    s1 = await startMeshServer({ port: 0, redis: url, redisPrefix });
    s2 = await startMeshServer({ port: 0, redis: url, redisPrefix });
  });
  afterEach(async () => {
    await s1.close();
    await s2.close();
  });

  it('registry writes on one are read on the other (records, bundles, one-time keys once)', async () => {
    const a = newAgent();
    const b = newAgent();
    await publish(s1.url, a, 2);
    await publish(s2.url, b, 0);
    expect((await http(s2.url, 'GET', `/v1/agents/${a.did}`)).status).toBe(200);
    const ids = [];
    for (const s of [s2, s1, s2])
      ids.push((await authed(s.url, b, 'GET', `/v1/agents/${a.did}/prekeys`)).body.one_time_pre_key?.key_id ?? null);
    expect(ids).toEqual([0, 1, null]);
  });

  it('a frame sent on node 1 reaches its recipient live on node 2, and the ack on node 2 deletes it', async () => {
    const a = newAgent();
    const b = newAgent();
    const ca = await connect(s1.url, a);
    const cb = await connect(s2.url, b);
    ca.send(message(b.did, 'cross-1'));
    expect(await ca.frame()).toMatchObject({ type: 'accepted', id: 'cross-1' });
    expect(await cb.frame()).toMatchObject({ id: 'cross-1', from: a.did });
    cb.send({ type: 'ack', id: 'cross-1' });
    await sleep(50);
    await s2.relay.drain();
    cb.close();
    await cb.closeEvent();
    const again = await connect(s1.url, b, { welcome: false });
    expect(await again.frame()).toMatchObject({ type: 'connected', pending: 0 });
    ca.close();
    again.close();
  });

  it('a frame sent while node 2 resubscribes (its pub/sub connection killed) still reaches the live recipient', async () => {
    const a = newAgent();
    const b = newAgent();
    const ca = await connect(s1.url, a);
    const cb = await connect(s2.url, b);
    await admin.client('KILL', 'TYPE', 'pubsub');
    ca.send(message(b.did, 'gap-1'));
    expect(await ca.frame()).toMatchObject({ type: 'accepted', id: 'gap-1' });
    expect(await cb.frame()).toMatchObject({ id: 'gap-1', from: a.did });
    ca.close();
    cb.close();
  });

  it('stored on node 1 while offline, pushed by node 2 at connect', async () => {
    const a = newAgent();
    const b = newAgent();
    const ca = await connect(s1.url, a);
    ca.send(message(b.did, 'later'));
    await ca.frame();
    const cb = await connect(s2.url, b, { welcome: false });
    expect(await cb.frame()).toMatchObject({ type: 'connected', pending: 1 });
    expect((await cb.frame()).id).toBe('later');
    ca.close();
    cb.close();
  });

  it("connecting on node 2 closes the DID's socket on node 1 with 4006", async () => {
    const b = newAgent();
    const first = await connect(s1.url, b);
    await sleep(30);
    const second = await connect(s2.url, b);
    expect(await first.closeEvent()).toMatchObject({ code: 4006, reason: 'session_replaced' });
    expect(second.closed).toBeNull();
    second.close();
  });

  it('a connect proof used on node 1 is refused on node 2 (G2 across nodes)', async () => {
    const a = newAgent();
    const frame = buildConnectFrame(a, { nonce: false });
    const c1 = new TestClient(s1.url);
    await c1.opened;
    c1.send(frame);
    await sleep(50);
    const c2 = new TestClient(s2.url);
    await c2.opened;
    c2.send(frame);
    expect((await c2.closeEvent()).code).toBe(4005);
    expect(c1.closed).toBeNull();
    c1.close();
  });
});

d('two serve processes (agentmesh-e2e serve --redis)', () => {
  function serveChild(): Promise<{ child: ChildProcess; url: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', `${__dirname}/fixtures/serve-child.ts`, '--port', '0', '--redis', url], {
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: `${__dirname}/../..`,
      });
      let out = '';
      let err = '';
      // Drained so a chatty child never blocks on a full pipe; shown if it does not start.
      child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
      const timer = setTimeout(() => reject(new Error(`serve child did not start: ${out} ${err}`)), 20_000);
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve({ child, url: m[1] as string });
        }
      });
    });
  }

  /** A round-robin TCP balancer on one loopback port in front of `backends` (what a load balancer does). */
  async function balancer(backends: string[]): Promise<{ url: string; close(): Promise<void> }> {
    let next = 0;
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const target = new URL(backends[next++ % backends.length] as string);
      const upstream = new Socket();
      sockets.add(client);
      sockets.add(upstream);
      upstream.connect(Number(target.port), target.hostname, () => {
        client.pipe(upstream);
        upstream.pipe(client);
      });
      for (const s of [client, upstream]) {
        s.on('error', () => undefined);
        s.on('close', () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(s);
        });
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return {
      url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
      close: () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    };
  }

  it('behind one address (a round-robin balancer): agents landing on different processes register and talk', async () => {
    const p1 = await serveChild();
    const p2 = await serveChild();
    const lb = await balancer([p1.url, p2.url]);
    try {
      const a = newAgent();
      const b = newAgent();
      // fetch keeps connections alive: every registry call may hit either process.
      await publish(lb.url, a, 2);
      await publish(lb.url, b, 2);
      expect((await authed(lb.url, a, 'GET', `/v1/agents/${b.did}/prekeys`)).status).toBe(200);
      const ca = await connect(lb.url, a);
      const cb = await connect(lb.url, b);
      // Consecutive connections alternate: one agent on each process.
      for (const p of [p1, p2]) expect((await http(p.url, 'GET', '/health')).body.connected_agents).toBe(1);
      ca.send(message(b.did, 'lb-1'));
      expect((await cb.frame()).id).toBe('lb-1');
      cb.send({ type: 'ack', id: 'lb-1' });
      cb.send(message(a.did, 'lb-2'));
      expect((await ca.frame()).type).toBe('accepted');
      expect((await ca.frame()).id).toBe('lb-2');
      ca.close();
      cb.close();
    } finally {
      await lb.close();
      for (const p of [p1, p2]) {
        p.child.kill('SIGTERM');
        await new Promise((r) => p.child.once('exit', r));
      }
    }
  }, 30_000);

  it('an agent on process 1 and one on process 2 exchange frames live', async () => {
    const p1 = await serveChild();
    const p2 = await serveChild();
    try {
      const a = newAgent();
      const b = newAgent();
      const ca = await connect(p1.url, a);
      const cb = await connect(p2.url, b);
      ca.send(message(b.did, 'proc-1'));
      expect((await cb.frame()).id).toBe('proc-1');
      cb.send(message(a.did, 'proc-2'));
      expect((await ca.frame()).type).toBe('accepted');
      expect((await ca.frame()).id).toBe('proc-2');
      ca.close();
      cb.close();
    } finally {
      for (const p of [p1, p2]) {
        p.child.kill('SIGTERM');
        await new Promise((r) => p.child.once('exit', r));
      }
    }
  }, 30_000);
});
