/**
 * The registry checks both directions share: the DID is known and active (with a well-formed
 * record), its score reaches the required score and it holds the required capabilities.
 */
import { isE2EError } from '../errors';
import { isCapabilityList, missingCapabilities } from './capabilities';
import { IdentityRecord, IdentityRegistry, isIdentityStatus } from './registry';
import { TrustRejectReason, trustRejected } from './reasons';
import { isTrustScore } from './trust-level';

/** What a peer must meet. */
export interface TrustRequirements {
  /** Lowest registry trust score accepted (0 accepts any). */
  readonly requiredTrustScore: number;
  /** Capabilities the registry must grant. */
  readonly requiredCapabilities: readonly string[];
}

/**
 * The registry's record of `did` if it is known and active; `TRUST_REJECTED` otherwise (reasons
 * `unknown_identity`, `identity_suspended`, `identity_revoked`, `registry_error` — fail closed).
 */
export async function lookupActiveIdentity(registry: IdentityRegistry, did: string): Promise<IdentityRecord> {
  let record: unknown;
  try {
    record = await registry.get(did);
  } catch (e) {
    if (isE2EError(e, 'TRUST_REJECTED')) throw e;
    throw trustRejected(TrustRejectReason.REGISTRY_ERROR, 'the identity registry failed');
  }
  if (record === null || record === undefined)
    throw trustRejected(TrustRejectReason.UNKNOWN_IDENTITY, 'the registry does not know this DID');
  if (!isWellFormed(record, did)) throw trustRejected(TrustRejectReason.REGISTRY_ERROR, 'the registry returned an unusable record');
  if (record.status === 'revoked') throw trustRejected(TrustRejectReason.IDENTITY_REVOKED, 'the identity is revoked');
  if (record.status === 'suspended') throw trustRejected(TrustRejectReason.IDENTITY_SUSPENDED, 'the identity is suspended');
  return record;
}

/** Throws `TRUST_REJECTED` (`trust_score_too_low`, `missing_capability`) unless `record` meets `req`. */
export function checkRequirements(record: IdentityRecord, req: TrustRequirements): void {
  if (record.trustScore < req.requiredTrustScore) {
    throw trustRejected(
      TrustRejectReason.TRUST_SCORE_TOO_LOW,
      `registry trust score ${record.trustScore} is below the required ${req.requiredTrustScore}`,
    );
  }
  const missing = missingCapabilities(record.capabilities, req.requiredCapabilities);
  if (missing.length > 0) {
    throw trustRejected(TrustRejectReason.MISSING_CAPABILITY, `missing capabilities: ${missing.join(', ')}`);
  }
}

function isWellFormed(r: unknown, did: string): r is IdentityRecord {
  if (typeof r !== 'object' || r === null) return false;
  const o = r as Record<string, unknown>;
  return (
    o.did === did &&
    o.publicKey instanceof Uint8Array &&
    o.publicKey.length === 32 &&
    isTrustScore(o.trustScore) &&
    isIdentityStatus(o.status) &&
    isCapabilityList(o.capabilities)
  );
}
