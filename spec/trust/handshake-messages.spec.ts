import { ready } from '../../lib/sodium';
import { fromUtf8 } from '../../lib/crypto';
import { handshakeSignedPayload, parseHandshakeChallenge, parseHandshakeResponse } from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

const CHALLENGE = {
  challenge_id: 'challenge_0011223344556677',
  nonce: 'ab'.repeat(32),
  timestamp: '2026-01-01T00:00:00.000Z',
  expires_in_seconds: 30,
};
// What AGT's pydantic model serializes: a self-reported score, user_context, freshness_nonce null, microseconds.
const AGT_RESPONSE = {
  challenge_id: 'challenge_0011223344556677',
  response_nonce: 'cd'.repeat(16),
  agent_did: 'did:mesh:alice',
  capabilities: ['pay'],
  trust_score: 1000,
  signature: 'A'.repeat(86) + '==',
  public_key: 'A'.repeat(43) + '=',
  freshness_nonce: null,
  user_context: null,
  timestamp: '2026-01-01T00:00:01.123456+00:00',
};

describe('parseHandshakeChallenge', () => {
  test('keeps exactly the known fields, from an object or JSON text', () => {
    expect(parseHandshakeChallenge({ ...CHALLENGE, extra: 1 })).toEqual(CHALLENGE);
    expect(parseHandshakeChallenge(JSON.stringify({ ...CHALLENGE, freshness_nonce: 'ef'.repeat(16) }))).toEqual({
      ...CHALLENGE,
      freshness_nonce: 'ef'.repeat(16),
    });
    expect(parseHandshakeChallenge({ ...CHALLENGE, freshness_nonce: null })).toEqual(CHALLENGE);
  });

  test.each([
    ['not JSON', '{'],
    ['an array', []],
    ['null', null],
    ['too long', ' '.repeat(65537)],
    ['short id', { ...CHALLENGE, challenge_id: 'challenge_00' }],
    ['uppercase id', { ...CHALLENGE, challenge_id: 'challenge_00112233445566AA' }],
    ['short nonce', { ...CHALLENGE, nonce: 'ab' }],
    ['bad freshness', { ...CHALLENGE, freshness_nonce: 'zz'.repeat(16) }],
    ['bad time', { ...CHALLENGE, timestamp: 'yesterday' }],
    ['ttl 0', { ...CHALLENGE, expires_in_seconds: 0 }],
    ['ttl too long', { ...CHALLENGE, expires_in_seconds: 3601 }],
    ['ttl not integer', { ...CHALLENGE, expires_in_seconds: 1.5 }],
  ])('refuses %s with MALFORMED_MESSAGE', (_, input) => {
    expectE2EError(() => parseHandshakeChallenge(input), 'MALFORMED_MESSAGE');
  });
});

describe('parseHandshakeResponse', () => {
  test("reads AGT's form and drops the self-reported score and other extras", () => {
    expect(parseHandshakeResponse(JSON.stringify(AGT_RESPONSE))).toEqual({
      challenge_id: AGT_RESPONSE.challenge_id,
      response_nonce: AGT_RESPONSE.response_nonce,
      agent_did: 'did:mesh:alice',
      capabilities: ['pay'],
      signature: AGT_RESPONSE.signature,
      public_key: AGT_RESPONSE.public_key,
      timestamp: AGT_RESPONSE.timestamp,
    });
  });

  test('absent capabilities are an empty list; a freshness nonce is kept', () => {
    const { capabilities: _, ...rest } = AGT_RESPONSE;
    const r = parseHandshakeResponse({ ...rest, freshness_nonce: 'ef'.repeat(16) });
    expect([r.capabilities, r.freshness_nonce]).toEqual([[], 'ef'.repeat(16)]);
  });

  test.each([
    ['bad challenge id', { challenge_id: 'x' }],
    ['bad response nonce', { response_nonce: 'cd' }],
    ['bad DID', { agent_did: 'alice' }],
    ['bad capabilities', { capabilities: [7] }],
    ['short signature', { signature: 'AAAA' }],
    ['non-base64 signature', { signature: '!'.repeat(88) }],
    ['short public key', { public_key: 'AAAA' }],
    ['missing public key', { public_key: undefined }],
    ['bad time', { timestamp: 12 }],
    ['bad freshness', { freshness_nonce: 'ef' }],
  ])('refuses %s with MALFORMED_MESSAGE', (_, change) => {
    expectE2EError(() => parseHandshakeResponse({ ...AGT_RESPONSE, ...change }), 'MALFORMED_MESSAGE');
  });
});

describe('handshakeSignedPayload', () => {
  test("is AGT's challenge_id:nonce:response_nonce:agent_did, plus :freshness_nonce when present", () => {
    expect(fromUtf8(handshakeSignedPayload(CHALLENGE, 'cd'.repeat(16), 'did:mesh:alice'))).toBe(
      `challenge_0011223344556677:${'ab'.repeat(32)}:${'cd'.repeat(16)}:did:mesh:alice`,
    );
    expect(fromUtf8(handshakeSignedPayload({ ...CHALLENGE, freshness_nonce: 'ef'.repeat(16) }, 'cd'.repeat(16), 'did:mesh:alice'))).toBe(
      `challenge_0011223344556677:${'ab'.repeat(32)}:${'cd'.repeat(16)}:did:mesh:alice:${'ef'.repeat(16)}`,
    );
  });
});
