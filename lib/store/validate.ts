/** Input checks shared by every store: identifiers, versions, records, bundles, one-time keys. */
import { E2EError, isE2EError } from '../errors';
import { isU32, isUsableBytes, readFields, typed } from '../crypto';
import { PreKeyBundle, snapshotBundle } from '../x3dh';
import { verifyBundle } from '../x3dh/agreement';
import { kemPreKeyVerifies } from '../x3dh/identity-cache';
import { MLKEM768_PUBLIC_KEY_BYTES as KEM_PUBLIC_KEY_BYTES } from '../crypto/mlkem';
import { AcceptanceWrite, PublicKemPreKeyEntry, PublicOneTimePreKey } from './types';
import { MAX_KEM_PRE_KEYS_PER_CALL, MAX_ONE_TIME_PRE_KEYS_PER_CALL, MAX_RECORD_BYTES, MAX_STORE_ID_LENGTH } from '../limits';

// A lone surrogate has no UTF-8 form: SQLite would store U+FFFD (two DIDs becoming one) and
// encodeURIComponent throws a URIError, so such ids are refused everywhere alike.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Throws `INVALID_ARGUMENT` unless `id` is a non-empty string of at most 1024 units, without NUL and
 * well-formed UTF-16 (no lone surrogate).
 */
export function assertStoreId(id: unknown, name: string): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_STORE_ID_LENGTH || id.includes('\u0000') || LONE_SURROGATE.test(id)) {
    throw new E2EError(
      'INVALID_ARGUMENT',
      `${name} must be a non-empty string of at most ${MAX_STORE_ID_LENGTH} characters, well-formed, without NUL`,
    );
  }
}

/** Throws `INVALID_ARGUMENT` unless `id` is an inbox id: 1 to 128 characters of 0-9 a-z A-Z `_-`. */
export function assertInboxId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !/^[0-9A-Za-z_-]{1,128}$/.test(id)) {
    throw new E2EError('INVALID_ARGUMENT', 'inbox id must be 1 to 128 characters of 0-9 a-z A-Z _ -');
  }
}

/**
 * A checked copy of an inbox entry argument `{ id, data }`: each field read once (a getter cannot
 * answer differently between the check and the write), the bytes copied.
 */
export function readInboxEntry(entry: unknown): { readonly id: string; readonly data: Uint8Array } {
  const e = readFields(entry, ['id', 'data'], 'inbox entry');
  assertInboxId(e.id);
  return { id: e.id, data: recordCopy(e.data) };
}

/** A checked `{ data, expectedVersion }` of an acceptance, read once, its bytes copied. */
function readVersioned(r: unknown, name: string): { readonly data: Uint8Array; readonly expectedVersion: number } {
  const o = readFields(r, ['data', 'expectedVersion'], name);
  const data = recordCopy(o.data);
  assertVersion(o.expectedVersion);
  return { data, expectedVersion: o.expectedVersion };
}

/**
 * A checked, plain copy of an {@link AcceptanceWrite} (exactly one of `keyManager` and
 * `establishment`): every field read once, every byte array copied, so the stores write what was checked.
 */
export function readAcceptance(w: unknown): AcceptanceWrite {
  const a = readFields(w, ['did', 'peerDid', 'session', 'keyManager', 'establishment'], 'acceptance');
  assertStoreId(a.did, 'did');
  assertStoreId(a.peerDid, 'peerDid');
  const session = readVersioned(a.session, 'session');
  if ((a.keyManager === undefined) === (a.establishment === undefined)) {
    throw new E2EError('INVALID_ARGUMENT', 'exactly one of keyManager and establishment must be given');
  }
  if (a.keyManager !== undefined) return { did: a.did, peerDid: a.peerDid, session, keyManager: readVersioned(a.keyManager, 'keyManager') };
  const e = readFields(a.establishment, ['signedPreKeyId', 'fingerprint'], 'establishment');
  assertKeyId(e.signedPreKeyId, 'signedPreKeyId');
  assertFingerprint(e.fingerprint);
  return { did: a.did, peerDid: a.peerDid, session, establishment: { signedPreKeyId: e.signedPreKeyId, fingerprint: e.fingerprint } };
}

/** Throws `INVALID_ARGUMENT` unless `v` is an integer version in [0, 2^53). */
export function assertVersion(v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new E2EError('INVALID_ARGUMENT', 'expectedVersion must be a non-negative integer');
  }
}

/** Throws unless `data` is a non-empty Uint8Array of at most {@link MAX_RECORD_BYTES}. */
export function assertRecordData(data: unknown): asserts data is Uint8Array {
  // isUsableBytes, not instanceof: a Proxy's trap or a fake Uint8Array's length would throw a TypeError.
  if (!isUsableBytes(data) || data.length === 0) throw new E2EError('INVALID_ARGUMENT', 'record data must be non-empty bytes');
  if (data.length > MAX_RECORD_BYTES) throw new E2EError('MESSAGE_TOO_LARGE', 'record above 16 MiB');
}

/** A copy of checked record bytes (the caller may change its own while a driver runs). */
export function recordCopy(data: unknown): Uint8Array {
  assertRecordData(data);
  return Uint8Array.from(data);
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
 * A checked copy of a bundle (each field read once, {@link snapshotBundle}), checked as `initiate`
 * would before a store accepts it: shape (`INVALID_KEY`, `MALFORMED_MESSAGE`), signed pre-key
 * signature (`BAD_SIGNATURE`) and that `identityKey` is the X25519 form of `identityKeyEd` (`IDENTITY_MISMATCH`).
 */
export function readValidBundle(bundle: unknown): PreKeyBundle {
  const b = snapshotBundle(bundle);
  verifyBundle(b); // the check initiate makes, from the one place it is written
  return b;
}

/**
 * The checked, copied entries of a list of pre-keys (1 to `max`, distinct ids): the list read once
 * (`Array.isArray` sees through a Proxy of an array, whose traps may still throw: copied typed), each
 * entry by `readEntry`, which checks and copies its fields, then (ids distinct so far) by `verify`;
 * `kind` names them in errors.
 */
function readKeyList<T extends { readonly keyId: number }>(
  keys: unknown,
  max: number,
  kind: string,
  readEntry: (k: unknown) => T,
  verify: (entry: T) => void = () => undefined,
): T[] {
  const list = Array.isArray(keys) ? typed(() => Array.from(keys as unknown[]), 'INVALID_ARGUMENT', 'keys') : null;
  if (list === null || list.length === 0 || list.length > max) {
    throw new E2EError('INVALID_ARGUMENT', `keys must be a list of 1 to ${max} ${kind}s`);
  }
  const seen = new Set<number>();
  return list.map((k) => {
    const entry = readEntry(k);
    if (seen.has(entry.keyId)) throw new E2EError('INVALID_ARGUMENT', `duplicate ${kind} id in one call`);
    seen.add(entry.keyId);
    verify(entry);
    return entry;
  });
}

/**
 * A checked copy of a list of public one-time pre-keys (1 to 10000, 32-byte keys, distinct ids):
 * the list and each key read once (a Proxy or a getter gives `INVALID_ARGUMENT`), the keys copied.
 */
export function readOneTimeKeys(keys: unknown): PublicOneTimePreKey[] {
  return readKeyList(keys, MAX_ONE_TIME_PRE_KEYS_PER_CALL, 'one-time pre-key', (k) => {
    const o = readFields(k, ['keyId', 'publicKey'], 'each one-time pre-key');
    assertKeyId(o.keyId, 'keyId');
    if (!isUsableBytes(o.publicKey) || o.publicKey.length !== 32) {
      throw new E2EError('INVALID_KEY', 'one-time pre-key publicKey must be 32 bytes');
    }
    return { keyId: o.keyId, publicKey: Uint8Array.from(o.publicKey) };
  });
}

/**
 * A checked copy of a list of public one-time KEM pre-keys (1 to 1,000, 1184-byte keys, 64-byte
 * signatures, distinct ids), each signature verified under `identityKeyEd` (`BAD_SIGNATURE`): the
 * list and each key read once (`INVALID_ARGUMENT` for a Proxy or getter that throws), copied.
 */
export function readKemPreKeys(keys: unknown, identityKeyEd: Uint8Array): PublicKemPreKeyEntry[] {
  return readKeyList(
    keys,
    MAX_KEM_PRE_KEYS_PER_CALL,
    'KEM pre-key',
    (k) => {
      const o = readFields(k, ['keyId', 'publicKey', 'signature'], 'each KEM pre-key');
      assertKeyId(o.keyId, 'keyId');
      if (!isUsableBytes(o.publicKey) || o.publicKey.length !== KEM_PUBLIC_KEY_BYTES) {
        throw new E2EError('INVALID_KEY', `KEM pre-key publicKey must be ${KEM_PUBLIC_KEY_BYTES} bytes`);
      }
      if (!isUsableBytes(o.signature) || o.signature.length !== 64)
        throw new E2EError('BAD_SIGNATURE', 'KEM pre-key signature must be 64 bytes');
      return { keyId: o.keyId, publicKey: Uint8Array.from(o.publicKey), signature: Uint8Array.from(o.signature) };
    },
    (e) => {
      if (!kemPreKeyVerifies(identityKeyEd, e.publicKey, e.signature)) {
        throw new E2EError('BAD_SIGNATURE', `the signature of KEM pre-key ${e.keyId} does not verify`);
      }
    },
  );
}

/** The refusal of a KEM pre-key id that was claimed already, or is pooled with another key. */
export function kemReusedError(keyId: number): E2EError {
  return new E2EError('INVALID_STATE', `KEM pre-key id ${keyId} was already used or holds another key`, 'kem_id_reused');
}

/**
 * A store's answer `{ version, data }` (of any implementation, also an application's own), read
 * once: `STORE_ERROR` (reason `corrupt`) when it is no record (a getter throws, bytes are fake).
 */
export function readStoredRecord(rec: unknown): { readonly version: number; readonly data: Uint8Array } {
  let r: Record<'version' | 'data', unknown>;
  try {
    r = readFields(rec, ['version', 'data'], 'stored record');
  } catch {
    throw storeFailure('corrupt', 'the store returned no record');
  }
  if (!Number.isSafeInteger(r.version) || (r.version as number) < 1 || !isUsableBytes(r.data))
    throw storeFailure('corrupt', 'the store returned no record');
  return { version: r.version as number, data: r.data };
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

/** The compare-and-swap failure (`reason` names the record when one write covers several). */
export function staleStateError(expected: number, actual: number, reason?: string): E2EError {
  return new E2EError('STALE_STATE', `stored version is ${actual}, not ${expected}${reason ? ` (${reason})` : ''}`, reason);
}

/** The refusal of a receive while the session's inbox is full. */
export function inboxFullError(): E2EError {
  return new E2EError('INVALID_STATE', 'the inbox of this session is full: acknowledge received messages first', 'inbox_full');
}

/** The refusal of an inbox entry whose id is stored already. */
export function inboxIdReusedError(): E2EError {
  return new E2EError('INVALID_STATE', 'an inbox entry with this id is stored already', 'inbox_id_reused');
}

/** The refusal of an establishment recorded before. */
export function establishmentReplayError(): E2EError {
  return new E2EError('DUPLICATE_MESSAGE', 'this establishment was already accepted', 'establishment_replay');
}

/**
 * A `STORE_ERROR` whose message ends with its reason, so logs and `reason` always agree. `cause`
 * (kept, not enumerable, never in the message) is the foreign error behind it, for debugging.
 */
export function storeFailure(reason: string, message: string, cause?: unknown): E2EError {
  return new E2EError('STORE_ERROR', `${message} [${reason}]`, reason, cause !== undefined ? { cause } : undefined);
}

/**
 * Wraps a backend failure as `STORE_ERROR` (reason `backend`, the original as `cause`); an
 * `E2EError` passes as it is. The driver's own error text stays out of the message: it may quote data.
 */
export function storeError(operation: string, e: unknown): E2EError {
  // isE2EError, not instanceof: a thrown Proxy's getPrototypeOf trap may throw.
  if (isE2EError(e)) return e;
  let code: unknown;
  try {
    code = (e as { code?: unknown } | null)?.code;
  } catch {
    code = undefined; // a hostile getter
  }
  // Only a driver's error code (e.g. SQLITE_BUSY) is passed on in the message.
  const kind = typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'error';
  return storeFailure('backend', `storage backend failed during ${operation} (${kind})`, e);
}

/**
 * Calls a store method (of any implementation, also an application's own) and awaits it; anything
 * it throws or rejects with that is not an `E2EError` becomes `STORE_ERROR` (reason `backend`, with `cause`).
 */
export async function callStore<T>(operation: string, f: () => T | Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw storeError(operation, e);
  }
}
