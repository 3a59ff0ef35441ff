import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify } from 'crypto';
import { ready } from '../../lib/sodium';
import { fromBase64, randomBytes, toBase64, toHex } from '../../lib/crypto';
import {
  AgentIdentity,
  HandshakeChallenge,
  HandshakeResponse,
  IdentityRecord,
  IdentityRegistry,
  InMemoryIdentityRegistry,
  TrustHandshake,
  TrustHandshakeOptions,
  counterChallengeNonce,
} from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';
import { FakeClock, registryWith } from './helpers';
import { rejectionOf } from '../helpers/expect-error';

beforeAll(() => ready());

let clock: FakeClock;
let alice: AgentIdentity;
let bob: AgentIdentity;
let registry: InMemoryIdentityRegistry;
let verifier: TrustHandshake;
let bobSide: TrustHandshake;

function handshake(id: AgentIdentity | undefined, options: Partial<TrustHandshakeOptions> = {}): TrustHandshake {
  return new TrustHandshake({ agentDid: id?.did ?? alice.did, identity: id, registry, now: clock.now, ...options });
}

beforeEach(() => {
  clock = new FakeClock();
  alice = AgentIdentity.generate();
  bob = AgentIdentity.generate();
  registry = registryWith({ id: alice }, { id: bob, trustScore: 850, capabilities: ['pay'] });
  verifier = handshake(alice);
  bobSide = handshake(bob);
});

/**
 * Expects `verify(response)` to fail with TRUST_REJECTED/`reason` and leave `remaining` pending
 * challenges: 0 once the signer was proven (or the challenge expired), while a failure that does
 * not prove who answered (forged, misrouted, malformed) leaves the challenge for the genuine answer.
 */
async function expectRejected(hs: TrustHandshake, response: unknown, reason: string, remaining = 0): Promise<void> {
  const e = await rejectionOf(hs.verify(response as HandshakeResponse));
  expect([e.code, e.reason]).toEqual(['TRUST_REJECTED', reason]);
  expect(hs.pendingCount).toBe(remaining);
}

/** A response signed outside this library (node:crypto), as an AGT (Python) agent would send it. */
function foreignResponse(seed: Uint8Array, did: string, c: HandshakeChallenge): HandshakeResponse {
  const key = createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const responseNonce = 'cd'.repeat(16);
  const payload = `${c.challenge_id}:${c.nonce}:${responseNonce}:${did}${c.freshness_nonce ? `:${c.freshness_nonce}` : ''}`;
  const pub = createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(12);
  return {
    challenge_id: c.challenge_id,
    response_nonce: responseNonce,
    agent_did: did,
    capabilities: [],
    signature: nodeSign(null, Buffer.from(payload), key).toString('base64'),
    public_key: pub.toString('base64'),
    timestamp: '2026-01-01T00:00:01.000000+00:00',
  };
}

describe('TrustHandshake: a valid run', () => {
  test("challenge → response → verify gives the registry's view of the peer", async () => {
    const c = verifier.createChallenge(bob.did);
    expect(c).toEqual({
      challenge_id: expect.stringMatching(/^challenge_[0-9a-f]{16}$/),
      nonce: expect.stringMatching(/^[0-9a-f]{64}$/),
      timestamp: '2026-01-01T00:00:00.000Z',
      expires_in_seconds: 30,
    });
    expect(verifier.pendingCount).toBe(1);
    clock.advance(1000);
    const r = bobSide.respond(c, ['pay', 'admin']);
    expect(r).toEqual({
      challenge_id: c.challenge_id,
      response_nonce: expect.stringMatching(/^[0-9a-f]{32}$/),
      agent_did: bob.did,
      capabilities: ['admin', 'pay'],
      signature: expect.any(String),
      public_key: toBase64(bob.publicKey),
      timestamp: '2026-01-01T00:00:01.000Z',
    });
    const result = await verifier.verify(JSON.parse(JSON.stringify(r)));
    expect({ ...result, publicKey: toHex(result.publicKey) }).toEqual({
      peerDid: bob.did,
      publicKey: toHex(bob.publicKey),
      trustScore: 850,
      trustLevel: 'trusted',
      capabilities: ['pay'],
      verifiedAt: clock.t,
    });
    expect(verifier.pendingCount).toBe(0);
  });

  test("the signature is AGT's: Ed25519 over UTF-8 challenge_id:nonce:response_nonce:agent_did (checked with node:crypto)", () => {
    const c = verifier.createChallenge(bob.did);
    const r = bobSide.respond(c);
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), bob.publicKey]);
    const payload = `${c.challenge_id}:${c.nonce}:${r.response_nonce}:${bob.did}`;
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    expect(nodeVerify(null, Buffer.from(payload), key, Buffer.from(fromBase64(r.signature)))).toBe(true);
    expect(nodeVerify(null, Buffer.from(`${payload}x`), key, Buffer.from(fromBase64(r.signature)))).toBe(false);
  });

  test('a response signed by another implementation (as AGT signs) verifies, JSON text too', async () => {
    const seed = randomBytes(32);
    const carol = AgentIdentity.fromSeed(seed, { did: 'did:mesh:0123456789abcdef0123456789abcdef' });
    registry.register({ did: carol.did, publicKey: carol.publicKey, trustScore: 950 });
    const c = verifier.createChallenge(carol.did, { requireFreshness: true });
    const r = { ...foreignResponse(seed, carol.did, c), freshness_nonce: c.freshness_nonce };
    expect((await verifier.verify(JSON.stringify(r))).trustLevel).toBe('verified_partner');
  });

  test('the registry may answer asynchronously', async () => {
    const asyncRegistry: IdentityRegistry = { get: async (did) => registry.get(did) };
    const hs = handshake(alice, { registry: asyncRegistry });
    const c = hs.createChallenge(bob.did);
    expect((await hs.verify(bobSide.respond(c))).peerDid).toBe(bob.did);
  });

  test('freshness: the nonce must be echoed and is signed', async () => {
    const c = verifier.createChallenge(bob.did, { requireFreshness: true });
    expect(c.freshness_nonce).toMatch(/^[0-9a-f]{32}$/);
    const r = bobSide.respond(c);
    expect(r.freshness_nonce).toBe(c.freshness_nonce);
    await verifier.verify(r);
    const c2 = verifier.createChallenge(bob.did, { requireFreshness: true });
    const { freshness_nonce: _, ...stripped } = bobSide.respond(c2);
    await expectRejected(verifier, stripped, 'freshness_mismatch', 1);
  });

  test('a challenge answered at exactly its lifetime is still valid', async () => {
    const c = verifier.createChallenge(bob.did);
    clock.advance(30_000);
    await verifier.verify(bobSide.respond(c));
  });
});

describe('TrustHandshake: every failure is TRUST_REJECTED with its reason and leaves no state', () => {
  test('expired challenge', async () => {
    const c = verifier.createChallenge(bob.did);
    const r = bobSide.respond(c);
    clock.advance(30_001);
    await expectRejected(verifier, r, 'challenge_expired');
  });

  test('replayed response', async () => {
    const r = bobSide.respond(verifier.createChallenge(bob.did));
    await verifier.verify(r);
    await expectRejected(verifier, r, 'challenge_replayed');
  });

  test('a concurrent second answer to the same challenge', async () => {
    const r = bobSide.respond(verifier.createChallenge(bob.did));
    const results = await Promise.allSettled([verifier.verify(r), verifier.verify(r)]);
    expect(results.map((x) => x.status)).toEqual(['fulfilled', 'rejected']);
    expect((results[1] as PromiseRejectedResult).reason.reason).toBe('challenge_replayed');
  });

  test('unknown challenge (issued by someone else)', async () => {
    const other = handshake(AgentIdentity.generate());
    const r = bobSide.respond(other.createChallenge(bob.did));
    await expectRejected(verifier, r, 'unknown_challenge');
  });

  test('wrong DID: the challenged DID is not the one answering', async () => {
    const carol = AgentIdentity.generate();
    registry.register({ did: carol.did, publicKey: carol.publicKey, trustScore: 900 });
    const c = verifier.createChallenge(bob.did);
    await expectRejected(verifier, handshake(carol).respond(c), 'did_mismatch', 1);
  });

  test("signature by another key than the registry's", async () => {
    const impostor = AgentIdentity.generate({ did: bob.did });
    const c = verifier.createChallenge(bob.did);
    await expectRejected(verifier, handshake(impostor).respond(c), 'bad_signature', 1);
    await verifier.verify(bobSide.respond(c)); // the genuine answer still passes
  });

  test("a valid signature but another public_key than the registry's", async () => {
    const c = verifier.createChallenge(bob.did);
    const r = { ...bobSide.respond(c), public_key: toBase64(AgentIdentity.generate().publicKey) };
    await expectRejected(verifier, r, 'key_mismatch', 1);
  });

  test.each([
    ['revoked', 'identity_revoked'],
    ['suspended', 'identity_suspended'],
  ] as const)('%s identity', async (status, reason) => {
    registry.setStatus(bob.did, status);
    await expectRejected(verifier, bobSide.respond(verifier.createChallenge(bob.did)), reason, 1);
  });

  test('identity unknown to the registry', async () => {
    registry.remove(bob.did);
    await expectRejected(verifier, bobSide.respond(verifier.createChallenge(bob.did)), 'unknown_identity', 1);
  });

  test('score below the threshold (the default 700, and a per-challenge one)', async () => {
    registry.setTrustScore(bob.did, 699);
    await expectRejected(verifier, bobSide.respond(verifier.createChallenge(bob.did)), 'trust_score_too_low');
    registry.setTrustScore(bob.did, 850);
    const c = verifier.createChallenge(bob.did, { requiredTrustScore: 900 });
    await expectRejected(verifier, bobSide.respond(c), 'trust_score_too_low');
  });

  test('an explicit threshold of 0 is honoured (score 0 passes)', async () => {
    registry.setTrustScore(bob.did, 0);
    const c = verifier.createChallenge(bob.did, { requiredTrustScore: 0 });
    expect((await verifier.verify(bobSide.respond(c))).trustLevel).toBe('untrusted');
    const zero = handshake(alice, { minTrustScore: 0 });
    expect((await zero.verify(bobSide.respond(zero.createChallenge(bob.did)))).trustScore).toBe(0);
  });

  test("missing capability: only the registry's capabilities count, not the claimed ones", async () => {
    const c = verifier.createChallenge(bob.did, { requiredCapabilities: ['pay', 'admin'] });
    await expectRejected(verifier, bobSide.respond(c, ['pay', 'admin']), 'missing_capability');
    const strict = handshake(alice, { requiredCapabilities: ['pay'] });
    expect((await strict.verify(bobSide.respond(strict.createChallenge(bob.did)))).capabilities).toEqual(['pay']);
  });

  test('malformed response (the challenge it names stays for the genuine answer)', async () => {
    const c = verifier.createChallenge(bob.did);
    await expectRejected(verifier, { ...bobSide.respond(c), signature: 'short' }, 'malformed_response', 1);
    await expectRejected(verifier, 'not json', 'malformed_response', 1);
    await expectRejected(verifier, null, 'malformed_response', 1);
    await verifier.verify(bobSide.respond(c));
    expect(verifier.pendingCount).toBe(0);
  });

  test('a registry that fails or returns an unusable record fails closed', async () => {
    const record = registry.get(bob.did) as IdentityRecord;
    const cases: [IdentityRegistry, string][] = [
      [
        {
          get: () => {
            throw new Error('db down');
          },
        },
        'registry_error',
      ],
      [{ get: async () => Promise.reject(new Error('db down')) }, 'registry_error'],
      [{ get: () => ({ ...record, publicKey: new Uint8Array(31) }) }, 'registry_error'],
      [{ get: () => ({ ...record, trustScore: 2000 }) }, 'registry_error'],
      [{ get: () => ({ ...record, did: 'did:mesh:other' }) }, 'registry_error'],
      [{ get: () => ({ ...record, status: 'expired' }) as unknown as IdentityRecord }, 'registry_error'],
      [{ get: () => undefined as unknown as null }, 'unknown_identity'],
    ];
    for (const [reg, reason] of cases) {
      const hs = handshake(alice, { registry: reg });
      await expectRejected(hs, bobSide.respond(hs.createChallenge(bob.did)), reason, 1);
    }
  });

  test('too many pending challenges; expired ones make room', () => {
    const hs = handshake(alice, { maxPendingChallenges: 2 });
    hs.createChallenge(bob.did);
    hs.createChallenge(bob.did);
    const e = expectE2EError(() => hs.createChallenge(bob.did), 'TRUST_REJECTED');
    expect(e.reason).toBe('too_many_pending');
    clock.advance(30_001);
    expect(hs.pendingCount).toBe(0);
    hs.createChallenge(bob.did);
  });

  test('cancel forgets a pending challenge', async () => {
    const c = verifier.createChallenge(bob.did);
    expect(verifier.cancel(c.challenge_id)).toBe(true);
    expect(verifier.cancel(c.challenge_id)).toBe(false);
    await expectRejected(verifier, bobSide.respond(c), 'unknown_challenge');
  });
});

describe('TrustHandshake: answering', () => {
  test('needs an identity (INVALID_STATE)', () => {
    const c = verifier.createChallenge(bob.did);
    expectE2EError(() => handshake(undefined).respond(c), 'INVALID_STATE');
  });

  test('refuses a malformed or expired challenge', () => {
    const c = verifier.createChallenge(bob.did);
    expect(expectE2EError(() => bobSide.respond({ ...c, nonce: 'x' }), 'TRUST_REJECTED').reason).toBe('malformed_challenge');
    expect(expectE2EError(() => bobSide.respond('{'), 'TRUST_REJECTED').reason).toBe('malformed_challenge');
    clock.advance(30_001);
    expect(expectE2EError(() => bobSide.respond(c), 'TRUST_REJECTED').reason).toBe('challenge_expired');
  });

  test('refuses bad capability lists', () => {
    expectE2EError(() => bobSide.respond(verifier.createChallenge(bob.did), [''] as string[]), 'INVALID_ARGUMENT');
  });
});

describe('TrustHandshake: options', () => {
  test.each<[string, Partial<TrustHandshakeOptions>]>([
    ['bad DID', { agentDid: 'alice' }],
    ['identity of another DID', { agentDid: 'did:mesh:other' }],
    ['identity of the wrong type', { identity: {} as AgentIdentity }],
    ['no registry', { registry: undefined as unknown as IdentityRegistry }],
    ['score out of range', { minTrustScore: 1001 }],
    ['ttl 0', { challengeTtlSeconds: 0 }],
    ['ttl too long', { challengeTtlSeconds: 3601 }],
    ['max pending 0', { maxPendingChallenges: 0 }],
    ['now not a function', { now: 5 as unknown as () => number }],
    ['bad required capabilities', { requiredCapabilities: [''] }],
  ])('%s → INVALID_ARGUMENT', (_, options) => {
    expectE2EError(() => handshake(alice, options), 'INVALID_ARGUMENT');
  });

  test('options must be an object', () => {
    expectE2EError(() => new TrustHandshake(null as unknown as TrustHandshakeOptions), 'INVALID_ARGUMENT');
  });

  test('createChallenge checks its arguments', () => {
    expectE2EError(() => verifier.createChallenge('bob'), 'INVALID_ARGUMENT');
    expectE2EError(() => verifier.createChallenge(bob.did, { requiredTrustScore: -1 }), 'INVALID_ARGUMENT');
    expectE2EError(() => verifier.createChallenge(bob.did, { requiredCapabilities: 'pay' as never }), 'INVALID_ARGUMENT');
    expectE2EError(() => verifier.createChallenge(bob.did, null as never), 'INVALID_ARGUMENT');
    expect(verifier.pendingCount).toBe(0);
  });

  test("a counter-challenge's nonce is bound to the challenge it answers", () => {
    const theirs = bobSide.createChallenge(alice.did);
    const ours = verifier.respond(theirs);
    const counter = verifier.createChallenge(bob.did, { counterTo: { challenge: theirs, responseNonce: ours.response_nonce } });
    expect(counter.nonce).toBe(counterChallengeNonce(theirs, ours.response_nonce, { openerDid: bob.did, answererDid: alice.did }));
    expectE2EError(() => verifier.createChallenge(bob.did, { counterTo: null as never }), 'INVALID_ARGUMENT');
    expectE2EError(() => verifier.createChallenge(bob.did, { counterTo: { challenge: theirs } as never }), 'INVALID_ARGUMENT');
  });

  test('a custom challenge lifetime is used and sent', () => {
    expect(handshake(alice, { challengeTtlSeconds: 5 }).createChallenge(bob.did).expires_in_seconds).toBe(5);
  });
});

describe('TrustHandshake: verify options and the counter-challenge table', () => {
  test('challengeId, peerDid and kind pin what a response may answer', async () => {
    const mine = verifier.createChallenge(bob.did);
    const other = verifier.createChallenge(bob.did);
    const e = await rejectionOf(verifier.verify(bobSide.respond(other), { challengeId: mine.challenge_id }));
    expect([e.code, e.reason, verifier.pendingCount]).toEqual(['TRUST_REJECTED', 'unexpected_challenge', 2]);
    const carol = AgentIdentity.generate();
    registry.register({ did: carol.did, publicKey: carol.publicKey, trustScore: 900 });
    const forCarol = verifier.createChallenge(carol.did);
    const wrongPeer = await rejectionOf(verifier.verify(handshake(carol).respond(forCarol), { peerDid: bob.did }));
    expect([wrongPeer.reason, verifier.pendingCount]).toEqual(['did_mismatch', 3]);
    const asCounter = await rejectionOf(verifier.verify(bobSide.respond(mine), { kind: 'counter' }));
    expect([asCounter.reason, verifier.pendingCount]).toEqual(['unknown_challenge', 3]);
    expect((await verifier.verify(bobSide.respond(mine), { challengeId: mine.challenge_id, peerDid: bob.did, kind: 'own' })).peerDid).toBe(
      bob.did,
    );
    expect((await rejectionOf(verifier.verify(bobSide.respond(other), null as never))).code).toBe('INVALID_ARGUMENT');
  });

  test("counter-challenges never count against this side's own limit, and are kept 16 per peer", async () => {
    const hs = handshake(alice, { maxPendingChallenges: 2 });
    const theirs = bobSide.createChallenge(alice.did);
    const ours = hs.respond(theirs);
    const counters = Array.from({ length: 20 }, () =>
      hs.createChallenge(bob.did, { counterTo: { challenge: theirs, responseNonce: ours.response_nonce } }),
    );
    expect([hs.pendingCount, hs.pendingCounterCount]).toEqual([0, 16]);
    hs.createChallenge(bob.did);
    hs.createChallenge(bob.did);
    expect(() => hs.createChallenge(bob.did)).toThrow(expect.objectContaining({ reason: 'too_many_pending' }));
    // The four oldest counter-challenges were pushed out; the newest answer verifies, as a counter only.
    const oldest = await rejectionOf(hs.verify(bobSide.respond(counters[0]), { kind: 'counter' }));
    expect(oldest.reason).toBe('unknown_challenge');
    const newest = await rejectionOf(hs.verify(bobSide.respond(counters[19]), { kind: 'own' }));
    expect(newest.reason).toBe('unknown_challenge');
    expect((await hs.verify(bobSide.respond(counters[19]), { kind: 'counter', peerDid: bob.did })).peerDid).toBe(bob.did);
    expect(hs.pendingCounterCount).toBe(15);
    clock.advance(30_001);
    expect([hs.pendingCount, hs.pendingCounterCount]).toEqual([0, 0]);
    expect(hs.cancel(counters[18].challenge_id)).toBe(false);
  });
});
