/**
 * `npm run bench`: the benchmark suite. Prints one table (stdout) with a progress line per row
 * (stderr) while it runs, then the memory figures and the goals, and can write everything as JSON.
 *
 *   npx tsx bench/index.ts [--quick] [--only <group>[,<group>...]] [--json FILE]
 *
 * Groups: primitives, backends (X25519 and Ed25519 on WASM and on sodium-native, and ML-KEM-768),
 * floors, ours, naive, peers (or one peer: libsignal, proteus, 2key-ratchet), memory, and mesh.
 * X25519 and Ed25519 elsewhere run on the backend `ready()` picks (auto: native where sodium-native
 * is installed); `AGENTMESH_BACKEND=wasm` or `=native` fixes it for the run. Floors are computed from the primitives of the same run, so any group that needs
 * them also measures the primitives they are made of. The mesh group (the relay + registry server and
 * the agent's receive rate, `bench/mesh.ts`; about a minute) runs only when asked for with `--only`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { computeFloors, FLOOR } from './floors';
import {
  FULL,
  QUICK,
  Result,
  Row,
  RunOptions,
  bestOf,
  failedResult,
  formatTable,
  formatUs,
  progressLine,
  runRow,
  versusTwin,
} from './harness';
import { MemoryReport, formatMemory, memoryReport } from './memory';
import { MESH_FULL, MESH_QUICK, MeshReport, formatMesh, meshReport } from './mesh';
import { naiveRows, selfCheck } from './naive';
import { MLKEM_ROWS, backendRows, mlkemRows } from './backends';
import { EstablishmentSizes, OURS, establishmentSizes, oursRows } from './ours';
import { floorPrimitiveRows, primitiveRows } from './primitives';
import { initWrapper } from './wrapper';
import { backend } from '../lib/sodium';

const GROUPS = ['primitives', 'backends', 'floors', 'ours', 'naive', 'peers', 'memory', 'mesh'] as const;
/** The groups of a run without `--only` (mesh takes a minute and needs better-sqlite3: asked for only). */
const DEFAULT_GROUPS: readonly Group[] = ['primitives', 'backends', 'floors', 'ours', 'naive', 'peers', 'memory'];
const PEERS = ['libsignal', 'proteus', '2key-ratchet'] as const;
type Group = (typeof GROUPS)[number];
type Peer = (typeof PEERS)[number];

/** The parsed command line. */
interface Options {
  readonly quick: boolean;
  readonly json: string | null;
  readonly groups: ReadonlySet<Group>;
  readonly peers: ReadonlySet<Peer>;
}

const USAGE = `usage: npx tsx bench/index.ts [--quick] [--only <group>[,<group>...]] [--json FILE]
  --quick       smoke run (short rows, fewer sessions for memory); figures are rough
  --only        groups: ${GROUPS.join(', ')}; or peers one by one: ${PEERS.join(', ')}
                (without --only: every group but mesh; mesh uses REDIS_URL, when set, for its Redis rows)
  --json FILE   also write every figure as JSON to FILE`;

function parseArgs(argv: readonly string[]): Options {
  let quick = false;
  let json: string | null = null;
  const only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') quick = true;
    else if (a === '--json' || a === '--only') {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
      if (a === '--json') json = v;
      else
        only.push(
          ...v
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        );
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  const groups = new Set<Group>();
  const peers = new Set<Peer>();
  for (const o of only) {
    if ((GROUPS as readonly string[]).includes(o)) groups.add(o as Group);
    else if ((PEERS as readonly string[]).includes(o)) peers.add(o as Peer);
    else throw new Error(`unknown group ${o}`);
  }
  if (only.length === 0) DEFAULT_GROUPS.forEach((g) => groups.add(g));
  if (groups.has('peers')) PEERS.forEach((p) => peers.add(p));
  if (peers.size > 0) groups.add('peers');
  return { quick, json, groups, peers };
}

/** Peer rows, loaded lazily: a peer that does not load becomes one "did not run" row. */
async function peerRows(peers: ReadonlySet<Peer>): Promise<{ rows: Row[]; failed: Result[] }> {
  const loaders: Record<Peer, [string, () => Promise<Row[]>]> = {
    libsignal: ['libsignal-client', async () => (await import('./peers/libsignal')).libsignalRows()],
    proteus: ['proteus', async () => (await import('./peers/proteus')).proteusRows()],
    '2key-ratchet': ['2key-ratchet', async () => (await import('./peers/twokey')).twoKeyRows()],
  };
  const rows: Row[] = [];
  const failed: Result[] = [];
  for (const p of PEERS) {
    if (!peers.has(p)) continue;
    const [group, load] = loaders[p];
    try {
      rows.push(...(await load()));
    } catch (e) {
      failed.push(failedResult(group, `${p}.load`, 'load and set up', e));
    }
  }
  return { rows, failed };
}

function machine(): Record<string, string | number> {
  const pkg = (p: string): string => {
    try {
      return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'node_modules', p, 'package.json'), 'utf8')) as { version: string })
        .version;
    } catch {
      return 'not installed';
    }
  };
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    libsodiumWrappers: pkg('libsodium-wrappers-sumo'),
    sodiumNative: pkg('sodium-native'),
    backend: backend(),
    libsignalClient: pkg('@signalapp/libsignal-client'),
    proteus: pkg('@wireapp/proteus'),
    twoKeyRatchet: pkg('2key-ratchet'),
    tinybench: pkg('tinybench'),
  };
}

/** One goal of the issue and whether this run met it. */
interface Goal {
  readonly goal: string;
  readonly value: string;
  readonly met: boolean | null;
}

function goals(byId: Map<string, Result>, all: readonly Result[], memory: MemoryReport | null): Goal[] {
  const out: Goal[] = [];
  const ratioGoal = (label: string, row: string, floor: string, max: number): void => {
    const r = byId.get(row);
    const f = byId.get(`${floor}.raw`);
    if (!r || !f || r.error) {
      out.push({ goal: label, value: 'not measured', met: null });
      return;
    }
    const x = r.medianUs / f.medianUs;
    out.push({ goal: label, value: `${x.toFixed(2)}× (${formatUs(r.medianUs)} vs ${formatUs(f.medianUs)})`, met: x <= max });
  };
  ratioGoal('send + receive 64 B one way ≤ 1.3× raw floor', OURS.message(64), FLOOR.message(64), 1.3);
  ratioGoal('ping-pong round trip ≤ 1.2× raw floor', OURS.roundTrip, FLOOR.roundTrip, 1.2);
  ratioGoal('X3DH establishment ≤ 1.2× raw floor', OURS.x3dh, FLOOR.x3dh, 1.2);
  const peerRowsRun = all.filter((r) => r.versus && !r.error && r.group !== 'naive');
  const slower = peerRowsRun.filter((r) => {
    const o = byId.get(r.versus as string);
    return o && !o.error && o.medianUs >= r.medianUs;
  });
  out.push({
    goal: 'faster than every peer that runs, in every row',
    value:
      peerRowsRun.length === 0
        ? 'no peer ran'
        : slower.length === 0
          ? `${peerRowsRun.length} peer rows, all slower than ours`
          : `ours not faster in: ${slower.map((r) => `${r.group} · ${r.name}`).join('; ')}`,
    met: peerRowsRun.length === 0 ? null : slower.length === 0,
  });
  if (memory) {
    const ours = memory.sizes.filter((s) => s.impl === 'ours' && s.initiator !== null);
    const max = Math.max(...ours.map((s) => Math.max(s.initiator ?? 0, s.responder ?? 0)));
    out.push({ goal: 'saved idle session ≤ 1 KiB', value: `${max} B at most`, met: max <= 1024 });
    const live = memory.heap.find((h) => h.kind === 'ours');
    out.push({
      goal: 'memory per live session reported',
      value:
        live && !('error' in live)
          ? `${live.heapPerSession + live.externalPerSession} B × ${live.count.toLocaleString('en-US')}`
          : 'not measured',
      met: live ? !('error' in live) : null,
    });
  }
  return out;
}

/** Wire sizes of ours (classic and PQ establishments) and, when it loads, libsignal's first flight. */
interface SizeReport {
  readonly ours: EstablishmentSizes;
  readonly libsignalFirstFlight64: number | string | null;
}

async function sizeReport(withLibsignal: boolean): Promise<SizeReport> {
  let libsignal: number | string | null = null;
  if (withLibsignal) {
    try {
      libsignal = await (await import('./peers/libsignal')).libsignalFirstFlightBytes();
    } catch (e) {
      libsignal = `did not run (${e instanceof Error ? e.message : String(e)})`;
    }
  }
  return { ours: establishmentSizes(), libsignalFirstFlight64: libsignal };
}

function formatSizes(s: SizeReport): string[] {
  const o = s.ours;
  const lines = [
    'Establishment sizes (as createSender makes them, with one-time and signed pre-key ids)',
    '',
    `  classic X3DH            ${String(o.classic.binary).padStart(5)} B binary  ${String(o.classic.json).padStart(5)} B JSON`,
    `  PQXDH (ML-KEM-768)      ${String(o.postQuantum.binary).padStart(5)} B binary  ${String(o.postQuantum.json).padStart(5)} B JSON`,
    `  first flight, 64 B message (binary establishment + envelope): classic ${o.firstFlight64.classic} B, PQ ${o.firstFlight64.postQuantum} B`,
  ];
  if (s.libsignalFirstFlight64 !== null) {
    lines.push(
      `  libsignal first flight, 64 B message (PreKeySignalMessage, ML-KEM-1024): ${s.libsignalFirstFlight64}${typeof s.libsignalFirstFlight64 === 'number' ? ' B' : ''}`,
    );
  }
  return lines;
}

async function main(): Promise<void> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    process.exit(2);
  }
  const run: RunOptions = opts.quick ? QUICK : FULL;
  const started = performance.now();
  const log = (s: string): void => {
    process.stderr.write(`${s}\n`);
  };
  await initWrapper();
  const m = machine();
  log(`agentmesh-e2e bench${opts.quick ? ' --quick' : ''}: ${m.cpu}, ${m.cores} cores, Node ${m.node}`);

  const needsFloors = opts.groups.has('floors') || opts.groups.has('ours') || opts.groups.has('naive');
  const repeated: Row[] = [];
  if (opts.groups.has('primitives')) repeated.push(...primitiveRows());
  else if (needsFloors) repeated.push(...floorPrimitiveRows());
  if (opts.groups.has('backends')) repeated.push(...backendRows());
  // The PQ set-up floor needs ML-KEM-768's encapsulate and decapsulate (rows of the backends group).
  else if (needsFloors) repeated.push(...mlkemRows().filter((r) => r.id === MLKEM_ROWS.encaps || r.id === MLKEM_ROWS.decaps));
  if (opts.groups.has('ours')) repeated.push(...oursRows());
  if (opts.groups.has('naive')) {
    selfCheck();
    log('naive reference: speaks our protocol (checked both ways against lib/ratchet)');
    repeated.push(...naiveRows());
  }
  const peers = opts.groups.has('peers') ? await peerRows(opts.peers) : { rows: [], failed: [] };
  peers.failed.forEach((f) => log(`${f.group}: did not run (${f.error})`));
  repeated.push(...peers.rows);

  const total = repeated.length * run.rounds;
  let done = 0;
  const rounds = new Map<string, Result[]>(repeated.map((r) => [r.id, []]));
  for (let k = 1; k <= run.rounds; k++) {
    for (const row of repeated) {
      const r = await runRow(row, run);
      rounds.get(row.id)?.push(r);
      log(progressLine(r, ++done, total, run.rounds > 1 ? ` round ${k}/${run.rounds}` : ''));
    }
  }
  const results: Result[] = repeated.flatMap((row) => {
    const best = bestOf(rounds.get(row.id) ?? []);
    return row.alsoVersus ? [best, versusTwin(best, row.alsoVersus)] : [best];
  });
  results.push(...peers.failed);

  const floors = needsFloors ? computeFloors(results) : [];
  const ordered = [...results.filter((r) => r.group === 'primitives'), ...floors, ...results.filter((r) => r.group !== 'primitives')];
  const byId = new Map(ordered.map((r) => [r.id, r]));

  let memory: MemoryReport | null = null;
  if (opts.groups.has('memory')) {
    const counts = opts.quick ? { ours: 10_000, established: 200, peers: 500 } : { ours: 100_000, established: 1_000, peers: 2_000 };
    const memPeers = {
      libsignal: opts.peers.has('libsignal') ? async () => (await import('./peers/libsignal')).libsignalSessionBytes() : undefined,
      proteus: opts.peers.has('proteus') ? async () => (await import('./peers/proteus')).proteusSessionBytes() : undefined,
    };
    memory = await memoryReport(counts, memPeers, log);
  }
  const meshSizes = opts.quick ? MESH_QUICK : MESH_FULL;
  const mesh: MeshReport | null = opts.groups.has('mesh') ? await meshReport(meshSizes, process.env.REDIS_URL || undefined, log) : null;
  const goalList = opts.groups.has('ours') ? goals(byId, ordered, memory) : [];
  const sizes = opts.groups.has('ours') ? await sizeReport(opts.peers.has('libsignal')) : null;
  const seconds = (performance.now() - started) / 1000;

  const out: string[] = [];
  out.push(
    `agentmesh-e2e benchmarks — ${m.cpu}, ${m.cores} cores, Node ${m.node}, ${m.platform}, X25519/Ed25519 on ${m.backend}` +
      `${opts.quick ? ' — QUICK RUN (rough figures)' : ''}`,
  );
  const timedRows = ordered.length > 0 || memory !== null || mesh === null;
  if (timedRows)
    out.push(
      `median per operation; a sample is the mean of a batch of calls (samples column: samples × calls per sample);` +
        ` ±MAD = median absolute deviation (% of median);` +
        ` ${run.timeMs} ms per row after ${run.warmupMs} ms warm-up` +
        `${run.rounds > 1 ? `, best of ${run.rounds} interleaved rounds` : ''}`,
    );
  out.push('');
  if (ordered.length > 0) {
    out.push(
      formatTable(
        ordered,
        (id) => ({ raw: byId.get(`${id}.raw`), wrapper: byId.get(`${id}.wrapper`) }),
        (id) => byId.get(id),
      ),
    );
  }
  if (sizes) out.push('', ...formatSizes(sizes));
  if (memory) out.push('', formatMemory(memory));
  if (mesh) out.push(...(timedRows ? [''] : []), formatMesh(mesh, meshSizes));
  if (goalList.length > 0) {
    out.push('', 'Goals (ratios from this run)', '');
    for (const g of goalList) out.push(`  [${g.met === null ? ' ? ' : g.met ? 'met' : 'NOT'}] ${g.goal}: ${g.value}`);
  }
  out.push('', `finished in ${seconds.toFixed(1)} s`);
  process.stdout.write(`${out.join('\n')}\n`);

  if (opts.json) {
    const doc = {
      date: new Date().toISOString(),
      machine: m,
      quick: opts.quick,
      run,
      groups: [...opts.groups],
      seconds,
      results: ordered,
      memory,
      mesh,
      sizes,
      goals: goalList,
    };
    fs.writeFileSync(
      opts.json,
      `${JSON.stringify(doc, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`,
    );
    log(`wrote ${opts.json}`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
