/**
 * Budgets for the work an agent does on behalf of frames nobody authenticated: automatic replies
 * (a `knock_reject` is stored at the relay until its recipient acks it, and counts against this
 * agent's own quota there) and registry look-ups (they spend this agent's request budget). Without
 * them, anyone with a fresh key pair could make an agent fill its own relay quota or exhaust its
 * registry budget, so that its genuine sends fail.
 */
import { BoundedMap } from '../util/bounded-map';

/** A token bucket: `burst` tokens, refilled at `perSecond`. */
export class TokenBucket {
  readonly #burst: number;
  readonly #perSecond: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(burst: number, perSecond: number, now: () => number = Date.now) {
    this.#burst = burst;
    this.#perSecond = perSecond;
    this.#now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    const t = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((t - this.#at) / 1000) * this.#perSecond);
    this.#at = t;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** Buckets per key (a peer DID) plus one for all keys, with a bounded number of keys (the oldest goes first). */
export class KeyedBudget {
  readonly #all: TokenBucket;
  readonly #per: BoundedMap<string, TokenBucket>;
  readonly #perBurst: number;
  readonly #perRate: number;
  readonly #now: () => number;

  constructor(o: {
    perKeyBurst: number;
    perKeyPerSecond: number;
    allBurst: number;
    allPerSecond: number;
    maxKeys?: number;
    now?: () => number;
  }) {
    this.#now = o.now ?? Date.now;
    this.#all = new TokenBucket(o.allBurst, o.allPerSecond, this.#now);
    this.#perBurst = o.perKeyBurst;
    this.#perRate = o.perKeyPerSecond;
    this.#per = new BoundedMap(o.maxKeys ?? 10_000);
  }

  /** Takes one token for `key` and one from the shared bucket; `false` (nothing taken) if either is empty. */
  take(key: string): boolean {
    let b = this.#per.get(key);
    if (!b) {
      b = new TokenBucket(this.#perBurst, this.#perRate, this.#now);
      this.#per.set(key, b);
    }
    if (!b.take()) return false;
    return this.#all.take();
  }
}
