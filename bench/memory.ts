/**
 * Memory: the bytes of a saved idle session (ours and each peer that can save one), and the memory
 * each live in-memory session takes, measured in a child process with `--expose-gc` (a clean heap:
 * nothing of the timing rows is in it) by creating many sessions and dividing the growth.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { ChannelEstablishment, SecureChannel } from '../lib/channel';
import { randomBytes, utf8 } from '../lib/crypto';
import type { HeapFigures } from './memory-child';
import { newManager } from './ours';

/** Saved idle session sizes of one implementation, bytes. */
export interface SessionSize {
  readonly impl: string;
  readonly initiator: number | null;
  readonly responder: number | null;
  readonly note?: string;
}

/** Heap per live session of one implementation (or why it was not measured). */
export type HeapResult = HeapFigures | { readonly kind: string; readonly count: number; readonly error: string };

/** Everything `bench/memory.ts` measured. */
export interface MemoryReport {
  readonly sizes: SessionSize[];
  readonly heap: HeapResult[];
}

/** Which peers to include; each loader returns the saved sizes or throws. */
export interface MemoryPeers {
  readonly libsignal?: () => Promise<{ initiator: number; responder: number }>;
  readonly proteus?: () => Promise<{ initiator: number; responder: number }>;
}

/** Our saved idle sessions: after one round trip, with no caller AD and with a trust bridge's AD. */
function ourSizes(): SessionSize[] {
  const out: SessionSize[] = [];
  const did = (): string => `did:mesh:${Buffer.from(randomBytes(16)).toString('hex')}`;
  for (const [label, ad] of [
    ['no caller AD', new Uint8Array(0)],
    ['trust-bridge AD (2 DIDs, 75 B)', utf8(`${did()}|${did()}`)],
  ] as const) {
    const aliceMgr = newManager();
    const bobMgr = newManager();
    const [otk] = bobMgr.generateOneTimePreKeys(1);
    const { channel: alice, establishment } = SecureChannel.createSender(aliceMgr, bobMgr.getPublicBundle({ otkId: otk.keyId }), ad);
    const bob = SecureChannel.createReceiver(bobMgr, ChannelEstablishment.deserialize(establishment.serialize()), ad);
    bob.receive(alice.send(randomBytes(16)).serialize());
    alice.receive(bob.send(randomBytes(16)).serialize());
    out.push({
      impl: 'ours',
      initiator: alice.toBytes().length,
      responder: bob.toBytes().length,
      note: `idle after a round trip, ${label}`,
    });
  }
  return out;
}

function runChild(kind: string, count: number): Promise<HeapResult> {
  const child = path.join(__dirname, 'memory-child.ts');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', child, kind, String(count)],
      { cwd: path.join(__dirname, '..'), maxBuffer: 1 << 20, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err) {
          resolve({ kind, count, error: (stderr.trim().split('\n').pop() ?? err.message).slice(0, 160) });
          return;
        }
        try {
          resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as HeapFigures);
        } catch {
          resolve({ kind, count, error: 'unreadable child output' });
        }
      },
    );
  });
}

/**
 * Measures sizes and heap. `counts` gives how many live sessions each child creates (100,000 of
 * ours in the full run). `progress` gets one line per measurement.
 */
export async function memoryReport(
  counts: { ours: number; established: number; peers: number },
  peers: MemoryPeers,
  progress: (line: string) => void,
): Promise<MemoryReport> {
  const sizes = ourSizes();
  for (const [impl, load] of [
    ['libsignal-client', peers.libsignal],
    ['proteus', peers.proteus],
  ] as const) {
    if (!load) continue;
    try {
      const s = await load();
      sizes.push({ impl, initiator: s.initiator, responder: s.responder, note: 'idle after two round trips' });
    } catch (e) {
      sizes.push({ impl, initiator: null, responder: null, note: `did not run: ${e instanceof Error ? e.message : String(e)}` });
    }
  }
  sizes.push({
    impl: '2key-ratchet',
    initiator: null,
    responder: null,
    note: 'no byte form: toJSON() holds WebCrypto CryptoKey objects, which the application must store itself',
  });
  progress(`memory · saved session sizes: ${sizes.map((s) => `${s.impl} ${s.initiator ?? '—'}/${s.responder ?? '—'} B`).join(', ')}`);
  const jobs: [string, number][] = [
    ['ours', counts.ours],
    ['ours-established', counts.established],
  ];
  if (peers.proteus) jobs.push(['proteus', counts.peers]);
  if (peers.libsignal) jobs.push(['libsignal', counts.peers]);
  const heap: HeapResult[] = [];
  for (const [kind, count] of jobs) {
    const r = await runChild(kind, count);
    heap.push(r);
    progress(
      'error' in r
        ? `memory · ${kind} × ${count}: did not run (${r.error})`
        : `memory · ${kind} × ${count}: ${r.heapPerSession} B heap + ${r.externalPerSession} B external per session (${r.ms} ms)`,
    );
  }
  return { sizes, heap };
}

const HEAP_LABELS: Record<string, string> = {
  ours: 'ours (SecureChannel, restored from saved bytes)',
  'ours-established': 'ours (SecureChannel, each from X3DH + a round trip)',
  proteus: 'proteus (Session, deserialised)',
  libsignal: 'libsignal-client (SessionRecord, native)',
};

/** The memory section of the report. */
export function formatMemory(m: MemoryReport): string {
  const lines = ['Saved idle session (bytes)', ''];
  const w = Math.max(...m.sizes.map((s) => s.impl.length));
  for (const s of m.sizes) {
    const fig = s.initiator === null ? 'n/a' : `initiator ${s.initiator} B, responder ${s.responder} B`;
    lines.push(`  ${s.impl.padEnd(w)}  ${fig}${s.note ? `  (${s.note})` : ''}`);
  }
  lines.push('', 'Memory per live in-memory session (child process, --expose-gc)', '');
  const hw = Math.max(...m.heap.map((h) => (HEAP_LABELS[h.kind] ?? h.kind).length));
  for (const h of m.heap) {
    const label = (HEAP_LABELS[h.kind] ?? h.kind).padEnd(hw);
    if ('error' in h) {
      lines.push(`  ${label}  × ${h.count.toLocaleString('en-US')}: did not run: ${h.error}`);
      continue;
    }
    const total = h.heapPerSession + h.externalPerSession;
    lines.push(
      `  ${label}  × ${h.count.toLocaleString('en-US').padStart(7)}: ${String(total).padStart(6)} B` +
        ` (${h.heapPerSession} B JS heap + ${h.externalPerSession} B external; RSS +${h.rssPerSession} B)`,
    );
  }
  return lines.join('\n');
}
