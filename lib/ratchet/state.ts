/**
 * The Double Ratchet session state. Its saved forms live apart: the AGT reference's dict form in
 * `agt-dict.ts` (`toDict`/`fromDict`), our versioned binary form in `state-codec.ts`
 * (`toBytes`/`fromBytes`); both contain secrets: store them encrypted.
 */
import type { X25519KeyPair } from '../crypto/x25519';
import { assertKey, memzero } from '../crypto/bytes';
import { readFields, readOptions } from '../crypto/input';
import { assertCanonicalX25519PublicKey } from '../crypto/x25519';
import { RatchetStateDict, stateFromDict, stateToDict } from './agt-dict';
import { SkippedKeys } from './skipped-keys';
import { decodeRatchetState, encodeRatchetState } from './state-codec';
import { DecodedRatchetState, RatchetLimits, asMalformed, resolveLimits } from './state-fields';
import { MAX_SKIPPED_KEYS_LIMIT } from '../limits';

// The state's public surface, defined with the saved forms that use it.
export type { RatchetStateDict } from './agt-dict';
export type { RatchetLimits } from './state-fields';
export { resolveLimits } from './state-fields';

/** Lets this module's restore hand over arrays the saved forms made, without another copy. */
const ADOPT: unique symbol = Symbol('adopt');

/** The fields of a new {@link RatchetState}. */
export interface RatchetStateInit {
  /** Our first ratchet key pair (DHs). */
  dhSelf: X25519KeyPair;
  /** The peer's ratchet public key (DHr), or `null` until its first message. */
  dhRemote: Uint8Array | null;
  /** Root key (RK), 32 bytes. */
  rootKey: Uint8Array;
  /** Sending chain key (CKs), or `null` while we cannot send yet. */
  chainKeySend: Uint8Array | null;
  /** Receiving chain key (CKr), or `null`. */
  chainKeyRecv: Uint8Array | null;
  /** The session's limits; unset ones take the defaults (see {@link RatchetLimits}). */
  limits?: Partial<RatchetLimits>;
}

/** The mutable state of one Double Ratchet session. Owned by its `DoubleRatchet`. */
export class RatchetState {
  /** Our current ratchet key pair (DHs). */
  dhSelf: X25519KeyPair;
  /** The peer's current ratchet public key (DHr), or `null` before the first message. */
  dhRemote: Uint8Array | null;
  /** Root key (RK). */
  rootKey: Uint8Array;
  /** Sending chain key (CKs), or `null` while we cannot send yet. */
  chainKeySend: Uint8Array | null;
  /** Receiving chain key (CKr). */
  chainKeyRecv: Uint8Array | null;
  /** Ns. */
  sendMessageNumber = 0;
  /** Nr. */
  recvMessageNumber = 0;
  /** PN. */
  previousSendChainLength = 0;
  /** MKSKIPPED. */
  readonly skippedKeys = new SkippedKeys();
  /** Hex of the peer's previous ratchet keys, newest last: a replay from an old chain is a duplicate. */
  readonly retiredRemoteKeys: string[] = [];
  /** The limits, persisted with the state. */
  readonly limits: RatchetLimits;

  /**
   * A state from its fields. Every array is checked (`INVALID_KEY`; the remote key must be
   * canonical) and copied, so the caller's buffers can be reused or wiped afterwards.
   */
  constructor(init: RatchetStateInit, adopt?: typeof ADOPT) {
    const f = readFields(init, ['dhSelf', 'dhRemote', 'rootKey', 'chainKeySend', 'chainKeyRecv', 'limits'] as const, 'ratchet state');
    const self = readFields(f.dhSelf, ['privateKey', 'publicKey'] as const, 'dhSelf', 'INVALID_KEY');
    assertKey(self.privateKey, 'dhSelf.privateKey', 32);
    assertKey(self.publicKey, 'dhSelf.publicKey', 32);
    if (f.dhRemote !== null) assertCanonicalX25519PublicKey(f.dhRemote, 'dhRemote');
    assertKey(f.rootKey, 'rootKey', 32);
    if (f.chainKeySend !== null) assertKey(f.chainKeySend, 'chainKeySend', 32);
    if (f.chainKeyRecv !== null) assertKey(f.chainKeyRecv, 'chainKeyRecv', 32);
    this.limits = resolveLimits(f.limits as Partial<RatchetLimits> | undefined);
    const own = adopt === ADOPT ? (b: Uint8Array): Uint8Array => b : (b: Uint8Array): Uint8Array => Uint8Array.from(b);
    const ownOrNull = (b: Uint8Array | null): Uint8Array | null => (b === null ? null : own(b));
    this.dhSelf = { privateKey: own(self.privateKey), publicKey: own(self.publicKey) };
    this.dhRemote = ownOrNull(f.dhRemote);
    this.rootKey = own(f.rootKey);
    this.chainKeySend = ownOrNull(f.chainKeySend);
    this.chainKeyRecv = ownOrNull(f.chainKeyRecv);
  }

  /** The reference's dict form: exactly its keys (`includeLimits` adds `max_skip` and `max_skipped_keys`). */
  toDict(options: { includeLimits?: boolean } = {}): RatchetStateDict {
    const opts = readOptions(options, ['includeLimits'] as const, 'toDict options');
    return stateToDict(this, opts.includeLimits === true);
  }

  /**
   * A state from the reference's dict form (or ours, with limits). Limits come from `limits`, else
   * from the dict, else the defaults. `MALFORMED_MESSAGE` on any defect.
   */
  static fromDict(dict: RatchetStateDict, limits: Partial<RatchetLimits> = {}): RatchetState {
    return RatchetState.#restore(stateFromDict(dict, limits, Date.now()));
  }

  /** Our compact binary form (`state-codec.ts`; versioned; an idle session is about 300 bytes). */
  toBytes(): Uint8Array {
    return encodeRatchetState(this);
  }

  /**
   * A state from {@link toBytes}; `MALFORMED_MESSAGE` on any defect (never a crash). The bytes are
   * trusted to be our own (the stores authenticate them); the public key is not recomputed. Every
   * part is copied out of `bytes` (a Node `Buffer` included), so the caller may reuse or wipe it.
   */
  static fromBytes(input: Uint8Array): RatchetState {
    return RatchetState.#restore(decodeRatchetState(input));
  }

  /** A state over what a saved form read (adopted, not copied); on failure every secret in `d` is wiped. */
  static #restore(d: DecodedRatchetState): RatchetState {
    try {
      const s = asMalformed(
        () =>
          new RatchetState(
            {
              dhSelf: d.dhSelf,
              dhRemote: d.dhRemote,
              rootKey: d.rootKey,
              chainKeySend: d.chainKeySend,
              chainKeyRecv: d.chainKeyRecv,
              limits: d.limits,
            },
            ADOPT,
          ),
      );
      s.sendMessageNumber = d.sendMessageNumber;
      s.recvMessageNumber = d.recvMessageNumber;
      s.previousSendChainLength = d.previousSendChainLength;
      s.retiredRemoteKeys.push(...d.retiredRemoteKeys);
      for (const k of d.skippedKeys) s.skippedKeys.add(k, MAX_SKIPPED_KEYS_LIMIT);
      return s;
    } catch (e) {
      for (const b of [d.dhSelf.privateKey, d.rootKey, d.chainKeySend, d.chainKeyRecv]) memzero(b);
      for (const k of d.skippedKeys) memzero(k.messageKey);
      throw e;
    }
  }

  /** Wipes every secret of the state (ratchet private key, root, chain and skipped keys). */
  wipe(): void {
    memzero(this.dhSelf.privateKey);
    memzero(this.rootKey);
    memzero(this.chainKeySend);
    memzero(this.chainKeyRecv);
    this.skippedKeys.wipe();
  }
}
