import { ready } from '../../lib/sodium';
import { ChallengeReply, HandshakeChallenge, HandshakeResponse, LocalTrustNetwork, TrustEndpoint, TrustWireEvent } from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';
import { rejectionOf } from '../helpers/expect-error';

beforeAll(() => ready());

const CHALLENGE: HandshakeChallenge = {
  challenge_id: 'challenge_0011223344556677',
  nonce: 'ab'.repeat(32),
  timestamp: '2026-01-01T00:00:00.000Z',
  expires_in_seconds: 30,
};
const RESPONSE = { challenge_id: CHALLENGE.challenge_id } as HandshakeResponse;

/** An endpoint that records what it receives and answers with fixed data. */
function endpoint(did: string, log: unknown[]): TrustEndpoint {
  return {
    agentDid: did,
    answerChallenge: async (from, c) => {
      log.push(['challenge', from, c]);
      return { response: RESPONSE, extra: new Uint8Array(1) } as unknown as ChallengeReply;
    },
    completeHandshake: async (from, r) => {
      log.push(['answer', from, r]);
    },
  };
}

describe('LocalTrustNetwork', () => {
  test('delivers messages as JSON text and shows them to the observer', async () => {
    const events: TrustWireEvent[] = [];
    const net = new LocalTrustNetwork({ observe: (e) => events.push(e) });
    const log: unknown[] = [];
    net.join(endpoint('did:mesh:bob', log));
    const reply = await net.sendChallenge('did:mesh:alice', 'did:mesh:bob', CHALLENGE);
    await net.sendAnswer('did:mesh:alice', 'did:mesh:bob', RESPONSE);
    expect(log).toEqual([
      ['challenge', 'did:mesh:alice', JSON.stringify(CHALLENGE)],
      ['answer', 'did:mesh:alice', JSON.stringify(RESPONSE)],
    ]);
    expect(reply).toEqual({ response: RESPONSE, extra: { 0: 0 } }); // a copy through JSON, not the object
    expect(events.map((e) => [e.kind, e.fromDid, e.toDid])).toEqual([
      ['challenge', 'did:mesh:alice', 'did:mesh:bob'],
      ['reply', 'did:mesh:bob', 'did:mesh:alice'],
      ['answer', 'did:mesh:alice', 'did:mesh:bob'],
    ]);
    expect(events[0].json).toBe(JSON.stringify(CHALLENGE));
  });

  test('an unknown peer is TRUST_REJECTED / transport_failed; leave() removes a peer', async () => {
    const net = new LocalTrustNetwork();
    net.join(endpoint('did:mesh:bob', []));
    expect(net.leave('did:mesh:bob')).toBe(true);
    expect(net.leave('did:mesh:bob')).toBe(false);
    for (const p of [
      net.sendChallenge('did:mesh:alice', 'did:mesh:bob', CHALLENGE),
      net.sendAnswer('did:mesh:alice', 'did:mesh:bob', RESPONSE),
    ]) {
      const e = await rejectionOf(p);
      expect([e.code, e.reason]).toEqual(['TRUST_REJECTED', 'transport_failed']);
    }
  });

  test('bad arguments are INVALID_ARGUMENT', () => {
    expectE2EError(() => new LocalTrustNetwork({ observe: 1 as never }), 'INVALID_ARGUMENT');
    expectE2EError(() => new LocalTrustNetwork().join({} as TrustEndpoint), 'INVALID_ARGUMENT');
    expectE2EError(() => new LocalTrustNetwork().join(null as never), 'INVALID_ARGUMENT');
  });
});
