/**
 * Group commit for the sessions of one agent: a `SessionStore` that keeps saves in memory and writes them
 * to the real store on {@link BatchingSessionStore.flush}, the newest state of each session once. The agent
 * flushes before anything leaves it that depends on a saved state: before a message or knock goes to the
 * relay (so a restart can never reuse a sending key), and before it acknowledges received frames (so an
 * acknowledged message is never lost). Between flushes a burst of messages from one peer costs one write
 * and one fsync, not one each; a crash loses only unacknowledged work, which the relay delivers again.
 *
 * Versions seen by callers are this object's own (compare-and-swap between the agent's own channels); the
 * underlying store's compare-and-swap still guards against another process writing the same session.
 */
import { E2EError } from '../errors';
import { InboxRecord, MaybePromise, SessionStore, StoredRecord } from '../store/types';

interface Slot {
  /** The version callers see. */
  version: number;
  /** The underlying store's version of what it holds. */
  base: number;
  /** Data saved since the last flush. */
  dirty: Uint8Array | null;
  /** Latest data (dirty or flushed). */
  data: Uint8Array | null;
  /** Inbox entries saved with a state since the last flush and not acknowledged yet, by id. */
  entries: Map<string, { version: number; data: Uint8Array }>;
}

/** A write-behind `SessionStore` over another one. */
export class BatchingSessionStore implements SessionStore {
  readonly #inner: SessionStore;
  readonly #slots = new Map<string, Slot>();
  #flushing: Promise<void> | null = null;
  #again = false;
  /** Saves made so far (a stamp), and how many of them are known written. */
  #saves = 0;
  #durable = 0;

  /** Write-behind over `inner`. */
  constructor(inner: SessionStore) {
    this.#inner = inner;
  }

  /** The stamp of the latest save: it is durable once {@link durable} reaches it. */
  get stamp(): number {
    return this.#saves;
  }

  /** Every save with a stamp up to this one is written. */
  get durable(): number {
    return this.#durable;
  }

  /** Saves waiting for {@link flush}. */
  get pending(): number {
    let n = 0;
    for (const s of this.#slots.values()) if (s.dirty) n++;
    return n;
  }

  /** See `SessionStore.loadSession`. */
  async loadSession(localDid: string, peerDid: string): Promise<StoredRecord | null> {
    const k = key(localDid, peerDid);
    const s = this.#slots.get(k);
    if (s) return s.data === null ? null : { version: s.version, data: s.data };
    const rec = await this.#inner.loadSession(localDid, peerDid);
    if (rec) this.#slots.set(k, { version: rec.version, base: rec.version, dirty: null, data: rec.data, entries: new Map() });
    return rec;
  }

  /** See `SessionStore.saveSession`: in memory until {@link flush}. */
  async saveSession(localDid: string, peerDid: string, data: Uint8Array, expectedVersion: number): Promise<number> {
    const k = key(localDid, peerDid);
    let s = this.#slots.get(k);
    if (!s) {
      await this.loadSession(localDid, peerDid);
      s = this.#slots.get(k) ?? { version: 0, base: 0, dirty: null, data: null, entries: new Map() };
      this.#slots.set(k, s);
    }
    if (s.version !== expectedVersion) throw new E2EError('STALE_STATE', 'the session changed since it was read');
    s.version++;
    s.dirty = data;
    s.data = data;
    this.#saves++;
    return s.version;
  }

  /**
   * See `SessionStore.saveSessionWithInbox`: the state and the entry in memory until {@link flush}, which
   * writes them together. An entry acknowledged before the flush ({@link deleteInboxEntry}) is never
   * written: the application has the message, and the relay's redelivery covers a crash before the flush.
   */
  async saveSessionWithInbox(
    localDid: string,
    peerDid: string,
    data: Uint8Array,
    expectedVersion: number,
    entry: { readonly id: string; readonly data: Uint8Array },
  ): Promise<number> {
    const version = await this.saveSession(localDid, peerDid, data, expectedVersion);
    (this.#slots.get(key(localDid, peerDid)) as Slot).entries.set(entry.id, { version, data: Uint8Array.from(entry.data) });
    return version;
  }

  /** See `SessionStore.loadInboxEntry` (pending first). */
  async loadInboxEntry(localDid: string, peerDid: string, id: string): Promise<InboxRecord | null> {
    const e = this.#slots.get(key(localDid, peerDid))?.entries.get(id);
    if (e) return { id, version: e.version, data: e.data };
    return this.#inner.loadInboxEntry(localDid, peerDid, id);
  }

  /** See `SessionStore.listInbox` (saved and pending, oldest first). */
  async listInbox(localDid: string, peerDid: string): Promise<InboxRecord[]> {
    const saved = await this.#inner.listInbox(localDid, peerDid);
    const pending = [...(this.#slots.get(key(localDid, peerDid))?.entries ?? new Map<string, { version: number; data: Uint8Array }>())].map(
      ([id, e]) => ({ id, version: e.version, data: e.data }),
    );
    const ids = new Set(pending.map((r) => r.id));
    return [...saved.filter((r) => !ids.has(r.id)), ...pending];
  }

  /** See `SessionStore.deleteInboxEntry`: an entry not written yet is dropped from memory. */
  async deleteInboxEntry(localDid: string, peerDid: string, id: string): Promise<boolean> {
    const slot = this.#slots.get(key(localDid, peerDid));
    if (slot?.entries.delete(id)) return true;
    return this.#inner.deleteInboxEntry(localDid, peerDid, id);
  }

  /** See `SessionStore.deleteSession` (immediate). */
  async deleteSession(localDid: string, peerDid: string): Promise<boolean> {
    const k = key(localDid, peerDid);
    const s = this.#slots.get(k);
    this.#slots.delete(k);
    const had = await this.#inner.deleteSession(localDid, peerDid);
    return had || (s?.data ?? null) !== null;
  }

  /** See `SessionStore.listSessions` (saved and pending). */
  async listSessions(localDid: string): Promise<string[]> {
    const out = new Set(await this.#inner.listSessions(localDid));
    for (const [k, s] of this.#slots) {
      const [l, p] = k.split('\u0000') as [string, string];
      if (l === localDid && s.data !== null) out.add(p);
    }
    return [...out].sort();
  }

  /**
   * Writes every pending save (newest state per session). Concurrent calls share one pass. With `gather`
   * the write waits one turn of the event loop, so saves made in this turn (a burst of sends) join it.
   */
  flush(options: { gather?: boolean } = {}): Promise<void> {
    if (this.#flushing) {
      this.#again = true;
      return this.#flushing;
    }
    const run = (async () => {
      if (options.gather === true) await nextTurn();
      do {
        this.#again = false;
        // Every save stamped up to `target` is in a dirty slot now, so this pass writes it.
        const target = this.#saves;
        for (const [k, s] of this.#slots) {
          if (!s.dirty) continue;
          const data = s.dirty;
          const [l, p] = k.split('\u0000') as [string, string];
          s.dirty = null;
          // Unacknowledged entries go with the state that consumed their messages, each write atomic.
          // (The agent handles one message at a time, so there is at most one: the one whose handler is
          // running — e.g. sending a reply, which flushes first.)
          const entries = [...s.entries];
          try {
            if (entries.length === 0) s.base = await (this.#inner.saveSession(l, p, data, s.base) as MaybePromise<number>);
            for (const [id, e] of entries) {
              s.base = await (this.#inner.saveSessionWithInbox(l, p, data, s.base, { id, data: e.data }) as MaybePromise<number>);
              if (s.entries.get(id) === e) s.entries.delete(id); // written: the inner store has it now
            }
          } catch (e) {
            if (s.dirty === null) s.dirty = data; // keep it for the next flush
            throw e;
          }
        }
        if (target > this.#durable) this.#durable = target;
      } while (this.#again || this.pending > 0);
    })();
    this.#flushing = run.finally(() => {
      this.#flushing = null;
    });
    return this.#flushing;
  }
}

function key(localDid: string, peerDid: string): string {
  return `${localDid}\u0000${peerDid}`;
}

/** Resolves on the next turn of the event loop (`setImmediate` where there is one). */
function nextTurn(): Promise<void> {
  const si = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
  return new Promise((resolve) => (si ? si(resolve) : setTimeout(resolve, 0)));
}
