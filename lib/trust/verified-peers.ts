/**
 * Peers that answered this side's own challenge: each verification admits one establishment from
 * that peer, within a short time. This is what keeps an initiator that never proved its key from
 * reaching X3DH on the accepting side.
 */
import { BoundedMap } from '../util/bounded-map';
import { HandshakeResult } from './handshake';

/** Single-use, expiring records of verified peers, bounded. */
export class VerifiedPeers {
  readonly #byDid: BoundedMap<string, HandshakeResult>;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(ttlMs: number, max: number, now: () => number) {
    this.#ttlMs = ttlMs;
    this.#byDid = new BoundedMap(max);
    this.#now = now;
  }

  /** Records a verification (replacing an older one of the same peer; the oldest goes when full). */
  record(result: HandshakeResult): void {
    this.#byDid.delete(result.peerDid); // a newer verification is the newest entry
    this.#byDid.set(result.peerDid, result);
  }

  /** The unexpired verification of `did`, left in place. */
  peek(did: string): HandshakeResult | undefined {
    const r = this.#byDid.get(did);
    if (r && this.#now() - r.verifiedAt > this.#ttlMs) {
      this.#byDid.delete(did);
      return undefined;
    }
    return r;
  }

  /** The unexpired verification of `did`, removed (used up). */
  take(did: string): HandshakeResult | undefined {
    const r = this.peek(did);
    this.#byDid.delete(did);
    return r;
  }

  /** Removes the verification of `did` if it is still `result` (not a newer one); `true` if removed. */
  takeIf(did: string, result: HandshakeResult): boolean {
    if (this.#byDid.get(did) !== result) return false;
    this.#byDid.delete(did);
    return true;
  }

  /** Forgets every verification. */
  clear(): void {
    this.#byDid.clear();
  }
}
