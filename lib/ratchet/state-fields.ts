/**
 * What a ratchet session state holds, as its saved forms (`agt-dict.ts`, `state-codec.ts`) read and
 * write it, and the bounds on it. A leaf of the state: the forms depend on it, never on the class.
 */
import { E2EError } from '../errors';
import { DEFAULT_MAX_SKIP, DEFAULT_MAX_SKIPPED_KEYS, DEFAULT_SKIPPED_KEY_MAX_AGE_MS, MAX_SKIPPED_KEYS_LIMIT } from '../limits';
import type { X25519KeyPair } from '../crypto/x25519';
import { readOptions } from '../crypto/input';
import type { SkippedKey } from './skipped-keys';

/** The limits of a session; all persisted with it. */
export interface RatchetLimits {
  /** Most message keys skipped in one gap (default 100). */
  maxSkip: number;
  /** Most skipped message keys kept in all; oldest evicted first (default 2000). */
  maxSkippedKeys: number;
  /** Age in ms after which a skipped key is deleted; `null` = never (default 7 days). */
  skippedKeyMaxAgeMs: number | null;
}

/** Checks and fills in limits (`undefined` or `null` = all defaults); `INVALID_ARGUMENT` on a bad value. */
export function resolveLimits(limits: Partial<RatchetLimits> | null = {}): RatchetLimits {
  const opts = readOptions(limits, ['maxSkip', 'maxSkippedKeys', 'skippedKeyMaxAgeMs'] as const, 'limits') as Partial<RatchetLimits>;
  const maxSkip = opts.maxSkip ?? DEFAULT_MAX_SKIP;
  const maxSkippedKeys = opts.maxSkippedKeys ?? DEFAULT_MAX_SKIPPED_KEYS;
  const age = opts.skippedKeyMaxAgeMs === undefined ? DEFAULT_SKIPPED_KEY_MAX_AGE_MS : opts.skippedKeyMaxAgeMs;
  if (!Number.isInteger(maxSkip) || maxSkip < 0 || maxSkip > MAX_SKIPPED_KEYS_LIMIT) {
    throw new E2EError('INVALID_ARGUMENT', `maxSkip must be an integer in [0, ${MAX_SKIPPED_KEYS_LIMIT}]`);
  }
  if (!Number.isInteger(maxSkippedKeys) || maxSkippedKeys < 0 || maxSkippedKeys > MAX_SKIPPED_KEYS_LIMIT) {
    throw new E2EError('INVALID_ARGUMENT', `maxSkippedKeys must be an integer in [0, ${MAX_SKIPPED_KEYS_LIMIT}]`);
  }
  if (age !== null && (typeof age !== 'number' || !Number.isFinite(age) || age <= 0)) {
    throw new E2EError('INVALID_ARGUMENT', 'skippedKeyMaxAgeMs must be a positive number or null');
  }
  return { maxSkip, maxSkippedKeys, skippedKeyMaxAgeMs: age };
}

/**
 * The fields of a session as a saved form writes them (a `RatchetState` is one) and, with
 * {@link DecodedRatchetState}, as it reads them back.
 */
export interface RatchetStateFields {
  /** DHs. */
  readonly dhSelf: X25519KeyPair;
  /** DHr, or `null` before the first message. */
  readonly dhRemote: Uint8Array | null;
  /** RK. */
  readonly rootKey: Uint8Array;
  /** CKs, or `null`. */
  readonly chainKeySend: Uint8Array | null;
  /** CKr, or `null`. */
  readonly chainKeyRecv: Uint8Array | null;
  /** Ns. */
  readonly sendMessageNumber: number;
  /** Nr. */
  readonly recvMessageNumber: number;
  /** PN. */
  readonly previousSendChainLength: number;
  /** The limits. */
  readonly limits: RatchetLimits;
  /** Hex of the peer's previous ratchet keys, newest last. */
  readonly retiredRemoteKeys: readonly string[];
  /** MKSKIPPED, oldest first. */
  readonly skippedKeys: { values(): Iterable<SkippedKey>; readonly size: number };
}

/**
 * A saved form, read: fresh arrays the state adopts (its skipped keys' message keys included), and
 * limits not yet checked (the state checks them).
 */
export interface DecodedRatchetState extends Omit<RatchetStateFields, 'limits' | 'skippedKeys'> {
  /** The limits as stored (partial: the AGT dict may carry none). */
  readonly limits: Partial<RatchetLimits>;
  /** MKSKIPPED, oldest first. */
  readonly skippedKeys: readonly SkippedKey[];
}

/** Runs `f`, turning an invalid-argument error (e.g. bad limits in stored bytes) into `MALFORMED_MESSAGE`. */
export function asMalformed<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof E2EError && e.code === 'INVALID_ARGUMENT') throw new E2EError('MALFORMED_MESSAGE', `bad ratchet state: ${e.message}`);
    throw e;
  }
}
