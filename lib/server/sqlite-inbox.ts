/**
 * `SqliteInboxStore`: the relay's inboxes in one SQLite file (better-sqlite3), WAL with synchronous=FULL, so a
 * frame the relay reported as stored survives a crash or power loss. Each `commit` is one transaction: one
 * fsync per group of frames. One relay process per file (its quota counters live in memory, rebuilt at open);
 * several processes share inboxes through Redis instead.
 */
import { loadBackend } from '../store/backend';
import type Database from 'better-sqlite3';
import { E2EError } from '../errors';
import { storeError } from '../store/validate';
import { InboxAck, InboxMessage, InboxQuota, InboxStore, PendingMessage, PutOutcome, QuotaCounters, decidePut, frameBytes } from './inbox';

/** Options of {@link SqliteInboxStore}. */
export interface SqliteInboxOptions {
  /** `FULL` (default): durable across power loss. `NORMAL`: across process crashes only. */
  synchronous?: 'FULL' | 'NORMAL';
}

// seq is the rowid: strictly increasing in arrival order among live rows (SQLite picks max(rowid)+1).
const SCHEMA = `
CREATE TABLE IF NOT EXISTS relay_inbox (
  seq INTEGER PRIMARY KEY, recipient TEXT NOT NULL, id TEXT NOT NULL, sender TEXT NOT NULL,
  stored_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, frame TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS relay_inbox_key ON relay_inbox (recipient, id);
CREATE INDEX IF NOT EXISTS relay_inbox_expiry ON relay_inbox (expires_at);
`;

interface Row {
  seq: number;
  recipient: string;
  id: string;
  sender: string;
  stored_at: number;
  expires_at: number;
  frame: string;
}

function rowToMessage(r: Row): PendingMessage {
  return { seq: r.seq, recipient: r.recipient, id: r.id, sender: r.sender, storedAt: r.stored_at, expiresAt: r.expires_at, frame: r.frame };
}

/** Inboxes in SQLite. */
export class SqliteInboxStore implements InboxStore {
  readonly #db: Database.Database;
  readonly #q: {
    insert: Database.Statement;
    del: Database.Statement;
    held: Database.Statement;
    pending: Database.Statement;
    expired: Database.Statement;
    purge: Database.Statement;
  };
  readonly #c = new QuotaCounters();
  readonly #commit: (puts: readonly InboxMessage[], acks: readonly InboxAck[], q: InboxQuota) => PutOutcome[];
  readonly #apply: (puts: readonly InboxMessage[], acks: readonly InboxAck[], q: InboxQuota) => PutOutcome[];

  /**
   * Opens (creating if needed) the inbox tables in the file at `path` (which may also hold a `SqliteStore`).
   * `STORE_ERROR` if it cannot be opened.
   * @example
   * const inbox = new SqliteInboxStore('relay.sqlite');
   */
  constructor(path: string, options: SqliteInboxOptions = {}) {
    if (typeof path !== 'string' || path.length === 0) throw new E2EError('INVALID_ARGUMENT', 'path must be a non-empty string');
    const sync = options.synchronous ?? 'FULL';
    if (sync !== 'FULL' && sync !== 'NORMAL') throw new E2EError('INVALID_ARGUMENT', 'synchronous must be FULL or NORMAL');
    try {
      const Driver = loadBackend<typeof Database>('better-sqlite3', 'the relay inbox');
      const db = new Driver(path);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${sync}`);
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
      this.#db = db;
      this.#q = {
        insert: db.prepare('INSERT INTO relay_inbox (recipient, id, sender, stored_at, expires_at, frame) VALUES (?, ?, ?, ?, ?, ?)'),
        del: db.prepare('DELETE FROM relay_inbox WHERE recipient = ? AND id = ? RETURNING sender, length(CAST(frame AS BLOB)) AS n'),
        held: db.prepare('SELECT sender FROM relay_inbox WHERE recipient = ? AND id = ?').pluck(),
        pending: db.prepare('SELECT * FROM relay_inbox WHERE recipient = ? AND seq > ? AND expires_at > ? ORDER BY seq LIMIT ?'),
        expired: db.prepare('SELECT recipient, sender, length(CAST(frame AS BLOB)) AS n FROM relay_inbox WHERE expires_at <= ?'),
        purge: db.prepare('DELETE FROM relay_inbox WHERE expires_at <= ?'),
      };
      // Quota counters, rebuilt from the file: a restarted relay enforces the same quotas.
      this.#rebuildCounters(true);
    } catch (e) {
      throw storeError('open', e);
    }
    this.#apply = (puts: readonly InboxMessage[], acks: readonly InboxAck[], q: InboxQuota) => {
      for (const a of acks) {
        const r = this.#q.del.get(a.recipient, a.id) as { sender: string; n: number } | undefined;
        if (r) this.#c.add(a.recipient, r.sender, r.n, -1);
      }
      const out: PutOutcome[] = [];
      for (const m of puts) {
        const held = this.#q.held.get(m.recipient, m.id) as string | undefined;
        const outcome = decidePut(m, held, this.#c.state(m.recipient, m.sender), q);
        out.push(outcome);
        if (outcome !== 'stored') continue;
        this.#q.insert.run(m.recipient, m.id, m.sender, m.storedAt, m.expiresAt, m.frame);
        this.#c.add(m.recipient, m.sender, frameBytes(m.frame), 1);
      }
      return out;
    };
    this.#commit = this.#db.transaction(this.#apply);
  }

  /** See {@link InboxStore.commit}. One transaction. */
  commit(puts: readonly InboxMessage[], acks: readonly InboxAck[], quota: InboxQuota): PutOutcome[] {
    try {
      return this.#commit(puts, acks, quota);
    } catch (e) {
      // The counters moved inside a transaction that rolled back: recount from the file.
      this.#rebuildCounters();
      throw storeError('commit', e);
    }
  }

  /**
   * See {@link InboxStore.commitDecided}: the statements run inside `BEGIN IMMEDIATE`, `decided` is called, then
   * `COMMIT` pays the fsync. A failure rolls back and throws `STORE_ERROR`.
   */
  commitDecided(
    puts: readonly InboxMessage[],
    acks: readonly InboxAck[],
    quota: InboxQuota,
    decided: (o: readonly PutOutcome[]) => void,
  ): PutOutcome[] {
    let began = false;
    try {
      this.#db.exec('BEGIN IMMEDIATE');
      began = true;
      const out = this.#apply(puts, acks, quota);
      try {
        decided(out);
      } catch {
        // The caller's delivery failing must not lose the group.
      }
      this.#db.exec('COMMIT');
      return out;
    } catch (e) {
      if (began && this.#db.inTransaction) {
        try {
          this.#db.exec('ROLLBACK');
        } catch {
          // nothing more to undo
        }
      }
      this.#rebuildCounters();
      throw storeError('commit', e);
    }
  }

  /** Recounts from the file; `strict` (at open) lets a failure throw, otherwise the next commit reports it. */
  #rebuildCounters(strict = false): void {
    this.#c.clear();
    try {
      const rows = this.#db
        .prepare(
          'SELECT recipient, sender, COUNT(*) AS n, SUM(length(CAST(frame AS BLOB))) AS b FROM relay_inbox GROUP BY recipient, sender',
        )
        .all() as { recipient: string; sender: string; n: number; b: number }[];
      for (const r of rows) this.#c.add(r.recipient, r.sender, r.b, 1, r.n);
    } catch (e) {
      if (strict) throw e;
      // The database is unusable; the next commit reports it.
    }
  }

  /** See {@link InboxStore.pending}. */
  pending(recipient: string, now: number, limit: number, afterSeq = 0): PendingMessage[] {
    try {
      return (this.#q.pending.all(recipient, afterSeq, now, limit) as Row[]).map(rowToMessage);
    } catch (e) {
      throw storeError('pending', e);
    }
  }

  /** See {@link InboxStore.count}. */
  count(recipient: string): number {
    return this.#c.inboxCount.get(recipient);
  }

  /** See {@link InboxStore.size}. */
  size(): number {
    return this.#c.size;
  }

  /** See {@link InboxStore.purgeExpired}. */
  purgeExpired(now: number): number {
    try {
      return this.#db.transaction(() => {
        const rows = this.#q.expired.all(now) as { recipient: string; sender: string; n: number }[];
        for (const r of rows) this.#c.add(r.recipient, r.sender, r.n, -1);
        this.#q.purge.run(now);
        return rows.length;
      })();
    } catch (e) {
      this.#rebuildCounters();
      throw storeError('purge', e);
    }
  }

  /** See {@link InboxStore.close}. */
  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
