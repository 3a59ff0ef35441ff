/**
 * The one error type of agentmesh-e2e. Every failure of the public API is an `E2EError` with a stable
 * `code`; messages never contain key material or plaintext.
 */

/** Stable error codes. Match on `code`, never on the message text. */
export const ErrorCode = Object.freeze({
  /** A primitive was used before `await ready()` resolved. */
  NOT_READY: 'NOT_READY',
  /** A key has the wrong length or is unusable (e.g. an X25519 result that is all zero). */
  INVALID_KEY: 'INVALID_KEY',
  /** An argument other than a key has the wrong type, length or range. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** A signature did not verify. */
  BAD_SIGNATURE: 'BAD_SIGNATURE',
  /** An X25519 identity key is not the conversion of the Ed25519 key it claims to be. */
  IDENTITY_MISMATCH: 'IDENTITY_MISMATCH',
  /** The one-time pre-key named by an establishment does not exist (never made, or already used). */
  OTK_NOT_FOUND: 'OTK_NOT_FOUND',
  /** The signed pre-key named by an establishment does not exist (never made, or retired). */
  SPK_NOT_FOUND: 'SPK_NOT_FOUND',
  /** The KEM pre-key named by an establishment does not exist (never made, a one-time one already used, or retired). */
  KEM_NOT_FOUND: 'KEM_NOT_FOUND',
  /** A post-quantum session was required and the bundle or establishment offers only the classic X3DH (a downgrade). */
  POST_QUANTUM_REQUIRED: 'POST_QUANTUM_REQUIRED',
  /** Authentication failed: wrong key, wrong associated data, or a tampered message. */
  DECRYPT_FAILED: 'DECRYPT_FAILED',
  /** The message was already decrypted once (a replay). */
  DUPLICATE_MESSAGE: 'DUPLICATE_MESSAGE',
  /** The message is further ahead than the skip window allows. */
  TOO_MANY_SKIPPED: 'TOO_MANY_SKIPPED',
  /** The bytes do not parse as a message, establishment, bundle or state. */
  MALFORMED_MESSAGE: 'MALFORMED_MESSAGE',
  /** A plaintext is larger than the documented maximum. */
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  /** A message counter reached 2^32 - 1; the chain refuses to go on rather than wrap. */
  COUNTER_EXHAUSTED: 'COUNTER_EXHAUSTED',
  /** The session cannot do this in its current state (e.g. a receiver sending before it received). */
  INVALID_STATE: 'INVALID_STATE',
  /** The channel was closed and its keys wiped. */
  CHANNEL_CLOSED: 'CHANNEL_CLOSED',
  /** The peer did not pass the trust checks. */
  TRUST_REJECTED: 'TRUST_REJECTED',
  /** A stored state was updated by someone else since it was read (compare-and-swap failed). */
  STALE_STATE: 'STALE_STATE',
  /** A storage backend failed or returned unreadable data. */
  STORE_ERROR: 'STORE_ERROR',
} as const);

/** One of the stable error codes of {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The error thrown by every public function of agentmesh-e2e. */
export class E2EError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** Optional finer reason (e.g. the trust check that failed); stable strings too. */
  readonly reason: string | undefined;

  /**
   * @param code one of {@link ErrorCode}.
   * @param message what failed, for people (never key material or plaintext).
   * @param reason the finer stable reason, if any.
   * @param options `cause`: the foreign error behind this one, kept as the standard `cause` property (own, not
   *   enumerable, as `Error` does it), never copied into the message: a driver's text may quote data.
   */
  constructor(code: ErrorCode, message: string, reason?: string, options?: { readonly cause?: unknown }) {
    // Never throws itself: a message that is not a string (or cannot become one) is replaced.
    super(typeof message === 'string' ? message : 'agentmesh-e2e error');
    this.name = 'E2EError';
    this.code = code;
    this.reason = reason;
    let cause: { value: unknown } | null = null;
    try {
      if (typeof options === 'object' && options !== null && 'cause' in options) cause = { value: options.cause };
    } catch {
      cause = null; // a hostile options object (a throwing getter or Proxy trap): no cause rather than a crash
    }
    if (cause) Object.defineProperty(this, 'cause', { ...cause, enumerable: false, writable: true, configurable: true });
  }
}

/** True when `e` is an {@link E2EError}, optionally with the given code. */
export function isE2EError(e: unknown, code?: ErrorCode): e is E2EError {
  // instanceof runs a Proxy's getPrototypeOf trap, which may throw: a predicate never does.
  if (typeof e !== 'object' || e === null) return false;
  try {
    return e instanceof E2EError && (code === undefined || e.code === code);
  } catch {
    return false;
  }
}
