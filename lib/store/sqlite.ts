/**
 * The embedded default store: one SQLite file (`better-sqlite3`, pinned to major 12, which runs on
 * Node 20), in WAL mode, every update in one `BEGIN IMMEDIATE` transaction. Several processes may
 * share the file: writers queue on SQLite's lock (up to `busyTimeoutMs`), so a one-time pre-key is
 * claimed exactly once and compare-and-swap holds across processes. All methods are synchronous.
 * A DID's last-resort KEM pre-key and its pool of one-time KEM pre-keys have tables of their own,
 * written in the same transactions as the bundle they belong to.
 */
import type Database from 'better-sqlite3';
import { E2EError } from '../errors';
import { loadBackend } from './backend';
import { constantTimeEqual, readOptions } from '../crypto';
import { PreKeyBundle } from '../x3dh';
import { BundleBase, PooledKemPreKey, baseOf, joinBundle } from './bundle-parts';
import {
  AcceptanceVersions,
  AcceptanceWrite,
  AgentStore,
  InboxRecord,
  PublicKemPreKeyEntry,
  PublicOneTimePreKey,
  StoredRecord,
} from './types';
import {
  assertFingerprint,
  assertInboxId,
  assertKeyId,
  assertStoreId,
  assertVersion,
  establishmentReplayError,
  identityChangedError,
  inboxFullError,
  inboxIdReusedError,
  kemReusedError,
  noBundleError,
  otkReusedError,
  readAcceptance,
  readInboxEntry,
  readKemPreKeys,
  readOneTimeKeys,
  readValidBundle,
  recordCopy,
  staleStateError,
  storeError,
  storeFailure,
} from './validate';
import { StoreErrorReason } from './reasons';
import { MAX_INBOX_ENTRIES } from '../limits';

/**
 * The schema version this release writes; a file with a newer one is refused (`STORE_ERROR`,
 * `unknown_schema`). Version 2 adds the inbox, version 3 the KEM pre-key tables; a version-1 or
 * version-2 file is upgraded in place on open (the new tables are created; nothing else changes).
 */
export const SQLITE_SCHEMA_VERSION = 3;

/** The older schema versions a file may have and be upgraded from: they lack only tables {@link SCHEMA} creates. */
const UPGRADABLE_SCHEMA_VERSIONS = ['1', '2'];

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /**
   * `FULL` (default) syncs the WAL on every commit, so a saved session survives a power loss, not
   * only a crash of the process; a lost write would roll a ratchet back. `NORMAL` is faster and
   * survives process crashes only.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /** How long a write waits for another process's lock before failing with `STORE_ERROR` (default 5000 ms). */
  busyTimeoutMs?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (
  did TEXT PRIMARY KEY, identity_key BLOB NOT NULL, identity_key_ed BLOB NOT NULL,
  signed_pre_key BLOB NOT NULL, signed_pre_key_signature BLOB NOT NULL, signed_pre_key_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS one_time_keys (
  did TEXT NOT NULL, key_id INTEGER NOT NULL, public_key BLOB NOT NULL, PRIMARY KEY (did, key_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claimed_one_time_keys (
  did TEXT NOT NULL, key_id INTEGER NOT NULL, PRIMARY KEY (did, key_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
  kind TEXT NOT NULL, owner TEXT NOT NULL, peer TEXT NOT NULL, version INTEGER NOT NULL, data BLOB,
  PRIMARY KEY (kind, owner, peer)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS establishments (
  did TEXT NOT NULL, signed_pre_key_id INTEGER NOT NULL, fingerprint TEXT NOT NULL,
  PRIMARY KEY (did, signed_pre_key_id, fingerprint)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
  owner TEXT NOT NULL, peer TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY (owner, peer, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS last_resort_kem_pre_keys (
  did TEXT PRIMARY KEY, key_id INTEGER NOT NULL, public_key BLOB NOT NULL, signature BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kem_pre_keys (
  did TEXT NOT NULL, key_id INTEGER NOT NULL, public_key BLOB NOT NULL, signature BLOB NOT NULL, PRIMARY KEY (did, key_id));
CREATE TABLE IF NOT EXISTS claimed_kem_pre_keys (
  did TEXT NOT NULL, key_id INTEGER NOT NULL, PRIMARY KEY (did, key_id)) WITHOUT ROWID;
`;

interface BaseRow {
  identity_key: Uint8Array;
  identity_key_ed: Uint8Array;
  signed_pre_key: Uint8Array;
  signed_pre_key_signature: Uint8Array;
  signed_pre_key_id: number;
}
interface OtkRow {
  key_id: number;
  public_key: Uint8Array;
}
interface KemRow {
  key_id: number;
  public_key: Uint8Array;
  signature: Uint8Array;
}
interface RecordRow {
  version: number;
  data: Uint8Array | null;
}
interface InboxRow {
  id: string;
  version: number;
  data: Uint8Array;
}

type Stmt = Database.Statement;

let driver: typeof Database | null = null;
/** The driver, loaded on first use: importing the library must not load a native module nobody uses. */
function sqlite(): typeof Database {
  driver ??= loadBackend<typeof Database>('better-sqlite3', 'SqliteStore');
  return driver;
}

/** A base from its row and the DID's last-resort KEM pre-key row (if any). */
function baseFromRow(r: BaseRow, lastResort: KemRow | undefined): BundleBase {
  const base: BundleBase = {
    identityKey: r.identity_key,
    identityKeyEd: r.identity_key_ed,
    signedPreKey: r.signed_pre_key,
    signedPreKeySignature: r.signed_pre_key_signature,
    signedPreKeyId: r.signed_pre_key_id,
  };
  return lastResort
    ? { ...base, kemPreKey: lastResort.public_key, kemPreKeyId: lastResort.key_id, kemPreKeySignature: lastResort.signature }
    : base;
}

function kemFromRow(r: KemRow | undefined): PooledKemPreKey | null {
  return r ? { keyId: r.key_id, publicKey: r.public_key, signature: r.signature } : null;
}

const KIND_SESSION = 's';
const KIND_KEYS = 'k';

/** Every store interface over one SQLite file. */
export class SqliteStore implements AgentStore {
  readonly #db: Database.Database;
  readonly #q: Record<string, Stmt>;

  /**
   * Opens (creating if needed) the store at `path`. `STORE_ERROR` if the file cannot be opened or was
   * written by a newer release (reason `unknown_schema`).
   * @example
   * const store = new SqliteStore('/var/lib/agent/e2e.sqlite');
   */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    // A NUL or a lone surrogate has no file-system form: refused here rather than as a driver TypeError.
    if (typeof path !== 'string' || path.length === 0 || path.length > 4096 || path.includes('\u0000') || !isWellFormed(path)) {
      throw new E2EError('INVALID_ARGUMENT', 'path must be a non-empty, well-formed string of at most 4096 characters without NUL');
    }
    // Read once into a plain object: a throwing getter or Proxy trap becomes INVALID_ARGUMENT.
    const opts = readOptions(options, ['synchronous', 'busyTimeoutMs'], 'options');
    const sync = opts.synchronous ?? 'FULL';
    if (sync !== 'FULL' && sync !== 'NORMAL') throw new E2EError('INVALID_ARGUMENT', 'synchronous must be FULL or NORMAL');
    const timeout = opts.busyTimeoutMs ?? 5000;
    if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 0 || timeout > 600_000) {
      throw new E2EError('INVALID_ARGUMENT', 'busyTimeoutMs must be an integer in [0, 600000]');
    }
    let db: Database.Database;
    try {
      db = openDatabase(path, timeout, sync);
    } catch (e) {
      throw storeError('open', e);
    }
    this.#db = db;
    this.#q = prepare(db);
  }

  /** See {@link PreKeyStore.storeBundle}. */
  storeBundle(did: string, bundle: PreKeyBundle): void {
    assertStoreId(did, 'did');
    bundle = readValidBundle(bundle); // a checked copy: each field read once
    const base = baseOf(bundle);
    const otkId = bundle.oneTimePreKey ? (bundle.oneTimePreKeyId as number) : null;
    this.#write('storeBundle', () => {
      const cur = this.#q.getBase.get(did) as BaseRow | undefined;
      if (cur && !constantTimeEqual(cur.identity_key_ed, base.identityKeyEd)) throw identityChangedError();
      if (otkId !== null) {
        const pooled = this.#q.getOtk.get(did, otkId) as OtkRow | undefined;
        if (pooled && !constantTimeEqual(pooled.public_key, bundle.oneTimePreKey as Uint8Array)) throw otkReusedError(otkId);
      }
      this.#q.putBase.run(
        did,
        blob(base.identityKey),
        blob(base.identityKeyEd),
        blob(base.signedPreKey),
        blob(base.signedPreKeySignature),
        base.signedPreKeyId,
      );
      // A claimed key never re-enters the pool: re-publishing an old bundle must not hand it out again.
      // INSERT OR IGNORE: storing an identical bundle again is a no-op, as in the other stores.
      if (otkId !== null && !this.#q.isClaimed.get(did, otkId))
        this.#q.putOtkIfNew.run(did, otkId, blob(bundle.oneTimePreKey as Uint8Array));
      // The bundle's KEM pre-key becomes the last-resort one; a bundle without one keeps the stored one.
      if (base.kemPreKey) {
        this.#q.putLastKem.run(did, base.kemPreKeyId, blob(base.kemPreKey), blob(base.kemPreKeySignature as Uint8Array));
      }
    });
  }

  /** See {@link PreKeyStore.getBundle}. */
  getBundle(did: string): PreKeyBundle | null {
    assertStoreId(did, 'did');
    return this.#read('getBundle', () => {
      const base = this.#q.getBase.get(did) as BaseRow | undefined;
      if (!base) return null;
      const otk = this.#q.lowestOtk.get(did) as OtkRow | undefined;
      const kem = this.#q.lowestKem.get(did) as KemRow | undefined;
      return joinBundle(
        baseFromRow(base, this.#q.getLastKem.get(did) as KemRow | undefined),
        otk ? { keyId: otk.key_id, publicKey: otk.public_key } : null,
        kemFromRow(kem),
      );
    });
  }

  /** See {@link PreKeyStore.consumeOneTimeKey}. */
  consumeOneTimeKey(did: string, keyId: number): boolean {
    assertStoreId(did, 'did');
    assertKeyId(keyId, 'keyId');
    return this.#write('consumeOneTimeKey', () => {
      if (this.#q.delOtk.run(did, keyId).changes === 0) return false;
      this.#q.putClaimed.run(did, keyId);
      return true;
    });
  }

  /** See {@link PreKeyStore.claimBundle}. */
  claimBundle(did: string): PreKeyBundle | null {
    assertStoreId(did, 'did');
    return this.#write('claimBundle', () => {
      const base = this.#q.getBase.get(did) as BaseRow | undefined;
      if (!base) return null;
      // One transaction: the one-time pre-key and the one-time KEM pre-key leave their pools together.
      const otk = this.#q.lowestOtk.get(did) as OtkRow | undefined;
      if (otk) {
        this.#q.delOtk.run(did, otk.key_id);
        this.#q.putClaimed.run(did, otk.key_id);
      }
      const kem = this.#q.lowestKem.get(did) as KemRow | undefined;
      if (kem) {
        this.#q.delKem.run(did, kem.key_id);
        this.#q.putKemClaimed.run(did, kem.key_id);
      }
      return joinBundle(
        baseFromRow(base, this.#q.getLastKem.get(did) as KemRow | undefined),
        otk ? { keyId: otk.key_id, publicKey: otk.public_key } : null,
        kemFromRow(kem),
      );
    });
  }

  /** See {@link PreKeyStore.addOneTimePreKeys}. */
  addOneTimePreKeys(did: string, keys: readonly PublicOneTimePreKey[]): void {
    assertStoreId(did, 'did');
    keys = readOneTimeKeys(keys); // a checked copy: each key read once
    this.#write('addOneTimePreKeys', () => {
      if (!this.#q.getBase.get(did)) throw noBundleError();
      for (const k of keys) {
        const pooled = this.#q.getOtk.get(did, k.keyId) as OtkRow | undefined;
        if (this.#q.isClaimed.get(did, k.keyId) || (pooled && !constantTimeEqual(pooled.public_key, k.publicKey))) {
          throw otkReusedError(k.keyId); // the transaction rolls back: nothing added
        }
        if (!pooled) this.#q.putOtk.run(did, k.keyId, blob(k.publicKey));
      }
    });
  }

  /** See {@link PreKeyStore.countOneTimePreKeys}. */
  countOneTimePreKeys(did: string): number {
    assertStoreId(did, 'did');
    return this.#read('countOneTimePreKeys', () => (this.#q.countOtk.get(did) as { n: number }).n);
  }

  /** See {@link PreKeyStore.addKemPreKeys}. */
  addKemPreKeys(did: string, keys: readonly PublicKemPreKeyEntry[]): void {
    assertStoreId(did, 'did');
    // The signatures are verified before the write lock is taken (1,000 of them take a while)...
    const identity = this.#read('addKemPreKeys', () => (this.#q.getBase.get(did) as BaseRow | undefined)?.identity_key_ed);
    if (identity === undefined) throw noBundleError();
    let checked = readKemPreKeys(keys, identity); // a checked copy, signatures verified
    this.#write('addKemPreKeys', () => {
      const cur = this.#q.getBase.get(did) as BaseRow | undefined;
      if (!cur) throw noBundleError();
      // ...and again under the lock against the identity stored now, if the DID was re-keyed meanwhile.
      if (!constantTimeEqual(cur.identity_key_ed, identity)) checked = readKemPreKeys(checked, cur.identity_key_ed);
      for (const k of checked) {
        const pooled = this.#q.getKem.get(did, k.keyId) as KemRow | undefined;
        if (this.#q.isKemClaimed.get(did, k.keyId) || (pooled && !constantTimeEqual(pooled.public_key, k.publicKey))) {
          throw kemReusedError(k.keyId); // the transaction rolls back: nothing added
        }
        if (!pooled) this.#q.putKem.run(did, k.keyId, blob(k.publicKey), blob(k.signature));
      }
    });
  }

  /** See {@link PreKeyStore.consumeKemPreKey}. */
  consumeKemPreKey(did: string, keyId: number): boolean {
    assertStoreId(did, 'did');
    assertKeyId(keyId, 'keyId');
    return this.#write('consumeKemPreKey', () => {
      if (this.#q.delKem.run(did, keyId).changes === 0) return false;
      this.#q.putKemClaimed.run(did, keyId);
      return true;
    });
  }

  /** See {@link PreKeyStore.countKemPreKeys}. */
  countKemPreKeys(did: string): number {
    assertStoreId(did, 'did');
    return this.#read('countKemPreKeys', () => (this.#q.countKem.get(did) as { n: number }).n);
  }

  /** See {@link PreKeyStore.removeBundle}. */
  removeBundle(did: string): boolean {
    assertStoreId(did, 'did');
    return this.#write('removeBundle', () => {
      this.#q.delAllOtk.run(did);
      this.#q.delAllClaimed.run(did);
      this.#q.delLastKem.run(did);
      this.#q.delAllKem.run(did);
      this.#q.delAllKemClaimed.run(did);
      return this.#q.delBase.run(did).changes > 0;
    });
  }

  /** See {@link SessionStore.loadSession}. */
  loadSession(localDid: string, peerDid: string): StoredRecord | null {
    assertStoreId(localDid, 'localDid');
    assertStoreId(peerDid, 'peerDid');
    return this.#load(KIND_SESSION, localDid, peerDid);
  }

  /** See {@link SessionStore.saveSession}. */
  saveSession(localDid: string, peerDid: string, data: Uint8Array, expectedVersion: number): number {
    assertStoreId(localDid, 'localDid');
    assertStoreId(peerDid, 'peerDid');
    return this.#save(KIND_SESSION, localDid, peerDid, data, expectedVersion);
  }

  /** See {@link SessionStore.deleteSession}. */
  deleteSession(localDid: string, peerDid: string): boolean {
    assertStoreId(localDid, 'localDid');
    assertStoreId(peerDid, 'peerDid');
    return this.#write('deleteSession', () => {
      this.#q.delInbox.run(localDid, peerDid);
      return this.#q.tombstone.run(KIND_SESSION, localDid, peerDid).changes > 0;
    });
  }

  /** See {@link SessionStore.saveSessionWithInbox}. */
  saveSessionWithInbox(
    localDid: string,
    peerDid: string,
    data: Uint8Array,
    expectedVersion: number,
    entry: { readonly id: string; readonly data: Uint8Array },
  ): number {
    assertStoreId(localDid, 'localDid');
    assertStoreId(peerDid, 'peerDid');
    data = recordCopy(data); // the caller may change its bytes while the driver runs
    assertVersion(expectedVersion);
    const { id, data: entryData } = readInboxEntry(entry); // read once, copied
    // One transaction: the message and the state that consumed its key are saved together or not at all.
    return this.#write('saveSessionWithInbox', () => {
      const version = this.#cas(KIND_SESSION, localDid, peerDid, expectedVersion);
      if (this.#q.getInbox.get(localDid, peerDid, id)) throw inboxIdReusedError();
      if ((this.#q.countInbox.get(localDid, peerDid) as { n: number }).n >= MAX_INBOX_ENTRIES) throw inboxFullError();
      this.#q.putRecord.run(KIND_SESSION, localDid, peerDid, version, blob(data));
      this.#q.putInbox.run(localDid, peerDid, id, version, blob(entryData));
      return version;
    });
  }

  /** See {@link SessionStore.loadInboxEntry}. */
  loadInboxEntry(localDid: string, peerDid: string, id: string): InboxRecord | null {
    assertStoreId(localDid, 'localDid');
    assertStoreId(peerDid, 'peerDid');
    assertInboxId(id);
    return this.#read('loadInboxEntry', () => {
      const row = this.#q.getInbox.get(localDid, peerDid, id) as InboxRow | undefined;
      return row ? inboxRecord(row) : null;
    });
  }

  /** See {@link SessionStore.listInbox}. */
  listInbox(localDid: string, peerDid: string): InboxRecord[] {
    assertStoreId(localDid, 'localDid');
    assertStoreId(peerDid, 'peerDid');
    return this.#read('listInbox', () => (this.#q.listInbox.all(localDid, peerDid) as InboxRow[]).map(inboxRecord));
  }

  /** See {@link SessionStore.deleteInboxEntry}. */
  deleteInboxEntry(localDid: string, peerDid: string, id: string): boolean {
    assertStoreId(localDid, 'localDid');
    assertStoreId(peerDid, 'peerDid');
    assertInboxId(id);
    return this.#write('deleteInboxEntry', () => this.#q.delInboxEntry.run(localDid, peerDid, id).changes > 0);
  }

  /** See {@link AgentStore.saveAcceptance}. */
  saveAcceptance(write: AcceptanceWrite): AcceptanceVersions {
    // A checked copy (bytes copied too): a getter cannot answer differently between the checks and the writes.
    const { did, peerDid, keyManager: km, establishment: est, session } = readAcceptance(write);
    const kmData = km ? km.data : null;
    const sData = session.data;
    return this.#write('saveAcceptance', () => {
      // Every check before any write (and one transaction anyway): all of it or nothing.
      const kv = km ? this.#cas(KIND_KEYS, did, '', km.expectedVersion, 'key_manager') : null;
      const sv = this.#cas(KIND_SESSION, did, peerDid, session.expectedVersion, 'session');
      if (est && this.#q.hasEstablishment.get(did, est.signedPreKeyId, est.fingerprint)) throw establishmentReplayError();
      if (kv !== null) this.#q.putRecord.run(KIND_KEYS, did, '', kv, blob(kmData as Uint8Array));
      this.#q.putRecord.run(KIND_SESSION, did, peerDid, sv, blob(sData));
      if (est) this.#q.putEstablishment.run(did, est.signedPreKeyId, est.fingerprint);
      return { keyManagerVersion: kv, sessionVersion: sv };
    });
  }

  /** See {@link SessionStore.listSessions}. */
  listSessions(localDid: string): string[] {
    assertStoreId(localDid, 'localDid');
    return this.#read('listSessions', () =>
      (this.#q.listPeers.all(KIND_SESSION, localDid) as { peer: string }[]).map((r) => r.peer).sort(),
    );
  }

  /** See {@link KeyManagerStore.loadKeyManager}. */
  loadKeyManager(did: string): StoredRecord | null {
    assertStoreId(did, 'did');
    return this.#load(KIND_KEYS, did, '');
  }

  /** See {@link KeyManagerStore.saveKeyManager}. */
  saveKeyManager(did: string, data: Uint8Array, expectedVersion: number): number {
    assertStoreId(did, 'did');
    return this.#save(KIND_KEYS, did, '', data, expectedVersion);
  }

  /** See {@link KeyManagerStore.deleteKeyManager}. */
  deleteKeyManager(did: string): boolean {
    assertStoreId(did, 'did');
    return this.#write('deleteKeyManager', () => {
      this.#q.delAllEstablishments.run(did);
      return this.#q.tombstone.run(KIND_KEYS, did, '').changes > 0;
    });
  }

  /** See {@link KeyManagerStore.markEstablishment}. */
  markEstablishment(did: string, signedPreKeyId: number, fingerprint: string): boolean {
    assertStoreId(did, 'did');
    assertKeyId(signedPreKeyId, 'signedPreKeyId');
    assertFingerprint(fingerprint);
    return this.#write('markEstablishment', () => this.#q.putEstablishment.run(did, signedPreKeyId, fingerprint).changes > 0);
  }

  /** See {@link KeyManagerStore.forgetEstablishments}. */
  forgetEstablishments(did: string, signedPreKeyId: number): void {
    assertStoreId(did, 'did');
    assertKeyId(signedPreKeyId, 'signedPreKeyId');
    this.#write('forgetEstablishments', () => {
      this.#q.delEstablishments.run(did, signedPreKeyId);
    });
  }

  /** Closes the database file. Later calls fail with `STORE_ERROR`. Idempotent. */
  close(): void {
    if (this.#db.open) this.#db.close();
  }

  #load(kind: string, owner: string, peer: string): StoredRecord | null {
    return this.#read('load', () => {
      const row = this.#q.getRecord.get(kind, owner, peer) as RecordRow | undefined;
      return row && row.data !== null ? { version: row.version, data: Uint8Array.from(row.data) } : null;
    });
  }

  #save(kind: string, owner: string, peer: string, data: Uint8Array, expectedVersion: number): number {
    const bytes = recordCopy(data); // the caller may change its bytes while the driver runs
    assertVersion(expectedVersion);
    return this.#write('save', () => {
      const version = this.#cas(kind, owner, peer, expectedVersion);
      this.#q.putRecord.run(kind, owner, peer, version, blob(bytes));
      return version;
    });
  }

  /** Inside a transaction: the version a save based on `expectedVersion` gets, or `STALE_STATE`. */
  #cas(kind: string, owner: string, peer: string, expectedVersion: number, reason?: string): number {
    const row = this.#q.getRecord.get(kind, owner, peer) as RecordRow | undefined;
    const live = row && row.data !== null ? row.version : 0;
    if (expectedVersion !== live) throw staleStateError(expectedVersion, live, reason);
    return (row?.version ?? 0) + 1;
  }

  #read<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw storeError(op, e);
    }
  }

  #write<T>(op: string, fn: () => T): T {
    try {
      // IMMEDIATE takes the write lock up front, so concurrent writers queue instead of deadlocking.
      return this.#db.transaction(fn).immediate();
    } catch (e) {
      throw storeError(op, e);
    }
  }
}

function openDatabase(path: string, timeout: number, sync: string): Database.Database {
  const Driver = sqlite();
  const db = new Driver(path, { timeout });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${sync}`);
    db.transaction(() => {
      const row = hasMeta(db)
        ? (db.prepare('SELECT value FROM meta WHERE key = ?').get('schema_version') as { value: string } | undefined)
        : undefined;
      // Versions 1 and 2 lack only tables (the inbox, the KEM pre-keys), which the schema script adds: upgrade in place.
      if (row !== undefined && !UPGRADABLE_SCHEMA_VERSIONS.includes(row.value) && row.value !== String(SQLITE_SCHEMA_VERSION)) {
        throw storeFailure(StoreErrorReason.UNKNOWN_SCHEMA, `store schema ${row.value} is not supported by this release`);
      }
      db.exec(SCHEMA);
      db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(
        'schema_version',
        String(SQLITE_SCHEMA_VERSION),
      );
    }).immediate();
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

function isWellFormed(s: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

function hasMeta(db: Database.Database): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get() !== undefined;
}

/** An inbox row as a record; the driver's Buffer is copied into memory we own. */
function inboxRecord(r: InboxRow): InboxRecord {
  return { id: r.id, version: r.version, data: Uint8Array.from(r.data) };
}

/** A Buffer view of `u8` (no copy): the driver binds only Buffers as BLOBs. */
function blob(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.length);
}

function prepare(db: Database.Database): Record<string, Stmt> {
  const p = (sql: string): Stmt => db.prepare(sql);
  return {
    getBase: p(
      'SELECT identity_key, identity_key_ed, signed_pre_key, signed_pre_key_signature, signed_pre_key_id FROM bundles WHERE did = ?',
    ),
    putBase: p(`INSERT INTO bundles (did, identity_key, identity_key_ed, signed_pre_key, signed_pre_key_signature, signed_pre_key_id)
      VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (did) DO UPDATE SET identity_key = excluded.identity_key,
      identity_key_ed = excluded.identity_key_ed, signed_pre_key = excluded.signed_pre_key,
      signed_pre_key_signature = excluded.signed_pre_key_signature, signed_pre_key_id = excluded.signed_pre_key_id`),
    delBase: p('DELETE FROM bundles WHERE did = ?'),
    getOtk: p('SELECT key_id, public_key FROM one_time_keys WHERE did = ? AND key_id = ?'),
    lowestOtk: p('SELECT key_id, public_key FROM one_time_keys WHERE did = ? ORDER BY key_id LIMIT 1'),
    putOtk: p('INSERT INTO one_time_keys (did, key_id, public_key) VALUES (?, ?, ?)'),
    putOtkIfNew: p('INSERT OR IGNORE INTO one_time_keys (did, key_id, public_key) VALUES (?, ?, ?)'),
    delOtk: p('DELETE FROM one_time_keys WHERE did = ? AND key_id = ?'),
    delAllOtk: p('DELETE FROM one_time_keys WHERE did = ?'),
    countOtk: p('SELECT COUNT(*) AS n FROM one_time_keys WHERE did = ?'),
    isClaimed: p('SELECT 1 FROM claimed_one_time_keys WHERE did = ? AND key_id = ?'),
    putClaimed: p('INSERT OR IGNORE INTO claimed_one_time_keys (did, key_id) VALUES (?, ?)'),
    delAllClaimed: p('DELETE FROM claimed_one_time_keys WHERE did = ?'),
    getLastKem: p('SELECT key_id, public_key, signature FROM last_resort_kem_pre_keys WHERE did = ?'),
    putLastKem: p(`INSERT INTO last_resort_kem_pre_keys (did, key_id, public_key, signature) VALUES (?, ?, ?, ?)
      ON CONFLICT (did) DO UPDATE SET key_id = excluded.key_id, public_key = excluded.public_key, signature = excluded.signature`),
    delLastKem: p('DELETE FROM last_resort_kem_pre_keys WHERE did = ?'),
    getKem: p('SELECT key_id, public_key, signature FROM kem_pre_keys WHERE did = ? AND key_id = ?'),
    lowestKem: p('SELECT key_id, public_key, signature FROM kem_pre_keys WHERE did = ? ORDER BY key_id LIMIT 1'),
    putKem: p('INSERT INTO kem_pre_keys (did, key_id, public_key, signature) VALUES (?, ?, ?, ?)'),
    delKem: p('DELETE FROM kem_pre_keys WHERE did = ? AND key_id = ?'),
    delAllKem: p('DELETE FROM kem_pre_keys WHERE did = ?'),
    countKem: p('SELECT COUNT(*) AS n FROM kem_pre_keys WHERE did = ?'),
    isKemClaimed: p('SELECT 1 FROM claimed_kem_pre_keys WHERE did = ? AND key_id = ?'),
    putKemClaimed: p('INSERT OR IGNORE INTO claimed_kem_pre_keys (did, key_id) VALUES (?, ?)'),
    delAllKemClaimed: p('DELETE FROM claimed_kem_pre_keys WHERE did = ?'),
    getRecord: p('SELECT version, data FROM records WHERE kind = ? AND owner = ? AND peer = ?'),
    putRecord: p(`INSERT INTO records (kind, owner, peer, version, data) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (kind, owner, peer) DO UPDATE SET version = excluded.version, data = excluded.data`),
    tombstone: p('UPDATE records SET data = NULL WHERE kind = ? AND owner = ? AND peer = ? AND data IS NOT NULL'),
    listPeers: p('SELECT peer FROM records WHERE kind = ? AND owner = ? AND data IS NOT NULL'),
    putEstablishment: p('INSERT OR IGNORE INTO establishments (did, signed_pre_key_id, fingerprint) VALUES (?, ?, ?)'),
    delEstablishments: p('DELETE FROM establishments WHERE did = ? AND signed_pre_key_id = ?'),
    delAllEstablishments: p('DELETE FROM establishments WHERE did = ?'),
    hasEstablishment: p('SELECT 1 FROM establishments WHERE did = ? AND signed_pre_key_id = ? AND fingerprint = ?'),
    getInbox: p('SELECT id, version, data FROM inbox WHERE owner = ? AND peer = ? AND id = ?'),
    countInbox: p('SELECT COUNT(*) AS n FROM inbox WHERE owner = ? AND peer = ?'),
    listInbox: p('SELECT id, version, data FROM inbox WHERE owner = ? AND peer = ? ORDER BY version'),
    putInbox: p('INSERT INTO inbox (owner, peer, id, version, data) VALUES (?, ?, ?, ?, ?)'),
    delInboxEntry: p('DELETE FROM inbox WHERE owner = ? AND peer = ? AND id = ?'),
    delInbox: p('DELETE FROM inbox WHERE owner = ? AND peer = ?'),
  };
}
