/**
 * The registry's agent records (registration, presence, reputation) and its ledger of one-time pre-keys
 * already handed out, behind `AgentDirectory`, in memory or SQLite. Pre-key bundles themselves live in a
 * `PreKeyStore` from `lib/store` (which hands each one-time key out exactly once).
 */
import { loadBackend } from '../store/backend';
import type Database from 'better-sqlite3';
import { E2EError } from '../errors';
import type { MaybePromise } from '../store/types';
import { storeError } from '../store/validate';

/** One registered agent. */
export interface AgentRecord {
  /** The agent's DID: `did:mesh:` + 32 hex of SHA-256 of its Ed25519 key. */
  did: string;
  /**
   * Ed25519 public key (32 bytes). Empty for an agent registered by an AGT 4.0.0 client (legacy mode, no proof)
   * until its first bundle upload binds one (the DID must be derived from it).
   */
  publicKey: Uint8Array;
  /** Legacy registrations only: the X25519 identity key the AGT 4.0.0 client registered. */
  legacyIdentityKey?: Uint8Array;
  /** Capabilities given at registration, as `GET /v1/discover?capability=` matches them. */
  capabilities: string[];
  /** String metadata given at registration. */
  metadata: Record<string, string>;
  /** Registration time, milliseconds since the epoch. */
  registeredAt: number;
  /** Last heartbeat (or registration), milliseconds since the epoch. */
  lastSeen: number;
  /** Reputation score in [0, 1]: 0.5 at registration, a moving average of the reports since. */
  reputation: number;
  /** Reports counted: session reports and reputation reports. */
  totalSessions: number;
  /** Session reports `success`, and reputation scores of 0.7 or more. */
  successfulSessions: number;
  /** Session reports `failed`, and reputation scores under 0.3. */
  failedSessions: number;
  /** Session reports `timeout`, and reputation scores from 0.3 to under 0.7. */
  timeoutSessions: number;
  /** Time of the last session report naming the agent (milliseconds since the epoch), or `null`. */
  lastSessionAt: number | null;
  /** AGT's tier, as `GET /v1/agents/{did}` reports it: `anonymous` at registration, and nothing here changes it. */
  tier: string;
  /**
   * The DID's last-resort KEM pre-key as last uploaded (`kem_pre_key`, base64url: plain JSON, so any record
   * serializer keeps it), for the claims beyond a target's budget of one-time keys; absent for a classic agent.
   */
  kemLastResort?: KemLastResortRecord;
}

/** A last-resort KEM pre-key in an {@link AgentRecord}: id, 1184-byte key and its signature, base64url (unpadded). */
export interface KemLastResortRecord {
  /** The KEM pre-key's id. */
  readonly keyId: number;
  /** The ML-KEM-768 encapsulation key (1184 bytes), base64url. */
  readonly publicKey: string;
  /** The identity key's Ed25519 signature over the key (64 bytes), base64url. */
  readonly signature: string;
}

/** Storage of agent records. */
export interface AgentDirectory {
  /** The record of `did`, or `null`. */
  get(did: string): MaybePromise<AgentRecord | null>;
  /** Inserts a new record: `false` (nothing changed) if `did` is already registered. */
  insert(rec: AgentRecord): MaybePromise<boolean>;
  /** Replaces an existing record. */
  update(rec: AgentRecord): MaybePromise<void>;
  /** Deletes the record of `did`: `true` if there was one. The handed-out ledger is kept. */
  remove(did: string): MaybePromise<boolean>;
  /** Records with `capability` (all when undefined), in registration order, at most `limit`, and the total. */
  find(capability: string | undefined, limit: number): MaybePromise<{ results: AgentRecord[]; total: number }>;
  /** Records that the one-time key with this hash was handed out for `did` (never to be re-published). */
  markHandedOut(did: string, keyHash: string): MaybePromise<void>;
  /** Whether the one-time key with this hash was ever handed out for `did`. */
  wasHandedOut(did: string, keyHash: string): MaybePromise<boolean>;
  /** Releases resources. */
  close(): MaybePromise<void>;
}

function copy(r: AgentRecord): AgentRecord {
  const c: AgentRecord = { ...r, publicKey: new Uint8Array(r.publicKey), capabilities: [...r.capabilities], metadata: { ...r.metadata } };
  if (r.legacyIdentityKey) c.legacyIdentityKey = new Uint8Array(r.legacyIdentityKey);
  if (r.kemLastResort) c.kemLastResort = { ...r.kemLastResort };
  return c;
}

/** Agent records in memory. */
export class MemoryAgentDirectory implements AgentDirectory {
  readonly #agents = new Map<string, AgentRecord>();
  readonly #handedOut = new Map<string, Set<string>>();

  /** See {@link AgentDirectory.get}. */
  get(did: string): AgentRecord | null {
    const r = this.#agents.get(did);
    return r ? copy(r) : null;
  }
  /** See {@link AgentDirectory.insert}. */
  insert(rec: AgentRecord): boolean {
    if (this.#agents.has(rec.did)) return false;
    this.#agents.set(rec.did, copy(rec));
    return true;
  }
  /** See {@link AgentDirectory.update}. */
  update(rec: AgentRecord): void {
    if (this.#agents.has(rec.did)) this.#agents.set(rec.did, copy(rec));
  }
  /** See {@link AgentDirectory.remove}. */
  remove(did: string): boolean {
    return this.#agents.delete(did);
  }
  /** See {@link AgentDirectory.find}. */
  find(capability: string | undefined, limit: number): { results: AgentRecord[]; total: number } {
    const all = [...this.#agents.values()].filter((r) => capability === undefined || r.capabilities.includes(capability));
    return { results: all.slice(0, limit).map(copy), total: all.length };
  }
  /** See {@link AgentDirectory.markHandedOut}. */
  markHandedOut(did: string, keyHash: string): void {
    let s = this.#handedOut.get(did);
    if (!s) this.#handedOut.set(did, (s = new Set()));
    s.add(keyHash);
  }
  /** See {@link AgentDirectory.wasHandedOut}. */
  wasHandedOut(did: string, keyHash: string): boolean {
    return this.#handedOut.get(did)?.has(keyHash) ?? false;
  }
  /** See {@link AgentDirectory.close}. */
  close(): void {
    this.#agents.clear();
  }
}

interface Row {
  did: string;
  record: string;
}

function toRow(r: AgentRecord): string {
  return JSON.stringify({
    ...r,
    publicKey: Buffer.from(r.publicKey).toString('base64'),
    legacyIdentityKey: r.legacyIdentityKey ? Buffer.from(r.legacyIdentityKey).toString('base64') : undefined,
  });
}

function fromRow(row: Row): AgentRecord {
  const o = JSON.parse(row.record) as Omit<AgentRecord, 'publicKey' | 'legacyIdentityKey'> & {
    publicKey: string;
    legacyIdentityKey?: string;
  };
  const { legacyIdentityKey, ...rest } = o;
  const r: AgentRecord = { ...rest, publicKey: new Uint8Array(Buffer.from(o.publicKey, 'base64')) };
  if (legacyIdentityKey !== undefined) r.legacyIdentityKey = new Uint8Array(Buffer.from(legacyIdentityKey, 'base64'));
  return r;
}

/** Agent records in a SQLite file (may be the relay's and a `SqliteStore`'s file too). */
export class SqliteAgentDirectory implements AgentDirectory {
  readonly #db: Database.Database;
  readonly #q: Record<'get' | 'insert' | 'update' | 'remove' | 'all' | 'mark' | 'was', Database.Statement>;

  /** Opens (creating) the tables at `path`. `STORE_ERROR` if it cannot be opened. */
  constructor(path: string) {
    if (typeof path !== 'string' || path.length === 0) throw new E2EError('INVALID_ARGUMENT', 'path must be a non-empty string');
    try {
      const Driver = loadBackend<typeof Database>('better-sqlite3', 'the relay registry');
      const db = new Driver(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      db.exec(`
        CREATE TABLE IF NOT EXISTS registry_agents (n INTEGER PRIMARY KEY, did TEXT NOT NULL UNIQUE, record TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS registry_handed_out (did TEXT NOT NULL, key_hash TEXT NOT NULL, PRIMARY KEY (did, key_hash)) WITHOUT ROWID;`);
      this.#db = db;
      this.#q = {
        get: db.prepare('SELECT did, record FROM registry_agents WHERE did = ?'),
        insert: db.prepare('INSERT OR IGNORE INTO registry_agents (did, record) VALUES (?, ?)'),
        update: db.prepare('UPDATE registry_agents SET record = ? WHERE did = ?'),
        remove: db.prepare('DELETE FROM registry_agents WHERE did = ?'),
        all: db.prepare('SELECT did, record FROM registry_agents ORDER BY n'),
        mark: db.prepare('INSERT OR IGNORE INTO registry_handed_out (did, key_hash) VALUES (?, ?)'),
        was: db.prepare('SELECT 1 FROM registry_handed_out WHERE did = ? AND key_hash = ?').pluck(),
      };
    } catch (e) {
      throw storeError('open', e);
    }
  }

  #run<T>(op: string, f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw storeError(op, e);
    }
  }

  /** See {@link AgentDirectory.get}. */
  get(did: string): AgentRecord | null {
    return this.#run('get', () => {
      const r = this.#q.get.get(did) as Row | undefined;
      return r ? fromRow(r) : null;
    });
  }
  /** See {@link AgentDirectory.insert}. */
  insert(rec: AgentRecord): boolean {
    return this.#run('insert', () => this.#q.insert.run(rec.did, toRow(rec)).changes === 1);
  }
  /** See {@link AgentDirectory.update}. */
  update(rec: AgentRecord): void {
    this.#run('update', () => this.#q.update.run(toRow(rec), rec.did));
  }
  /** See {@link AgentDirectory.remove}. */
  remove(did: string): boolean {
    return this.#run('remove', () => this.#q.remove.run(did).changes === 1);
  }
  /** See {@link AgentDirectory.find}. Scans every record (a directory of thousands, not millions). */
  find(capability: string | undefined, limit: number): { results: AgentRecord[]; total: number } {
    return this.#run('find', () => {
      const all = (this.#q.all.all() as Row[]).map(fromRow).filter((r) => capability === undefined || r.capabilities.includes(capability));
      return { results: all.slice(0, limit), total: all.length };
    });
  }
  /** See {@link AgentDirectory.markHandedOut}. */
  markHandedOut(did: string, keyHash: string): void {
    this.#run('markHandedOut', () => this.#q.mark.run(did, keyHash));
  }
  /** See {@link AgentDirectory.wasHandedOut}. */
  wasHandedOut(did: string, keyHash: string): boolean {
    return this.#run('wasHandedOut', () => this.#q.was.get(did, keyHash) !== undefined);
  }
  /** See {@link AgentDirectory.close}. */
  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
