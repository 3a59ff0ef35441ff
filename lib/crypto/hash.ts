/** SHA-256 (FIPS 180-4) over libsodium's `crypto_hash_sha256`. Not on the per-message path. */
import { assertBytes } from './bytes';
import { sodium } from '../sodium';

/** Bytes of a SHA-256 digest. */
export const SHA256_BYTES = 32;

/** SHA-256 of `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  assertBytes(data, 'data');
  return sodium().wrapper.crypto_hash_sha256(data);
}
