/**
 * `StoredKeyManager`: an `X3DHKeyManager` whose private side (identity, signed pre-keys, unclaimed
 * one-time private keys) lives sealed in a `KeyManagerStore`, so an agent can respond after a
 * restart, and several processes can share one identity.
 *
 * Every change is made on a fresh copy and saved with compare-and-swap; when another process saved
 * first, the change is re-applied to the newer state. Accepting a channel checks everything first
 * and spends nothing on a failure: when the sessions are kept in the key manager's own store, the
 * spent one-time keys (or the replay record) and the new session are written in one atomic step
 * (`AgentStore.saveAcceptance`), so a failed acceptance can simply be retried and a one-time key is
 * never used twice. A one-time key is a one-time pre-key or a one-time KEM pre-key (a post-quantum
 * establishment naming one): either is removed from the saved key manager with the session. An
 * establishment that spends neither (the empty-pool last resorts: no one-time pre-key, and the
 * last-resort KEM pre-key or none) is accepted once per signed pre-key: a replay fails with
 * `DUPLICATE_MESSAGE` (reason `establishment_replay`).
 */
import { E2EError, isE2EError } from '../errors';
import {
  canonicalX25519PublicKey,
  concatBytes,
  constantTimeEqual,
  isInstance,
  isUsableBytes,
  memzero,
  readFields,
  readOptions,
  sha256,
  toHex,
} from '../crypto';
import { X3DHKeyManager } from '../x3dh';
import { ChannelEstablishment, ChannelEstablishmentFields, ChannelOptions, SecureChannel } from '../channel';
import { PersistentChannel, attachSavedChannel, isSessionStore, sealChannelState } from './persistent-channel';
import { StorageCipher, isStorageCipher } from './storage-cipher';
import { AcceptanceVersions, AcceptanceWrite, AgentStore, KeyManagerStore, SessionStore, StoredRecord } from './types';
import { assertStoreId, callStore, establishmentReplayError, readStoredRecord, staleStateError, storeFailure } from './validate';
import { StoreErrorReason } from './reasons';
import { SerialQueue } from '../util/serial-queue';
import { MAX_CAS_ATTEMPTS } from '../limits';

/** Where a key manager is saved. */
export interface KeyManagerLocation {
  /** The store holding the sealed key manager. */
  readonly store: KeyManagerStore;
  /** Seals the key manager at rest (the AEAD context binds it to `did`). */
  readonly cipher: StorageCipher;
  /** The DID the key manager is saved under (a store id: 1 to 1024 characters, no NUL). */
  readonly did: string;
}

/** Options of {@link StoredKeyManager.acceptChannel}. */
export interface AcceptOptions {
  /** Where the new session is saved (sealed with this manager's cipher). */
  readonly sessions: SessionStore;
  /** The initiator's DID (the session is saved under (this DID, peerDid)). */
  readonly peerDid: string;
  /** The caller's associated data, as the initiator used it. */
  readonly associatedData?: Uint8Array;
  /**
   * The ratchet's limits. Caller-held pre-keys (`heldOneTimePreKey`, `heldKemPreKey` of
   * `SecureChannel.createReceiver`) are refused (`INVALID_ARGUMENT`): an acceptance spends the
   * establishment's keys in the saved key manager itself.
   */
  readonly channelOptions?: ChannelOptions;
  /** Replace a session already saved for this peer (default: `STALE_STATE` if one exists). */
  readonly replaceSession?: boolean;
  /**
   * Refuse a classic establishment (`POST_QUANTUM_REQUIRED`, nothing spent): only a post-quantum
   * (PQXDH) session is accepted (default `false`).
   */
  readonly requirePostQuantum?: boolean;
}

/** What `acceptChannel` passes to `SecureChannel.createReceiver`: the ratchet's options and `requirePostQuantum`. */
interface ReceiverChoice extends ChannelOptions {
  readonly requirePostQuantum?: boolean;
}

/** The options an acceptance reads: checked, copied, with the receiver's options apart. */
interface ReadAcceptOptions extends AcceptOptions {
  readonly receiver: ReceiverChoice;
}

const RATCHET_OPTIONS = ['maxSkip', 'maxSkippedKeys', 'skippedKeyMaxAgeMs', 'now'] as const;

/** `channelOptions` read once: the ratchet's options (checked by the channel), held keys refused. */
function readReceiverChoice(channelOptions: unknown, requirePostQuantum: unknown): ReceiverChoice {
  const o = readOptions(channelOptions, [...RATCHET_OPTIONS, 'heldOneTimePreKey', 'heldKemPreKey', 'requirePostQuantum'], 'channelOptions');
  if (o.heldOneTimePreKey !== undefined || o.heldKemPreKey !== undefined) {
    // Answering with a held key spends nothing in the manager, yet the acceptance would save it as spent.
    throw new E2EError('INVALID_ARGUMENT', 'acceptChannel spends the establishment’s keys itself: no held pre-keys in channelOptions');
  }
  for (const v of [requirePostQuantum, o.requirePostQuantum]) {
    if (v !== undefined && typeof v !== 'boolean') throw new E2EError('INVALID_ARGUMENT', 'requirePostQuantum must be a boolean');
  }
  const ratchet: Record<string, unknown> = {};
  for (const k of RATCHET_OPTIONS) if (o[k] !== undefined) ratchet[k] = o[k];
  // Required when asked for in either place (an option set in channelOptions is never dropped).
  return { ...(ratchet as ChannelOptions), requirePostQuantum: requirePostQuantum === true || o.requirePostQuantum === true };
}

/** Whether `s` has the methods a key manager saves with (never throws: a throwing getter means no). */
function isKeyManagerStore(s: unknown): s is KeyManagerStore {
  if ((typeof s !== 'object' && typeof s !== 'function') || s === null) return false;
  try {
    const o = s as Partial<KeyManagerStore>;
    return typeof o.loadKeyManager === 'function' && typeof o.saveKeyManager === 'function' && typeof o.markEstablishment === 'function';
  } catch {
    return false;
  }
}

/**
 * A checked, plain copy of a key manager location: each field read once, so a getter cannot answer
 * differently between the check and the use. `INVALID_ARGUMENT` for anything else.
 */
function readLocation(loc: unknown): KeyManagerLocation {
  if (typeof loc !== 'object' || loc === null) throw new E2EError('INVALID_ARGUMENT', 'a key manager location is required');
  const l = readFields(loc, ['store', 'cipher', 'did'], 'key manager location');
  // The brand, not instanceof: a Proxy's trap or an object made from the prototype would pass or throw.
  if (!isStorageCipher(l.cipher)) throw new E2EError('INVALID_ARGUMENT', 'cipher must be a StorageCipher');
  if (!isKeyManagerStore(l.store)) throw new E2EError('INVALID_ARGUMENT', 'store must implement KeyManagerStore');
  assertStoreId(l.did, 'did');
  return { store: l.store, cipher: l.cipher, did: l.did };
}

/** Accept options, read once into a plain object (`INVALID_ARGUMENT` when a read throws). */
function readAcceptOptions(options: unknown): ReadAcceptOptions {
  if (typeof options !== 'object' || options === null) throw new E2EError('INVALID_ARGUMENT', 'accept options are required');
  const o = readFields(
    options,
    ['sessions', 'peerDid', 'associatedData', 'channelOptions', 'replaceSession', 'requirePostQuantum'],
    'accept options',
  );
  assertStoreId(o.peerDid, 'peerDid');
  assertSessions(o.sessions);
  return {
    sessions: o.sessions,
    peerDid: o.peerDid,
    associatedData: o.associatedData as Uint8Array | undefined,
    replaceSession: o.replaceSession as boolean | undefined,
    receiver: readReceiverChoice(o.channelOptions, o.requirePostQuantum),
  };
}

/** Proves a construction comes from this module: the constructor is private to TypeScript only. */
const CONSTRUCT = Symbol('StoredKeyManager');

/** The managers this module made (a brand no Proxy or fake prototype passes). */
const brand = new WeakSet<object>();

/** Whether `value` is a {@link StoredKeyManager} made here (never throws). Internal to the stores. */
export function isStoredKeyManager(value: unknown): value is StoredKeyManager {
  return typeof value === 'object' && value !== null && brand.has(value);
}

/** The AEAD context of a key-manager blob. */
function keysContext(did: string): string {
  return `agentmesh-keys\u0000${did}`;
}

function seal(cipher: StorageCipher, did: string, m: X3DHKeyManager): Uint8Array {
  const bytes = m.toBytes();
  try {
    return cipher.seal(bytes, keysContext(did));
  } finally {
    memzero(bytes);
  }
}

function restore(cipher: StorageCipher, did: string, rec: StoredRecord): X3DHKeyManager {
  const bytes = cipher.open(rec.data, keysContext(did));
  try {
    return X3DHKeyManager.fromBytes(bytes);
  } catch {
    throw storeFailure(StoreErrorReason.CORRUPT, 'the saved key manager does not parse');
  } finally {
    memzero(bytes);
  }
}

function copyOf(m: X3DHKeyManager): X3DHKeyManager {
  const bytes = m.toBytes();
  try {
    return X3DHKeyManager.fromBytes(bytes);
  } finally {
    memzero(bytes);
  }
}

/**
 * The replay fingerprint of an establishment: SHA-256(initiator identity ‖ ephemeral key), hex, over
 * the canonical form of both X25519 keys. X25519 ignores bit 255 and reduces values ≥ p, so every
 * encoding of one key gives the same shared secret; hashing raw bytes would let a replay with bit
 * 255 flipped pass as new. `MALFORMED_MESSAGE` for anything that is not an establishment.
 */
export function establishmentFingerprint(e: ChannelEstablishment | ChannelEstablishmentFields): string {
  const est = ChannelEstablishment.from(e);
  return toHex(sha256(concatBytes(canonicalX25519PublicKey(est.initiatorIdentityKey), canonicalX25519PublicKey(est.ephemeralPublicKey))));
}

/** A key our copy of the manager lacks, which another process may have made since: worth one reload. */
function isMissingKey(e: unknown): boolean {
  return isE2EError(e, 'SPK_NOT_FOUND') || isE2EError(e, 'OTK_NOT_FOUND') || isE2EError(e, 'KEM_NOT_FOUND');
}

/**
 * Whether accepting `e` spends a one-time key of `m` (the manager before the acceptance): a one-time
 * pre-key, or a one-time KEM pre-key (not a last-resort one). Such an acceptance saves the key
 * manager with the key removed; any other is recorded against replay instead.
 */
function spendsOneTimeKey(e: ChannelEstablishment, m: X3DHKeyManager): boolean {
  if (e.usedOneTimeKeyId !== undefined) return true;
  return e.kemPreKeyId !== undefined && m.getKemPreKey(e.kemPreKeyId)?.lastResort === false;
}

/** The versions a store's `saveAcceptance` returned, read once; `null` when they are none. */
function readVersions(v: unknown, withKeyManager: boolean): AcceptanceVersions | null {
  let o: Record<'sessionVersion' | 'keyManagerVersion', unknown>;
  try {
    o = readFields(v, ['sessionVersion', 'keyManagerVersion'], 'versions');
  } catch {
    return null; // not an object, or a getter threw
  }
  if (!Number.isSafeInteger(o.sessionVersion) || (withKeyManager && !Number.isSafeInteger(o.keyManagerVersion))) return null;
  return { sessionVersion: o.sessionVersion as number, keyManagerVersion: withKeyManager ? (o.keyManagerVersion as number) : null };
}

function assertSessions(s: unknown): asserts s is SessionStore {
  if (!isSessionStore(s)) throw new E2EError('INVALID_ARGUMENT', 'options.sessions must implement SessionStore (with the inbox methods)');
}

/** A key manager kept in a store. */
export class StoredKeyManager {
  readonly #loc: KeyManagerLocation;
  #manager: X3DHKeyManager;
  #version: number;
  /** Loads, updates and acceptances run one at a time. */
  readonly #queue = new SerialQueue();

  /** Internal: `loc` is checked and plain. From JavaScript, `new StoredKeyManager(...)` is refused (`INVALID_STATE`). */
  private constructor(token: symbol, loc: KeyManagerLocation, manager: X3DHKeyManager, version: number) {
    if (token !== CONSTRUCT) throw new E2EError('INVALID_STATE', 'use StoredKeyManager.create or StoredKeyManager.load');
    brand.add(this);
    this.#loc = { store: loc.store, cipher: loc.cipher, did: loc.did };
    this.#manager = manager;
    this.#version = version;
  }

  /**
   * Saves `manager` (a copy; the caller keeps its own) as the key manager of `location.did`.
   * `STALE_STATE` if one is saved already.
   * @example
   * const keys = await StoredKeyManager.create({ store, cipher, did: 'did:mesh:bob' }, bobMgr);
   */
  static async create(location: KeyManagerLocation, manager: X3DHKeyManager): Promise<StoredKeyManager> {
    const loc = readLocation(location);
    // isInstance: instanceof runs a Proxy's getPrototypeOf trap, which may throw.
    if (!isInstance(manager, X3DHKeyManager)) throw new E2EError('INVALID_ARGUMENT', 'manager must be an X3DHKeyManager');
    const copy = copyOf(manager);
    try {
      const version = await callStore('saveKeyManager', () => loc.store.saveKeyManager(loc.did, seal(loc.cipher, loc.did, copy), 0));
      return new StoredKeyManager(CONSTRUCT, loc, copy, version);
    } catch (e) {
      copy.wipe();
      throw e;
    }
  }

  /** The key manager saved for `location.did`, or `null`. `STORE_ERROR` if it does not open or parse. */
  static async load(location: KeyManagerLocation): Promise<StoredKeyManager | null> {
    const loc = readLocation(location);
    const found = await callStore('loadKeyManager', () => loc.store.loadKeyManager(loc.did));
    if (found === null) return null;
    const rec = readStoredRecord(found);
    return new StoredKeyManager(CONSTRUCT, loc, restore(loc.cipher, loc.did, rec), rec.version);
  }

  /** The DID this manager belongs to. */
  get did(): string {
    return this.#loc.did;
  }

  /** The store it is saved in. */
  get store(): KeyManagerStore {
    return this.#loc.store;
  }

  /** The saved version this object holds. */
  get version(): number {
    return this.#version;
  }

  /**
   * The manager as last loaded or saved: read from it (bundles, ids), but change it only through
   * {@link update}, or the change is lost on the next one.
   */
  get manager(): X3DHKeyManager {
    return this.#manager;
  }

  /** Loads the newest saved state. `INVALID_STATE` (reason `deleted`) if it was deleted. */
  refresh(): Promise<void> {
    return this.#queue.run(() => this.#refresh());
  }

  /**
   * Applies `change` to a copy of the newest state and saves it (compare-and-swap). If another
   * process saved first, reloads and applies `change` again (up to 8 times, then `STALE_STATE`), so
   * `change` must depend only on the manager it is given. Returns what the saved run returned.
   */
  update<T>(change: (manager: X3DHKeyManager) => T): Promise<T> {
    if (typeof change !== 'function') return Promise.reject(new E2EError('INVALID_ARGUMENT', 'change must be a function'));
    return this.#queue.run(() => this.#update(change, () => undefined));
  }

  /**
   * Saves the manager as it is now, for code that changes it in place (e.g. an
   * `EncryptedTrustBridge` given {@link manager} as its key manager), with compare-and-swap:
   * `STALE_STATE` if another process saved since (the in-place changes cannot be merged; reload).
   * Prefer {@link update}, which re-applies a change to the newest state.
   */
  save(): Promise<number> {
    return this.#queue.run(async () => {
      const { store, cipher, did } = this.#loc;
      this.#version = await callStore('saveKeyManager', () => store.saveKeyManager(did, seal(cipher, did, this.#manager), this.#version));
      return this.#version;
    });
  }

  /**
   * Accepts an initiator's establishment and returns the new session, saved and attached. Checks
   * everything (keys, replay, the session slot) before spending anything: the one-time pre-key and
   * the one-time KEM pre-key are consumed, or the establishment recorded against replay, only
   * together with the saved session — in one atomic write when `options.sessions` is this
   * manager's own store (an `AgentStore`), so after any failure the same establishment can be
   * accepted again. With a separate session store the steps are: check the slot, spend, save the
   * session (a failure of that last save spends the establishment). A post-quantum establishment
   * gives a post-quantum session (`postQuantum`). Errors: `OTK_NOT_FOUND`, `KEM_NOT_FOUND` (a
   * one-time KEM pre-key used already), `SPK_NOT_FOUND`, `INVALID_KEY`, `MALFORMED_MESSAGE`,
   * `DUPLICATE_MESSAGE` (replay), `STALE_STATE` (reason `session`: a session with this peer exists),
   * `POST_QUANTUM_REQUIRED` (a classic establishment under `options.requirePostQuantum`).
   */
  acceptChannel(establishment: ChannelEstablishment | ChannelEstablishmentFields, options: AcceptOptions): Promise<PersistentChannel> {
    return this.#queue.run(async () => {
      const e = ChannelEstablishment.from(establishment);
      const opts = readAcceptOptions(options); // read once: the loop below uses it again and again
      const store = this.#loc.store as Partial<AgentStore>;
      const atomic = (opts.sessions as unknown) === store && typeof store.saveAcceptance === 'function';
      let refreshed = false;
      for (let attempt = 1; ; attempt++) {
        const copy = copyOf(this.#manager);
        // Read before createReceiver, which consumes a one-time KEM pre-key in the copy.
        const spends = spendsOneTimeKey(e, copy);
        let channel: SecureChannel;
        try {
          channel = SecureChannel.createReceiver(copy, e, opts.associatedData, opts.receiver);
        } catch (err) {
          copy.wipe();
          if (!isMissingKey(err) || refreshed) throw err;
          refreshed = true; // our copy may be older than a key another process made: reload once
          await this.#refresh();
          continue;
        }
        let adopted = false;
        const adopt = (version: number): void => {
          this.#manager.wipe();
          this.#manager = copy;
          this.#version = version;
          adopted = true;
        };
        try {
          const sessionVersion = await this.#spendAndSave(e, copy, spends, channel, opts, atomic, adopt);
          return attachSavedChannel(
            { store: opts.sessions, cipher: this.#loc.cipher, localDid: this.#loc.did, peerDid: opts.peerDid },
            channel,
            sessionVersion,
          );
        } catch (err) {
          channel.close();
          if (!isE2EError(err, 'STALE_STATE') || err.reason !== 'key_manager' || attempt >= MAX_CAS_ATTEMPTS) throw err;
          await this.#refresh(); // another process saved the key manager first: redo on the newer state
        } finally {
          if (!adopted) copy.wipe();
        }
      }
    });
  }

  /**
   * Spends the establishment (when `spends`, the one-time keys consumed in `copy`; else the replay
   * record) together with the new session; calls `adopt` as soon as the key manager with the keys
   * spent is saved. Returns the session version.
   */
  async #spendAndSave(
    e: ChannelEstablishment,
    copy: X3DHKeyManager,
    spends: boolean,
    channel: SecureChannel,
    options: AcceptOptions,
    atomic: boolean,
    adopt: (version: number) => void,
  ): Promise<number> {
    const { store, cipher, did } = this.#loc;
    const { sessions, peerDid } = options;
    const found = await callStore('loadSession', () => sessions.loadSession(did, peerDid));
    const current = found === null ? null : readStoredRecord(found);
    if (current !== null && options.replaceSession !== true) throw staleStateError(0, current.version, 'session');
    const sessionVersion = current?.version ?? 0;
    const spkId = e.signedPreKeyId ?? (copy.signedPreKey as { keyId: number }).keyId;
    const session = { data: sealChannelState(cipher, channel, did, peerDid), expectedVersion: sessionVersion };
    if (atomic) {
      const write: AcceptanceWrite = spends
        ? { did, peerDid, session, keyManager: { data: seal(cipher, did, copy), expectedVersion: this.#version } }
        : { did, peerDid, session, establishment: { signedPreKeyId: spkId, fingerprint: establishmentFingerprint(e) } };
      let v: AcceptanceVersions;
      try {
        v = await callStore('saveAcceptance', () => (store as AgentStore).saveAcceptance(write));
      } catch (err) {
        if (!isE2EError(err, 'STORE_ERROR') || err.reason !== StoreErrorReason.BACKEND) throw err;
        // Outcome unknown (a connection dropped after the write?). The sealed blob has a random nonce,
        // so finding it in the slot proves the write committed: then this acceptance succeeded.
        const saved = await callStore('loadSession', () => sessions.loadSession(did, peerDid)).catch(() => null);
        let rec: StoredRecord | null = null;
        try {
          rec = saved === null ? null : readStoredRecord(saved);
        } catch {
          throw err; // unreadable: the outcome stays unknown
        }
        if (rec === null || !isUsableBytes(rec.data) || !constantTimeEqual(rec.data, session.data)) throw err;
        if (spends) await this.#refresh().catch(() => Promise.reject(err)); // the saved key manager, with its version
        return rec.version;
      }
      const versions = readVersions(v, spends);
      if (versions === null) throw storeFailure(StoreErrorReason.CORRUPT, 'the store returned no versions');
      if (spends) adopt(versions.keyManagerVersion as number);
      return versions.sessionVersion;
    }
    // Separate stores: spend first (never a one-time key twice), then save the session.
    if (spends) {
      let version: number;
      try {
        version = await callStore('saveKeyManager', () => store.saveKeyManager(did, seal(cipher, did, copy), this.#version));
      } catch (err) {
        if (isE2EError(err, 'STALE_STATE')) throw new E2EError('STALE_STATE', 'another process saved the key manager first', 'key_manager');
        throw err;
      }
      adopt(version); // saved: ours now, whatever happens to the session save
    } else if (!(await callStore('markEstablishment', () => store.markEstablishment(did, spkId, establishmentFingerprint(e))))) {
      throw establishmentReplayError();
    }
    return callStore('saveSession', () => sessions.saveSession(did, peerDid, session.data, sessionVersion));
  }

  async #refresh(): Promise<void> {
    const found = await callStore('loadKeyManager', () => this.#loc.store.loadKeyManager(this.#loc.did));
    if (found === null) throw new E2EError('INVALID_STATE', 'the saved key manager was deleted', 'deleted');
    const rec = readStoredRecord(found);
    const m = restore(this.#loc.cipher, this.#loc.did, rec);
    this.#manager.wipe();
    this.#manager = m;
    this.#version = rec.version;
  }

  async #update<T>(change: (m: X3DHKeyManager) => T, onDiscard: () => void): Promise<T> {
    let refreshed = false;
    for (let attempt = 1; ; attempt++) {
      const copy = copyOf(this.#manager);
      let result: T;
      try {
        result = change(copy);
      } catch (e) {
        copy.wipe();
        if (!isMissingKey(e) || refreshed) throw e;
        refreshed = true; // our copy may be older than a key another process made: reload once
        await this.#refresh();
        continue;
      }
      try {
        const version = await callStore('saveKeyManager', () =>
          this.#loc.store.saveKeyManager(this.#loc.did, seal(this.#loc.cipher, this.#loc.did, copy), this.#version),
        );
        this.#manager.wipe();
        this.#manager = copy;
        this.#version = version;
        return result;
      } catch (e) {
        copy.wipe();
        onDiscard();
        if (!isE2EError(e, 'STALE_STATE') || attempt >= MAX_CAS_ATTEMPTS) throw e;
        await this.#refresh();
      }
    }
  }
}
