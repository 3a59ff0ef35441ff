/**
 * The cache of skipped message keys, keyed by (ratchet public key, message number).
 *
 * Keys live in one map per ratchet key (hex; the ratchet reuses one string per chain, so its hash
 * is computed once) from message number to key, and in a queue in the order they were stored, so
 * the oldest is evicted first and expiry looks only at the front.
 */
import { E2EError } from '../errors';
import { assertKey, memzero, toHex } from '../crypto/bytes';
import { readFields } from '../crypto/input';

/** One skipped message key. */
export interface SkippedKey {
  /** The peer's ratchet public key of the chain the key belongs to (32 bytes). */
  readonly dhPublicKey: Uint8Array;
  /** The skipped message's number (N) in that chain. */
  readonly messageNumber: number;
  /** The message key, 32 bytes. Secret. */
  readonly messageKey: Uint8Array;
  /** When it was stored, milliseconds since the epoch. */
  readonly storedAt: number;
}

/** The reference's `skipped_keys` id of a key: `<ratchet key hex>:<N>`. */
export function skippedKeyId(dhPublicKey: Uint8Array, messageNumber: number): string {
  return `${toHex(dhPublicKey)}:${messageNumber}`;
}

interface Entry extends SkippedKey {
  readonly chain: string;
  live: boolean;
}

/** Whether `a` holds the 32 bytes of `b` (public values). */
function sameBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  if (a === null) return false;
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Skipped message keys, oldest first. */
export class SkippedKeys {
  readonly #chains = new Map<string, Map<number, Entry>>();
  #queue: Entry[] = [];
  // Our copy of the last ratchet key passed to add.
  #lastDh: Uint8Array | null = null;
  #head = 0;
  #size = 0;

  /** How many keys are kept. */
  get size(): number {
    return this.#size;
  }

  /** The key for message `messageNumber` of the chain whose ratchet key has hex `chain`, if any. */
  get(chain: string, messageNumber: number): SkippedKey | undefined {
    return this.#chains.get(chain)?.get(messageNumber);
  }

  /** Whether any key of the chain whose ratchet key has hex `chain` is kept. */
  hasChain(chain: string): boolean {
    return this.#chains.has(chain);
  }

  /** Deletes and wipes that key. */
  delete(chain: string, messageNumber: number): void {
    const byNumber = this.#chains.get(chain);
    const e = byNumber?.get(messageNumber);
    if (!byNumber || !e) return;
    memzero(e.messageKey);
    e.live = false;
    byNumber.delete(messageNumber);
    if (byNumber.size === 0) this.#chains.delete(chain);
    this.#size--;
    this.#compact();
  }

  /**
   * Stores a key (`chain` = hex of its ratchet key, when the caller has it), evicting and wiping
   * the oldest so that at most `max` remain. The cache takes ownership of `messageKey` (it wipes
   * that very array on eviction, expiry, delete and wipe: the caller must not reuse it); the
   * public ratchet key is copied. `INVALID_KEY` / `INVALID_ARGUMENT` on a bad key, limit or chain.
   */
  add(input: SkippedKey, max: number, chain?: string): void {
    const k = readFields(input, ['dhPublicKey', 'messageNumber', 'messageKey', 'storedAt'] as const, 'skipped key');
    assertKey(k.dhPublicKey, 'skipped key ratchet key', 32);
    assertKey(k.messageKey, 'skipped message key', 32);
    if (typeof k.messageNumber !== 'number' || !Number.isInteger(k.messageNumber) || k.messageNumber < 0 || k.messageNumber > 0xffffffff) {
      throw new E2EError('INVALID_ARGUMENT', 'skipped key number must be an integer in [0, 2^32)');
    }
    if (typeof k.storedAt !== 'number' || !Number.isFinite(k.storedAt))
      throw new E2EError('INVALID_ARGUMENT', 'storedAt must be a finite number');
    if (!Number.isInteger(max) || max < 0) throw new E2EError('INVALID_ARGUMENT', 'max must be a non-negative integer');
    if (chain !== undefined && typeof chain !== 'string') throw new E2EError('INVALID_ARGUMENT', 'chain must be a hex string');
    // One copy of a chain's ratchet key for all of its entries (the ratchet adds them chain by chain).
    if (!sameBytes(this.#lastDh, k.dhPublicKey)) this.#lastDh = Uint8Array.from(k.dhPublicKey);
    const key: SkippedKey = {
      dhPublicKey: this.#lastDh as Uint8Array,
      messageNumber: k.messageNumber,
      messageKey: k.messageKey,
      storedAt: k.storedAt,
    };
    this.#add(key, max, chain ?? toHex(key.dhPublicKey));
  }

  #add(key: SkippedKey, max: number, chain: string): void {
    // Replace first: deleting a chain's last key drops its map, so fetch the map only afterwards.
    if (this.#chains.get(chain)?.has(key.messageNumber)) this.delete(chain, key.messageNumber);
    let byNumber = this.#chains.get(chain);
    if (!byNumber) {
      byNumber = new Map();
      this.#chains.set(chain, byNumber);
    }
    const e: Entry = {
      dhPublicKey: key.dhPublicKey,
      messageNumber: key.messageNumber,
      messageKey: key.messageKey,
      storedAt: key.storedAt,
      chain,
      live: true,
    };
    byNumber.set(key.messageNumber, e);
    this.#queue.push(e);
    this.#size++;
    while (this.#size > max) this.#deleteOldest();
  }

  /** Deletes (and wipes) every key stored before `cutoff` (ms since the epoch); `INVALID_ARGUMENT` unless a number. */
  expireBefore(cutoff: number): void {
    if (typeof cutoff !== 'number' || Number.isNaN(cutoff)) throw new E2EError('INVALID_ARGUMENT', 'cutoff must be a number');
    for (let e = this.#front(); e !== undefined && e.storedAt < cutoff; e = this.#front()) {
      this.delete(e.chain, e.messageNumber);
    }
  }

  /** Every key, oldest first. */
  *values(): IterableIterator<SkippedKey> {
    for (let i = this.#head; i < this.#queue.length; i++) if (this.#queue[i].live) yield this.#queue[i];
  }

  /** Wipes and forgets every key. */
  wipe(): void {
    for (const e of this.#queue) if (e.live) memzero(e.messageKey);
    this.#chains.clear();
    this.#queue = [];
    this.#head = 0;
    this.#size = 0;
    this.#lastDh = null;
  }

  /** The oldest live entry, dropping dead ones from the queue. */
  #front(): Entry | undefined {
    while (this.#head < this.#queue.length && !this.#queue[this.#head].live) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return this.#queue[this.#head];
  }

  /** Rebuilds the queue once dead entries outnumber live ones (a never-used old key would pin them all). */
  #compact(): void {
    const held = this.#queue.length - this.#head;
    if (held > 64 && held > 2 * this.#size) {
      this.#queue = this.#queue.filter((e, i) => i >= this.#head && e.live);
      this.#head = 0;
    }
  }

  #deleteOldest(): void {
    const e = this.#front();
    if (!e) return;
    if (this.#chains.get(e.chain)?.get(e.messageNumber) === e) {
      this.delete(e.chain, e.messageNumber);
    } else {
      // Never expected; retire it anyway so eviction always makes progress.
      memzero(e.messageKey);
      e.live = false;
      this.#size--;
    }
  }
}
