/**
 * The measuring instrument: runs one benchmark row with tinybench (warm-up, then timed samples until
 * the row's time box is spent), reduces the samples to median and spread, and prints the table.
 *
 * Fast operations are timed in batches: one sample is the mean of a batch of calls, sized so a
 * sample lasts about {@link SAMPLE_TARGET_MS}, which keeps the timer's own cost out of sub-µs rows.
 * Work a row needs per call but must not be timed (fresh one-time pre-keys, a burst of messages to
 * receive) is done by `prepare` before each batch, outside the timed window.
 */
import { Bench, FnReturnedObject } from 'tinybench';

/** One benchmark row. */
export interface Row {
  /** The table group: `primitives`, `ours`, `naive`, a peer's name... */
  readonly group: string;
  /** What one operation is, as printed. */
  readonly name: string;
  /** Stable id (used by floors, ratios and the JSON output). */
  readonly id: string;
  /** One operation; `i` is its index in the batch that `prepare` made ready. */
  readonly op: (i: number) => unknown;
  /** Whether `op` returns a promise that must be awaited inside the timed window. */
  readonly async?: boolean;
  /** Untimed work before each batch of `n` operations. */
  readonly prepare?: (n: number) => unknown;
  /** Once before the row's first operation (untimed). */
  readonly before?: () => unknown;
  /** Once after the row (untimed), even when it failed. */
  readonly after?: () => unknown;
  /** Id of the floor this row is compared to. */
  readonly floor?: string;
  /** Id of the row of ours that a peer or naive row is compared to. */
  readonly versus?: string;
  /**
   * A second row of ours to compare to: the table repeats this row's figures (marked computed)
   * against it, named `name` + `label`.
   */
  readonly alsoVersus?: { readonly id: string; readonly label: string };
  /** Largest batch (e.g. when `prepare` is expensive per item). */
  readonly maxBatch?: number;
}

/** The figures of one row. Times in microseconds per operation. */
export interface Result {
  readonly group: string;
  readonly name: string;
  readonly id: string;
  /** Median of the samples. */
  readonly medianUs: number;
  /** Median absolute deviation of the samples (the spread). */
  readonly madUs: number | null;
  readonly minUs: number | null;
  readonly p99Us: number | null;
  readonly opsPerSec: number;
  /** Samples taken (each the mean of `batch` operations). */
  readonly samples: number;
  readonly batch: number;
  readonly floor?: string;
  readonly versus?: string;
  /** Computed from other rows rather than measured. */
  readonly derived?: boolean;
  /** How a derived row was computed. */
  readonly formula?: string;
  /** Why the row did not run. */
  readonly error?: string;
  /** Rounds the row ran; the figures are those of its fastest round (the least disturbed one). */
  readonly rounds?: number;
}

/** How long each row runs. */
export interface RunOptions {
  /** Timed budget per row, ms. */
  readonly timeMs: number;
  /** Warm-up budget per row, ms. */
  readonly warmupMs: number;
  /** Fewest samples per row (the time box may be exceeded to reach it). */
  readonly minSamples: number;
  /**
   * Rounds over all rows. The rounds are interleaved (every row once, then every row again), so a
   * burst of load from another process lands on one round of many rows rather than on every round
   * of one row; each row keeps its fastest round. Ours, the floors and the peers are treated alike.
   */
  readonly rounds: number;
}

/** The full run: 3 interleaved rounds of 250 ms per row, each after 100 ms of warm-up. */
export const FULL: RunOptions = { timeMs: 250, warmupMs: 100, minSamples: 10, rounds: 3 };
/** The smoke run (`--quick`): one round, 40 ms per row. */
export const QUICK: RunOptions = { timeMs: 40, warmupMs: 15, minSamples: 3, rounds: 1 };

const SAMPLE_TARGET_MS = 0.05;
const MAX_BATCH = 4096;
const CALIBRATION_WARMUP_MS = 5;

const now = (): number => performance.now();

/** Keeps results reachable so that no engine can drop the work that made them. */
export let sink: unknown = null;

function describe(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return `${e.name}${typeof code === 'string' ? ` ${code}` : ''}: ${e.message}`.slice(0, 160);
  }
  return String(e).slice(0, 160);
}

/** Calls `n` operations the way a sample does; returns the timed milliseconds. */
async function timeBatch(row: Row, n: number): Promise<number> {
  if (row.prepare) await row.prepare(n);
  const t0 = now();
  if (row.async) {
    for (let i = 0; i < n; i++) sink = await row.op(i);
  } else {
    for (let i = 0; i < n; i++) sink = row.op(i);
  }
  return now() - t0;
}

/**
 * A batch size that makes a sample last about SAMPLE_TARGET_MS. The row is first run a few times so
 * that a cold first call (compilation, first allocation) does not pass for its speed.
 */
async function calibrate(row: Row): Promise<number> {
  const limit = Math.min(row.maxBatch ?? MAX_BATCH, MAX_BATCH);
  const warmEnd = now() + CALIBRATION_WARMUP_MS;
  for (let k = 0; k < 5 || (k < 200 && now() < warmEnd); k++) await timeBatch(row, 1);
  let n = 1;
  for (;;) {
    // The best of three: one pause (GC, another process) must not make the batch too small.
    let ms = Infinity;
    for (let k = 0; k < 3; k++) ms = Math.min(ms, await timeBatch(row, n));
    if (ms >= SAMPLE_TARGET_MS || n >= limit) {
      const perOp = ms / n;
      return Math.max(1, Math.min(limit, Math.ceil(SAMPLE_TARGET_MS / Math.max(perOp, 1e-6))));
    }
    n = Math.min(limit, n * 2);
  }
}

/** Runs one row; a row that throws gives a result with `error` set instead of figures. */
export async function runRow(row: Row, opts: Pick<RunOptions, 'timeMs' | 'warmupMs' | 'minSamples'>): Promise<Result> {
  const base = { group: row.group, name: row.name, id: row.id, floor: row.floor, versus: row.versus };
  try {
    if (row.before) await row.before();
    const batch = await calibrate(row);
    const bench = new Bench({
      time: opts.timeMs,
      warmupTime: opts.warmupMs,
      iterations: opts.minSamples,
      warmupIterations: 2,
      throws: true,
    });
    // One sample = the mean per operation of one batch; the wall time (prepare included) counts
    // against the row's time box.
    bench.add(
      row.id,
      async (): Promise<FnReturnedObject> => {
        const t0 = now();
        const timed = await timeBatch(row, batch);
        return { overriddenDuration: timed / batch, overriddenIterationCost: now() - t0 };
      },
      { async: true },
    );
    await bench.run();
    const task = bench.tasks[0];
    const r = task.result;
    if (r.state === 'errored') throw r.error;
    if (r.state !== 'completed') throw new Error(`benchmark ${r.state}`);
    const lat = r.latency;
    return {
      ...base,
      medianUs: lat.p50 * 1000,
      madUs: lat.mad * 1000,
      minUs: lat.min * 1000,
      p99Us: lat.p99 * 1000,
      opsPerSec: 1000 / lat.p50,
      samples: lat.samplesCount,
      batch,
    };
  } catch (e) {
    return { ...base, medianUs: NaN, madUs: null, minUs: null, p99Us: null, opsPerSec: NaN, samples: 0, batch: 0, error: describe(e) };
  } finally {
    if (row.after) {
      try {
        await row.after();
      } catch {
        // A failing clean-up must not hide the row's own result.
      }
    }
  }
}

/** The fastest successful round of a row (or its last failure when no round succeeded). */
export function bestOf(rounds: readonly Result[]): Result {
  const ok = rounds.filter((r) => !r.error);
  if (ok.length === 0) return { ...rounds[rounds.length - 1], rounds: rounds.length };
  const best = ok.reduce((a, b) => (b.medianUs < a.medianUs ? b : a));
  return { ...best, rounds: rounds.length };
}

/** A result computed from others (a floor), in microseconds per operation. */
export function derivedResult(group: string, id: string, name: string, us: number, formula: string): Result {
  return {
    group,
    id,
    name,
    medianUs: us,
    madUs: null,
    minUs: null,
    p99Us: null,
    opsPerSec: 1e6 / us,
    samples: 0,
    batch: 0,
    derived: true,
    formula,
  };
}

/** The twin of `r` that {@link Row.alsoVersus} asks for: the same figures, compared to another row of ours. */
export function versusTwin(r: Result, also: { readonly id: string; readonly label: string }): Result {
  return {
    ...r,
    id: `${r.id}.vs.${also.id}`,
    name: `${r.name}${also.label}`,
    versus: also.id,
    derived: true,
    formula: `the figures of ${r.id}`,
  };
}

/** A row that could not even be built (a peer that does not load, say). */
export function failedResult(group: string, id: string, name: string, error: unknown): Result {
  return {
    group,
    id,
    name,
    medianUs: NaN,
    madUs: null,
    minUs: null,
    p99Us: null,
    opsPerSec: NaN,
    samples: 0,
    batch: 0,
    error: describe(error),
  };
}

/** Formats microseconds with 3 significant digits (ns below 1 µs, ms above 10 ms). */
export function formatUs(us: number): string {
  if (!Number.isFinite(us)) return '—';
  if (us < 1) return `${(us * 1000).toPrecision(3)} ns`;
  if (us >= 10000) return `${(us / 1000).toPrecision(3)} ms`;
  return `${us.toPrecision(3)} µs`;
}

function formatOps(ops: number): string {
  if (!Number.isFinite(ops)) return '—';
  if (ops >= 1e6) return `${(ops / 1e6).toFixed(2)} M`;
  if (ops >= 1e3) return `${(ops / 1e3).toFixed(1)} k`;
  return ops.toFixed(0);
}

function ratio(a: Result, b: Result | undefined): string {
  if (!b || !Number.isFinite(a.medianUs) || !Number.isFinite(b.medianUs) || b.medianUs <= 0) return '';
  return `${(a.medianUs / b.medianUs).toFixed(2)}×`;
}

/** The one-line progress report of a finished row (written to stderr while the bench runs). */
export function progressLine(r: Result, index: number, total: number, round = ''): string {
  const pos = `[${String(index).padStart(String(total).length)}/${total}]${round}`;
  const what = `${r.group} · ${r.name}`;
  if (r.error) return `${pos} ${what}: did not run (${r.error})`;
  return `${pos} ${what}: ${formatUs(r.medianUs)}/op ±${r.madUs === null ? '—' : formatUs(r.madUs)} (${r.samples}×${r.batch})`;
}

/** Floors a row is compared to: the raw floor and the same sum through the wrapper. */
export interface FloorPair {
  readonly raw?: Result;
  readonly wrapper?: Result;
}

/**
 * The table: one line per row with median µs/op, spread (±MAD, % of the median), ops/s, samples,
 * and the ratios to the row's floors (raw and wrapper) and, for peers and the naive reference, to
 * the matching row of ours (above 1× means slower than ours).
 */
export function formatTable(
  results: readonly Result[],
  floors: (id: string) => FloorPair,
  byId: (id: string) => Result | undefined,
): string {
  const head = ['group', 'benchmark', 'median/op', '±MAD', 'ops/s', 'samples', '×raw floor', '×wrapper floor', '×ours'];
  const lines: string[][] = [];
  for (const r of results) {
    if (r.error) {
      lines.push([r.group, r.name, `did not run: ${r.error}`, '', '', '', '', '', '']);
      continue;
    }
    const spread = r.madUs === null ? '' : `${((100 * r.madUs) / r.medianUs).toFixed(1)}%`;
    const f = r.floor ? floors(r.floor) : {};
    lines.push([
      r.group,
      r.name,
      formatUs(r.medianUs),
      spread,
      formatOps(r.opsPerSec),
      r.derived ? 'computed' : `${r.samples}×${r.batch}`,
      f.raw ? ratio(r, f.raw) : '',
      f.wrapper ? ratio(r, f.wrapper) : '',
      r.versus ? ratio(r, byId(r.versus)) : '',
    ]);
  }
  const widths = head.map((h, c) => Math.max(h.length, ...lines.filter((l) => !l[2].startsWith('did not run')).map((l) => l[c].length)));
  const right = new Set([2, 3, 4, 5, 6, 7, 8]);
  const fmt = (cells: string[]): string => {
    if (cells[2].startsWith('did not run')) {
      return `${cells[0].padEnd(widths[0])}  ${cells[1].padEnd(widths[1])}  ${cells[2]}`;
    }
    return cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  };
  const out = [fmt(head), widths.map((w) => '-'.repeat(w)).join('  ')];
  let group = '';
  for (const l of lines) {
    if (group !== '' && l[0] !== group) out.push('');
    group = l[0];
    out.push(fmt(l));
  }
  return out.join('\n');
}
