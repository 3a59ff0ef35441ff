/**
 * Child process of `bench/memory.ts` (run with `--expose-gc`, so the heap can be measured clean):
 * holds `count` live sessions of one implementation and prints one JSON line with the memory they
 * take per session.
 *
 *   node --expose-gc --import tsx bench/memory-child.ts <ours|ours-established|proteus|libsignal> <count>
 */
import { ChannelEstablishment, SecureChannel } from '../lib/channel';
import { randomBytes } from '../lib/crypto';
import { ready } from '../lib/sodium';
import { channelPair, newManager } from './ours';

/** What the child reports. */
export interface HeapFigures {
  readonly kind: string;
  readonly count: number;
  /** JS heap (V8 `heapUsed`) per session, bytes. */
  readonly heapPerSession: number;
  /** Memory outside the JS heap (typed-array backing stores, native objects) per session, bytes. */
  readonly externalPerSession: number;
  /** Resident set growth per session, bytes (what native peers allocate shows here). */
  readonly rssPerSession: number;
  /** Time to create them all, ms. */
  readonly ms: number;
}

type Gc = () => void;

function collect(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: Gc }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  for (let k = 0; k < 4; k++) gc();
  return process.memoryUsage();
}

/** Builds `count` sessions with `make`, keeps them alive, and measures what they take. */
async function measure(kind: string, count: number, make: (i: number) => unknown | Promise<unknown>): Promise<HeapFigures> {
  const keep: unknown[] = new Array<unknown>(count);
  const before = collect();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) keep[i] = await make(i);
  const ms = performance.now() - t0;
  const after = collect();
  const per = (a: number, b: number): number => Math.round((a - b) / count);
  const figures: HeapFigures = {
    kind,
    count,
    ms: Math.round(ms),
    heapPerSession: per(after.heapUsed, before.heapUsed),
    externalPerSession: per(after.external, before.external),
    rssPerSession: per(after.rss, before.rss),
  };
  if (keep.length !== count) throw new Error('sessions were dropped');
  return figures;
}

async function main(): Promise<void> {
  const [kind, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  if (!Number.isInteger(count) || count < 1) throw new Error('usage: memory-child.ts <kind> <count>');
  await ready();
  let figures: HeapFigures;
  if (kind === 'ours') {
    // Idle sessions after one round trip (both chains, no skipped keys), restored from their saved
    // bytes: every session gets its own buffers, exactly as a live one holds them.
    const { alice, bob } = channelPair();
    alice.receive(bob.send(randomBytes(16)).serialize());
    const saved = [alice.toBytes(), bob.toBytes()];
    figures = await measure(kind, count, (i) => SecureChannel.fromBytes(saved[i & 1]));
  } else if (kind === 'ours-established') {
    // The same, built the long way: X3DH, then one round trip, for every pair.
    const aliceMgr = newManager();
    const bobMgr = newManager();
    const pt = randomBytes(16);
    let pending: SecureChannel | null = null;
    figures = await measure(kind, count, (i) => {
      if (i % 2 === 1 && pending !== null) {
        const p = pending;
        pending = null;
        return p;
      }
      const [otk] = bobMgr.generateOneTimePreKeys(1);
      const { channel, establishment } = SecureChannel.createSender(aliceMgr, bobMgr.getPublicBundle({ otkId: otk.keyId }));
      const bob = SecureChannel.createReceiver(bobMgr, ChannelEstablishment.deserialize(establishment.serialize()));
      bob.receive(channel.send(pt).serialize());
      channel.receive(bob.send(pt).serialize());
      pending = bob;
      return channel;
    });
  } else if (kind === 'proteus') {
    const { loadProteus, proteusSavedSession } = await import('./peers/proteus');
    const P = await loadProteus();
    const { identity, bytes } = await proteusSavedSession();
    figures = await measure(kind, count, () => P.session.Session.deserialise(identity, bytes.slice(0)));
  } else if (kind === 'libsignal') {
    const { loadLibsignal, libsignalSessionRecord } = await import('./peers/libsignal');
    const S = await loadLibsignal();
    const bytes = await libsignalSessionRecord();
    figures = await measure(kind, count, () => S.SessionRecord.deserialize(Uint8Array.from(bytes)));
  } else {
    throw new Error(`unknown kind ${String(kind)}`);
  }
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
