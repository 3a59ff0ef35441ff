/**
 * Two processes racing on one session: both send as Alice through one SQLite store at the same
 * time. Compare-and-swap refuses every save based on a stale state (STALE_STATE); the loser
 * refreshes and sends again. No message key is used twice and Bob decrypts every message.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ready } from '../../lib/sodium';
import { collect, prepareSessionFiles, spawnFixture, waitForLine } from './helpers';

const PER_PROCESS = 100;

describe('two processes on one session (SQLite)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-cas-'));
  beforeAll(() => ready());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('never forks the session: stale saves are refused, every message decrypts once', async () => {
    const { storePath, netPath, env, net } = await prepareSessionFiles(dir, '');
    const workers = [0, 1].map(() => {
      const child = spawnFixture('session-worker.ts', [storePath, netPath, 'contend', String(PER_PROCESS)], env);
      return { child, out: collect(child) };
    });
    await Promise.all(workers.map((w) => waitForLine(w.out.lines, (l) => l === 'ready', 60_000)));
    workers.forEach((w) => w.child.stdin?.end('go\n'));
    const exits = await Promise.all(workers.map((w) => w.out.exited));
    expect(exits.map((e) => e.code)).toEqual([0, 0]);
    const conflicts = workers.map((w) => (JSON.parse(w.out.lines[w.out.lines.length - 1]) as { conflicts: number }).conflicts);

    const drain = spawnFixture('session-worker.ts', [storePath, netPath, 'drain'], env);
    const out = collect(drain);
    expect((await out.exited).code).toBe(0);
    expect(net.prepare('SELECT what FROM errors').all()).toEqual([]);
    expect(net.prepare('SELECT COUNT(*) AS c, SUM(acked) AS acked FROM messages').get()).toEqual({
      c: 2 * PER_PROCESS,
      acked: 2 * PER_PROCESS,
    });
    expect(net.prepare('SELECT dh, n, COUNT(*) AS c FROM messages GROUP BY dh, n HAVING c > 1').all()).toEqual([]);
    const ns = (net.prepare('SELECT n FROM messages ORDER BY n').all() as { n: number }[]).map((r) => r.n);
    expect(ns).toEqual(Array.from({ length: 2 * PER_PROCESS }, (_, i) => i)); // one chain, no gaps, no forks
    net.close();
    console.log(
      `[store cas] 2 processes x ${PER_PROCESS} sends on one session: ${conflicts[0] + conflicts[1]} stale saves refused (${conflicts.join('/')}), none forked`,
    );
  });
});
