/** Trust levels from registry trust scores (AGT's tiers). */
import { E2EError } from '../errors';
import { MAX_TRUST_SCORE } from '../limits';

/** The four trust levels, highest first. */
export type TrustLevel = 'verified_partner' | 'trusted' | 'standard' | 'untrusted';

/** Lowest score of each level: ≥ 900 verified partner, ≥ 700 trusted, ≥ 400 standard, else untrusted. */
export const TRUST_LEVEL_THRESHOLDS = { verified_partner: 900, trusted: 700, standard: 400, untrusted: 0 } as const;

/** True for an integer trust score in [0, 1000]. */
export function isTrustScore(score: unknown): score is number {
  return typeof score === 'number' && Number.isInteger(score) && score >= 0 && score <= MAX_TRUST_SCORE;
}

/** Throws `INVALID_ARGUMENT` unless `score` is an integer in [0, 1000]. */
export function assertTrustScore(score: unknown, name = 'trust score'): asserts score is number {
  if (!isTrustScore(score))
    throw new E2EError(
      'INVALID_ARGUMENT',
      `${typeof name === 'string' ? name : 'trust score'} must be an integer in [0, ${MAX_TRUST_SCORE}]`,
    );
}

/**
 * The level of a trust score.
 * @example
 * trustLevel(850); // 'trusted'
 */
export function trustLevel(score: number): TrustLevel {
  assertTrustScore(score);
  if (score >= TRUST_LEVEL_THRESHOLDS.verified_partner) return 'verified_partner';
  if (score >= TRUST_LEVEL_THRESHOLDS.trusted) return 'trusted';
  if (score >= TRUST_LEVEL_THRESHOLDS.standard) return 'standard';
  return 'untrusted';
}
