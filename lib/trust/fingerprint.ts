/**
 * Key fingerprints for people to compare out of band: the first 20 bytes (160 bits) of SHA-256 of
 * the Ed25519 public key, as 10 groups of 4 uppercase hex digits separated by spaces, e.g.
 * `3F1C 09A2 77B0 …`. The first 8 groups are the id of the key's self-certifying DID, upper-cased.
 */
import { assertKey, sha256, toHex } from '../crypto';

/** Bytes of the digest a fingerprint shows. */
export const FINGERPRINT_BYTES = 20;

/**
 * The fingerprint of an Ed25519 public key (stable: it depends on the key only).
 * @example
 * keyFingerprint(identity.publicKey); // '3F1C 09A2 77B0 5D4E 1C2B 9A8F 0E6D 4C3B 2A19 0807'
 */
export function keyFingerprint(publicKey: Uint8Array): string {
  assertKey(publicKey, 'Ed25519 public key', 32);
  const hex = toHex(sha256(publicKey).subarray(0, FINGERPRINT_BYTES)).toUpperCase();
  return hex.match(/.{4}/g)!.join(' ');
}
