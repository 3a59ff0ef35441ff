/**
 * Durability: a restarted server (SQLite) keeps every unacked frame; a `kill -9` mid-stream loses no frame the relay
 * acknowledged (receipt), and within one server lifetime delivers none twice. Bounded: a few hundred frames.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ready } from '../../lib/sodium';
import { startMeshServer } from '../../lib/server';
import { TestAgent, TestClient, connect, message, newAgent, sleep } from './helpers';

let dir: string;
beforeAll(async () => {
  await ready();
  dir = mkdtempSync(join(tmpdir(), 'relay-restart-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('unacked frames survive a clean restart; acked ones do not come back', async () => {
  const db = join(dir, 'clean.sqlite');
  const a = newAgent();
  const b = newAgent();
  let s = await startMeshServer({ port: 0, db });
  const ca = await connect(s.url, a);
  for (let i = 0; i < 20; i++) ca.send(message(b.did, `c${i}`));
  for (let i = 0; i < 20; i++) expect((await ca.frame()).type).toBe('accepted');
  ca.close();
  await s.close();
  s = await startMeshServer({ port: 0, db });
  let cb = await connect(s.url, b, { welcome: false });
  expect(await cb.frame()).toMatchObject({ type: 'connected', pending: 20 });
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push((await cb.frame()).id);
  expect(ids).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`));
  for (const id of ids.slice(0, 15)) cb.send({ type: 'ack', id });
  await sleep(50);
  await s.close();
  s = await startMeshServer({ port: 0, db });
  cb = await connect(s.url, b, { welcome: false });
  expect(await cb.frame()).toMatchObject({ type: 'connected', pending: 5 });
  const rest = [];
  for (let i = 0; i < 5; i++) rest.push((await cb.frame()).id);
  expect(rest).toEqual(['c15', 'c16', 'c17', 'c18', 'c19']);
  cb.close();
  await s.close();
});

function startChild(db: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(__dirname, 'fixtures', 'serve-child.ts'), '--host', '127.0.0.1', '--port', '0', '--db', db],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: join(__dirname, '..', '..'),
      },
    );
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server child did not start: ${out}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] as string });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server child exited ${code}: ${out}`));
    });
  });
}

/** A recipient that acks everything and records deliveries per server lifetime. */
function recipient(c: TestClient, seen: Map<string, number>, lifetime: Set<string>, dupWithinLifetime: string[]): void {
  c.ws.on('message', (d: Buffer) => {
    const f = JSON.parse(d.toString()) as { type: string; id?: string };
    if (f.type !== 'message' || f.id === undefined) return;
    if (lifetime.has(f.id)) dupWithinLifetime.push(f.id);
    lifetime.add(f.id);
    seen.set(f.id, (seen.get(f.id) ?? 0) + 1);
    c.send({ type: 'ack', id: f.id });
  });
}

it('kill -9 mid-stream: every receipted frame is delivered after restart; none twice within a server lifetime', async () => {
  const db = join(dir, 'fault.sqlite');
  const a = newAgent();
  const b: TestAgent = newAgent();
  const first = await startChild(db);
  let killed = false;
  try {
    const ca = await connect(first.url, a);
    const cb = await connect(first.url, b);
    const receipted = new Set<string>();
    const seen = new Map<string, number>();
    const dups: string[] = [];
    recipient(cb, seen, new Set(), dups);
    ca.ws.on('message', (d: Buffer) => {
      const f = JSON.parse(d.toString()) as { type: string; id?: string };
      if (f.type === 'accepted' && f.id !== undefined) receipted.add(f.id);
    });
    const total = 400;
    let sent = 0;
    // Send in bursts; kill the server once about half the frames were receipted.
    while (sent < total && !killed) {
      for (let i = 0; i < 10 && sent < total; i++) ca.send(message(b.did, `f${sent++}`));
      await sleep(2);
      if (receipted.size >= total / 2) {
        first.child.kill('SIGKILL');
        killed = true;
      }
    }
    await new Promise((r) => first.child.once('exit', r));
    const atKill = new Set(receipted);
    expect(atKill.size).toBeGreaterThan(0);
    const second = await startChild(db);
    try {
      const cb2 = await connect(second.url, b, { welcome: false });
      const lifetime2 = new Set<string>();
      recipient(cb2, seen, lifetime2, dups);
      // Wait until the pushed mail stops arriving.
      let last = -1;
      for (let i = 0; i < 100 && lifetime2.size !== last; i++) {
        last = lifetime2.size;
        await sleep(100);
      }
      const missing = [...atKill].filter((id) => !seen.has(id));
      expect(missing).toEqual([]);
      expect(dups).toEqual([]);
      // Every delivery was a frame that was sent; redeliveries across the crash are only of frames whose ack was lost.
      for (const id of seen.keys()) expect(Number(id.slice(1))).toBeLessThan(sent);
      cb2.close();
    } finally {
      second.child.kill('SIGTERM');
      await new Promise((r) => second.child.once('exit', r));
    }
  } finally {
    if (!killed) first.child.kill('SIGKILL');
  }
}, 30_000);
