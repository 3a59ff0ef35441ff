import { ready } from '../../lib/sodium';
import { counterChallengeNonce } from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

const CHALLENGE = {
  challenge_id: 'challenge_0011223344556677',
  nonce: 'ab'.repeat(32),
  timestamp: '2026-01-01T00:00:00.000Z',
  expires_in_seconds: 30,
};
const ROLES = { openerDid: `did:mesh:${'a'.repeat(32)}`, answererDid: `did:mesh:${'b'.repeat(32)}` };

describe('counterChallengeNonce', () => {
  test('is SHA-256("AgentMesh_MutualHandshake_v2" ‖ 0x00 ‖ length-prefixed opener, answerer, id, nonce, response nonce), hex (Python hashlib value)', () => {
    expect(counterChallengeNonce(CHALLENGE, 'cd'.repeat(16), ROLES)).toBe(
      '451ab4f3efb2e23e64a865f870184a7d372e5e900991744342ba78c68f3993e7',
    );
  });

  test('depends on every input, the direction included', () => {
    const base = counterChallengeNonce(CHALLENGE, 'cd'.repeat(16), ROLES);
    expect(counterChallengeNonce({ ...CHALLENGE, challenge_id: 'challenge_0011223344556678' }, 'cd'.repeat(16), ROLES)).not.toBe(base);
    expect(counterChallengeNonce({ ...CHALLENGE, nonce: 'ac'.repeat(32) }, 'cd'.repeat(16), ROLES)).not.toBe(base);
    expect(counterChallengeNonce(CHALLENGE, 'ce'.repeat(16), ROLES)).not.toBe(base);
    expect(counterChallengeNonce(CHALLENGE, 'cd'.repeat(16), { openerDid: ROLES.answererDid, answererDid: ROLES.openerDid })).not.toBe(
      base,
    );
    expect(counterChallengeNonce(CHALLENGE, 'cd'.repeat(16), { ...ROLES, answererDid: `did:mesh:${'c'.repeat(32)}` })).not.toBe(base);
  });

  test('refuses what it cannot bind: bad DIDs, a malformed challenge, hostile objects (typed errors)', () => {
    const hostile = new Proxy(
      {},
      {
        get: () => {
          throw new Error('hostile getter');
        },
      },
    );
    expectE2EError(() => counterChallengeNonce(CHALLENGE, 'cd'.repeat(16), { ...ROLES, openerDid: 'alice' }), 'INVALID_ARGUMENT');
    expectE2EError(() => counterChallengeNonce({ ...CHALLENGE, nonce: 'xy' }, 'cd'.repeat(16), ROLES), 'MALFORMED_MESSAGE');
    expectE2EError(() => counterChallengeNonce(CHALLENGE, 'cd'.repeat(16), hostile as never), 'INVALID_ARGUMENT');
    expectE2EError(() => counterChallengeNonce(hostile as never, 'cd'.repeat(16), ROLES), 'MALFORMED_MESSAGE');
    expectE2EError(() => counterChallengeNonce(CHALLENGE, 7 as never, ROLES), 'INVALID_ARGUMENT');
    expect(counterChallengeNonce(CHALLENGE, 'c'.repeat(256), ROLES)).toMatch(/^[0-9a-f]+$/);
    const long = expectE2EError(() => counterChallengeNonce(CHALLENGE, 'c'.repeat(257), ROLES), 'INVALID_ARGUMENT');
    expect(long.message).toBe('responseNonce must be a string of at most 256 characters');
  });
});
