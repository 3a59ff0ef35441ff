/**
 * The store for many processes or machines: Redis through `ioredis`. Claims and compare-and-swap
 * saves are Lua scripts (atomic on the server); every key lives under the store's namespace, and
 * all keys of one DID share a hash tag. Optional TTLs expire idle sessions and unrefreshed bundles.
 * A DID's last-resort KEM pre-key lives in its bundle's base; its one-time KEM pre-keys in a pool
 * of their own, claimed in the same script as the one-time pre-key.
 *
 * The caller owns the client: configure it to fail rather than wait forever when Redis is down
 * (e.g. `maxRetriesPerRequest`, `enableOfflineQueue: false`); a failure is a `STORE_ERROR`.
 */
import { createHash } from 'crypto';
import type { Redis } from 'ioredis';
import { E2EError } from '../errors';
import { fromBase64, readFields, toBase64, typed } from '../crypto';
import { PreKeyBundle } from '../x3dh';
import { BundleBase, PooledKemPreKey, baseOf, decodeBase, decodePooledKem, encodeBase, encodePooledKem, joinBundle } from './bundle-parts';
import * as lua from './redis-scripts';
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
import { MAX_CAS_ATTEMPTS, MAX_INBOX_ENTRIES, MAX_REDIS_TTL_MS } from '../limits';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /** The connected ioredis client (the store never closes it). */
  client: Redis;
  /**
   * Prefix of every key (default `agentmesh`): 1 to 128 of letters, digits and `._-`. No `:` (the
   * separator after it), so two namespaces never share a key and `clearNamespace` clears exactly one.
   */
  namespace?: string;
  /** Expire a session this long after its last save (default: never). */
  sessionTtlMs?: number;
  /** Expire a DID's bundle and pool this long after its last `storeBundle` (default: never). */
  bundleTtlMs?: number;
}

function ttlOption(v: unknown, name: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_REDIS_TTL_MS) {
    throw new E2EError('INVALID_ARGUMENT', `${name} must be a positive integer number of milliseconds`);
  }
  return v;
}

/** A DID as it appears inside a key: percent-encoded, so ':' '{' '}' cannot break the layout. */
function enc(id: string): string {
  return encodeURIComponent(id);
}

function corrupt(): E2EError {
  return storeFailure(StoreErrorReason.CORRUPT, 'stored data is unreadable');
}

interface Script {
  text: string;
  sha: string;
}

function script(text: string): Script {
  return { text, sha: createHash('sha1').update(text).digest('hex') };
}

const S = {
  storeBundle: script(lua.STORE_BUNDLE),
  peekBundle: script(lua.PEEK_BUNDLE),
  claimBundle: script(lua.CLAIM_BUNDLE),
  consume: script(lua.CONSUME_ONE_TIME_KEY),
  addKeys: script(lua.ADD_ONE_TIME_KEYS),
  addKemKeys: script(lua.ADD_KEM_PRE_KEYS),
  consumeKem: script(lua.CONSUME_KEM_PRE_KEY),
  removeBundle: script(lua.REMOVE_BUNDLE),
  save: script(lua.SAVE_RECORD),
  del: script(lua.DELETE_RECORD),
  mark: script(lua.MARK_ESTABLISHMENT),
  saveWithInbox: script(lua.SAVE_SESSION_WITH_INBOX),
  loadInbox: script(lua.LOAD_INBOX_ENTRY),
  listInbox: script(lua.LIST_INBOX),
  delInbox: script(lua.DELETE_INBOX_ENTRY),
  delSession: script(lua.DELETE_SESSION),
  accept: script(lua.SAVE_ACCEPTANCE),
};

/**
 * A Buffer of our own with `u8`'s bytes for the client: ioredis keeps the arguments of a queued
 * command (offline queue, reconnect) until it is written, and the caller may reuse its bytes by then.
 */
function buf(u8: Uint8Array): Buffer {
  return Buffer.from(Uint8Array.from(u8).buffer);
}

function inboxVersion(v: unknown): number {
  const n = Number(Buffer.isBuffer(v) ? v.toString('latin1') : v);
  if (!Number.isSafeInteger(n) || n < 1) throw corrupt();
  return n;
}

/** Every store interface over Redis. All methods return promises. */
export class RedisStore implements AgentStore {
  readonly #r: Redis;
  readonly #ns: string;
  readonly #sessionTtl: number;
  readonly #bundleTtl: number;

  /**
   * A store over `options.client`.
   * @example
   * const store = new RedisStore({ client: new Redis(process.env.REDIS_URL), namespace: 'agents' });
   */
  constructor(options: RedisStoreOptions) {
    if (typeof options !== 'object' || options === null) throw new E2EError('INVALID_ARGUMENT', 'options.client must be an ioredis client');
    // Read once into a plain object: a throwing getter or Proxy trap becomes INVALID_ARGUMENT.
    const o = readFields(options, ['client', 'namespace', 'sessionTtlMs', 'bundleTtlMs'], 'options');
    const client = o.client as Partial<Redis> | null | undefined;
    // The client is the caller's: probing it may run a Proxy trap, so that read is typed too.
    if (!typed(() => typeof client?.evalsha === 'function', 'INVALID_ARGUMENT', 'options.client')) {
      throw new E2EError('INVALID_ARGUMENT', 'options.client must be an ioredis client');
    }
    const ns = o.namespace ?? 'agentmesh';
    if (typeof ns !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(ns)) {
      throw new E2EError('INVALID_ARGUMENT', 'namespace must be 1 to 128 of A-Z a-z 0-9 . _ - (no colon)');
    }
    this.#r = client as Redis;
    this.#ns = ns;
    this.#sessionTtl = ttlOption(o.sessionTtlMs, 'sessionTtlMs');
    this.#bundleTtl = ttlOption(o.bundleTtlMs, 'bundleTtlMs');
  }

  /** The key prefix of this store. */
  get namespace(): string {
    return this.#ns;
  }

  /** See {@link PreKeyStore.storeBundle}. */
  async storeBundle(did: string, bundle: PreKeyBundle): Promise<void> {
    assertStoreId(did, 'did');
    bundle = readValidBundle(bundle); // a checked copy: each field read once
    const base = baseOf(bundle);
    const otk = bundle.oneTimePreKey;
    const r = await this.#eval('storeBundle', S.storeBundle, this.#bundleKeys(did), [
      encodeBase(base),
      toBase64(base.identityKeyEd),
      otk ? String(bundle.oneTimePreKeyId) : '',
      otk ? toBase64(otk) : '',
      String(this.#bundleTtl),
      base.kemPreKey ? '1' : '0',
    ]);
    if (r === 'identity_changed') throw identityChangedError();
    if (r === 'otk_id_reused') throw otkReusedError(bundle.oneTimePreKeyId as number);
    if (r !== 'ok') throw corrupt();
  }

  /** See {@link PreKeyStore.getBundle}. */
  async getBundle(did: string): Promise<PreKeyBundle | null> {
    assertStoreId(did, 'did');
    const [base, pool, queue, , kemPool, kemQueue] = this.#bundleKeys(did);
    return bundleFromReply(await this.#eval('getBundle', S.peekBundle, [base, pool, queue, kemPool, kemQueue], []));
  }

  /** See {@link PreKeyStore.consumeOneTimeKey}. */
  async consumeOneTimeKey(did: string, keyId: number): Promise<boolean> {
    assertStoreId(did, 'did');
    assertKeyId(keyId, 'keyId');
    const [, pool, queue, claimed] = this.#bundleKeys(did);
    return (await this.#eval('consumeOneTimeKey', S.consume, [pool, queue, claimed], [String(keyId)])) === 1;
  }

  /** See {@link PreKeyStore.claimBundle}. */
  async claimBundle(did: string): Promise<PreKeyBundle | null> {
    assertStoreId(did, 'did');
    return bundleFromReply(await this.#eval('claimBundle', S.claimBundle, this.#bundleKeys(did), []));
  }

  /** See {@link PreKeyStore.addOneTimePreKeys}. */
  async addOneTimePreKeys(did: string, keys: readonly PublicOneTimePreKey[]): Promise<void> {
    assertStoreId(did, 'did');
    keys = readOneTimeKeys(keys); // a checked copy: each key read once
    const args: string[] = [];
    for (const k of keys) args.push(String(k.keyId), toBase64(k.publicKey));
    const r = await this.#eval('addOneTimePreKeys', S.addKeys, this.#bundleKeys(did), args);
    if (r === 'no_bundle') throw noBundleError();
    if (r !== 'ok') throw otkReusedError(Number(r));
  }

  /** See {@link PreKeyStore.countOneTimePreKeys}. */
  async countOneTimePreKeys(did: string): Promise<number> {
    assertStoreId(did, 'did');
    return this.#call('countOneTimePreKeys', () => this.#r.zcard(this.#bundleKeys(did)[2]));
  }

  /**
   * See {@link PreKeyStore.addKemPreKeys}. Also `STALE_STATE` (reason `bundle`) in the unlikely case
   * that the DID is re-keyed again and again while the keys are verified (8 attempts).
   */
  async addKemPreKeys(did: string, keys: readonly PublicKemPreKeyEntry[]): Promise<void> {
    assertStoreId(did, 'did');
    const [baseKey, , , , kemPool, kemQueue, kemClaimed] = this.#bundleKeys(did);
    let input: unknown = keys;
    // The signatures are verified here, against the identity stored; the script adds the keys only
    // if that identity is still the stored one (else they are verified again, against the new one).
    for (let attempt = 1; ; attempt++) {
      const raw = await this.#call('addKemPreKeys', () => this.#r.get(baseKey));
      if (raw === null) throw noBundleError();
      const identity = decodeBase(raw).identityKeyEd;
      const checked = readKemPreKeys(input, identity); // a checked copy, signatures verified
      input = checked; // read the caller's list once: a retry checks the copy
      const args = [toBase64(identity)];
      for (const k of checked) args.push(String(k.keyId), toBase64(k.publicKey), encodePooledKem(k));
      const r = await this.#eval('addKemPreKeys', S.addKemKeys, [baseKey, kemPool, kemQueue, kemClaimed], args);
      if (r === 'ok') return;
      if (r === 'no_bundle') throw noBundleError();
      if (r !== 'identity_changed') throw kemReusedError(Number(r));
      if (attempt >= MAX_CAS_ATTEMPTS) throw new E2EError('STALE_STATE', 'the bundle was re-keyed while KEM pre-keys were added', 'bundle');
    }
  }

  /** See {@link PreKeyStore.consumeKemPreKey}. */
  async consumeKemPreKey(did: string, keyId: number): Promise<boolean> {
    assertStoreId(did, 'did');
    assertKeyId(keyId, 'keyId');
    const [, , , , kemPool, kemQueue, kemClaimed] = this.#bundleKeys(did);
    return (await this.#eval('consumeKemPreKey', S.consumeKem, [kemPool, kemQueue, kemClaimed], [String(keyId)])) === 1;
  }

  /** See {@link PreKeyStore.countKemPreKeys}. */
  async countKemPreKeys(did: string): Promise<number> {
    assertStoreId(did, 'did');
    return this.#call('countKemPreKeys', () => this.#r.zcard(this.#bundleKeys(did)[5]));
  }

  /** See {@link PreKeyStore.removeBundle}. */
  async removeBundle(did: string): Promise<boolean> {
    assertStoreId(did, 'did');
    return (await this.#eval('removeBundle', S.removeBundle, this.#bundleKeys(did), [])) === 1;
  }

  /** See {@link SessionStore.loadSession}. */
  async loadSession(localDid: string, peerDid: string): Promise<StoredRecord | null> {
    return this.#load(this.#sessionKeys(localDid, peerDid)[0]);
  }

  /** See {@link SessionStore.saveSession}. */
  async saveSession(localDid: string, peerDid: string, data: Uint8Array, expectedVersion: number): Promise<number> {
    const [record, index] = this.#sessionKeys(localDid, peerDid);
    return this.#save([record, index, ...this.#inboxKeys(localDid, peerDid)], enc(peerDid), data, expectedVersion, this.#sessionTtl);
  }

  /** See {@link SessionStore.deleteSession}. */
  async deleteSession(localDid: string, peerDid: string): Promise<boolean> {
    const [record, index] = this.#sessionKeys(localDid, peerDid);
    return (await this.#eval('deleteSession', S.delSession, [record, index, ...this.#inboxKeys(localDid, peerDid)], [enc(peerDid)])) === 1;
  }

  /** See {@link SessionStore.saveSessionWithInbox}. */
  async saveSessionWithInbox(
    localDid: string,
    peerDid: string,
    data: Uint8Array,
    expectedVersion: number,
    entry: { readonly id: string; readonly data: Uint8Array },
  ): Promise<number> {
    const [record, index] = this.#sessionKeys(localDid, peerDid);
    const bytes = recordCopy(data);
    assertVersion(expectedVersion);
    const e = readInboxEntry(entry); // read once, copied
    const args = [
      buf(bytes),
      String(expectedVersion),
      String(this.#sessionTtl),
      enc(peerDid),
      e.id,
      buf(e.data),
      String(MAX_INBOX_ENTRIES),
    ];
    const r = await this.#eval('saveSessionWithInbox', S.saveWithInbox, [record, index, ...this.#inboxKeys(localDid, peerDid)], args);
    if (!Array.isArray(r) || r.length !== 2) throw corrupt();
    const [ok, version] = r as [number, number];
    if (ok === 0) throw staleStateError(expectedVersion, version);
    if (ok === 2) throw inboxFullError();
    if (ok === 3) throw inboxIdReusedError();
    if (ok !== 1) throw corrupt();
    return version;
  }

  /** See {@link SessionStore.loadInboxEntry}. */
  async loadInboxEntry(localDid: string, peerDid: string, id: string): Promise<InboxRecord | null> {
    const keys = this.#inboxKeys(localDid, peerDid);
    assertInboxId(id);
    const r = await this.#eval('loadInboxEntry', S.loadInbox, keys, [id], true);
    if (r === null) return null;
    if (!Array.isArray(r) || r.length !== 2 || !Buffer.isBuffer(r[1])) throw corrupt();
    return { id, version: inboxVersion(r[0]), data: Uint8Array.from(r[1]) };
  }

  /** See {@link SessionStore.listInbox}. */
  async listInbox(localDid: string, peerDid: string): Promise<InboxRecord[]> {
    const r = await this.#eval('listInbox', S.listInbox, this.#inboxKeys(localDid, peerDid), [], true);
    if (!Array.isArray(r) || r.length % 3 !== 0) throw corrupt();
    const out: InboxRecord[] = [];
    for (let i = 0; i < r.length; i += 3) {
      const [id, v, d] = [r[i], r[i + 1], r[i + 2]];
      if (!Buffer.isBuffer(id) || !Buffer.isBuffer(d)) throw corrupt();
      out.push({ id: id.toString('latin1'), version: inboxVersion(v), data: Uint8Array.from(d) });
    }
    return out;
  }

  /** See {@link SessionStore.deleteInboxEntry}. */
  async deleteInboxEntry(localDid: string, peerDid: string, id: string): Promise<boolean> {
    const keys = this.#inboxKeys(localDid, peerDid);
    assertInboxId(id);
    return (await this.#eval('deleteInboxEntry', S.delInbox, keys, [id])) === 1;
  }

  /** See {@link AgentStore.saveAcceptance}. */
  async saveAcceptance(write: AcceptanceWrite): Promise<AcceptanceVersions> {
    // A checked copy: a getter cannot answer differently between the checks and the writes.
    const { did, peerDid, keyManager: km, establishment: est, session } = readAcceptance(write);
    const [record, index] = this.#sessionKeys(did, peerDid);
    const spk = est ? est.signedPreKeyId : 0;
    const keys = [this.#keysKey(did), record, index, this.#replayKey(did, spk), this.#replayIndexKey(did)];
    const args = [
      km ? buf(km.data) : '',
      String(km?.expectedVersion ?? 0),
      buf(session.data),
      String(session.expectedVersion),
      String(this.#sessionTtl),
      enc(peerDid),
      est ? est.fingerprint : '',
      String(spk),
    ];
    const r = await this.#eval('saveAcceptance', S.accept, keys, args);
    if (!Array.isArray(r) || r.length !== 3) throw corrupt();
    const [ok, a, b] = r as [number, number, number];
    if (ok === 2) throw establishmentReplayError();
    if (ok === 0 && b === 1) throw staleStateError(km?.expectedVersion ?? 0, a, 'key_manager');
    if (ok === 0 && b === 2) throw staleStateError(session.expectedVersion, a, 'session');
    if (ok !== 1) throw corrupt();
    return { keyManagerVersion: km ? a : null, sessionVersion: b };
  }

  /** See {@link SessionStore.listSessions}. */
  async listSessions(localDid: string): Promise<string[]> {
    assertStoreId(localDid, 'localDid');
    const index = this.#sessionIndexKey(localDid);
    return this.#call('listSessions', async () => {
      const members = await this.#r.smembers(index);
      const peers: string[] = [];
      // The index may name sessions that expired by TTL: keep only live ones.
      const live = await Promise.all(members.map((m) => this.#r.hexists(`${this.#ns}:s:{${enc(localDid)}}:${m}`, 'd')));
      members.forEach((m, i) => {
        if (live[i] !== 1) return;
        try {
          peers.push(decodeURIComponent(m));
        } catch {
          throw corrupt(); // not written by this store
        }
      });
      return peers.sort();
    });
  }

  /** See {@link KeyManagerStore.loadKeyManager}. */
  async loadKeyManager(did: string): Promise<StoredRecord | null> {
    assertStoreId(did, 'did');
    return this.#load(this.#keysKey(did));
  }

  /** See {@link KeyManagerStore.saveKeyManager}. */
  async saveKeyManager(did: string, data: Uint8Array, expectedVersion: number): Promise<number> {
    assertStoreId(did, 'did');
    const key = this.#keysKey(did);
    return this.#save([key, key], '', data, expectedVersion, 0);
  }

  /** See {@link KeyManagerStore.deleteKeyManager}. */
  async deleteKeyManager(did: string): Promise<boolean> {
    assertStoreId(did, 'did');
    const key = this.#keysKey(did);
    const index = this.#replayIndexKey(did);
    return this.#call('deleteKeyManager', async () => {
      const spkIds = await this.#r.smembers(index);
      const existed = await this.#evalRaw(S.del, [key, key], ['']);
      if (spkIds.length > 0) await this.#r.del(...spkIds.map((id) => this.#replayKey(did, Number(id))));
      await this.#r.del(index);
      return existed === 1;
    });
  }

  /** See {@link KeyManagerStore.markEstablishment}. */
  async markEstablishment(did: string, signedPreKeyId: number, fingerprint: string): Promise<boolean> {
    assertStoreId(did, 'did');
    assertKeyId(signedPreKeyId, 'signedPreKeyId');
    assertFingerprint(fingerprint);
    const keys = [this.#replayKey(did, signedPreKeyId), this.#replayIndexKey(did)];
    return (await this.#eval('markEstablishment', S.mark, keys, [fingerprint, String(signedPreKeyId)])) === 1;
  }

  /** See {@link KeyManagerStore.forgetEstablishments}. */
  async forgetEstablishments(did: string, signedPreKeyId: number): Promise<void> {
    assertStoreId(did, 'did');
    assertKeyId(signedPreKeyId, 'signedPreKeyId');
    await this.#call('forgetEstablishments', async () => {
      await this.#r.multi().del(this.#replayKey(did, signedPreKeyId)).srem(this.#replayIndexKey(did), String(signedPreKeyId)).exec();
    });
  }

  /**
   * Deletes every key of this store's namespace (for tests and decommissioning). Returns how many
   * keys were deleted.
   */
  async clearNamespace(): Promise<number> {
    return this.#call('clearNamespace', async () => {
      let cursor = '0';
      let deleted = 0;
      do {
        const [next, keys] = await this.#r.scan(cursor, 'MATCH', `${escapeGlob(this.#ns)}:*`, 'COUNT', 500);
        if (keys.length > 0) deleted += await this.#r.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
      return deleted;
    });
  }

  /** Does nothing: the caller owns (and closes) the client. */
  close(): void {}

  /** Every key of a DID's bundle: base, pool, queue, claimed, KEM pool, KEM queue, KEM claimed. */
  #bundleKeys(did: string): [string, string, string, string, string, string, string] {
    const t = `${this.#ns}:{${enc(did)}}`;
    return [`${t}:bundle`, `${t}:pool`, `${t}:queue`, `${t}:claimed`, `${t}:kem-pool`, `${t}:kem-queue`, `${t}:kem-claimed`];
  }

  #sessionKeys(localDid: string, peerDid: string): [string, string] {
    assertStoreId(localDid, 'localDid');
    assertStoreId(peerDid, 'peerDid');
    return [`${this.#ns}:s:{${enc(localDid)}}:${enc(peerDid)}`, this.#sessionIndexKey(localDid)];
  }

  #inboxKeys(localDid: string, peerDid: string): [string, string] {
    assertStoreId(localDid, 'localDid');
    assertStoreId(peerDid, 'peerDid');
    const t = `{${enc(localDid)}}:${enc(peerDid)}`;
    return [`${this.#ns}:ih:${t}`, `${this.#ns}:iz:${t}`];
  }

  #sessionIndexKey(localDid: string): string {
    return `${this.#ns}:si:{${enc(localDid)}}`;
  }

  #keysKey(did: string): string {
    return `${this.#ns}:{${enc(did)}}:keys`;
  }

  #replayKey(did: string, spkId: number): string {
    return `${this.#ns}:{${enc(did)}}:replay:${spkId}`;
  }

  #replayIndexKey(did: string): string {
    return `${this.#ns}:{${enc(did)}}:replay-index`;
  }

  async #load(key: string): Promise<StoredRecord | null> {
    const [v, d] = await this.#call('load', () => this.#r.hmgetBuffer(key, 'v', 'd'));
    if (d === null) return null;
    const version = Number(v?.toString('latin1'));
    if (!Number.isSafeInteger(version) || version < 1) throw corrupt();
    return { version, data: Uint8Array.from(d) };
  }

  async #save(keys: string[], member: string, data: Uint8Array, expectedVersion: number, ttl: number): Promise<number> {
    const bytes = recordCopy(data);
    assertVersion(expectedVersion);
    const r = await this.#eval('save', S.save, keys, [buf(bytes), String(expectedVersion), String(ttl), member]);
    if (!Array.isArray(r) || r.length !== 2) throw corrupt();
    const [ok, version] = r as [number, number];
    if (ok !== 1) throw staleStateError(expectedVersion, version);
    return version;
  }

  async #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw storeError(op, e);
    }
  }

  #eval(op: string, s: Script, keys: string[], args: (string | Buffer)[], binary = false): Promise<unknown> {
    return this.#call(op, () => this.#evalRaw(s, keys, args, binary));
  }

  /** Runs a script; `binary` returns bulk replies as Buffers (for sealed data). */
  async #evalRaw(s: Script, keys: string[], args: (string | Buffer)[], binary = false): Promise<unknown> {
    try {
      return binary
        ? await this.#r.callBuffer('EVALSHA', s.sha, keys.length, ...keys, ...args)
        : await this.#r.evalsha(s.sha, keys.length, ...keys, ...args);
    } catch (e) {
      // The server forgets scripts on restart or SCRIPT FLUSH: send the text once, then EVALSHA works again.
      if (e instanceof Error && e.message.startsWith('NOSCRIPT')) {
        return binary
          ? this.#r.callBuffer('EVAL', s.text, keys.length, ...keys, ...args)
          : this.#r.eval(s.text, keys.length, ...keys, ...args);
      }
      throw e;
    }
  }
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** A bundle from PEEK_BUNDLE's or CLAIM_BUNDLE's reply `{base, otk id, otk, KEM id, KEM entry}` ('' for none). */
function bundleFromReply(r: unknown): PreKeyBundle | null {
  if (r === null) return null;
  if (!Array.isArray(r) || r.length !== 5 || !r.every((x) => typeof x === 'string')) throw corrupt();
  const [baseText, otkId, otkKey, kemId, kemEntry] = r as string[];
  const base: BundleBase = decodeBase(baseText);
  let otk: { keyId: number; publicKey: Uint8Array } | null = null;
  if (otkId !== '') {
    const keyId = Number(otkId);
    let publicKey: Uint8Array | null = null;
    try {
      publicKey = fromBase64(otkKey);
    } catch {
      throw corrupt();
    }
    if (!Number.isInteger(keyId) || publicKey.length !== 32) throw corrupt();
    otk = { keyId, publicKey };
  }
  const kem: PooledKemPreKey | null = kemId === '' ? null : decodePooledKem(kemId, kemEntry);
  return joinBundle(base, otk, kem);
}
