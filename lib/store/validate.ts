/** Input checks shared by every store: identifiers, versions, records, bundles, one-time keys. */
import { E2EError } from '../errors';
import { constantTimeEqual, ed25519Verify } from '../crypto';
import { PreKeyBundle, assertBundleShape, isU32, x25519FormOfEd25519 } from '../x3dh';
import { MAX_ONE_TIME_KEYS_PER_ADD, MAX_RECORD_BYTES, MAX_STORE_ID_LENGTH, PublicOneTimePreKey } from './types';

/** Throws `INVALID_ARGUMENT` unless `id` is a non-empty string of at most 1024 units without NUL. */
export function assertStoreId(id: unknown, name: string): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_STORE_ID_LENGTH || id.includes('\u0000')) {
    throw new E2EError('INVALID_ARGUMENT', `${name} must be a non-empty string of at most ${MAX_STORE_ID_LENGTH} characters without NUL`);
  }
}

/** Throws `INVALID_ARGUMENT` unless `v` is an integer version in [0, 2^53). */
export function assertVersion(v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new E2EError('INVALID_ARGUMENT', 'expectedVersion must be a non-negative integer');
  }
}

/** Throws unless `data` is a non-empty Uint8Array of at most {@link MAX_RECORD_BYTES}. */
export function assertRecordData(data: unknown): asserts data is Uint8Array {
  if (!(data instanceof Uint8Array) || data.length === 0) throw new E2EError('INVALID_ARGUMENT', 'record data must be non-empty bytes');
  if (data.length > MAX_RECORD_BYTES) throw new E2EError('MESSAGE_TOO_LARGE', 'record above 16 MiB');
}

/** Throws `INVALID_ARGUMENT` unless `id` is a key id (integer in [0, 2^32)). */
export function assertKeyId(id: unknown, name: string): asserts id is number {
  if (!isU32(id)) throw new E2EError('INVALID_ARGUMENT', `${name} must be an integer in [0, 2^32)`);
}

/** Throws `INVALID_ARGUMENT` unless `fp` is a non-empty printable ASCII string of at most 256 characters. */
export function assertFingerprint(fp: unknown): asserts fp is string {
  if (typeof fp !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(fp)) {
    throw new E2EError('INVALID_ARGUMENT', 'fingerprint must be 1 to 256 printable ASCII characters');
  }
}

/**
 * Checks a bundle as `initiate` would before a store accepts it: shape (`INVALID_KEY`,
 * `MALFORMED_MESSAGE`), signed pre-key signature (`BAD_SIGNATURE`) and that `identityKey` is the
 * X25519 form of `identityKeyEd` (`IDENTITY_MISMATCH`).
 */
export function assertValidBundle(bundle: unknown): asserts bundle is PreKeyBundle {
  assertBundleShape(bundle);
  if (!ed25519Verify(bundle.signedPreKeySignature, bundle.signedPreKey, bundle.identityKeyEd)) {
    throw new E2EError('BAD_SIGNATURE', 'the signed pre-key signature does not verify');
  }
  if (!constantTimeEqual(x25519FormOfEd25519(bundle.identityKeyEd), bundle.identityKey)) {
    throw new E2EError('IDENTITY_MISMATCH', 'bundle.identityKey is not the X25519 form of bundle.identityKeyEd');
  }
}

/** Checks a list of public one-time pre-keys (1 to 10000, 32-byte keys, distinct ids). */
export function assertOneTimeKeys(keys: unknown): asserts keys is readonly PublicOneTimePreKey[] {
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_ONE_TIME_KEYS_PER_ADD) {
    throw new E2EError('INVALID_ARGUMENT', `keys must be a list of 1 to ${MAX_ONE_TIME_KEYS_PER_ADD} one-time pre-keys`);
  }
  const seen = new Set<number>();
  for (const k of keys as unknown[]) {
    const o = k as Partial<PublicOneTimePreKey> | null;
    if (typeof o !== 'object' || o === null) throw new E2EError('INVALID_ARGUMENT', 'each one-time pre-key must be an object');
    assertKeyId(o.keyId, 'keyId');
    if (!(o.publicKey instanceof Uint8Array) || o.publicKey.length !== 32) {
      throw new E2EError('INVALID_KEY', 'one-time pre-key publicKey must be 32 bytes');
    }
    if (seen.has(o.keyId)) throw new E2EError('INVALID_ARGUMENT', 'duplicate one-time pre-key id in one call');
    seen.add(o.keyId);
  }
}

/** The error for a one-time pre-key id that may not be (re-)added. */
export function otkReusedError(keyId: number): E2EError {
  return new E2EError('INVALID_STATE', `one-time pre-key id ${keyId} was already used or holds another key`, 'otk_id_reused');
}

/** The error for a one-time pre-key added to a DID without a bundle. */
export function noBundleError(): E2EError {
  return new E2EError('INVALID_STATE', 'store a bundle for this DID before adding one-time pre-keys', 'no_bundle');
}

/** The error for a bundle whose Ed25519 identity differs from the stored one. */
export function identityChangedError(): E2EError {
  return new E2EError('IDENTITY_MISMATCH', 'a bundle with another identity is stored for this DID; remove it first', 'identity_changed');
}

/** The compare-and-swap failure. */
export function staleStateError(expected: number, actual: number): E2EError {
  return new E2EError('STALE_STATE', `stored version is ${actual}, not ${expected}`);
}

/** Wraps a backend failure (a driver's own error text never escapes). */
export function storeError(operation: string, e: unknown): E2EError {
  if (e instanceof E2EError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  // Only a driver's error code (e.g. SQLITE_BUSY) is passed on: its message may quote data.
  const kind = typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'backend';
  return new E2EError('STORE_ERROR', `storage backend failed during ${operation} (${kind})`, 'backend');
}
