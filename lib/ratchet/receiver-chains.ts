/**
 * The peer's sending chains as the receiver knows them (vodozemac's `receiver_chain.rs` shape): the
 * current one (`dhRemote`, `chainKeyRecv`, `recvMessageNumber` of the state), the old ones (retired
 * ratchet keys, and chains that still hold skipped keys) and the skipped message keys they own.
 * Every question the decrypt path asks about a ratchet key is answered here, and every change to
 * the record (store skipped keys, use one, retire a chain, expire) is made here, after the message
 * authenticated.
 */
import { memzero, toHex } from '../crypto/bytes';
import { chainKeyStep } from '../crypto/hmac';
import type { SkippedKey } from './skipped-keys';
import type { RatchetState } from './state';
import { MAX_RETIRED_REMOTE_KEYS } from '../limits';

/** True when the 32 bytes of `env` at `offset` equal `key` (public values: no need for constant time). */
function keyAt(env: Uint8Array, offset: number, key: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (env[offset + i] !== key[i]) return false;
  return true;
}

/** The receiving side of one session's state. */
export class ReceiverChains {
  readonly #state: RatchetState;
  // The skipped-key map is keyed by hex; the current chain's hex is made once per chain, not per message.
  #currentHexOf: Uint8Array | null = null;
  #currentHex = '';

  /** The record over `state` (which it reads and, on commit, changes). */
  constructor(state: RatchetState) {
    this.#state = state;
  }

  /**
   * Whether the ratchet key at `offset` of `env` is the current chain's. Raw comparison equals a
   * comparison of canonical forms: every remembered ratchet key is canonical (checked on init and
   * restore, and a non-canonical one never starts a chain).
   */
  isCurrent(env: Uint8Array, offset: number): boolean {
    const dh = this.#state.dhRemote;
    return dh !== null && keyAt(env, offset, dh);
  }

  /** The map id of the chain of the 32-byte ratchet key `dh` (`current`: it is the current chain's). */
  chainId(dh: Uint8Array, current: boolean): string {
    if (!current) return toHex(dh);
    const cur = this.#state.dhRemote as Uint8Array;
    if (this.#currentHexOf !== cur) {
      this.#currentHexOf = cur;
      this.#currentHex = toHex(cur);
    }
    return this.#currentHex;
  }

  /** TrySkippedMessageKeys: the unexpired skipped key of message `n` of chain `chain`, if kept. */
  trySkippedMessageKey(chain: string, n: number, now: number): SkippedKey | undefined {
    const k = this.#state.skippedKeys.get(chain, n);
    return k !== undefined && !this.#expired(k, now) ? k : undefined;
  }

  /** Whether `chain` is an old chain of the peer (retired, or still holding skipped keys): never a new DH ratchet step. */
  isOld(chain: string): boolean {
    return this.#state.retiredRemoteKeys.includes(chain) || this.#state.skippedKeys.hasChain(chain);
  }

  /** Whether any old chain is remembered (else no hex needs to be made to ask {@link isOld}). */
  get remembersOldChains(): boolean {
    return this.#state.retiredRemoteKeys.length > 0 || this.#state.skippedKeys.size > 0;
  }

  /**
   * SkipMessageKeys, staged: advances `chainKey` (in place) from message `from` to `until` and
   * appends the keys passed over to `staged`, for {@link commitSkipped} once the message authenticated.
   */
  static skipMessageKeys(chainKey: Uint8Array, from: number, until: number, dh: Uint8Array, now: number, staged: SkippedKey[]): void {
    for (let n = from; n < until; n++) {
      const messageKey = new Uint8Array(32);
      chainKeyStep(chainKey, messageKey, chainKey);
      staged.push({ dhPublicKey: dh, messageNumber: n, messageKey, storedAt: now });
    }
  }

  /** Commits a used skipped key: deletes (wipes) it, then expires old ones. */
  commitUsedSkipped(chain: string, n: number, now: number): void {
    this.#state.skippedKeys.delete(chain, n);
    this.expire(now);
  }

  /** Commits staged skipped keys (oldest evicted beyond `maxSkippedKeys`), then expires old ones. */
  commitSkipped(staged: readonly SkippedKey[], now: number): void {
    const st = this.#state;
    let chain = '';
    let dh: Uint8Array | null = null;
    for (const k of staged) {
      if (k.dhPublicKey !== dh) {
        dh = k.dhPublicKey;
        chain = toHex(dh);
      }
      st.skippedKeys.add(k, st.limits.maxSkippedKeys, chain);
    }
    this.expire(now);
  }

  /** Retires the current chain's ratchet key (the newest {@link MAX_RETIRED_REMOTE_KEYS} are remembered). */
  retireCurrent(): void {
    const st = this.#state;
    if (st.dhRemote === null) return;
    st.retiredRemoteKeys.push(toHex(st.dhRemote));
    if (st.retiredRemoteKeys.length > MAX_RETIRED_REMOTE_KEYS) st.retiredRemoteKeys.shift();
  }

  /** Deletes skipped keys older than the limit allows. */
  expire(now: number): void {
    const age = this.#state.limits.skippedKeyMaxAgeMs;
    if (age !== null && this.#state.skippedKeys.size > 0) this.#state.skippedKeys.expireBefore(now - age);
  }

  /** Wipes staged keys that were never committed. */
  static discard(staged: readonly SkippedKey[]): void {
    for (const k of staged) memzero(k.messageKey);
  }

  #expired(k: SkippedKey, now: number): boolean {
    const age = this.#state.limits.skippedKeyMaxAgeMs;
    return age !== null && k.storedAt < now - age;
  }
}
