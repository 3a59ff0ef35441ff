/**
 * The reference store: everything in this process's memory, synchronous. For tests, development and
 * single-process agents that may lose their sessions on exit; `SqliteStore` is the embedded default.
 */
import { PreKeyBundle } from '../x3dh';
import { constantTimeEqual } from '../crypto';
import { BundleBase, PooledKemPreKey, baseOf, joinBundle, kemOf, sameIdentity } from './bundle-parts';
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
} from './validate';
import { MAX_INBOX_ENTRIES } from '../limits';

interface DidEntry {
  base: BundleBase;
  /** Unclaimed one-time pre-keys: id → public key. */
  pool: Map<number, Uint8Array>;
  /** Ids ever claimed: never pooled again. */
  claimed: Set<number>;
  /** Unclaimed one-time KEM pre-keys: id → key. */
  kemPool: Map<number, PooledKemPreKey>;
  /** KEM pre-key ids ever claimed. */
  kemClaimed: Set<number>;
}

/** A record slot; `data === null` is a tombstone that keeps the version counting up after a delete. */
interface Slot {
  version: number;
  data: Uint8Array | null;
}

const SEP = '\u0000'; // ids never contain NUL (checked), so joined keys are unambiguous

/** Every store interface, in memory. All methods are synchronous. */
export class InMemoryStore implements AgentStore {
  readonly #dids = new Map<string, DidEntry>();
  readonly #slots = new Map<string, Slot>();
  readonly #replay = new Map<string, Set<string>>();
  /** Per session key: inbox id → entry, in arrival order (Map keeps insertion order). */
  readonly #inbox = new Map<string, Map<string, { version: number; data: Uint8Array }>>();

  /** See {@link PreKeyStore.storeBundle}. */
  storeBundle(did: string, bundle: PreKeyBundle): void {
    assertStoreId(did, 'did');
    bundle = readValidBundle(bundle); // a checked copy: each field read once
    const entry = this.#dids.get(did);
    // A bundle without a KEM pre-key keeps the stored last-resort one.
    const base = baseOf(bundle, kemOf(bundle) ?? (entry ? kemOf(entry.base) : null));
    if (entry && !sameIdentity(entry.base, base)) throw identityChangedError();
    const otk = bundle.oneTimePreKey ? { keyId: bundle.oneTimePreKeyId as number, publicKey: bundle.oneTimePreKey } : null;
    if (otk && entry) {
      const pooled = entry.pool.get(otk.keyId);
      if (pooled && !constantTimeEqual(pooled, otk.publicKey)) throw otkReusedError(otk.keyId);
    }
    const e = entry ?? {
      base,
      pool: new Map<number, Uint8Array>(),
      claimed: new Set<number>(),
      kemPool: new Map(),
      kemClaimed: new Set<number>(),
    };
    e.base = base;
    // A claimed key never re-enters the pool: re-publishing an old bundle must not hand it out again.
    if (otk && !e.claimed.has(otk.keyId)) e.pool.set(otk.keyId, Uint8Array.from(otk.publicKey));
    this.#dids.set(did, e);
  }

  /** See {@link PreKeyStore.getBundle}. */
  getBundle(did: string): PreKeyBundle | null {
    assertStoreId(did, 'did');
    const e = this.#dids.get(did);
    if (!e) return null;
    const id = lowestId(e.pool);
    const kemId = lowestId(e.kemPool);
    return joinBundle(
      e.base,
      id === null ? null : { keyId: id, publicKey: e.pool.get(id) as Uint8Array },
      kemId === null ? null : (e.kemPool.get(kemId) as PooledKemPreKey),
    );
  }

  /** See {@link PreKeyStore.consumeOneTimeKey}. */
  consumeOneTimeKey(did: string, keyId: number): boolean {
    assertStoreId(did, 'did');
    assertKeyId(keyId, 'keyId');
    const e = this.#dids.get(did);
    if (!e || !e.pool.has(keyId)) return false;
    e.pool.delete(keyId);
    e.claimed.add(keyId);
    return true;
  }

  /** See {@link PreKeyStore.claimBundle}. */
  claimBundle(did: string): PreKeyBundle | null {
    assertStoreId(did, 'did');
    const e = this.#dids.get(did);
    if (!e) return null;
    const id = lowestId(e.pool);
    const kemId = lowestId(e.kemPool);
    const otk = id === null ? null : { keyId: id, publicKey: e.pool.get(id) as Uint8Array };
    const kem = kemId === null ? null : (e.kemPool.get(kemId) as PooledKemPreKey);
    if (id !== null) {
      e.pool.delete(id);
      e.claimed.add(id);
    }
    if (kemId !== null) {
      e.kemPool.delete(kemId);
      e.kemClaimed.add(kemId);
    }
    return joinBundle(e.base, otk, kem);
  }

  /** See {@link PreKeyStore.addOneTimePreKeys}. */
  addOneTimePreKeys(did: string, keys: readonly PublicOneTimePreKey[]): void {
    assertStoreId(did, 'did');
    keys = readOneTimeKeys(keys); // a checked copy: each key read once
    const e = this.#dids.get(did);
    if (!e) throw noBundleError();
    for (const k of keys) {
      const pooled = e.pool.get(k.keyId);
      if (e.claimed.has(k.keyId) || (pooled && !constantTimeEqual(pooled, k.publicKey))) throw otkReusedError(k.keyId);
    }
    for (const k of keys) e.pool.set(k.keyId, Uint8Array.from(k.publicKey));
  }

  /** See {@link PreKeyStore.countOneTimePreKeys}. */
  countOneTimePreKeys(did: string): number {
    assertStoreId(did, 'did');
    return this.#dids.get(did)?.pool.size ?? 0;
  }

  /** See {@link PreKeyStore.addKemPreKeys}. */
  addKemPreKeys(did: string, keys: readonly PublicKemPreKeyEntry[]): void {
    assertStoreId(did, 'did');
    const found = this.#dids.get(did);
    if (!found) throw noBundleError();
    let checked = readKemPreKeys(keys, found.base.identityKeyEd); // a checked copy, signatures verified
    // Reading the caller's keys may have run its code (a getter), which may have re-keyed the DID: check under the identity stored now.
    const e = this.#dids.get(did);
    if (!e) throw noBundleError();
    if (e !== found) checked = readKemPreKeys(checked, e.base.identityKeyEd);
    for (const k of checked) {
      const pooled = e.kemPool.get(k.keyId);
      if (e.kemClaimed.has(k.keyId) || (pooled && !constantTimeEqual(pooled.publicKey, k.publicKey))) throw kemReusedError(k.keyId);
    }
    for (const k of checked) e.kemPool.set(k.keyId, k);
  }

  /** See {@link PreKeyStore.consumeKemPreKey}. */
  consumeKemPreKey(did: string, keyId: number): boolean {
    assertStoreId(did, 'did');
    assertKeyId(keyId, 'keyId');
    const e = this.#dids.get(did);
    if (!e || !e.kemPool.has(keyId)) return false;
    e.kemPool.delete(keyId);
    e.kemClaimed.add(keyId);
    return true;
  }

  /** See {@link PreKeyStore.countKemPreKeys}. */
  countKemPreKeys(did: string): number {
    assertStoreId(did, 'did');
    return this.#dids.get(did)?.kemPool.size ?? 0;
  }

  /** See {@link PreKeyStore.removeBundle}. */
  removeBundle(did: string): boolean {
    assertStoreId(did, 'did');
    return this.#dids.delete(did);
  }

  /** See {@link SessionStore.loadSession}. */
  loadSession(localDid: string, peerDid: string): StoredRecord | null {
    return this.#load(sessionKey(localDid, peerDid));
  }

  /** See {@link SessionStore.saveSession}. */
  saveSession(localDid: string, peerDid: string, data: Uint8Array, expectedVersion: number): number {
    return this.#save(sessionKey(localDid, peerDid), data, expectedVersion);
  }

  /** See {@link SessionStore.deleteSession}. */
  deleteSession(localDid: string, peerDid: string): boolean {
    const key = sessionKey(localDid, peerDid);
    this.#inbox.delete(key);
    return this.#delete(key);
  }

  /** See {@link SessionStore.saveSessionWithInbox}. */
  saveSessionWithInbox(
    localDid: string,
    peerDid: string,
    data: Uint8Array,
    expectedVersion: number,
    entry: { readonly id: string; readonly data: Uint8Array },
  ): number {
    const key = sessionKey(localDid, peerDid);
    data = recordCopy(data);
    assertVersion(expectedVersion);
    const { id, data: entryData } = readInboxEntry(entry); // read once, copied
    this.#checkSave(key, expectedVersion);
    const inbox = this.#inbox.get(key);
    if (inbox?.has(id)) throw inboxIdReusedError();
    if ((inbox?.size ?? 0) >= MAX_INBOX_ENTRIES) throw inboxFullError();
    const version = this.#save(key, data, expectedVersion);
    if (inbox) inbox.set(id, { version, data: entryData });
    else this.#inbox.set(key, new Map([[id, { version, data: entryData }]]));
    return version;
  }

  /** See {@link SessionStore.loadInboxEntry}. */
  loadInboxEntry(localDid: string, peerDid: string, id: string): InboxRecord | null {
    const key = sessionKey(localDid, peerDid);
    assertInboxId(id);
    const e = this.#inbox.get(key)?.get(id);
    return e ? { id, version: e.version, data: Uint8Array.from(e.data) } : null;
  }

  /** See {@link SessionStore.listInbox}. */
  listInbox(localDid: string, peerDid: string): InboxRecord[] {
    const inbox = this.#inbox.get(sessionKey(localDid, peerDid));
    return inbox ? [...inbox].map(([id, e]) => ({ id, version: e.version, data: Uint8Array.from(e.data) })) : [];
  }

  /** See {@link SessionStore.deleteInboxEntry}. */
  deleteInboxEntry(localDid: string, peerDid: string, id: string): boolean {
    const key = sessionKey(localDid, peerDid);
    assertInboxId(id);
    return this.#inbox.get(key)?.delete(id) ?? false;
  }

  /** See {@link AgentStore.saveAcceptance}. */
  saveAcceptance(write: AcceptanceWrite): AcceptanceVersions {
    // A checked copy: a getter cannot answer differently between the checks and the writes.
    const { did, peerDid, keyManager: km, establishment: est, session } = readAcceptance(write);
    const sKey = sessionKey(did, peerDid);
    const kKey = keysKey(did);
    // Every check before any write: the acceptance happens entirely or not at all.
    if (km) this.#checkSave(kKey, km.expectedVersion, 'key_manager');
    this.#checkSave(sKey, session.expectedVersion, 'session');
    const rKey = est ? `${did}${SEP}${est.signedPreKeyId}` : '';
    if (est && this.#replay.get(rKey)?.has(est.fingerprint)) throw establishmentReplayError();
    const keyManagerVersion = km ? this.#save(kKey, km.data, km.expectedVersion) : null;
    const sessionVersion = this.#save(sKey, session.data, session.expectedVersion);
    if (est) {
      let seen = this.#replay.get(rKey);
      if (!seen) this.#replay.set(rKey, (seen = new Set()));
      seen.add(est.fingerprint);
    }
    return { keyManagerVersion, sessionVersion };
  }

  /** See {@link SessionStore.listSessions}. */
  listSessions(localDid: string): string[] {
    assertStoreId(localDid, 'localDid');
    const prefix = `s${SEP}${localDid}${SEP}`;
    const peers: string[] = [];
    for (const [k, slot] of this.#slots) if (slot.data !== null && k.startsWith(prefix)) peers.push(k.slice(prefix.length));
    return peers.sort();
  }

  /** See {@link KeyManagerStore.loadKeyManager}. */
  loadKeyManager(did: string): StoredRecord | null {
    return this.#load(keysKey(did));
  }

  /** See {@link KeyManagerStore.saveKeyManager}. */
  saveKeyManager(did: string, data: Uint8Array, expectedVersion: number): number {
    return this.#save(keysKey(did), data, expectedVersion);
  }

  /** See {@link KeyManagerStore.deleteKeyManager}. */
  deleteKeyManager(did: string): boolean {
    const existed = this.#delete(keysKey(did));
    const prefix = `${did}${SEP}`;
    for (const k of [...this.#replay.keys()]) if (k.startsWith(prefix)) this.#replay.delete(k);
    return existed;
  }

  /** See {@link KeyManagerStore.markEstablishment}. */
  markEstablishment(did: string, signedPreKeyId: number, fingerprint: string): boolean {
    assertStoreId(did, 'did');
    assertKeyId(signedPreKeyId, 'signedPreKeyId');
    assertFingerprint(fingerprint);
    const k = `${did}${SEP}${signedPreKeyId}`;
    let seen = this.#replay.get(k);
    if (!seen) this.#replay.set(k, (seen = new Set()));
    if (seen.has(fingerprint)) return false;
    seen.add(fingerprint);
    return true;
  }

  /** See {@link KeyManagerStore.forgetEstablishments}. */
  forgetEstablishments(did: string, signedPreKeyId: number): void {
    assertStoreId(did, 'did');
    assertKeyId(signedPreKeyId, 'signedPreKeyId');
    this.#replay.delete(`${did}${SEP}${signedPreKeyId}`);
  }

  /** Drops everything (nothing else to release). */
  close(): void {
    this.#dids.clear();
    this.#slots.clear();
    this.#replay.clear();
    this.#inbox.clear();
  }

  #load(key: string): StoredRecord | null {
    const slot = this.#slots.get(key);
    return slot && slot.data !== null ? { version: slot.version, data: Uint8Array.from(slot.data) } : null;
  }

  #checkSave(key: string, expectedVersion: number, reason?: string): void {
    const slot = this.#slots.get(key);
    const live = slot && slot.data !== null ? slot.version : 0;
    if (expectedVersion !== live) throw staleStateError(expectedVersion, live, reason);
  }

  #save(key: string, data: Uint8Array, expectedVersion: number): number {
    const bytes = recordCopy(data);
    assertVersion(expectedVersion);
    this.#checkSave(key, expectedVersion);
    const slot = this.#slots.get(key);
    const version = (slot?.version ?? 0) + 1;
    this.#slots.set(key, { version, data: bytes });
    return version;
  }

  #delete(key: string): boolean {
    const slot = this.#slots.get(key);
    if (!slot || slot.data === null) return false;
    slot.data = null;
    return true;
  }
}

/** The tutorial's name for the in-memory pre-key store (it is the whole {@link InMemoryStore}). */
export class InMemoryPreKeyStore extends InMemoryStore {}

function lowestId(pool: Map<number, unknown>): number | null {
  let min: number | null = null;
  for (const id of pool.keys()) if (min === null || id < min) min = id;
  return min;
}

function sessionKey(localDid: string, peerDid: string): string {
  assertStoreId(localDid, 'localDid');
  assertStoreId(peerDid, 'peerDid');
  return `s${SEP}${localDid}${SEP}${peerDid}`;
}

function keysKey(did: string): string {
  assertStoreId(did, 'did');
  return `k${SEP}${did}`;
}
