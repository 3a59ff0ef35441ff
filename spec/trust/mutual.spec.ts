import { ready } from '../../lib/sodium';
import { counterChallengeNonce } from '../../lib/trust';

beforeAll(() => ready());

const CHALLENGE = {
  challenge_id: 'challenge_0011223344556677', nonce: 'ab'.repeat(32), timestamp: '2026-01-01T00:00:00.000Z', expires_in_seconds: 30,
};

describe('counterChallengeNonce', () => {
  test('is SHA-256("AgentMesh_MutualHandshake_v1" ‖ 0x00 ‖ "challenge_id:nonce:response_nonce"), hex (node:crypto value)', () => {
    expect(counterChallengeNonce(CHALLENGE, 'cd'.repeat(16))).toBe('bc114c52a146f904bbef8a2f3f2d78d6b4a782d37228365bd53a074a55cab341');
  });

  test('depends on every input', () => {
    const base = counterChallengeNonce(CHALLENGE, 'cd'.repeat(16));
    expect(counterChallengeNonce({ ...CHALLENGE, challenge_id: 'challenge_0011223344556678' }, 'cd'.repeat(16))).not.toBe(base);
    expect(counterChallengeNonce({ ...CHALLENGE, nonce: 'ac'.repeat(32) }, 'cd'.repeat(16))).not.toBe(base);
    expect(counterChallengeNonce(CHALLENGE, 'ce'.repeat(16))).not.toBe(base);
  });
});
