/**
 * A recipient that stops reading: it is dropped once over `maxBufferedBytes` queued to it (its frames stay stored),
 * and the push of stored frames at connect waits for a slow reader instead of queueing its whole inbox. Loopback only.
 */
import { ready } from '../../lib/sodium';
import { MemoryInboxStore, MeshServer, startMeshServer } from '../../lib/server';
import { expectE2EErrorAsync } from '../helpers/expect-error';
import { TestClient, connect, message, newAgent, sleep } from './helpers';

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
    relay: { maxBufferedBytes: 2 * 1024 * 1024, messageBurst: 10_000 },
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

/** Polls `f` until it holds or `ms` pass. */
async function until(f: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!f()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
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
  for (let i = 0; i < COUNT; i++) ca.send(message(b.did, `bp-${i}`, { ciphertext: FRAME }));
  expect(await until(() => inbox.count(b.did) === COUNT)).toBe(true);
  const cb = await connect(server.url, b); // the welcome has come: the push starts now
  reading(cb, false);
  await sleep(1500);
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
  for (let i = 0; i < COUNT; i++) ca.send(message(b.did, `bp-${i}`, { ciphertext: FRAME }));
  expect(await until(() => inbox.count(b.did) === COUNT)).toBe(true);
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

it('refuses a maxBufferedBytes below maxFrameBytes (INVALID_ARGUMENT)', async () => {
  await expectE2EErrorAsync(() => startMeshServer({ port: 0, relay: { maxBufferedBytes: 1000 } }), 'INVALID_ARGUMENT');
  await expectE2EErrorAsync(() => startMeshServer({ port: 0, relay: { maxBufferedBytes: 1.5 * 1024 * 1024 + 0.5 } }), 'INVALID_ARGUMENT');
});
