/** HKDF-SHA256 (RFC 5869) over libsodium's `crypto_kdf_hkdf_sha256_extract` / `_expand`. */
import { E2EError } from '../errors';
import { assertBytes, assertKey } from './bytes';
import { withScratch } from './heap';
import { MAX_AEAD_INPUT_BYTES } from '../limits';

/** Bytes of an HKDF-SHA256 pseudorandom key. */
export const HKDF_SHA256_PRK_BYTES = 32;
/** The longest HKDF-SHA256 output: 255 blocks of 32 bytes. */
export const HKDF_SHA256_MAX_BYTES = 255 * 32;

/** HKDF-Extract: `PRK = HMAC-SHA256(salt, ikm)`; an empty salt is allowed (RFC 5869 then uses zeros). */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  assertBytes(salt, 'salt');
  assertBytes(ikm, 'ikm');
  if (salt.length + ikm.length > MAX_AEAD_INPUT_BYTES)
    throw new E2EError('MESSAGE_TOO_LARGE', `HKDF input above ${MAX_AEAD_INPUT_BYTES} bytes`);
  return withScratch(HKDF_SHA256_PRK_BYTES + salt.length + ikm.length, (raw, ptr, heap) => {
    const s = ptr + HKDF_SHA256_PRK_BYTES;
    const i = s + salt.length;
    heap.set(salt, s);
    heap.set(ikm, i);
    raw._crypto_kdf_hkdf_sha256_extract(ptr, s, salt.length, i, ikm.length);
    return heap.slice(ptr, ptr + HKDF_SHA256_PRK_BYTES);
  });
}

/** HKDF-Expand of a 32-byte PRK to `length` bytes (0 to 8160); `INVALID_ARGUMENT` above that. */
export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  assertKey(prk, 'prk', HKDF_SHA256_PRK_BYTES);
  assertBytes(info, 'info');
  if (info.length > MAX_AEAD_INPUT_BYTES) throw new E2EError('MESSAGE_TOO_LARGE', `HKDF info above ${MAX_AEAD_INPUT_BYTES} bytes`);
  if (!Number.isInteger(length) || length < 0 || length > HKDF_SHA256_MAX_BYTES) {
    throw new E2EError('INVALID_ARGUMENT', `HKDF-SHA256 output length must be 0..${HKDF_SHA256_MAX_BYTES}`);
  }
  return withScratch(HKDF_SHA256_PRK_BYTES + info.length + length, (raw, ptr, heap) => {
    const inf = ptr + HKDF_SHA256_PRK_BYTES;
    const out = inf + info.length;
    heap.set(prk, ptr);
    heap.set(info, inf);
    if (raw._crypto_kdf_hkdf_sha256_expand(out, length, inf, info.length, ptr) !== 0) {
      throw new E2EError('INVALID_ARGUMENT', 'HKDF-SHA256 expand failed');
    }
    return heap.slice(out, out + length);
  });
}

/**
 * HKDF-SHA256: extract then expand.
 * @example hkdfSha256(dhOutput, rootKey, utf8('AgentMesh_Ratchet_v1'), 64)
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const prk = hkdfExtract(salt, ikm);
  try {
    return hkdfExpand(prk, info, length);
  } finally {
    prk.fill(0);
  }
}
