/**
 * The mesh group of `npm run bench -- --only mesh`: the relay + registry server under load
 * (`bench/mesh-server.ts`: its server in a child process, the load clients in another) and the agent's
 * receive rate (`bench/mesh-agent.ts`), each run as a child process of its own with `--json` and a
 * timeout, and reported side by side with the goals of the issue in one table. Loopback only; every
 * child stops by itself (its own time-out, and ours).
 *
 * SQLite synchronous=FULL always; the relay on Redis too when REDIS_URL is set.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import type { AgentReceiveFigures } from './mesh-agent';
import type { MeshServerFigures } from './mesh-server';

/** One line of the mesh table. */
export interface MeshRow {
  readonly id: string;
  readonly name: string;
  /** The figure, in `unit`; null when it was not measured. */
  readonly value: number | null;
  readonly unit: string;
  readonly display: string;
  readonly goal: string;
  /** Whether the goal was met (null: no goal on this row, or not measured). */
  readonly met: boolean | null;
  readonly detail: string;
  readonly error?: string;
}

/** Everything the mesh group measured. */
export interface MeshReport {
  readonly rows: MeshRow[];
  readonly seconds: number;
  /** The 1-minute load average before and after (other processes on the machine disturb the tails). */
  readonly loadBefore: number;
  readonly loadAfter: number;
  readonly raw: Record<string, unknown>;
}

/** How big each measurement is. */
export interface MeshSizes {
  /** Idle connections held through the server rows (memory is measured on them). */
  readonly clients: number;
  readonly quick: boolean;
  /** Messages Bob drains, groupCommit on / off. */
  readonly receiveOn: number;
  readonly receiveOff: number;
}

export const MESH_FULL: MeshSizes = { clients: 1000, quick: false, receiveOn: 10_000, receiveOff: 5_000 };
export const MESH_QUICK: MeshSizes = { clients: 200, quick: true, receiveOn: 2_000, receiveOff: 1_000 };

const GOAL_RELAYED = 20_000;
const GOAL_P99_MS = 10;
const GOAL_IDLE_BYTES = 20_000; // "20 KB", read as 20,000 bytes (the stricter reading)
const GOAL_RECEIVED = 10_000;
const RATE = 2_000;

/** Runs one bench script as a child; resolves with its last stdout line parsed as JSON, or an error. */
function runJson<T>(script: string, args: readonly string[], timeoutS: number): Promise<T | { error: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, script), ...args, '--json', '--timeout', String(timeoutS)],
      { cwd: path.join(__dirname, '..'), maxBuffer: 4 << 20, timeout: (timeoutS + 15) * 1000, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const last = stdout.trim().split('\n').pop() ?? '';
        if (!err) {
          try {
            resolve(JSON.parse(last) as T);
            return;
          } catch {
            // falls through
          }
        }
        const why =
          stderr
            .trim()
            .split('\n')
            .filter((l) => !l.startsWith('[child]'))
            .pop() ??
          err?.message ??
          'no output';
        resolve({ error: (err ? why : 'unreadable child output').slice(0, 160) });
      },
    );
  });
}

const int = (x: number): string => Math.round(x).toLocaleString('en-US');
const ms = (x: number): string => `${x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0)} ms`;

function failed(id: string, name: string, unit: string, goal: string, error: string): MeshRow {
  return { id, name, value: null, unit, display: '—', goal, met: null, detail: '', error };
}

function serverRows(label: string, key: string, r: MeshServerFigures | { error: string }, withIdle: boolean): MeshRow[] {
  const goalT = `≥ ${int(GOAL_RELAYED)} msgs/s`;
  const goalL = `p99 ≤ ${GOAL_P99_MS} ms`;
  const goalM = '≤ 20 KB';
  const ok = !('error' in r);
  const names = {
    t: `relayed msgs/s persisted until ack, ${label}`,
    p50: `latency p50 at ${int(RATE)} msgs/s, ${label}`,
    p99: `latency p99 at ${int(RATE)} msgs/s, ${label}`,
    m: `memory per idle connection, ${ok ? int(r.memory.clients) : '—'} connected, ${label}`,
  };
  if ('error' in r) {
    const out = [
      failed(`mesh.${key}.relayed`, names.t, 'msgs/s', goalT, r.error),
      failed(`mesh.${key}.p50`, names.p50, 'ms', '', r.error),
      failed(`mesh.${key}.p99`, names.p99, 'ms', goalL, r.error),
    ];
    if (withIdle) out.push(failed(`mesh.${key}.idle`, names.m, 'B', goalM, r.error));
    return out;
  }
  const { throughput: t, latency: l, memory: m } = r;
  const latDetail =
    `least disturbed of ${l.windows.length} × ${l.seconds} s windows (p99 ${l.windows.map((w) => ms(w.p99)).join(' / ')}), after 1 s not counted;` +
    ` ${int(l.n)} of ${int(l.expected)} frames, 20 pairs, ${int(l.sentRate)}/s; max ${ms(l.max)}`;
  const idleBytes = m.perConnKb * 1024;
  const out: MeshRow[] = [
    {
      id: `mesh.${key}.relayed`,
      name: names.t,
      value: t.rate,
      unit: 'msgs/s',
      display: `${int(t.rate)} msgs/s`,
      goal: goalT,
      met: t.rate >= GOAL_RELAYED,
      detail: `${int(t.delivered)} delivered + acked in ${t.seconds.toFixed(1)} s; ${t.pairs} pairs × ${t.window} in flight, ${int(m.clients)} idle clients connected`,
    },
    {
      id: `mesh.${key}.p50`,
      name: names.p50,
      value: l.p50,
      unit: 'ms',
      display: ms(l.p50),
      goal: '',
      met: null,
      detail: `the window of the p99 row (p50 per window ${l.windows.map((w) => ms(w.p50)).join(' / ')})`,
    },
    {
      id: `mesh.${key}.p99`,
      name: names.p99,
      value: l.p99,
      unit: 'ms',
      display: ms(l.p99),
      goal: goalL,
      met: l.p99 <= GOAL_P99_MS,
      detail: latDetail,
    },
  ];
  if (withIdle) {
    out.push({
      id: `mesh.${key}.idle`,
      name: names.m,
      value: idleBytes,
      unit: 'B',
      display: `${(idleBytes / 1000).toFixed(1)} KB`,
      goal: goalM,
      met: idleBytes <= GOAL_IDLE_BYTES,
      detail:
        `server RSS ${int(m.before)} → ${int(m.after)} KiB with ${int(m.clients)} authenticated idle connections, after a GC;` +
        ` of which JS heap ${(m.heapPerConnKb * 1.024).toFixed(1)} KB, external ${(m.externalPerConnKb * 1.024).toFixed(1)} KB`,
    });
  }
  return out;
}

function agentRow(on: boolean, r: AgentReceiveFigures | { error: string }): MeshRow {
  const id = `mesh.agent.received.${on ? 'group' : 'single'}`;
  const name = `agent received msgs/s, SQLite FULL, groupCommit ${on ? 'on' : 'off'}`;
  const goal = `≥ ${int(GOAL_RECEIVED)} msgs/s`;
  if ('error' in r) return failed(id, name, 'msgs/s', goal, r.error);
  return {
    id,
    name,
    value: r.receivedPerSec,
    unit: 'msgs/s',
    display: `${int(r.receivedPerSec)} msgs/s`,
    goal,
    met: r.receivedPerSec >= GOAL_RECEIVED,
    detail:
      `Bob drains ${int(r.n)} queued in his mailbox in ${int(r.receiveMs)} ms (${int((r.receiveMs * 1000) / r.n)} µs/msg); ` +
      `server + Alice in the same process; Alice queued them at ${int(r.sentPerSec)} msgs/s`,
  };
}

/** Runs the mesh benches one after the other; `progress` gets a line for each. */
export async function meshReport(sizes: MeshSizes, redisUrl: string | undefined, progress: (line: string) => void): Promise<MeshReport> {
  const { loadavg } = await import('node:os');
  const t0 = performance.now();
  const loadBefore = loadavg()[0] ?? 0;
  const raw: Record<string, unknown> = {};
  const rows: MeshRow[] = [];
  const serverArgs = ['--clients', String(sizes.clients), ...(sizes.quick ? ['--quick'] : [])];
  const show = (rs: readonly MeshRow[]): void => {
    for (const r of rs) progress(`mesh · ${r.name}: ${r.error ? `did not run (${r.error})` : r.display}`);
  };

  const sqlite = await runJson<MeshServerFigures>('mesh-server.ts', serverArgs, 60);
  raw.sqlite = sqlite;
  const sqliteRows = serverRows('SQLite FULL', 'sqlite', sqlite, true);
  show(sqliteRows);
  let redisRows: MeshRow[] = [];
  if (redisUrl) {
    const redis = await runJson<MeshServerFigures>('mesh-server.ts', [...serverArgs, '--redis', redisUrl], 60);
    raw.redis = redis;
    redisRows = serverRows('Redis', 'redis', redis, true);
    show(redisRows);
  } else progress('mesh · Redis: not run (REDIS_URL is not set)');
  const on = await runJson<AgentReceiveFigures>('mesh-agent.ts', ['--n', String(sizes.receiveOn), '--group-commit'], 45);
  raw.agentGroupCommit = on;
  const off = await runJson<AgentReceiveFigures>('mesh-agent.ts', ['--n', String(sizes.receiveOff)], 45);
  raw.agentSingle = off;
  const agentRows = [agentRow(true, on), agentRow(false, off)];
  show(agentRows);

  // Side by side: each measurement on SQLite, then on Redis.
  const pick = (rs: readonly MeshRow[], suffix: string): MeshRow[] => rs.filter((r) => r.id.endsWith(suffix));
  for (const suffix of ['.relayed', '.p50', '.p99', '.idle']) rows.push(...pick(sqliteRows, suffix), ...pick(redisRows, suffix));
  rows.push(...agentRows);
  return { rows, seconds: (performance.now() - t0) / 1000, loadBefore, loadAfter: loadavg()[0] ?? 0, raw };
}

/** The mesh section of the report: one table, the goals beside the figures. */
export function formatMesh(m: MeshReport, sizes: MeshSizes): string {
  const head = ['measurement', 'value', 'goal', 'met', 'how'];
  const cells = m.rows.map((r) =>
    r.error
      ? [r.name, '—', r.goal, '', `did not run: ${r.error}`]
      : [r.name, r.display, r.goal, r.met === null ? '' : r.met ? 'met' : 'NOT', r.detail],
  );
  const widths = head.map((h, c) => Math.max(h.length, ...cells.map((l) => (c === 4 ? 0 : l[c].length))));
  const fmt = (l: string[]): string =>
    l
      .map((c, i) => (i === 1 ? c.padStart(widths[i]) : i === 4 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [
    `Mesh (loopback; relay + registry server in a child process, the load in another; ${int(sizes.clients)} idle agents connected` +
      ` through the server rows; ${m.seconds.toFixed(0)} s; 1-min load average ${m.loadBefore.toFixed(2)} → ${m.loadAfter.toFixed(2)})`,
    '',
    fmt(head),
    widths.map((w, i) => '-'.repeat(i === 4 ? 3 : w)).join('  '),
    ...cells.map(fmt),
  ].join('\n');
}
