/**
 * `PersistentChannel`: a `SecureChannel` attached to a `SessionStore`, saved (sealed, with
 * compare-and-swap) on every step.
 *
 * Persist-before-send: `send` encrypts on a copy of the state, saves the advanced copy, and only then
 * returns the ciphertext. A crash before the save leaves no ciphertext behind; a crash after it
 * leaves the key spent. Either way no message key ever encrypts two messages. `receive` saves after a
 * successful decrypt and before returning (and, with `deliver`, only after the application took the
 * plaintext), so a crash never loses a message the sender may consider delivered. When another
 * process saved first, the save is refused with `STALE_STATE`: nothing is returned, nothing changes,
 * and {@link PersistentChannel.refresh} loads the newer state. Operations on one object run one at a time.
 */
import { E2EError } from '../errors';
import { memzero } from '../crypto';
import { EncryptedMessage } from '../ratchet';
import { SecureChannel } from '../channel';
import { StorageCipher } from './storage-cipher';
import { SessionStore, StoredRecord } from './types';
import { assertStoreId } from './validate';

/** Where a channel is saved: the store, the cipher sealing it, and its two DIDs. */
export interface SessionLocation {
  readonly store: SessionStore;
  readonly cipher: StorageCipher;
  readonly localDid: string;
  readonly peerDid: string;
}

/** Options of {@link PersistentChannel.receive}. */
export interface ReceiveOptions {
  /**
   * Called with the plaintext before the advanced state is saved. If it throws, nothing is saved
   * and the message can be received again: at-least-once delivery into the application's own store.
   */
  deliver?: (plaintext: Uint8Array) => void | Promise<void>;
}

/** Options of {@link PersistentChannel.load}. */
export interface LoadOptions {
  /** The clock of the restored ratchet (ms since the epoch; for tests). */
  now?: () => number;
}

function assertLocation(loc: unknown): asserts loc is SessionLocation {
  const l = loc as Partial<SessionLocation> | null;
  if (typeof l !== 'object' || l === null) throw new E2EError('INVALID_ARGUMENT', 'a session location is required');
  if (!(l.cipher instanceof StorageCipher)) throw new E2EError('INVALID_ARGUMENT', 'cipher must be a StorageCipher');
  const s = l.store as Partial<SessionStore> | undefined;
  if (typeof s?.loadSession !== 'function' || typeof s.saveSession !== 'function' || typeof s.deleteSession !== 'function') {
    throw new E2EError('INVALID_ARGUMENT', 'store must implement SessionStore');
  }
  assertStoreId(l.localDid, 'localDid');
  assertStoreId(l.peerDid, 'peerDid');
}

/** The AEAD context of a session blob: it only opens in its own slot. */
export function sessionContext(localDid: string, peerDid: string): string {
  return `agentmesh-session\u0000${localDid}\u0000${peerDid}`;
}

function corrupt(): E2EError {
  return new E2EError('STORE_ERROR', 'the saved session does not parse', 'corrupt');
}

/** A channel that saves itself before every result it returns. */
export class PersistentChannel {
  readonly #loc: SessionLocation;
  readonly #ctx: string;
  readonly #now: (() => number) | undefined;
  #channel: SecureChannel;
  #version: number;
  #closed = false;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(loc: SessionLocation, channel: SecureChannel, version: number, now: (() => number) | undefined) {
    this.#loc = { store: loc.store, cipher: loc.cipher, localDid: loc.localDid, peerDid: loc.peerDid };
    this.#ctx = sessionContext(loc.localDid, loc.peerDid);
    this.#channel = channel;
    this.#version = version;
    this.#now = now;
  }

  /**
   * Saves a new channel at `location` and returns it attached. Takes ownership of `channel`: on any
   * failure it is closed (wiped). `STALE_STATE` when a session is already saved there, unless
   * `replace` is set (then it replaces the saved one, with compare-and-swap against what it read).
   * @example
   * const { channel, establishment } = SecureChannel.createSender(aliceMgr, bundle, ad);
   * const alice = await PersistentChannel.create({ store, cipher, localDid: 'did:mesh:alice', peerDid: 'did:mesh:bob' }, channel);
   */
  static async create(location: SessionLocation, channel: SecureChannel, options: { replace?: boolean; now?: () => number } = {}): Promise<PersistentChannel> {
    try {
      assertLocation(location);
      if (!(channel instanceof SecureChannel)) throw new E2EError('INVALID_ARGUMENT', 'channel must be a SecureChannel');
      if (channel.isClosed) throw new E2EError('CHANNEL_CLOSED', 'the channel is closed');
      let expected = 0;
      if (options?.replace === true) expected = (await location.store.loadSession(location.localDid, location.peerDid))?.version ?? 0;
      const pc = new PersistentChannel(location, channel, expected, options?.now);
      pc.#version = await pc.#save(channel);
      return pc;
    } catch (e) {
      if (channel instanceof SecureChannel) channel.close();
      throw e;
    }
  }

  /** The channel saved at `location`, or `null`. `STORE_ERROR` if the blob does not open or parse. */
  static async load(location: SessionLocation, options: LoadOptions = {}): Promise<PersistentChannel | null> {
    assertLocation(location);
    const now = options?.now;
    if (now !== undefined && typeof now !== 'function') throw new E2EError('INVALID_ARGUMENT', 'now must be a function');
    const rec = await location.store.loadSession(location.localDid, location.peerDid);
    if (rec === null) return null;
    const ctx = sessionContext(location.localDid, location.peerDid);
    return new PersistentChannel(location, restore(location.cipher, rec, ctx, now), rec.version, now);
  }

  /** The local DID. */
  get localDid(): string {
    return this.#loc.localDid;
  }

  /** The peer DID. */
  get peerDid(): string {
    return this.#loc.peerDid;
  }

  /** The version of the saved state this object holds. */
  get version(): number {
    return this.#version;
  }

  /** Messages sent plus received (as saved). */
  get messageCount(): number {
    return this.#channel.messageCount;
  }

  /** Whether {@link close} was called (or the saved session was found deleted). */
  get isClosed(): boolean {
    return this.#closed;
  }

  /**
   * Encrypts `plaintext`, saves the advanced state, then returns the message. `STALE_STATE` if
   * another process saved first (no message is returned: {@link refresh} and send again).
   */
  send(plaintext: Uint8Array): Promise<EncryptedMessage> {
    return this.#exclusive(async () => {
      const scratch = this.#copy();
      let message: EncryptedMessage;
      try {
        message = scratch.send(plaintext);
      } catch (e) {
        scratch.close();
        throw e;
      }
      await this.#commit(scratch);
      return message;
    });
  }

  /**
   * Decrypts `message`, hands the plaintext to `options.deliver` (if given), saves the advanced
   * state, then returns the plaintext. On a decrypt error (`DECRYPT_FAILED`, `DUPLICATE_MESSAGE`,
   * ...) or a failed `deliver` nothing is saved; on `STALE_STATE` the plaintext is wiped, not returned.
   */
  receive(message: EncryptedMessage | Uint8Array, options: ReceiveOptions = {}): Promise<Uint8Array> {
    return this.#exclusive(async () => {
      const deliver = options?.deliver;
      if (deliver !== undefined && typeof deliver !== 'function') throw new E2EError('INVALID_ARGUMENT', 'deliver must be a function');
      const scratch = this.#copy();
      let plaintext: Uint8Array;
      try {
        plaintext = scratch.receive(message);
      } catch (e) {
        scratch.close();
        throw e;
      }
      try {
        // A copy: if the save then fails, the plaintext is wiped, and the application's copy must survive.
        if (deliver) await deliver(Uint8Array.from(plaintext));
        await this.#commit(scratch);
      } catch (e) {
        scratch.close();
        memzero(plaintext);
        throw e;
      }
      return plaintext;
    });
  }

  /**
   * Loads the newest saved state (after a `STALE_STATE`). If the saved session was deleted, this
   * channel closes and `CHANNEL_CLOSED` (reason `session_deleted`) is thrown.
   */
  refresh(): Promise<void> {
    return this.#exclusive(async () => {
      const { store, localDid, peerDid, cipher } = this.#loc;
      const rec = await store.loadSession(localDid, peerDid);
      if (rec === null) {
        this.#closed = true;
        this.#channel.close();
        throw new E2EError('CHANNEL_CLOSED', 'the saved session was deleted', 'session_deleted');
      }
      const channel = restore(cipher, rec, this.#ctx, this.#now);
      this.#channel.close();
      this.#channel = channel;
      this.#version = rec.version;
    });
  }

  /** Closes the channel and wipes its keys; with `deleteSaved`, also deletes the saved session. Idempotent. */
  close(options: { deleteSaved?: boolean } = {}): Promise<void> {
    return this.#exclusive(async () => {
      this.#closed = true;
      this.#channel.close();
      if (options?.deleteSaved === true) await this.#loc.store.deleteSession(this.#loc.localDid, this.#loc.peerDid);
    }, true);
  }

  #exclusive<T>(fn: () => Promise<T>, evenIfClosed = false): Promise<T> {
    const run = this.#tail.then(() => {
      if (this.#closed && !evenIfClosed) throw new E2EError('CHANNEL_CLOSED', 'the channel is closed');
      return fn();
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** A working copy of the channel: the live one changes only after a successful save. */
  #copy(): SecureChannel {
    const bytes = this.#channel.toBytes();
    try {
      return SecureChannel.fromBytes(bytes, this.#now ? { now: this.#now } : {});
    } finally {
      memzero(bytes);
    }
  }

  async #commit(scratch: SecureChannel): Promise<void> {
    let version: number;
    try {
      version = await this.#save(scratch);
    } catch (e) {
      scratch.close();
      throw e;
    }
    this.#channel.close();
    this.#channel = scratch;
    this.#version = version;
  }

  async #save(channel: SecureChannel): Promise<number> {
    const { store, localDid, peerDid, cipher } = this.#loc;
    const bytes = channel.toBytes();
    let sealed: Uint8Array;
    try {
      sealed = cipher.seal(bytes, this.#ctx);
    } finally {
      memzero(bytes);
    }
    return store.saveSession(localDid, peerDid, sealed, this.#version);
  }
}

function restore(cipher: StorageCipher, rec: StoredRecord, ctx: string, now: (() => number) | undefined): SecureChannel {
  const bytes = cipher.open(rec.data, ctx);
  try {
    return SecureChannel.fromBytes(bytes, now ? { now } : {});
  } catch {
    throw corrupt();
  } finally {
    memzero(bytes);
  }
}
