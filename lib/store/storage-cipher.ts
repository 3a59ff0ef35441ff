/**
 * Encryption at rest: every secret a store keeps is sealed with XChaCha20-Poly1305 under a key
 * derived from a 32-byte storage key the application supplies.
 *
 * Blob (format version 1, laid out in `sealed-blob.ts`):
 * `"AMS"(3) ‖ 0x01 ‖ keyId(8) ‖ nonce(24) ‖ ciphertext ‖ tag(16)`, AEAD associated data =
 * the first 12 bytes ‖ UTF-8 context. The context names the slot (e.g. the session's two DIDs), so a
 * blob copied into another slot does not open. `keyId` identifies the storage key without
 * revealing it, so keys can be rotated: seal with the new key, open with old ones too, and
 * {@link StorageCipher.needsReseal} tells which blobs to re-seal. A later format gets a new version byte.
 */
import { E2EError, isE2EError } from '../errors';
import {
  XCHACHA20_POLY1305_NONCE_BYTES,
  assertKey,
  concatBytes,
  constantTimeEqual,
  hkdfSha256,
  isUsableBytes,
  memzero,
  randomBytes,
  readOptions,
  typed,
  utf8,
  xchacha20Poly1305Decrypt,
  xchacha20Poly1305Encrypt,
} from '../crypto';
import { SEALED_KEY_ID_BYTES, SealedBlobParts, readSealedBlob, sealedBlobHeader, writeSealedBlob } from './sealed-blob';
import { storeFailure } from './validate';
import { StoreErrorReason } from './reasons';
import { MAX_STORAGE_CONTEXT_LENGTH } from '../limits';

/** Bytes of a storage key. */
export const STORAGE_KEY_BYTES = 32;
/** The current sealed-blob format version. */
export const SEALED_FORMAT_VERSION = 1;

const ZERO_SALT = new Uint8Array(32);
const INFO_KEY = utf8('AgentMesh_Store_v1 seal key');
const INFO_ID = utf8('AgentMesh_Store_v1 key id');

interface DerivedKey {
  id: Uint8Array;
  key: Uint8Array;
}

function derive(storageKey: Uint8Array): DerivedKey {
  assertKey(storageKey, 'storage key', STORAGE_KEY_BYTES);
  return {
    id: hkdfSha256(storageKey, ZERO_SALT, INFO_ID, SEALED_KEY_ID_BYTES),
    key: hkdfSha256(storageKey, ZERO_SALT, INFO_KEY, 32),
  };
}

function contextBytes(context: unknown): Uint8Array {
  if (typeof context !== 'string' || context.length === 0 || context.length > MAX_STORAGE_CONTEXT_LENGTH) {
    throw new E2EError('INVALID_ARGUMENT', 'context must be a non-empty string of at most 4096 characters');
  }
  return utf8(context);
}

/** The ciphers this module made: a brand that, unlike instanceof, no Proxy or fake prototype passes. */
const brand = new WeakSet<object>();

/** Whether `value` is a {@link StorageCipher} made by its constructor (never throws). Internal to the stores. */
export function isStorageCipher(value: unknown): value is StorageCipher {
  return typeof value === 'object' && value !== null && brand.has(value);
}

function corrupt(reason: StoreErrorReason, message: string): E2EError {
  return storeFailure(reason, message);
}

/**
 * Seals and opens stored secrets. Construct after `await ready()`.
 * @example
 * const cipher = new StorageCipher(storageKey); // 32 bytes from your secret manager
 * const blob = cipher.seal(secretBytes, 'session|did:mesh:alice|did:mesh:bob');
 * cipher.open(blob, 'session|did:mesh:alice|did:mesh:bob'); // the secret bytes again
 */
export class StorageCipher {
  readonly #current: DerivedKey;
  readonly #all: DerivedKey[];
  #wiped = false;

  /**
   * A cipher sealing under `storageKey` (32 bytes, `INVALID_KEY` otherwise) and opening blobs
   * sealed under it or any of `previousKeys` (for key rotation). The keys are not kept: only keys
   * derived from them, wiped by {@link wipe}.
   */
  constructor(storageKey: Uint8Array, options: { previousKeys?: readonly Uint8Array[] } = {}) {
    const previous = readOptions(options, ['previousKeys'], 'options').previousKeys ?? [];
    if (!Array.isArray(previous)) throw new E2EError('INVALID_ARGUMENT', 'previousKeys must be a list of keys');
    // Copied once, typed: a Proxy of an array passes Array.isArray and may still throw from its traps.
    const keys = typed(() => Array.from(previous as unknown[]), 'INVALID_ARGUMENT', 'previousKeys');
    this.#current = derive(storageKey);
    this.#all = [this.#current, ...keys.map((k) => derive(k as Uint8Array))];
    brand.add(this);
  }

  /** Seals `plaintext` for the slot named by `context`. */
  seal(plaintext: Uint8Array, context: string): Uint8Array {
    this.#assertUsable();
    // isView first: instanceof runs a Proxy's getPrototypeOf trap, and a fake Uint8Array has no length.
    if (!ArrayBuffer.isView(plaintext) || !(plaintext instanceof Uint8Array))
      throw new E2EError('INVALID_ARGUMENT', 'plaintext must be bytes');
    const ctx = contextBytes(context);
    // A detached buffer reads as empty (sealed as empty, as before); touching it would throw a TypeError in the AEAD.
    if (!isUsableBytes(plaintext)) plaintext = new Uint8Array(0);
    const header = sealedBlobHeader(SEALED_FORMAT_VERSION, this.#current.id);
    const nonce = randomBytes(XCHACHA20_POLY1305_NONCE_BYTES);
    const sealed = xchacha20Poly1305Encrypt(this.#current.key, nonce, plaintext, concatBytes(header, ctx));
    return writeSealedBlob(header, nonce, sealed);
  }

  /**
   * Opens a blob sealed for `context`. `STORE_ERROR` with reason `unknown_format` (not a sealed blob,
   * or a newer format), `unknown_storage_key` (sealed under a key this cipher does not have) or
   * `tampered` (modified, truncated, or sealed for another context).
   */
  open(blob: Uint8Array, context: string): Uint8Array {
    this.#assertUsable();
    const ctx = contextBytes(context);
    const { key, parts } = this.#keyFor(blob);
    const ad = concatBytes(sealedBlobHeader(parts.version, parts.keyId), ctx);
    try {
      return xchacha20Poly1305Decrypt(key.key, parts.nonce, parts.sealed, ad);
    } catch {
      throw corrupt(StoreErrorReason.TAMPERED, 'stored blob does not authenticate (modified, or sealed for another slot)');
    }
  }

  /** Whether `blob` was sealed under a previous key (re-seal it with {@link seal} to migrate). */
  needsReseal(blob: Uint8Array): boolean {
    this.#assertUsable();
    return this.#keyFor(blob).key !== this.#current;
  }

  /** Wipes the derived keys; the cipher refuses to work afterwards (`INVALID_STATE`). */
  wipe(): void {
    for (const k of this.#all) memzero(k.key);
    this.#wiped = true;
  }

  #keyFor(blob: Uint8Array): { key: DerivedKey; parts: SealedBlobParts } {
    // isUsableBytes, not instanceof: a Proxy's trap or a fake Uint8Array's length would throw a TypeError.
    if (!isUsableBytes(blob)) throw corrupt(StoreErrorReason.UNKNOWN_FORMAT, 'not a sealed blob');
    let parts: SealedBlobParts;
    try {
      parts = readSealedBlob(blob);
    } catch (e) {
      // The layout's MALFORMED_MESSAGE is, at this boundary, the store's: not a sealed blob.
      if (!isE2EError(e, 'MALFORMED_MESSAGE')) throw e;
      throw corrupt(StoreErrorReason.UNKNOWN_FORMAT, 'not a sealed blob');
    }
    if (parts.version !== SEALED_FORMAT_VERSION)
      throw corrupt(StoreErrorReason.UNKNOWN_FORMAT, `sealed blob format ${parts.version} is not supported`);
    const id = parts.keyId;
    const key = this.#all.find((k) => constantTimeEqual(k.id, id));
    if (!key) throw corrupt(StoreErrorReason.UNKNOWN_STORAGE_KEY, 'sealed under a storage key this cipher does not have');
    return { key, parts };
  }

  #assertUsable(): void {
    if (this.#wiped) throw new E2EError('INVALID_STATE', 'the storage cipher was wiped');
  }
}
