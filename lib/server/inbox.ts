/**
 * The relay's inboxes: every routed frame is kept, as the relay saw it (ciphertext and routing fields only),
 * until its recipient acks it or its TTL passes. One interface, `InboxStore`, with an in-memory and a SQLite
 * implementation (`sqlite-inbox.ts`) passing one conformance suite (`spec/server/inbox.spec.ts`).
 *
 * Writes come in groups (`commit`): the relay gathers the frames and acks that arrive in one event-loop turn and
 * commits them together, so a durable store pays one fsync per group, not per message.
 */
import { E2EError } from '../errors';
import type { MaybePromise } from '../store/types';

/** A stored frame. `(recipient, id)` is unique. */
export interface InboxMessage {
  /** Recipient DID (the frame's `to`). */
  readonly recipient: string;
  /** The frame's `id`. */
  readonly id: string;
  /** Authenticated sender DID (the relay stamped it into the frame). */
  readonly sender: string;
  /** The frame's JSON text exactly as forwarded. */
  readonly frame: string;
  /** Arrival time, ms since the epoch. */
  readonly storedAt: number;
  /** Deleted (and never delivered) from this time on, ms since the epoch. */
  readonly expiresAt: number;
}

/** A stored frame with its position in the store's arrival order (strictly increasing). */
export interface PendingMessage extends InboxMessage {
  /** Its position in the arrival order: what `pending`'s `afterSeq` counts from. */
  readonly seq: number;
}

/** What `commit` did with each put. */
export type PutOutcome =
  /** Stored; it will be delivered until acked. */
  | 'stored'
  /** The same sender already has a frame with this id in this inbox: nothing changed. */
  | 'duplicate'
  /** Another sender holds this id in this inbox: refused. */
  | 'id_conflict'
  /** The recipient's inbox holds `maxPerInbox` frames: refused. */
  | 'inbox_full'
  /** The sender has `maxPerSender` unacked frames in the relay: refused. */
  | 'sender_quota'
  /** The recipient's inbox holds `maxBytesPerInbox` bytes: refused. */
  | 'inbox_bytes'
  /** The sender has `maxBytesPerSender` unacked bytes in the relay: refused. */
  | 'sender_bytes'
  /** The sender has `maxPerPair` frames or `maxBytesPerPair` bytes in this recipient's inbox: refused. */
  | 'pair_quota'
  /** The store holds its most bytes in total (the in-memory store's `maxBytes`): refused. */
  | 'store_full';

/** Quotas `commit` enforces atomically with the writes. */
export interface InboxQuota {
  /** Most unacked frames one recipient may hold. */
  readonly maxPerInbox: number;
  /** Most unacked frames one sender may have in the relay, over all recipients. */
  readonly maxPerSender: number;
  /** Most bytes (UTF-8 of the frames) one recipient may hold (default: no limit). */
  readonly maxBytesPerInbox?: number;
  /** Most unacked bytes one sender may have in the relay (default: no limit). */
  readonly maxBytesPerSender?: number;
  /** Most frames one sender may have in one recipient's inbox, so it cannot fill it for the others (default: no limit). */
  readonly maxPerPair?: number;
  /** Most bytes one sender may have in one recipient's inbox (default: no limit). */
  readonly maxBytesPerPair?: number;
}

/** What a put is checked against: the counts and bytes held now. */
export interface QuotaState {
  readonly inboxCount: number;
  readonly senderCount: number;
  readonly inboxBytes: number;
  readonly senderBytes: number;
  readonly pairCount: number;
  readonly pairBytes: number;
}

/** UTF-8 size of a stored frame, as quotas count it. */
export function frameBytes(frame: string): number {
  return Buffer.byteLength(frame, 'utf8');
}

/** The key of a (sender, recipient) pair in the counters. */
export function pairKey(sender: string, recipient: string): string {
  return `${sender}\n${recipient}`;
}

/** An ack: the recipient deletes its frame `id`. */
export interface InboxAck {
  /** Recipient DID: the inbox holding the frame. */
  readonly recipient: string;
  /** The acked frame's `id`. */
  readonly id: string;
}

/** The relay's storage. Implementations must be safe for one relay process calling them concurrently. */
export interface InboxStore {
  /**
   * Applies `acks` then `puts`, in order, as one durable group (all or nothing on a crash), enforcing `quota`
   * on each put. Returns one outcome per put. Acks of unknown ids do nothing.
   */
  commit(puts: readonly InboxMessage[], acks: readonly InboxAck[], quota: InboxQuota): MaybePromise<PutOutcome[]>;
  /**
   * Optional: as {@link commit}, but calls `decided(outcomes)` once the outcomes are fixed and before the group is
   * made durable (the fsync). The relay delivers live frames there, so delivery does not wait for the disk; the
   * senders' receipts still wait for the return. If the group then fails, `commit` throws as usual.
   */
  commitDecided?(
    puts: readonly InboxMessage[],
    acks: readonly InboxAck[],
    quota: InboxQuota,
    decided: (outcomes: readonly PutOutcome[]) => void,
  ): MaybePromise<PutOutcome[]>;
  /** Unexpired frames of `recipient` with `seq > afterSeq`, oldest first, at most `limit`. */
  pending(recipient: string, now: number, limit: number, afterSeq?: number): MaybePromise<PendingMessage[]>;
  /** Number of frames held for `recipient` (expired ones included until purged). */
  count(recipient: string): MaybePromise<number>;
  /** Number of frames held in total. */
  size(): MaybePromise<number>;
  /** Deletes every frame with `expiresAt <= now`; returns how many. */
  purgeExpired(now: number): MaybePromise<number>;
  /** Releases resources. */
  close(): MaybePromise<void>;
}

/** Checks a quota (both limits positive integers). */
export function assertQuota(q: InboxQuota): void {
  for (const k of ['maxPerInbox', 'maxPerSender'] as const) {
    if (!Number.isSafeInteger(q[k]) || q[k] < 1) throw new E2EError('INVALID_ARGUMENT', `${k} must be a positive integer`);
  }
  for (const k of ['maxBytesPerInbox', 'maxBytesPerSender', 'maxPerPair', 'maxBytesPerPair'] as const) {
    const v = q[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw new E2EError('INVALID_ARGUMENT', `${k} must be a positive integer`);
  }
}

/** Per-key counters that drop keys at zero (so they stay as small as the inbox). */
export class Counter {
  readonly #m = new Map<string, number>();
  /** Current count of `k`. */
  get(k: string): number {
    return this.#m.get(k) ?? 0;
  }
  /** Adds `d` (may be negative) to `k`. */
  add(k: string, d: number): void {
    const n = (this.#m.get(k) ?? 0) + d;
    if (n <= 0) this.#m.delete(k);
    else this.#m.set(k, n);
  }
  /** Forgets every key. */
  clear(): void {
    this.#m.clear();
  }
}

/**
 * Decides the outcome of one put against the current state, shared by the implementations so they agree
 * exactly. `held` is the sender of the frame already stored under (recipient, id), if any.
 */
export function decidePut(m: InboxMessage, held: string | undefined, st: QuotaState, q: InboxQuota): PutOutcome {
  if (held !== undefined) return held === m.sender ? 'duplicate' : 'id_conflict';
  const n = frameBytes(m.frame);
  const over = (used: number, max: number | undefined) => max !== undefined && used + n > max;
  if (st.inboxCount >= q.maxPerInbox) return 'inbox_full';
  if (over(st.inboxBytes, q.maxBytesPerInbox)) return 'inbox_bytes';
  if (st.senderCount >= q.maxPerSender) return 'sender_quota';
  if (over(st.senderBytes, q.maxBytesPerSender)) return 'sender_bytes';
  if ((q.maxPerPair !== undefined && st.pairCount >= q.maxPerPair) || over(st.pairBytes, q.maxBytesPerPair)) return 'pair_quota';
  return 'stored';
}

/** Counts and bytes per inbox, per sender and per (sender, recipient), and in total: the quota state of a store. */
export class QuotaCounters {
  readonly inboxCount = new Counter();
  readonly senderCount = new Counter();
  readonly inboxBytes = new Counter();
  readonly senderBytes = new Counter();
  readonly pairCount = new Counter();
  readonly pairBytes = new Counter();
  size = 0;
  bytes = 0;

  /** The state a put of `sender` → `recipient` is checked against. */
  state(recipient: string, sender: string): QuotaState {
    const pk = pairKey(sender, recipient);
    return {
      inboxCount: this.inboxCount.get(recipient),
      senderCount: this.senderCount.get(sender),
      inboxBytes: this.inboxBytes.get(recipient),
      senderBytes: this.senderBytes.get(sender),
      pairCount: this.pairCount.get(pk),
      pairBytes: this.pairBytes.get(pk),
    };
  }

  /** Adds (`d` = 1) or removes (`d` = -1) `count` frames of `bytes` bytes in total. */
  add(recipient: string, sender: string, bytes: number, d: number, count = 1): void {
    const pk = pairKey(sender, recipient);
    this.inboxCount.add(recipient, d * count);
    this.senderCount.add(sender, d * count);
    this.pairCount.add(pk, d * count);
    this.inboxBytes.add(recipient, d * bytes);
    this.senderBytes.add(sender, d * bytes);
    this.pairBytes.add(pk, d * bytes);
    this.size += d * count;
    this.bytes += d * bytes;
  }

  /** Forgets everything. */
  clear(): void {
    for (const c of [this.inboxCount, this.senderCount, this.inboxBytes, this.senderBytes, this.pairCount, this.pairBytes]) c.clear();
    this.size = 0;
    this.bytes = 0;
  }
}

/** Options of {@link MemoryInboxStore}. */
export interface MemoryInboxOptions {
  /** Most bytes held in total (default 1 GiB); beyond, puts are refused (`store_full`). */
  maxBytes?: number;
}

/** The default of {@link MemoryInboxOptions.maxBytes}: 1 GiB. */
export const DEFAULT_MEMORY_INBOX_BYTES = 1024 * 1024 * 1024;

/** An inbox store in process memory (lost on restart; for tests and `--db` less runs). */
export class MemoryInboxStore implements InboxStore {
  /** recipient → id → message, in insertion (= seq) order. */
  readonly #inboxes = new Map<string, Map<string, PendingMessage>>();
  readonly #c = new QuotaCounters();
  readonly #maxBytes: number;
  #seq = 0;

  /** An empty store holding at most `maxBytes` bytes of frames. */
  constructor(options: MemoryInboxOptions = {}) {
    const max = options.maxBytes ?? DEFAULT_MEMORY_INBOX_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) throw new E2EError('INVALID_ARGUMENT', 'maxBytes must be a positive integer');
    this.#maxBytes = max;
  }

  /** See {@link InboxStore.commit}. */
  commit(puts: readonly InboxMessage[], acks: readonly InboxAck[], quota: InboxQuota): PutOutcome[] {
    for (const a of acks) this.#delete(a.recipient, a.id);
    const out: PutOutcome[] = [];
    for (const m of puts) {
      const box = this.#inboxes.get(m.recipient);
      let outcome = decidePut(m, box?.get(m.id)?.sender, this.#c.state(m.recipient, m.sender), quota);
      if (outcome === 'stored' && this.#c.bytes + frameBytes(m.frame) > this.#maxBytes) outcome = 'store_full';
      out.push(outcome);
      if (outcome !== 'stored') continue;
      const stored: PendingMessage = { ...m, seq: ++this.#seq };
      if (box) box.set(m.id, stored);
      else this.#inboxes.set(m.recipient, new Map([[m.id, stored]]));
      this.#c.add(m.recipient, m.sender, frameBytes(m.frame), 1);
    }
    return out;
  }

  #delete(recipient: string, id: string): boolean {
    const box = this.#inboxes.get(recipient);
    const m = box?.get(id);
    if (!box || !m) return false;
    box.delete(id);
    if (box.size === 0) this.#inboxes.delete(recipient);
    this.#c.add(recipient, m.sender, frameBytes(m.frame), -1);
    return true;
  }

  /** See {@link InboxStore.pending}. */
  pending(recipient: string, now: number, limit: number, afterSeq = 0): PendingMessage[] {
    const out: PendingMessage[] = [];
    const box = this.#inboxes.get(recipient);
    if (!box) return out;
    for (const m of box.values()) {
      if (out.length >= limit) break;
      if (m.seq > afterSeq && m.expiresAt > now) out.push(m);
    }
    return out;
  }

  /** See {@link InboxStore.count}. */
  count(recipient: string): number {
    return this.#inboxes.get(recipient)?.size ?? 0;
  }

  /** See {@link InboxStore.size}. */
  size(): number {
    return this.#c.size;
  }

  /** See {@link InboxStore.purgeExpired}. */
  purgeExpired(now: number): number {
    let n = 0;
    for (const [recipient, box] of [...this.#inboxes]) {
      for (const m of [...box.values()]) if (m.expiresAt <= now && this.#delete(recipient, m.id)) n++;
    }
    return n;
  }

  /** See {@link InboxStore.close}. */
  close(): void {
    this.#inboxes.clear();
    this.#c.clear();
  }
}
