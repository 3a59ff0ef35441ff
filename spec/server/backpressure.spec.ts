/**
 * A recipient that stops reading: it is dropped once over `maxBufferedBytes` queued to it and draining no further for
 * `slowReaderTimeoutMs` (its frames stay stored); a reader that reads survives a burst over the bound; the push of
 * stored frames at connect waits for a slow reader instead of queueing its whole inbox. Loopback only.
 */
import { ready } from '../../lib/sodium';
import { MemoryInboxStore, MeshServer, startMeshServer } from '../../lib/server';
import { expectE2EErrorAsync } from '../helpers/expect-error';
import { TestClient, TestAgent, connect, message, newAgent, sleep, until } from './helpers';

const FRAME = 'A'.repeat(60_000);
const COUNT = 300; // 18 MB: well over what loopback socket buffers absorb

let server: MeshServer;
let inbox: MemoryInboxStore;
let lines: string[];

beforeAll(async () => {
  await ready();
});
beforeEach(async () => {
  inbox = new MemoryInboxStore();
  lines = [];
  server = await startMeshServer({
    port: 0,
    inbox,
    relay: { maxBufferedBytes: 2 * 1024 * 1024, slowReaderTimeoutMs: 1000, messageBurst: 10_000 },
    log: (l) => lines.push(l),
  });
});
afterEach(async () => server.close());

/** Stops (or restarts) reading the client's TCP socket. */
function reading(c: TestClient, on: boolean): void {
  const socket = (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  if (on) socket.resume();
  else socket.pause();
}

/** Reads frames of type `message` until `n` have come (or throws after `ms`); returns their ids. */
async function messages(c: TestClient, n: number, ms = 20_000): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < n) {
    const f = await c.frame(ms);
    if (f.type === 'message') ids.push(f.id as string);
  }
  return ids;
}

/** `COUNT` stored frames from `ca` for `b` (committed before this resolves). */
async function fillInbox(ca: TestClient, b: TestAgent): Promise<void> {
  for (let i = 0; i < COUNT; i++) ca.send(message(b.did, `bp-${i}`, { ciphertext: FRAME }));
  expect(await until(() => inbox.count(b.did) === COUNT)).toBe(true);
}

function expectedIds(): string[] {
  return Array.from({ length: COUNT }, (_, i) => `bp-${i}`);
}

it('a recipient that stops reading is dropped once over maxBufferedBytes; its frames stay stored for its next connect', async () => {
  const a = newAgent();
  const b = newAgent();
  const ca = await connect(server.url, a);
  const cb = await connect(server.url, b);
  reading(cb, false);
  for (let i = 0; i < COUNT; i++) ca.send(message(b.did, `bp-${i}`, { ciphertext: FRAME }));
  expect(await until(() => !server.relay.isConnected(b.did))).toBe(true);
  expect(lines.some((l) => l.startsWith(`relay: ${b.did} stopped reading`))).toBe(true);
  expect(await until(() => inbox.count(b.did) === COUNT)).toBe(true);
  // The sender is not affected.
  expect(server.relay.isConnected(a.did)).toBe(true);
  reading(cb, true);
  expect((await cb.closeEvent(10_000)).code).toBe(1006);
  const again = await connect(server.url, b);
  expect(await messages(again, COUNT)).toEqual(expectedIds());
  ca.close();
  again.close();
}, 60_000);

it('the push of stored frames at connect waits for a slow reader instead of queueing its whole inbox', async () => {
  const a = newAgent();
  const b = newAgent();
  const ca = await connect(server.url, a);
  await fillInbox(ca, b);
  const cb = await connect(server.url, b); // the welcome has come: the push starts now
  reading(cb, false);
  await sleep(600); // under slowReaderTimeoutMs
  expect(server.relay.isConnected(b.did)).toBe(true); // waited for, not dropped
  reading(cb, true);
  expect(await messages(cb, COUNT)).toEqual(expectedIds());
  expect(lines.some((l) => l.includes('stopped reading'))).toBe(false);
  ca.close();
  cb.close();
}, 60_000);

it('live frames that pile up behind a waiting push are bounded too: over maxBufferedBytes the reader is dropped', async () => {
  const a = newAgent();
  const b = newAgent();
  const ca = await connect(server.url, a);
  await fillInbox(ca, b);
  const cb = await connect(server.url, b);
  reading(cb, false);
  await sleep(500); // the push now waits for b to drain
  expect(server.relay.isConnected(b.did)).toBe(true);
  // 60 more while it waits: held for after the push, 3.6 MB > 2 MiB.
  for (let i = 0; i < 60; i++) ca.send(message(b.did, `live-${i}`, { ciphertext: FRAME }));
  expect(await until(() => !server.relay.isConnected(b.did))).toBe(true);
  expect(inbox.count(b.did)).toBe(COUNT + 60);
  reading(cb, true);
  const again = await connect(server.url, b);
  expect(await messages(again, COUNT + 60)).toEqual([...expectedIds(), ...Array.from({ length: 60 }, (_, i) => `live-${i}`)]);
  ca.close();
  again.close();
}, 60_000);

it('a reader that never reads is dropped while its connect push waits, after slowReaderTimeoutMs', async () => {
  const a = newAgent();
  const b = newAgent();
  const ca = await connect(server.url, a);
  await fillInbox(ca, b);
  const cb = await connect(server.url, b);
  reading(cb, false);
  // It keeps sending (heartbeat-like frames count as life) but never reads: no liveness rule would drop it.
  const t0 = Date.now();
  const beat = setInterval(() => cb.send({ type: 'heartbeat' }), 100);
  try {
    expect(await until(() => !server.relay.isConnected(b.did), 5000)).toBe(true);
  } finally {
    clearInterval(beat);
  }
  expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  expect(inbox.count(b.did)).toBe(COUNT);
  reading(cb, true);
  ca.close();
}, 30_000);

/** A server whose inbox misbehaves as `wrap` says (commit or pending of the real one, delayed). */
async function serverOver(wrap: Partial<Record<'commit' | 'pending', (call: () => unknown) => unknown>>, slowReaderTimeoutMs: number) {
  const store = new MemoryInboxStore();
  const inbox = new Proxy(store, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver) as unknown;
      if (typeof v !== 'function') return v;
      const bound = (v as (...x: unknown[]) => unknown).bind(target);
      const w = wrap[key as 'commit' | 'pending'];
      return w ? (...a: unknown[]) => w(() => bound(...a)) : bound;
    },
  });
  const log: string[] = [];
  const relay = await startMeshServer({
    port: 0,
    inbox,
    relay: { maxBufferedBytes: 2 * 1024 * 1024, slowReaderTimeoutMs, messageBurst: 10_000 },
    log: (l) => log.push(l),
  });
  return { relay, log };
}

const BURST = 'B'.repeat(900_000);

it('a reader that reads is not dropped for a burst over the bound (one group sent at once)', async () => {
  // Commits answer 300 ms late, so frames sent meanwhile are committed, and delivered, as one group.
  const { relay, log } = await serverOver({ commit: async (call) => (await sleep(300), call()) }, 1000);
  try {
    const senders = await Promise.all(Array.from({ length: 9 }, () => connect(relay.url, newAgent())));
    const b = newAgent();
    const cb = await connect(relay.url, b);
    senders[0]!.send(message(b.did, 'ok-0')); // opens a group; the others queue behind its commit
    await sleep(50);
    // 8 × 900 kB in one group (7.2 MB: over 2 MiB, under 8 MiB) to a reading socket: watched, drains, stays.
    senders.slice(1).forEach((s, i) => s.send(message(b.did, `ok-${i + 1}`, { ciphertext: BURST })));
    expect((await messages(cb, 9)).length).toBe(9);
    await sleep(1200); // past slowReaderTimeoutMs
    expect(relay.relay.isConnected(b.did)).toBe(true);
    expect(log.some((l) => l.includes('stopped reading'))).toBe(false);
    for (const s of senders) s.close();
    cb.close();
  } finally {
    await relay.close();
  }
}, 30_000);

it('over four times the bound waiting is dropped at once, long before slowReaderTimeoutMs', async () => {
  // The connect push's inbox read never answers: every live frame for the reader is held behind it.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const { relay, log } = await serverOver({ pending: async (call) => (await gate, call()) }, 60_000);
  try {
    const c = newAgent();
    const cc = await connect(relay.url, c); // the welcome is out; the push waits at the gate
    const senders = await Promise.all(Array.from({ length: 10 }, () => connect(relay.url, newAgent())));
    // 10 × 900 kB held (9 MB > 4 × 2 MiB): dropped as the bound is passed, not after a minute.
    senders.forEach((s, i) => s.send(message(c.did, `held-${i}`, { ciphertext: BURST })));
    expect(await until(() => !relay.relay.isConnected(c.did), 10_000)).toBe(true);
    expect(log.some((l) => l.startsWith(`relay: ${c.did} stopped reading`))).toBe(true);
    for (const s of senders) s.close();
    cc.close();
  } finally {
    open();
    await relay.close();
  }
}, 30_000);

it('refuses a maxBufferedBytes below 2 × maxFrameBytes, and a bad slowReaderTimeoutMs (INVALID_ARGUMENT)', async () => {
  await expectE2EErrorAsync(() => startMeshServer({ port: 0, relay: { maxBufferedBytes: 1000 } }), 'INVALID_ARGUMENT');
  await expectE2EErrorAsync(() => startMeshServer({ port: 0, relay: { maxBufferedBytes: 2 * 1024 * 1024 - 1 } }), 'INVALID_ARGUMENT');
  await expectE2EErrorAsync(() => startMeshServer({ port: 0, relay: { maxBufferedBytes: 2.5 * 1024 * 1024 + 0.5 } }), 'INVALID_ARGUMENT');
  for (const slowReaderTimeoutMs of [0, -1, 1.5, NaN]) {
    await expectE2EErrorAsync(() => startMeshServer({ port: 0, relay: { slowReaderTimeoutMs } }), 'INVALID_ARGUMENT');
  }
  const ok = await startMeshServer({ port: 0, relay: { maxBufferedBytes: 2 * 1024 * 1024 } });
  await ok.close();
});
