/**
 * `PersistentChannel`: a `SecureChannel` attached to a `SessionStore`, saved (sealed, with
 * compare-and-swap) on every step.
 *
 * Persist-before-send: `send` encrypts on a copy of the state, saves the advanced copy, and only then
 * returns the ciphertext. A crash before the save leaves no ciphertext behind; a crash after it
 * leaves the key spent. Either way no message key ever encrypts two messages.
 *
 * The inbox: `receive` saves the decrypted message (sealed) together with the advanced state in one
 * atomic write, and the message stays there until the application acknowledges it ({@link
 * PersistentChannel.ack}, or `deliver`). So a store that fails after committing (a dropped
 * connection) loses nothing: receiving the envelope again finds the message in the inbox, and after a
 * crash {@link PersistentChannel.pending} lists what was not acknowledged. Within one process (per
 * store object) a message is handed out once; after a restart, unacknowledged ones again (at least once).
 *
 * When another process saved first, a save is refused with `STALE_STATE`: nothing is returned,
 * nothing changes, and {@link PersistentChannel.refresh} loads the newer state. After any other
 * failed save the next call reloads the saved state first (the save may have been committed).
 * Operations on one object run one at a time. A store's own errors that are not `E2EError`s become
 * `STORE_ERROR` (reason `backend`, the original as `cause`).
 */
import { E2EError, isE2EError } from '../errors';
import { isInstance, isUsableBytes, memzero, readFields, readOptions, sha256, toHex, typed } from '../crypto';
import { EncryptedMessage } from '../ratchet';
import { SecureChannel } from '../channel';
import { StorageCipher, isStorageCipher } from './storage-cipher';
import { SessionStore, StoredRecord } from './types';
import { assertInboxId, assertStoreId, callStore, readStoredRecord, storeFailure } from './validate';
import { StoreErrorReason } from './reasons';
import { BoundedSet } from '../util/bounded-map';
import { SerialQueue } from '../util/serial-queue';
import { MAX_INBOX_ENTRIES } from '../limits';

/** Where a channel is saved: the store, the cipher sealing it, and its two DIDs. */
export interface SessionLocation {
  /** The store holding the sealed session and its inbox. */
  readonly store: SessionStore;
  /** Seals the session at rest (the AEAD context binds it to the two DIDs). */
  readonly cipher: StorageCipher;
  /** Our DID: the session's first key in the store (a store id: 1 to 1024 characters, no NUL). */
  readonly localDid: string;
  /** The peer's DID: the session's second key in the store (a store id). */
  readonly peerDid: string;
}

/** Options of {@link PersistentChannel.receive}. */
export interface ReceiveOptions {
  /**
   * Called with (a copy of) the plaintext after it was saved in the inbox together with the advanced
   * state; when it resolves, the message is acknowledged (deleted from the inbox). If it throws,
   * `receive` rejects with its error and the message stays in the inbox: receiving the envelope
   * again (or {@link PersistentChannel.pending}) hands it out again. At-least-once delivery into the
   * application's own store.
   */
  deliver?: (plaintext: Uint8Array) => void | Promise<void>;
}

/** A received message not yet acknowledged. */
export interface InboxMessage {
  /** Its id ({@link inboxMessageId} of the envelope): pass it to {@link PersistentChannel.ack}. */
  readonly id: string;
  /** The plaintext (the caller's copy). */
  readonly plaintext: Uint8Array;
}

/** Options of {@link PersistentChannel.load}. */
export interface LoadOptions {
  /** The clock of the restored ratchet (ms since the epoch; for tests). */
  now?: () => number;
}

const SESSION_METHODS = [
  'loadSession',
  'saveSession',
  'deleteSession',
  'saveSessionWithInbox',
  'loadInboxEntry',
  'listInbox',
  'deleteInboxEntry',
] as const;

/** Whether `s` has every method of {@link SessionStore} (internal to the stores). */
export function isSessionStore(s: unknown): s is SessionStore {
  if ((typeof s !== 'object' && typeof s !== 'function') || s === null) return false;
  const o = s as Record<string, unknown>;
  try {
    return SESSION_METHODS.every((m) => typeof o[m] === 'function');
  } catch {
    return false; // a throwing getter or Proxy trap: not a store (a predicate never throws)
  }
}

/**
 * A checked, plain copy of a session location: each field read once, so a getter cannot answer
 * differently between the check and the use. `INVALID_ARGUMENT` for anything else.
 */
function readLocation(loc: unknown): SessionLocation {
  if (typeof loc !== 'object' || loc === null) throw new E2EError('INVALID_ARGUMENT', 'a session location is required');
  const l = readFields(loc, ['store', 'cipher', 'localDid', 'peerDid'], 'session location');
  // The brand, not instanceof: a Proxy's trap or an object made from the prototype would pass or throw.
  if (!isStorageCipher(l.cipher)) throw new E2EError('INVALID_ARGUMENT', 'cipher must be a StorageCipher');
  if (!isSessionStore(l.store)) throw new E2EError('INVALID_ARGUMENT', 'store must implement SessionStore (with the inbox methods)');
  assertStoreId(l.localDid, 'localDid');
  assertStoreId(l.peerDid, 'peerDid');
  return { store: l.store, cipher: l.cipher, localDid: l.localDid, peerDid: l.peerDid };
}

/** A `now` option: a function or `undefined`, else `INVALID_ARGUMENT`. */
function nowOption(now: unknown): (() => number) | undefined {
  if (now !== undefined && typeof now !== 'function') throw new E2EError('INVALID_ARGUMENT', 'now must be a function');
  return now as (() => number) | undefined;
}

/** The AEAD context of a session blob: it only opens in its own slot. `INVALID_ARGUMENT` unless both are store ids. */
export function sessionContext(localDid: string, peerDid: string): string {
  assertStoreId(localDid, 'localDid');
  assertStoreId(peerDid, 'peerDid');
  return `agentmesh-session\u0000${localDid}\u0000${peerDid}`;
}

/** The AEAD context of an inbox entry: it only opens in its own session, under its own id. */
function inboxContext(localDid: string, peerDid: string, id: string): string {
  return `agentmesh-inbox\u0000${localDid}\u0000${peerDid}\u0000${id}`;
}

/**
 * The inbox id of a message: SHA-256 of its binary envelope, hex. Stable across retries and
 * processes; an envelope changed in any bit has another id (and does not decrypt).
 * `MALFORMED_MESSAGE` for bytes that are not an envelope.
 */
export function inboxMessageId(message: EncryptedMessage | Uint8Array): string {
  return toHex(sha256(envelopeOf(message).serialize()));
}

function envelopeOf(message: unknown): EncryptedMessage {
  // isUsableBytes and isInstance, not instanceof: a Proxy's getPrototypeOf trap may throw, a fake
  // Uint8Array has no length, and a detached view has no bytes (all MALFORMED_MESSAGE below).
  if (isUsableBytes(message)) return EncryptedMessage.deserialize(message);
  if (isInstance(message, EncryptedMessage)) {
    try {
      message.serialize();
      return message;
    } catch (e) {
      if (e instanceof E2EError) throw e;
    }
  }
  throw new E2EError('MALFORMED_MESSAGE', 'message must be an EncryptedMessage or its envelope bytes');
}

function corrupt(): E2EError {
  return storeFailure(StoreErrorReason.CORRUPT, 'the saved session does not parse');
}

/** The sealed bytes of `channel`'s state for its slot (for the key manager, which saves a new session). */
export function sealChannelState(cipher: StorageCipher, channel: SecureChannel, localDid: string, peerDid: string): Uint8Array {
  const bytes = channel.toBytes();
  try {
    return cipher.seal(bytes, sessionContext(localDid, peerDid));
  } finally {
    memzero(bytes);
  }
}

/**
 * The ids of one session handed out in this process, oldest first. Bounded: more ids than the inbox
 * can hold means the oldest were acknowledged elsewhere.
 */
type HandedOut = BoundedSet<string>;

/**
 * Per store object (a process's connection) and session: what was handed out. Shared by every
 * channel over that store, so loading the channel again in the same process does not hand a message
 * out twice; a restarted process (a new store object) hands out what was not acknowledged.
 */
const HANDED_OUT = new WeakMap<object, Map<string, HandedOut>>();

function handedOutFor(store: SessionStore, localDid: string, peerDid: string): HandedOut {
  let sessions = HANDED_OUT.get(store);
  if (!sessions) HANDED_OUT.set(store, (sessions = new Map()));
  const key = `${localDid}\u0000${peerDid}`;
  let h = sessions.get(key);
  if (!h) sessions.set(key, (h = new BoundedSet<string>(2 * MAX_INBOX_ENTRIES)));
  return h;
}

let attach: (loc: SessionLocation, channel: SecureChannel, version: number) => PersistentChannel;

/** Proves a construction comes from this module: the constructor is private to TypeScript only. */
const CONSTRUCT = Symbol('PersistentChannel');

/**
 * A channel over a state already saved at `version` (by `StoredKeyManager.acceptChannel`'s atomic
 * write). Internal to the stores: not exported from the package.
 */
export function attachSavedChannel(loc: SessionLocation, channel: SecureChannel, version: number): PersistentChannel {
  return attach(loc, channel, version);
}

/** A channel that saves itself before every result it returns. */
export class PersistentChannel {
  readonly #loc: SessionLocation;
  readonly #ctx: string;
  readonly #now: (() => number) | undefined;
  #channel: SecureChannel;
  #version: number;
  #closed = false;
  /** Sends, receives, reloads and close run one at a time. */
  readonly #queue = new SerialQueue();
  /** A save failed in a way that may have committed: reload before the next step. */
  #uncertain = false;
  /** Inbox ids handed out in this process (by any channel over this store object) and not acknowledged yet. */
  readonly #handedOut: HandedOut;

  static {
    attach = (loc, channel, version) => new PersistentChannel(CONSTRUCT, loc, channel, version, undefined);
  }

  /** Internal: `loc` is checked and plain. From JavaScript, `new PersistentChannel(...)` is refused (`INVALID_STATE`). */
  private constructor(token: symbol, loc: SessionLocation, channel: SecureChannel, version: number, now: (() => number) | undefined) {
    if (token !== CONSTRUCT) throw new E2EError('INVALID_STATE', 'use PersistentChannel.create or PersistentChannel.load');
    this.#loc = { store: loc.store, cipher: loc.cipher, localDid: loc.localDid, peerDid: loc.peerDid };
    this.#ctx = sessionContext(loc.localDid, loc.peerDid);
    this.#channel = channel;
    this.#version = version;
    this.#now = now;
    this.#handedOut = handedOutFor(loc.store, loc.localDid, loc.peerDid);
  }

  /**
   * Saves a new channel at `location` and returns it attached. Takes ownership of `channel`: on any
   * failure it is closed (wiped). `STALE_STATE` when a session is already saved there, unless
   * `replace` is set (then it replaces the saved one, with compare-and-swap against what it read).
   * @example
   * const { channel, establishment } = SecureChannel.createSender(aliceMgr, bundle, ad);
   * const alice = await PersistentChannel.create({ store, cipher, localDid: 'did:mesh:alice', peerDid: 'did:mesh:bob' }, channel);
   */
  static async create(
    location: SessionLocation,
    channel: SecureChannel,
    options: { replace?: boolean; now?: () => number } = {},
  ): Promise<PersistentChannel> {
    // isInstance: instanceof runs a Proxy's getPrototypeOf trap, which may throw.
    const owned = isInstance(channel, SecureChannel);
    try {
      const loc = readLocation(location);
      const opts = readOptions(options, ['replace', 'now'], 'options');
      const now = nowOption(opts.now);
      if (!owned) throw new E2EError('INVALID_ARGUMENT', 'channel must be a SecureChannel');
      if (typed(() => channel.isClosed, 'INVALID_ARGUMENT', 'channel')) throw new E2EError('CHANNEL_CLOSED', 'the channel is closed');
      let expected = 0;
      if (opts.replace === true) {
        const rec = await callStore('loadSession', () => loc.store.loadSession(loc.localDid, loc.peerDid));
        expected = rec === null || rec === undefined ? 0 : readStoredRecord(rec).version;
      }
      const pc = new PersistentChannel(CONSTRUCT, loc, channel, expected, now);
      pc.#version = await pc.#save(channel);
      return pc;
    } catch (e) {
      if (owned) typed(() => channel.close(), 'INVALID_ARGUMENT', 'channel');
      throw e;
    }
  }

  /** The channel saved at `location`, or `null`. `STORE_ERROR` if the blob does not open or parse. */
  static async load(location: SessionLocation, options: LoadOptions = {}): Promise<PersistentChannel | null> {
    const loc = readLocation(location);
    const now = nowOption(readOptions(options, ['now'], 'options').now);
    const found = await callStore('loadSession', () => loc.store.loadSession(loc.localDid, loc.peerDid));
    if (found === null) return null;
    const rec = readStoredRecord(found);
    const ctx = sessionContext(loc.localDid, loc.peerDid);
    return new PersistentChannel(CONSTRUCT, loc, restore(loc.cipher, rec, ctx, now), rec.version, now);
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

  /**
   * Whether the session is post-quantum (PQXDH: established from a bundle with a KEM pre-key), as
   * `SecureChannel.postQuantum`; kept in the saved state, so also after a restart.
   */
  get postQuantum(): boolean {
    return this.#channel.postQuantum;
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
      // A detached buffer reads as empty (and would throw a TypeError further down): send it as empty.
      // isView first: instanceof runs a Proxy's trap; a fake Uint8Array goes on to send's own check.
      if (ArrayBuffer.isView(plaintext) && plaintext instanceof Uint8Array && !isUsableBytes(plaintext)) plaintext = new Uint8Array(0);
      await this.#resync();
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
   * Decrypts `message`, saves the plaintext (sealed, in the inbox) together with the advanced state
   * in one atomic write, then returns the plaintext; it stays in the inbox until {@link ack}
   * (or `options.deliver` resolves). If the envelope was received before but not acknowledged (a
   * save that failed after committing, or a restart), the saved plaintext is returned instead, once
   * per process (per store object); again it is `DUPLICATE_MESSAGE` (reason `unacknowledged`) until
   * acknowledged, then plain `DUPLICATE_MESSAGE`. On a decrypt error (`DECRYPT_FAILED`,
   * `DUPLICATE_MESSAGE`, ...) nothing is saved; on a failed save the plaintext is wiped, not
   * returned. `INVALID_STATE` (reason `inbox_full`) when {@link MAX_INBOX_ENTRIES} messages await
   * acknowledgement.
   */
  receive(message: EncryptedMessage | Uint8Array, options: ReceiveOptions = {}): Promise<Uint8Array> {
    return this.#exclusive(async () => {
      const { deliver } = readOptions(options, ['deliver'], 'options');
      if (deliver !== undefined && typeof deliver !== 'function') throw new E2EError('INVALID_ARGUMENT', 'deliver must be a function');
      const m = envelopeOf(message);
      const id = toHex(sha256(m.serialize()));
      if (this.#handedOut.has(id))
        throw new E2EError('DUPLICATE_MESSAGE', 'this message was handed out already and awaits ack', 'unacknowledged');
      await this.#resync();
      const plaintext = await this.#decryptAndSave(m, id);
      // Checked again after the awaits, and marked at once: another channel over this store may have
      // handed it out meanwhile (the check and the mark must not be split by an await).
      if (this.#handedOut.has(id)) {
        memzero(plaintext);
        throw new E2EError('DUPLICATE_MESSAGE', 'this message was handed out already and awaits ack', 'unacknowledged');
      }
      this.#handedOut.add(id);
      if (deliver) {
        try {
          await (deliver as (p: Uint8Array) => void | Promise<void>)(Uint8Array.from(plaintext));
        } catch (e) {
          this.#handedOut.delete(id); // not taken: the next receive of the envelope hands it out again
          memzero(plaintext);
          throw e; // the application's own error; the message stays in the inbox
        }
        try {
          await this.#deleteEntry(id);
        } catch {
          // Delivered: a failed acknowledgement only leaves the entry, handed out again after a restart.
        }
      }
      return plaintext;
    });
  }

  /**
   * The unacknowledged messages of this session not handed out yet in this process (by any channel
   * over this store object), oldest first: after a restart, every message received but not
   * acknowledged. Each is then handed out (a later `receive` of its envelope is `DUPLICATE_MESSAGE`);
   * acknowledge each with {@link ack}.
   */
  pending(): Promise<InboxMessage[]> {
    return this.#exclusive(async () => {
      const { store, localDid, peerDid, cipher } = this.#loc;
      const records = await callStore('listInbox', () => store.listInbox(localDid, peerDid));
      if (!Array.isArray(records)) throw corrupt();
      const out: InboxMessage[] = [];
      for (const r of records as unknown[]) {
        const { id, data } = readInboxRecord(r);
        if (this.#handedOut.has(id)) continue;
        out.push({ id, plaintext: cipher.open(data, inboxContext(localDid, peerDid, id)) });
      }
      for (const m of out) this.#handedOut.add(m.id);
      return out;
    });
  }

  /**
   * Hands an unacknowledged message back (by its id, or the message itself), for an application
   * that could not handle it: the next `receive` of its envelope, or {@link pending}, returns it
   * again instead of `DUPLICATE_MESSAGE`. `true` if it was handed out and not acknowledged.
   */
  release(message: string | EncryptedMessage | Uint8Array): Promise<boolean> {
    return this.#exclusive(async () => {
      const id = typeof message === 'string' ? message : inboxMessageId(message);
      assertInboxId(id);
      const was = this.#handedOut.has(id);
      this.#handedOut.delete(id);
      return was;
    });
  }

  /**
   * Acknowledges a received message (by its id, or the message itself): deletes it from the inbox,
   * so it is never handed out again (a later copy of its envelope is `DUPLICATE_MESSAGE`). `true`
   * if it was in the inbox. Idempotent.
   */
  ack(message: string | EncryptedMessage | Uint8Array): Promise<boolean> {
    return this.#exclusive(async () => {
      const id = typeof message === 'string' ? message : inboxMessageId(message);
      assertInboxId(id);
      return this.#deleteEntry(id);
    });
  }

  /**
   * Loads the newest saved state (after a `STALE_STATE`). If the saved session was deleted, this
   * channel closes and `CHANNEL_CLOSED` (reason `session_deleted`) is thrown.
   */
  refresh(): Promise<void> {
    return this.#exclusive(() => this.#reload());
  }

  /** Closes the channel and wipes its keys; with `deleteSaved`, also deletes the saved session. Idempotent. */
  close(options: { deleteSaved?: boolean } = {}): Promise<void> {
    let deleteSaved: unknown;
    try {
      deleteSaved = readOptions(options, ['deleteSaved'], 'options').deleteSaved;
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#exclusive(async () => {
      this.#closed = true;
      this.#channel.close();
      if (deleteSaved === true)
        await callStore('deleteSession', () => this.#loc.store.deleteSession(this.#loc.localDid, this.#loc.peerDid));
    }, true);
  }

  #exclusive<T>(fn: () => Promise<T>, evenIfClosed = false): Promise<T> {
    return this.#queue.run(() => {
      if (this.#closed && !evenIfClosed) throw new E2EError('CHANNEL_CLOSED', 'the channel is closed');
      return fn();
    });
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

  async #reload(): Promise<void> {
    const { store, localDid, peerDid, cipher } = this.#loc;
    const found = await callStore('loadSession', () => store.loadSession(localDid, peerDid));
    if (found === null) {
      this.#closed = true;
      this.#channel.close();
      throw new E2EError('CHANNEL_CLOSED', 'the saved session was deleted', 'session_deleted');
    }
    const rec = readStoredRecord(found);
    const channel = restore(cipher, rec, this.#ctx, this.#now);
    this.#channel.close();
    this.#channel = channel;
    this.#version = rec.version;
    this.#uncertain = false;
  }

  /** After a save whose outcome is unknown, the saved state is the truth: load it. */
  async #resync(): Promise<void> {
    if (this.#uncertain) await this.#reload();
  }

  /** The plaintext of `m`: decrypted and saved with the inbox entry, or (received before) from the inbox. */
  async #decryptAndSave(m: EncryptedMessage, id: string): Promise<Uint8Array> {
    const { store, localDid, peerDid, cipher } = this.#loc;
    const scratch = this.#copy();
    let plaintext: Uint8Array;
    try {
      plaintext = scratch.receive(m);
    } catch (e) {
      scratch.close();
      // Already consumed by a save of ours (or another process's) that the caller never saw: the inbox has it.
      if (isE2EError(e, 'DUPLICATE_MESSAGE') || isE2EError(e, 'DECRYPT_FAILED')) {
        const hit = await callStore('loadInboxEntry', () => store.loadInboxEntry(localDid, peerDid, id));
        if (hit !== null) return cipher.open(readInboxRecord(hit).data, inboxContext(localDid, peerDid, id));
      }
      throw e;
    }
    try {
      const entry = { id, data: cipher.seal(plaintext, inboxContext(localDid, peerDid, id)) };
      await this.#commit(
        scratch,
        () => store.saveSessionWithInbox(localDid, peerDid, this.#seal(scratch), this.#version, entry),
        'saveSessionWithInbox',
      );
    } catch (e) {
      memzero(plaintext);
      throw e;
    }
    return plaintext;
  }

  async #deleteEntry(id: string): Promise<boolean> {
    const { store, localDid, peerDid } = this.#loc;
    const existed = await callStore('deleteInboxEntry', () => store.deleteInboxEntry(localDid, peerDid, id));
    this.#handedOut.delete(id);
    return existed === true;
  }

  /** Saves `scratch` with `save` and makes it the live state; on failure `scratch` is wiped. */
  async #commit(scratch: SecureChannel, save?: () => number | Promise<number>, op = 'saveSession'): Promise<void> {
    let version: number;
    try {
      const write = save ?? ((): number | Promise<number> => this.#saveCall(scratch));
      version = await callStore(op, write);
      if (!Number.isSafeInteger(version) || version < 1) throw storeFailure(StoreErrorReason.CORRUPT, 'the store returned no version');
    } catch (e) {
      scratch.close();
      // Refused (compare-and-swap) means nothing was written; anything else may have been committed.
      if (!isE2EError(e, 'STALE_STATE') && !isE2EError(e, 'INVALID_STATE') && !isE2EError(e, 'INVALID_ARGUMENT')) this.#uncertain = true;
      throw e;
    }
    this.#channel.close();
    this.#channel = scratch;
    this.#version = version;
  }

  #seal(channel: SecureChannel): Uint8Array {
    return sealChannelState(this.#loc.cipher, channel, this.#loc.localDid, this.#loc.peerDid);
  }

  #saveCall(channel: SecureChannel): number | Promise<number> {
    const { store, localDid, peerDid } = this.#loc;
    return store.saveSession(localDid, peerDid, this.#seal(channel), this.#version);
  }

  async #save(channel: SecureChannel): Promise<number> {
    return callStore('saveSession', () => this.#saveCall(channel));
  }
}

/** An inbox record a store returned, read once: `STORE_ERROR` (reason `corrupt`) when it is none. */
function readInboxRecord(r: unknown): { id: string; data: Uint8Array } {
  let o: Record<'id' | 'data', unknown>;
  try {
    o = readFields(r, ['id', 'data'], 'inbox record');
  } catch {
    throw corrupt();
  }
  if (typeof o.id !== 'string') throw corrupt();
  // Not checked here: the cipher refuses anything but a sealed blob (STORE_ERROR, unknown_format).
  return { id: o.id, data: o.data as Uint8Array };
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
