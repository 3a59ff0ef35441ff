/**
 * The cache of skipped message keys, keyed by (ratchet public key, message number). Insertion
 * order is age order, so the oldest key is evicted first and expiry checks only the front.
 */
import { memzero, toHex } from '../crypto';

/** One skipped message key. */
export interface SkippedKey {
  readonly dhPublicKey: Uint8Array;
  readonly messageNumber: number;
  readonly messageKey: Uint8Array;
  /** When it was stored, milliseconds since the epoch. */
  readonly storedAt: number;
}

/** The map key of a skipped message key: `<ratchet key hex>:<N>` (the reference's `skipped_keys` form). */
export function skippedKeyId(dhPublicKey: Uint8Array, messageNumber: number): string {
  return `${toHex(dhPublicKey)}:${messageNumber}`;
}

/** Skipped message keys, oldest first. */
export class SkippedKeys {
  readonly #keys = new Map<string, SkippedKey>();

  /** How many keys are kept. */
  get size(): number {
    return this.#keys.size;
  }

  /** The key stored under `id`, if any. */
  get(id: string): SkippedKey | undefined {
    return this.#keys.get(id);
  }

  /** Deletes and wipes the key under `id`. */
  delete(id: string): void {
    const k = this.#keys.get(id);
    if (k) {
      memzero(k.messageKey);
      this.#keys.delete(id);
    }
  }

  /** Stores a key, evicting (and wiping) the oldest ones so that at most `max` remain. */
  add(key: SkippedKey, max: number): void {
    this.#keys.set(skippedKeyId(key.dhPublicKey, key.messageNumber), key);
    while (this.#keys.size > max) this.#evictOldest();
  }

  /** Deletes (and wipes) every key stored before `cutoff` (ms since the epoch). */
  expireBefore(cutoff: number): void {
    for (const [id, k] of this.#keys) {
      if (k.storedAt >= cutoff) break;
      memzero(k.messageKey);
      this.#keys.delete(id);
    }
  }

  /** Every key, oldest first. */
  values(): IterableIterator<SkippedKey> {
    return this.#keys.values();
  }

  /** Wipes and forgets every key. */
  wipe(): void {
    for (const k of this.#keys.values()) memzero(k.messageKey);
    this.#keys.clear();
  }

  #evictOldest(): void {
    const first = this.#keys.keys().next();
    if (!first.done) this.delete(first.value);
  }
}
