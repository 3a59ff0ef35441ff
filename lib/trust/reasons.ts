/** Why a peer failed the trust checks: the stable `reason` strings of `TRUST_REJECTED` errors. */
import { E2EError } from '../errors';

/** Stable reasons of `TRUST_REJECTED`. Match on these, never on the message text. */
export const TrustRejectReason = {
  /** The response names a challenge this side never issued (or already forgot). */
  UNKNOWN_CHALLENGE: 'unknown_challenge',
  /** The response answers another challenge than the one this call sent (a relayed or misrouted answer). */
  UNEXPECTED_CHALLENGE: 'unexpected_challenge',
  /** The challenge was already answered once. */
  CHALLENGE_REPLAYED: 'challenge_replayed',
  /** The challenge's lifetime ran out before it was answered. */
  CHALLENGE_EXPIRED: 'challenge_expired',
  /** A challenge does not parse (wrong fields, lengths or types). */
  MALFORMED_CHALLENGE: 'malformed_challenge',
  /** A response does not parse (wrong fields, lengths or types). */
  MALFORMED_RESPONSE: 'malformed_response',
  /** The response is signed for another DID than the one challenged. */
  DID_MISMATCH: 'did_mismatch',
  /** The response does not echo the challenge's freshness nonce. */
  FRESHNESS_MISMATCH: 'freshness_mismatch',
  /** The registry does not know the DID. */
  UNKNOWN_IDENTITY: 'unknown_identity',
  /** The registry lists the DID as suspended. */
  IDENTITY_SUSPENDED: 'identity_suspended',
  /** The registry lists the DID as revoked. */
  IDENTITY_REVOKED: 'identity_revoked',
  /** The registry failed or returned an unusable record (fail closed). */
  REGISTRY_ERROR: 'registry_error',
  /** The signature does not verify under the registry's key for the DID. */
  BAD_SIGNATURE: 'bad_signature',
  /** The response's `public_key` is not the registry's key for the DID. */
  KEY_MISMATCH: 'key_mismatch',
  /** The registry's trust score is below the required score. */
  TRUST_SCORE_TOO_LOW: 'trust_score_too_low',
  /** The registry does not grant a required capability. */
  MISSING_CAPABILITY: 'missing_capability',
  /** Too many challenges are waiting for an answer; try again later. */
  TOO_MANY_PENDING: 'too_many_pending',
  /** A bundle's Ed25519 identity key is not the registry's key for the peer's DID. */
  BUNDLE_KEY_MISMATCH: 'bundle_key_mismatch',
  /** An establishment's initiator identity key is not the X25519 form of the registry's key for the DID. */
  IDENTITY_KEY_MISMATCH: 'identity_key_mismatch',
  /** The initiator has not passed this side's own challenge (recently enough) before its establishment. */
  PEER_NOT_VERIFIED: 'peer_not_verified',
  /** A counter-challenge's nonce is not bound to our challenge and the peer's answer (a relayed challenge). */
  UNBOUND_CHALLENGE: 'unbound_challenge',
  /** The peer refused our answer or our challenge. */
  PEER_REFUSED: 'peer_refused',
  /** The transport failed to carry the handshake. */
  TRANSPORT_FAILED: 'transport_failed',
  /** The peer did not answer in time. */
  HANDSHAKE_TIMEOUT: 'handshake_timeout',
} as const;

/** One of the stable reasons of {@link TrustRejectReason}. */
export type TrustRejectReason = (typeof TrustRejectReason)[keyof typeof TrustRejectReason];

/** A `TRUST_REJECTED` error with its reason. */
export function trustRejected(reason: TrustRejectReason, message: string): E2EError {
  return new E2EError('TRUST_REJECTED', message, reason);
}
