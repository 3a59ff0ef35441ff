/**
 * The crash test: a child process exchanging messages between two agents through the SQLite store
 * is SIGKILLed at random moments (200 times unless CRASH_KILLS says otherwise). After every restart
 * both sides go on; at the end no two ciphertexts were made under one message key, and every
 * message that went on the wire is delivered exactly once.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import Database = require('better-sqlite3');
import { ready } from '../../lib/sodium';
import { fromUtf8, utf8 } from '../../lib/crypto';
import { PersistentChannel, SqliteStore, StorageCipher } from '../../lib/store';
import { ALICE, BOB } from './fixtures/network';
import { collect, prepareSessionFiles, spawnFixture, waitForLine } from './helpers';

const KILLS = Number(process.env.CRASH_KILLS ?? 200);
const LANES = 2; // independent store/network pairs, run side by side (the machine has 2 cores)
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Lane {
  storePath: string;
  netPath: string;
  env: Record<string, string>;
  kills: number;
  beforeReady: number;
}

async function setUpLane(dir: string, i: number): Promise<Lane> {
  const { storePath, netPath, env, net } = await prepareSessionFiles(dir, `-${i}`);
  net.close();
  return { storePath, netPath, env, kills: 0, beforeReady: 0 };
}

/** One life of the child: start it, let it work for a random moment, SIGKILL it. */
async function killOnce(lane: Lane): Promise<void> {
  const child = spawnFixture('session-worker.ts', [lane.storePath, lane.netPath, 'crash'], lane.env);
  const out = collect(child);
  if (Math.random() < 0.1) {
    lane.beforeReady++;
    await sleep(Math.random() * 300); // sometimes while it is still loading
  } else {
    await Promise.race([waitForLine(out.lines, (l) => l === 'ready', 60_000), out.exited]);
    await sleep(Math.random() * 60); // a random moment in its work: mid-send, mid-receive, mid-commit
  }
  child.kill('SIGKILL');
  const { code, signal } = await out.exited;
  if (signal !== 'SIGKILL') throw new Error(`the child stopped by itself (${code}): ${out.lines.join(' | ')} ${out.stderr()}`);
  lane.kills++;
}

describe('crash test: SIGKILL at random moments (SQLite store)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-crash-'));
  beforeAll(() => ready());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`survives ${KILLS} kills: no key used twice, every message delivered`, async () => {
    const started = Date.now();
    const lanes = await Promise.all(Array.from({ length: LANES }, (_, i) => setUpLane(dir, i)));
    await Promise.all(
      lanes.map(async (lane, i) => {
        const share = Math.floor(KILLS / LANES) + (i < KILLS % LANES ? 1 : 0);
        for (let k = 0; k < share; k++) await killOnce(lane);
      }),
    );
    expect(lanes.reduce((n, l) => n + l.kills, 0)).toBe(KILLS);

    let totalMessages = 0;
    for (const lane of lanes) {
      // Deliver whatever is still on the wire, without kills.
      const drain = spawnFixture('session-worker.ts', [lane.storePath, lane.netPath, 'drain'], lane.env);
      const out = collect(drain);
      const { code } = await out.exited;
      expect({ code, lines: out.lines }).toEqual({ code: 0, lines: ['drained'] });

      const net = new Database(lane.netPath, { readonly: true });
      expect(net.prepare('SELECT what FROM errors').all()).toEqual([]);
      // No message key encrypted two different messages: (sender, ratchet key, N) is unique on the wire.
      expect(net.prepare('SELECT sender, dh, n, COUNT(*) AS c FROM messages GROUP BY sender, dh, n HAVING c > 1').all()).toEqual([]);
      // Every message that went on the wire was delivered (acked), with the right plaintext (checked by the child).
      expect(net.prepare('SELECT COUNT(*) AS c FROM messages WHERE acked = 0').get()).toEqual({ c: 0 });
      const counts = net.prepare('SELECT sender, COUNT(*) AS total FROM messages GROUP BY sender ORDER BY sender').all() as {
        sender: string;
        total: number;
      }[];
      // Both sides made progress across the restarts (with the default number of kills, always).
      if (lane.kills >= 50) expect(counts.map((c) => c.sender)).toEqual([ALICE, BOB]);
      expect(
        (net.prepare("SELECT value FROM counters WHERE name = 'starts'").get() as { value: number } | undefined)?.value ?? 0,
      ).toBeGreaterThanOrEqual(lane.kills - lane.beforeReady);
      totalMessages += counts.reduce((n, c) => n + c.total, 0);
      net.close();

      // And the sessions still work, both ways.
      const store = new SqliteStore(lane.storePath);
      const cipher = new StorageCipher(Buffer.from(lane.env.STORAGE_KEY_HEX, 'hex'));
      const a = (await PersistentChannel.load({ store, cipher, localDid: ALICE, peerDid: BOB })) as PersistentChannel;
      const b = (await PersistentChannel.load({ store, cipher, localDid: BOB, peerDid: ALICE })) as PersistentChannel;
      expect(fromUtf8(await b.receive(await a.send(utf8('after the crashes'))))).toBe('after the crashes');
      expect(fromUtf8(await a.receive(await b.send(utf8('both ways'))))).toBe('both ways');
      store.close();
    }
    console.log(
      `[store crash] ${KILLS} SIGKILLs (${lanes.reduce((n, l) => n + l.beforeReady, 0)} while loading), ` +
        `${totalMessages} messages on the wire, all delivered, no key reused; ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }, 600_000);
});
