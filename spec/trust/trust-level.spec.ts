import { TRUST_LEVEL_THRESHOLDS, isTrustScore, trustLevel } from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';

describe('trustLevel', () => {
  test.each([
    [0, 'untrusted'],
    [399, 'untrusted'],
    [400, 'standard'],
    [699, 'standard'],
    [700, 'trusted'],
    [899, 'trusted'],
    [900, 'verified_partner'],
    [1000, 'verified_partner'],
  ])('%i is %s', (score, level) => {
    expect(trustLevel(score)).toBe(level);
  });

  test("the thresholds are AGT's", () => {
    expect(TRUST_LEVEL_THRESHOLDS).toEqual({ verified_partner: 900, trusted: 700, standard: 400, untrusted: 0 });
  });

  test.each([-1, 1001, 1.5, NaN, '700'])('refuses %p with INVALID_ARGUMENT', (score) => {
    expect(isTrustScore(score)).toBe(false);
    expectE2EError(() => trustLevel(score as number), 'INVALID_ARGUMENT');
  });
});
