/**
 * Small guards of the server: single-use proofs (`ProofCache`) and token buckets (`RateLimiter`). Both are
 * bounded: they forget what can no longer matter (proofs outside the window, full buckets).
 */

import type { MaybePromise } from '../store/types';
import { BoundedMap } from '../util/bounded-map';

/**
 * How far in the future a proof's timestamp may be (30 s of clock skew). The past window stays
 * `PROOF_WINDOW_MS`; a proof from the far future would otherwise hold a cache entry for up to twice the window.
 */
export const MAX_FUTURE_SKEW_MS = 30_000;

/** The DID of a proof key (`kind|did|…`): whose budget in the cache the proof counts against. */
function ownerOf(key: string): string {
  const i = key.indexOf('|');
  const j = key.indexOf('|', i + 1);
  return i < 0 ? key : key.slice(i + 1, j < 0 ? undefined : j);
}

/** Where single-use proofs are remembered: this process ({@link ProofCache}) or shared (`RedisProofGuard`). */
export interface ProofGuard {
  /**
   * Records `key` (a proof made at `proofTimeMs`): `'fresh'` the first time, `'replayed'` ever after, `'full'` when
   * it cannot be recorded (then the proof must be refused: forgetting would re-open replays).
   */
  use(key: string, proofTimeMs: number): MaybePromise<'fresh' | 'replayed' | 'full'>;
}

/**
 * Remembers proofs until they leave the ±window in which they are accepted, so each is accepted once. When
 * full it refuses new proofs (fails closed) rather than forgetting live ones, which would re-open replays.
 */
export class ProofCache implements ProofGuard {
  readonly #seen = new Map<string, { until: number; owner: string }>();
  readonly #perOwner = new Map<string, number>();
  readonly #windowMs: number;
  readonly #max: number;
  readonly #maxPerOwner: number;
  #lastSweep = 0;

  /**
   * `windowMs`: how far a proof's time may be from now; `max`: most proofs held at once; `maxPerOwner`: most
   * held for one DID (default 10,000), so one agent cannot fill the cache for everyone: beyond it, only its own
   * new proofs are refused.
   */
  constructor(windowMs: number, max = 1_000_000, maxPerOwner = 10_000) {
    this.#windowMs = windowMs;
    this.#max = max;
    this.#maxPerOwner = maxPerOwner;
  }

  /**
   * Records `key` (a proof made at `proofTimeMs`). `'fresh'` the first time, `'replayed'` ever after,
   * `'full'` when the cache holds `max` live proofs.
   */
  use(key: string, proofTimeMs: number, now: number = Date.now()): 'fresh' | 'replayed' | 'full' {
    if (this.#seen.has(key)) return 'replayed';
    const owner = ownerOf(key);
    const full = () => this.#seen.size >= this.#max || (this.#perOwner.get(owner) ?? 0) >= this.#maxPerOwner;
    // Expired entries are purged before anything is refused.
    if (full() || now - this.#lastSweep > this.#windowMs / 10) this.#sweep(now);
    if (full()) return 'full';
    // Accepted until proofTime + window; a little slack for the clock moving between check and sweep.
    this.#seen.set(key, { until: proofTimeMs + this.#windowMs + 1000, owner });
    this.#perOwner.set(owner, (this.#perOwner.get(owner) ?? 0) + 1);
    return 'fresh';
  }

  /** Whether `key` was used. */
  has(key: string): boolean {
    return this.#seen.has(key);
  }

  /** How many proofs are held. */
  get size(): number {
    return this.#seen.size;
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [k, e] of this.#seen) {
      if (e.until >= now) continue;
      this.#seen.delete(k);
      const n = (this.#perOwner.get(e.owner) ?? 1) - 1;
      if (n <= 0) this.#perOwner.delete(e.owner);
      else this.#perOwner.set(e.owner, n);
    }
  }
}

/** Token buckets per key: `burst` tokens, refilled at `perSecond`. */
export class RateLimiter {
  readonly #buckets: BoundedMap<string, { tokens: number; at: number }>;
  readonly #burst: number;
  readonly #perMs: number;

  /** At most `burst` at once, `perSecond` sustained; `maxKeys` buckets tracked (oldest full ones dropped). */
  constructor(burst: number, perSecond: number, maxKeys = 100_000) {
    this.#burst = burst;
    this.#perMs = perSecond / 1000;
    this.#buckets = new BoundedMap(maxKeys);
  }

  /** Takes one token for `key`: `true` if allowed. */
  take(key: string, now: number = Date.now()): boolean {
    let b = this.#buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) * this.#perMs);
      b.at = now;
    } else {
      if (this.#buckets.size >= this.#buckets.max) this.#sweep(now); // then set() evicts the oldest if still full
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(key, b);
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  #sweep(now: number): void {
    // A bucket that would be full again is the same as no bucket.
    for (const [k, b] of this.#buckets) if (b.tokens + (now - b.at) * this.#perMs >= this.#burst) this.#buckets.delete(k);
  }
}
