/**
 * Caches of public-key work on peers' keys. An Ed25519 → X25519 conversion costs a full scalar
 * multiplication (about 100 µs) and peers' keys recur, so the results (public values) are kept.
 */
import { ed25519PublicKeyToX25519, ed25519Verify, sha256, toHex } from '../crypto';
import { kemPreKeySignedBytes } from './kem-prekey';
import { MAX_IDENTITY_CACHE_ENTRIES } from '../limits';

const cache = new Map<string, Uint8Array>();

/** The X25519 form of an Ed25519 public key, cached (`INVALID_KEY` for a key that has none). */
export function x25519FormOfEd25519(identityKeyEd: Uint8Array): Uint8Array {
  const id = toHex(identityKeyEd);
  const hit = cache.get(id);
  if (hit) return Uint8Array.from(hit);
  const converted = ed25519PublicKeyToX25519(identityKeyEd);
  if (cache.size >= MAX_IDENTITY_CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
  cache.set(id, Uint8Array.from(converted));
  return converted;
}

// Both caches are keyed by the raw bytes, on purpose: they memoise deterministic functions of those
// bytes (an Ed25519 signature covers the signed pre-key's exact bytes), so a canonical-form key
// would let a bit-255 variant of a signed pre-key pass as verified. Identity comparisons use
// canonical forms elsewhere (`respond`, the ratchet, the stores' replay memories).
const verified = new Set<string>();

/**
 * Verifies a bundle's signed pre-key signature, remembering the triples that verified (public
 * values; an Ed25519 verification is deterministic), so that opening many sessions to the same
 * agent pays the ~130 µs verification once per signed pre-key.
 */
export function signedPreKeyVerifies(identityKeyEd: Uint8Array, signedPreKey: Uint8Array, signature: Uint8Array): boolean {
  const id = toHex(identityKeyEd) + toHex(signedPreKey) + toHex(signature);
  if (verified.has(id)) return true;
  if (!ed25519Verify(signature, signedPreKey, identityKeyEd)) return false;
  if (verified.size >= MAX_IDENTITY_CACHE_ENTRIES) verified.delete(verified.values().next().value as string);
  verified.add(id);
  return true;
}

/**
 * Verifies a bundle's KEM pre-key signature (over {@link kemPreKeySignedBytes}), remembering the
 * triples that verified as {@link signedPreKeyVerifies} does. The 1184-byte key enters the cache key
 * as its SHA-256: collision resistance keeps "this exact key verified" exact.
 */
export function kemPreKeyVerifies(identityKeyEd: Uint8Array, kemPreKey: Uint8Array, signature: Uint8Array): boolean {
  const id = 'kem' + toHex(identityKeyEd) + toHex(sha256(kemPreKey)) + toHex(signature);
  if (verified.has(id)) return true;
  if (!ed25519Verify(signature, kemPreKeySignedBytes(kemPreKey), identityKeyEd)) return false;
  if (verified.size >= MAX_IDENTITY_CACHE_ENTRIES) verified.delete(verified.values().next().value as string);
  verified.add(id);
  return true;
}
