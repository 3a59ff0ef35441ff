/**
 * DIDs of the `did:mesh` method. A DID is trusted only through a binding to an Ed25519 key: a
 * registry entry, or the derivation `did:mesh:` + the first 32 lowercase hex characters of
 * SHA-256(public key), which makes the DID certify its own key.
 */
import { E2EError } from '../errors';
import { assertKey, sha256, toHex } from '../crypto';
import { MAX_DID_LENGTH } from '../limits';

/** The method prefix. */
export const DID_PREFIX = 'did:mesh:';

// W3C DID method-specific-id characters (no '|' or spaces, so `did_i|did_r` stays unambiguous).
const ID_CHAR = '(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})';
const MESH_DID = new RegExp(`^did:mesh:${ID_CHAR}+(?::${ID_CHAR}+)*$`);

/** True when `did` is a syntactically valid `did:mesh:<id>` of at most 256 characters. */
export function isMeshDid(did: unknown): did is string {
  return typeof did === 'string' && did.length <= MAX_DID_LENGTH && MESH_DID.test(did);
}

/** Throws `INVALID_ARGUMENT` unless `did` is a valid `did:mesh:<id>`. */
export function assertMeshDid(did: unknown, name = 'did'): asserts did is string {
  if (!isMeshDid(did))
    throw new E2EError(
      'INVALID_ARGUMENT',
      `${typeof name === 'string' ? name : 'did'} must be a did:mesh:<id> of at most ${MAX_DID_LENGTH} characters`,
    );
}

/**
 * The self-certifying DID of an Ed25519 public key: `did:mesh:` + hex(SHA-256(publicKey))[0..32).
 * @example
 * didFromPublicKey(identity.publicKey); // 'did:mesh:3f1c…' (32 hex characters)
 */
export function didFromPublicKey(publicKey: Uint8Array): string {
  assertKey(publicKey, 'Ed25519 public key', 32);
  return DID_PREFIX + toHex(sha256(publicKey)).slice(0, 32);
}

/** True when `did` is the self-certifying DID of `publicKey` (other DIDs need a registry binding). */
export function didCertifiesKey(did: string, publicKey: Uint8Array): boolean {
  return isMeshDid(did) && did === didFromPublicKey(publicKey);
}
