/**
 * Cache of Ed25519 → X25519 public key conversions. A conversion costs a full scalar
 * multiplication (about 100 µs) and peers' keys recur, so the results (public values) are kept.
 */
import { ed25519PublicKeyToX25519, toHex } from '../crypto';

const MAX_ENTRIES = 1024;
const cache = new Map<string, Uint8Array>();

/** The X25519 form of an Ed25519 public key, cached (`INVALID_KEY` for a key that has none). */
export function x25519FormOfEd25519(identityKeyEd: Uint8Array): Uint8Array {
  const id = toHex(identityKeyEd);
  const hit = cache.get(id);
  if (hit) return Uint8Array.from(hit);
  const converted = ed25519PublicKeyToX25519(identityKeyEd);
  if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value as string);
  cache.set(id, Uint8Array.from(converted));
  return converted;
}
