/**
 * `StoredKeyManager`: an `X3DHKeyManager` whose private side (identity, signed pre-keys, unclaimed
 * one-time private keys) lives sealed in a `KeyManagerStore`, so an agent can respond after a
 * restart, and several processes can share one identity.
 *
 * Every change is made on a fresh copy and saved with compare-and-swap; when another process saved
 * first, the change is re-applied to the newer state. Accepting a channel consumes the one-time
 * pre-key (saved) before the session is created, so a crash can cost an establishment but never lets
 * a one-time key be used twice. An establishment without a one-time pre-key (the empty-pool last
 * resort) is accepted once per signed pre-key: a replay fails with `DUPLICATE_MESSAGE`
 * (reason `establishment_replay`).
 */
import { E2EError, isE2EError } from '../errors';
import { concatBytes, memzero, sha256, toHex } from '../crypto';
import { X3DHKeyManager } from '../x3dh';
import { ChannelEstablishment, ChannelEstablishmentFields, ChannelOptions, SecureChannel } from '../channel';
import { PersistentChannel } from './persistent-channel';
import { StorageCipher } from './storage-cipher';
import { KeyManagerStore, SessionStore, StoredRecord } from './types';
import { assertStoreId } from './validate';

/** Where a key manager is saved. */
export interface KeyManagerLocation {
  readonly store: KeyManagerStore;
  readonly cipher: StorageCipher;
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
  /** The ratchet's limits. */
  readonly channelOptions?: ChannelOptions;
  /** Replace a session already saved for this peer (default: `STALE_STATE` if one exists). */
  readonly replaceSession?: boolean;
}

/** Most attempts of one change when other processes keep saving first. */
const MAX_ATTEMPTS = 8;

function assertLocation(loc: unknown): asserts loc is KeyManagerLocation {
  const l = loc as Partial<KeyManagerLocation> | null;
  if (typeof l !== 'object' || l === null) throw new E2EError('INVALID_ARGUMENT', 'a key manager location is required');
  if (!(l.cipher instanceof StorageCipher)) throw new E2EError('INVALID_ARGUMENT', 'cipher must be a StorageCipher');
  const s = l.store as Partial<KeyManagerStore> | undefined;
  if (typeof s?.loadKeyManager !== 'function' || typeof s.saveKeyManager !== 'function' || typeof s.markEstablishment !== 'function') {
    throw new E2EError('INVALID_ARGUMENT', 'store must implement KeyManagerStore');
  }
  assertStoreId(l.did, 'did');
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
    throw new E2EError('STORE_ERROR', 'the saved key manager does not parse', 'corrupt');
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

/** The replay fingerprint of an establishment: SHA-256(initiator identity ‖ ephemeral key), hex. */
export function establishmentFingerprint(e: ChannelEstablishment): string {
  return toHex(sha256(concatBytes(e.initiatorIdentityKey, e.ephemeralPublicKey)));
}

/** A key manager kept in a store. */
export class StoredKeyManager {
  readonly #loc: KeyManagerLocation;
  #manager: X3DHKeyManager;
  #version: number;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(loc: KeyManagerLocation, manager: X3DHKeyManager, version: number) {
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
    assertLocation(location);
    if (!(manager instanceof X3DHKeyManager)) throw new E2EError('INVALID_ARGUMENT', 'manager must be an X3DHKeyManager');
    const copy = copyOf(manager);
    try {
      const version = await location.store.saveKeyManager(location.did, seal(location.cipher, location.did, copy), 0);
      return new StoredKeyManager(location, copy, version);
    } catch (e) {
      copy.wipe();
      throw e;
    }
  }

  /** The key manager saved for `location.did`, or `null`. `STORE_ERROR` if it does not open or parse. */
  static async load(location: KeyManagerLocation): Promise<StoredKeyManager | null> {
    assertLocation(location);
    const rec = await location.store.loadKeyManager(location.did);
    return rec === null ? null : new StoredKeyManager(location, restore(location.cipher, location.did, rec), rec.version);
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
    return this.#exclusive(() => this.#refresh());
  }

  /**
   * Applies `change` to a copy of the newest state and saves it (compare-and-swap). If another
   * process saved first, reloads and applies `change` again (up to 8 times, then `STALE_STATE`), so
   * `change` must depend only on the manager it is given. Returns what the saved run returned.
   */
  update<T>(change: (manager: X3DHKeyManager) => T): Promise<T> {
    if (typeof change !== 'function') return Promise.reject(new E2EError('INVALID_ARGUMENT', 'change must be a function'));
    return this.#exclusive(() => this.#update(change, () => undefined));
  }

  /**
   * Saves the manager as it is now, for code that changes it in place (e.g. an
   * `EncryptedTrustBridge` given {@link manager} as its key manager), with compare-and-swap:
   * `STALE_STATE` if another process saved since (the in-place changes cannot be merged; reload).
   * Prefer {@link update}, which re-applies a change to the newest state.
   */
  save(): Promise<number> {
    return this.#exclusive(async () => {
      const { store, cipher, did } = this.#loc;
      this.#version = await store.saveKeyManager(did, seal(cipher, did, this.#manager), this.#version);
      return this.#version;
    });
  }

  /**
   * Accepts an initiator's establishment: checks it is not a replay (without a one-time pre-key),
   * responds (consuming the one-time pre-key, saved first), then saves the new session and returns
   * it attached. Errors: `OTK_NOT_FOUND`, `SPK_NOT_FOUND`, `INVALID_KEY`, `MALFORMED_MESSAGE`,
   * `DUPLICATE_MESSAGE` (replay), `STALE_STATE` (a session with this peer exists).
   */
  acceptChannel(establishment: ChannelEstablishment | ChannelEstablishmentFields, options: AcceptOptions): Promise<PersistentChannel> {
    return this.#exclusive(async () => {
      const e = ChannelEstablishment.from(establishment);
      if (typeof options !== 'object' || options === null) throw new E2EError('INVALID_ARGUMENT', 'accept options are required');
      assertStoreId(options.peerDid, 'peerDid');
      const made: { channel: SecureChannel | null } = { channel: null };
      const discard = (): void => {
        made.channel?.close();
        made.channel = null;
      };
      const open = (m: X3DHKeyManager): void => {
        discard();
        made.channel = SecureChannel.createReceiver(m, e, options.associatedData, options.channelOptions);
      };
      try {
        if (e.usedOneTimeKeyId === undefined) {
          // Nothing is consumed, so nothing to save; but refuse a replay, atomically across processes.
          await this.#withFreshRetry(() => open(this.#manager));
          const spkId = e.signedPreKeyId ?? (this.#manager.signedPreKey as { keyId: number }).keyId;
          if (!(await this.#loc.store.markEstablishment(this.#loc.did, spkId, establishmentFingerprint(e)))) {
            throw new E2EError('DUPLICATE_MESSAGE', 'this establishment was already accepted', 'establishment_replay');
          }
        } else {
          await this.#update(open, discard);
        }
      } catch (err) {
        discard();
        throw err;
      }
      const accepted = made.channel as SecureChannel | null;
      if (accepted === null) throw new E2EError('INVALID_STATE', 'no channel was created');
      return PersistentChannel.create(
        { store: options.sessions, cipher: this.#loc.cipher, localDid: this.#loc.did, peerDid: options.peerDid },
        accepted, { replace: options.replaceSession === true },
      );
    });
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #refresh(): Promise<void> {
    const rec = await this.#loc.store.loadKeyManager(this.#loc.did);
    if (rec === null) throw new E2EError('INVALID_STATE', 'the saved key manager was deleted', 'deleted');
    const m = restore(this.#loc.cipher, this.#loc.did, rec);
    this.#manager.wipe();
    this.#manager = m;
    this.#version = rec.version;
  }

  /** Runs `fn` on the current state; if a key it names is missing, reloads once (another process may have made it). */
  async #withFreshRetry(fn: () => void): Promise<void> {
    try {
      fn();
    } catch (e) {
      if (!isE2EError(e, 'SPK_NOT_FOUND') && !isE2EError(e, 'OTK_NOT_FOUND')) throw e;
      await this.#refresh();
      fn();
    }
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
        const missing = isE2EError(e, 'SPK_NOT_FOUND') || isE2EError(e, 'OTK_NOT_FOUND');
        if (!missing || refreshed) throw e;
        refreshed = true; // our copy may be older than a key another process made: reload once
        await this.#refresh();
        continue;
      }
      try {
        const version = await this.#loc.store.saveKeyManager(this.#loc.did, seal(this.#loc.cipher, this.#loc.did, copy), this.#version);
        this.#manager.wipe();
        this.#manager = copy;
        this.#version = version;
        return result;
      } catch (e) {
        copy.wipe();
        onDiscard();
        if (!isE2EError(e, 'STALE_STATE') || attempt >= MAX_ATTEMPTS) throw e;
        await this.#refresh();
      }
    }
  }
}
