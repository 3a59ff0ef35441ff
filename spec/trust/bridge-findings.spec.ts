/**
 * The trust bridge against the attacks an adversarial review found (issue 9, findings 1, 2, 3, 4,
 * 6, 7b, 8): one test per finding, each written as the attack, each failing on the code before the fix.
 * The generative model of the same adversary is `network-adversary.spec.ts`.
 */
import { ready } from '../../lib/sodium';
import { fromUtf8, toBase64, utf8, x25519KeyPair } from '../../lib/crypto';
import { DoubleRatchet } from '../../lib/ratchet';
import { ChannelEstablishment, SecureChannel } from '../../lib/channel';
import { X3DHKeyManager } from '../../lib/x3dh';
import {
  AgentIdentity,
  ChallengeReply,
  EncryptedTrustBridge,
  EncryptedTrustBridgeOptions,
  HandshakeChallenge,
  HandshakeResponse,
  LocalTrustNetwork,
  TrustTransport,
  handshakeSignedPayload,
} from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';
import { FakeClock, registryWith } from './helpers';
import { expectE2EErrorAsync, rejectionOf } from '../helpers/expect-error';

beforeAll(() => ready());
afterEach(() => jest.restoreAllMocks());

/** Alice, Bob, Carol (score 750) honest; Mallory registered with score 900 and every capability, and able to relay. */
function world(options: Partial<EncryptedTrustBridgeOptions> = {}) {
  const clock = new FakeClock();
  const [alice, bob, carol, mallory] = [0, 1, 2, 3].map(() => AgentIdentity.generate());
  const registry = registryWith(
    { id: alice, trustScore: 850, capabilities: ['pay'] },
    { id: bob, trustScore: 920, capabilities: ['pay'] },
    { id: carol, trustScore: 750 },
    { id: mallory, trustScore: 900, capabilities: ['pay', 'admin'] },
  );
  const network = new LocalTrustNetwork();
  const bridge = (id: AgentIdentity) =>
    new EncryptedTrustBridge({ identity: id, registry, transport: network, now: clock.now, ...options });
  return {
    clock,
    alice,
    bob,
    carol,
    mallory,
    registry,
    network,
    aliceBridge: bridge(alice),
    bobBridge: bridge(bob),
    carolBridge: bridge(carol),
    malloryBridge: bridge(mallory),
  };
}
type World = ReturnType<typeof world>;

/** A well-formed challenge as anyone could make one (id from `i`). */
function challengeAt(w: World, i: number): HandshakeChallenge {
  return {
    challenge_id: `challenge_${i.toString(16).padStart(16, '0')}`,
    nonce: 'ab'.repeat(32),
    timestamp: new Date(w.clock.t).toISOString(),
    expires_in_seconds: 30,
  };
}

/** Mallory's own answer to `challenge`, signed with her key over a response nonce she picks. */
function malloryAnswer(w: World, challenge: HandshakeChallenge, responseNonce: string): HandshakeResponse {
  return {
    challenge_id: challenge.challenge_id,
    response_nonce: responseNonce,
    agent_did: w.mallory.did,
    capabilities: [],
    signature: toBase64(w.mallory.sign(handshakeSignedPayload(challenge, responseNonce, w.mallory.did))),
    public_key: toBase64(w.mallory.publicKey),
    timestamp: new Date(w.clock.t).toISOString(),
  };
}

/** Alice and Bob with a live session that carried a message each way. */
async function liveAliceBob(w: World) {
  const ac = await w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle());
  const bc = await w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment);
  expect(fromUtf8(bc.receive(ac.send(utf8('hello bob'))))).toBe('hello bob');
  expect(fromUtf8(ac.receive(bc.send(utf8('hello alice'))))).toBe('hello alice');
  return { ac, bc };
}

/** The session each side records for the other still works both ways. */
async function expectLive(w: World, ac: SecureChannel, bc: SecureChannel): Promise<void> {
  expect(w.aliceBridge.getSession(w.bob.did)?.channel).toBe(ac);
  expect(w.bobBridge.getSession(w.alice.did)?.channel).toBe(bc);
  expect(fromUtf8(await w.bobBridge.receive(w.alice.did, ac.send(utf8('still here'))))).toBe('still here');
  expect(fromUtf8(await w.aliceBridge.receive(w.bob.did, bc.send(utf8('me too'))))).toBe('me too');
}

describe('finding 1: a peer that also relays cannot pass as another DID', () => {
  test('an answer to a counter-challenge Alice issued Mallory is not an answer to her open to Bob', async () => {
    const w = world();
    // Mallory challenges Alice; Alice answers and challenges back: that counter-challenge is pending at Alice, for Mallory.
    const reply = await w.aliceBridge.answerChallenge(w.mallory.did, challengeAt(w, 0xff));
    const counter = reply.challenge!;
    const relay: TrustTransport = {
      // Alice asks Bob; Mallory, carrying the message, returns her own signature over Alice's counter-challenge.
      sendChallenge: async () => ({ response: malloryAnswer(w, counter, 'cd'.repeat(16)) }),
      sendAnswer: async () => undefined,
    };
    const mallorysBundle = await w.malloryBridge.publishPrekeyBundle();
    await expectE2EErrorAsync(
      w.aliceBridge.openSecureChannel(w.bob.did, mallorysBundle, { transport: relay }),
      'TRUST_REJECTED',
      'unexpected_challenge',
    );
    expect(w.aliceBridge.getSession(w.bob.did)).toBeUndefined();
  });

  test("Mallory's own signature over Alice's challenge to Bob: did_mismatch; Bob's answer with Mallory's bundle: bundle_key_mismatch", async () => {
    const w = world();
    const answersAsMallory: TrustTransport = {
      sendChallenge: async (_from, _to, c) => ({ response: malloryAnswer(w, c, 'cd'.repeat(16)) }),
      sendAnswer: async () => undefined,
    };
    const mallorysBundle = await w.malloryBridge.publishPrekeyBundle();
    await expectE2EErrorAsync(
      w.aliceBridge.openSecureChannel(w.bob.did, mallorysBundle, { transport: answersAsMallory }),
      'TRUST_REJECTED',
      'did_mismatch',
    );
    const create = jest.spyOn(SecureChannel, 'createSender');
    await expectE2EErrorAsync(w.aliceBridge.openSecureChannel(w.bob.did, mallorysBundle), 'TRUST_REJECTED', 'bundle_key_mismatch');
    expect(create).not.toHaveBeenCalled();
    expect(w.aliceBridge.activeSessions.size).toBe(0);
  });
});

describe('finding 1 (the other direction): an answer to an open is not an answer to a counter-challenge', () => {
  test("Bob's answer to Alice's own challenge, delivered as a counter-challenge answer, admits nothing and spends nothing", async () => {
    const w = world();
    let hijacked: Promise<void> | undefined;
    const relay: TrustTransport = {
      sendChallenge: async (from, to, c) => {
        const reply = await w.network.sendChallenge(from, to, c);
        hijacked = w.aliceBridge.completeHandshake(w.bob.did, reply.response); // as if it answered Alice's counter-challenge
        await hijacked.catch(() => undefined);
        return reply;
      },
      sendAnswer: (from, to, answer) => w.network.sendAnswer(from, to, answer),
    };
    expect(await w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle(), { transport: relay })).toBeInstanceOf(
      SecureChannel,
    );
    await expectE2EErrorAsync(hijacked!, 'TRUST_REJECTED', 'unknown_challenge');
    // Alice holds no verification of Bob from it: Bob's establishment in the other direction is refused.
    const { establishment } = SecureChannel.createSender(w.bob.createKeyManager(), await w.aliceBridge.publishPrekeyBundle());
    await expectE2EErrorAsync(w.aliceBridge.acceptSecureChannel(w.bob.did, establishment), 'TRUST_REJECTED', 'peer_not_verified');
  });
});

describe('finding 3: the requirements of an open hold for the peer it records', () => {
  test.each([
    ['requiredTrustScore: 900', { requiredTrustScore: 900 }, 'trust_score_too_low'],
    ['requiredCapabilities: [pay]', { requiredCapabilities: ['pay'] }, 'missing_capability'],
  ])('%s: Carol cannot pass by answering an earlier challenge that carried only the defaults', async (_, req, reason) => {
    const w = world();
    // An earlier challenge to Carol with the bridge defaults (700, no capabilities), still pending at Alice.
    const earlier = await w.aliceBridge.answerChallenge(w.carol.did, challengeAt(w, 0xee));
    const carolsAnswerToEarlier = await carolRespond(w, earlier.challenge!);
    const replaying: TrustTransport = {
      sendChallenge: async () => ({ response: carolsAnswerToEarlier }),
      sendAnswer: async () => undefined,
    };
    const bundle = await w.carolBridge.publishPrekeyBundle();
    await expectE2EErrorAsync(
      w.aliceBridge.openSecureChannel(w.carol.did, bundle, { ...req, transport: replaying }),
      'TRUST_REJECTED',
      'unexpected_challenge',
    );
    // Carol's honest answer to this call's challenge fails the call's own requirement.
    await expectE2EErrorAsync(w.aliceBridge.openSecureChannel(w.carol.did, bundle, req), 'TRUST_REJECTED', reason);
    expect(w.aliceBridge.activeSessions.size).toBe(0);
    // Without the extra requirement Carol passes.
    expect(await w.aliceBridge.openSecureChannel(w.carol.did, bundle)).toBeInstanceOf(SecureChannel);
  });
});

/** Carol's signed answer to a challenge (through her bridge's own handshake, as on the wire). */
async function carolRespond(w: World, challenge: HandshakeChallenge): Promise<HandshakeResponse> {
  const reply = await w.carolBridge.answerChallenge(w.alice.did, challenge);
  return reply.response;
}

describe('finding 4: the mutual handshake cannot be relayed, and nothing the peer did not send replaces a live session', () => {
  test("Mallory forwards Bob's counter-challenge to Alice as her own (picking Bob's response nonce): Alice refuses to sign it", async () => {
    const w = world();
    const { ac, bc } = await liveAliceBob(w);
    let forwarded: HandshakeResponse | undefined;
    const relay: TrustTransport = {
      sendChallenge: async (_from, _to, cA): Promise<ChallengeReply> => {
        // Mallory hands Alice's challenge to Bob as if Alice were challenging him...
        const fromBob = await w.bobBridge.answerChallenge(w.alice.did, cA);
        // ...and answers Alice herself, with Bob's response nonce so the old binding matched Bob's counter-challenge.
        return { response: malloryAnswer(w, cA, fromBob.response.response_nonce), challenge: fromBob.challenge };
      },
      sendAnswer: async (_from, _to, answer) => {
        forwarded = answer;
        await w.bobBridge.completeHandshake(w.alice.did, answer); // Alice's signature, delivered to Bob
      },
    };
    await expectE2EErrorAsync(
      w.aliceBridge.openSecureChannel(w.mallory.did, await w.malloryBridge.publishPrekeyBundle(), { transport: relay }),
      'TRUST_REJECTED',
      'unbound_challenge',
    );
    expect(forwarded).toBeUndefined();
    // Mallory's establishment in Alice's name is refused (no verification) and the live session is untouched.
    const forged = forgedEstablishment(w, await w.bobBridge.publishPrekeyBundle());
    await expectE2EErrorAsync(w.bobBridge.acceptSecureChannel(w.alice.did, forged), 'TRUST_REJECTED', 'peer_not_verified');
    await expectLive(w, ac, bc);
  });

  test('even with Alice freshly verified, a forged or replayed establishment never replaces or closes the live session', async () => {
    const w = world();
    const { ac, bc } = await liveAliceBob(w);
    await w.aliceBridge.verifyPeer(w.bob.did); // Bob holds a fresh verification of Alice
    const wipe = jest.spyOn(DoubleRatchet.prototype, 'wipe');
    const forged = forgedEstablishment(w, await w.bobBridge.publishPrekeyBundle());
    const dead = await w.bobBridge.acceptSecureChannel(w.alice.did, forged);
    expect(wipe).not.toHaveBeenCalled();
    expect(w.bobBridge.getSession(w.alice.did)!.channel).toBe(bc);
    expectE2EError(() => dead.receive(ac.send(utf8('not for the forgery'))), 'DECRYPT_FAILED');
    await expectLive(w, ac, bc);
  });
});

/** An establishment in Alice's name with an ephemeral key Mallory made: anyone who saw Alice's public key can build it. */
function forgedEstablishment(w: World, bundle: { signedPreKeyId: number; oneTimePreKeyId?: number }): ChannelEstablishment {
  return ChannelEstablishment.from({
    initiatorIdentityKey: identityX25519(w.alice),
    ephemeralPublicKey: x25519KeyPair().publicKey,
    usedOneTimeKeyId: bundle.oneTimePreKeyId,
    signedPreKeyId: bundle.signedPreKeyId,
  });
}

function identityX25519(id: AgentIdentity): Uint8Array {
  const m = id.createKeyManager();
  const key = Uint8Array.from(m.identityKey.publicKey);
  m.wipe();
  return key;
}

describe('finding 2: a replayed establishment is recognised whatever its encoding', () => {
  test('bit 255 of the ephemeral key flipped: DUPLICATE_MESSAGE, and the old messages do not decrypt again', async () => {
    const w = world({ requireMutualHandshake: false });
    const bundle = await bundleWithoutOtk(w);
    const ac = await w.aliceBridge.openSecureChannel(w.bob.did, bundle);
    const est = w.aliceBridge.getSession(w.bob.did)!.establishment;
    const bc = await w.bobBridge.acceptSecureChannel(w.alice.did, est);
    const old = ac.send(utf8('pay 5'));
    expect(fromUtf8(bc.receive(old))).toBe('pay 5');
    const flipped = Uint8Array.from(est.ephemeralPublicKey);
    flipped[31] ^= 0x80;
    const replay = ChannelEstablishment.from({
      initiatorIdentityKey: est.initiatorIdentityKey,
      ephemeralPublicKey: flipped,
      signedPreKeyId: est.signedPreKeyId,
    });
    await expectE2EErrorAsync(w.bobBridge.acceptSecureChannel(w.alice.did, replay), 'DUPLICATE_MESSAGE', null);
    await expectE2EErrorAsync(w.bobBridge.acceptSecureChannel(w.alice.did, est), 'DUPLICATE_MESSAGE', null);
    expect(w.bobBridge.getSession(w.alice.did)!.channel).toBe(bc);
  });
});

/** Bob's bundle without a one-time pre-key (the last-resort form a replay can reuse). */
async function bundleWithoutOtk(w: World) {
  const { oneTimePreKey: _k, oneTimePreKeyId: _i, ...rest } = await w.bobBridge.publishPrekeyBundle();
  return rest;
}

describe('finding 8: a refused establishment spends nothing', () => {
  test("a replayed old establishment does not use up Alice's fresh verification; a forged one does not either", async () => {
    const w = world();
    const { ac, bc } = await liveAliceBob(w);
    const old = w.aliceBridge.getSession(w.bob.did)!.establishment;
    // Alice opens again: a new handshake (Bob verifies her afresh), a new establishment.
    const ac2 = await w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle());
    const fresh = w.aliceBridge.getSession(w.bob.did)!.establishment;
    await expectE2EErrorAsync(w.bobBridge.acceptSecureChannel(w.alice.did, old), 'DUPLICATE_MESSAGE', null);
    await w.bobBridge.acceptSecureChannel(w.alice.did, forgedEstablishment(w, await w.bobBridge.publishPrekeyBundle()));
    const bc2 = await w.bobBridge.acceptSecureChannel(w.alice.did, fresh);
    expect(w.bobBridge.getSession(w.alice.did)!.channel).toBe(bc); // until Alice's new session authenticates
    expect(fromUtf8(await w.bobBridge.receive(w.alice.did, ac2.send(utf8('new session'))))).toBe('new session');
    expect(w.bobBridge.getSession(w.alice.did)!.channel).toBe(bc2);
    expect([ac.isClosed, bc.isClosed]).toEqual([true, true]); // each side closed the old one for the new
  });
});

describe('finding 8: a forged establishment naming the genuine one-time pre-key does not spend it', () => {
  test("Mallory injects Alice's pre-key ids with her own ephemeral key first: Alice's establishment is still accepted; the key is spent once hers authenticates", async () => {
    const w = world();
    const bundle = await w.bobBridge.publishPrekeyBundle();
    const ac = await w.aliceBridge.openSecureChannel(w.bob.did, bundle);
    const genuine = w.aliceBridge.getSession(w.bob.did)!.establishment;
    const otkId = genuine.usedOneTimeKeyId!;
    const forged = ChannelEstablishment.from({
      initiatorIdentityKey: genuine.initiatorIdentityKey,
      ephemeralPublicKey: x25519KeyPair().publicKey,
      usedOneTimeKeyId: otkId,
      signedPreKeyId: genuine.signedPreKeyId,
    });
    const dead = await w.bobBridge.acceptSecureChannel(w.alice.did, forged); // a dead session: nothing decrypts under it
    const bc = await w.bobBridge.acceptSecureChannel(w.alice.did, genuine); // was OTK_NOT_FOUND
    expect(fromUtf8(await w.bobBridge.receive(w.alice.did, ac.send(utf8('mine'))))).toBe('mine');
    expect(w.bobBridge.getSession(w.alice.did)!.channel).toBe(bc);
    expect(dead.isClosed).toBe(true); // an older waiting session goes once a newer one authenticates
    // Spent now: the same ids with a fresh ephemeral key (as Mallory would retry) find no key.
    const again = ChannelEstablishment.from({ ...forged, ephemeralPublicKey: x25519KeyPair().publicKey });
    await w.aliceBridge.verifyPeer(w.bob.did);
    await expectE2EErrorAsync(w.bobBridge.acceptSecureChannel(w.alice.did, again), 'OTK_NOT_FOUND', null);
  });
});

describe("finding 6: traffic in others' names cannot lock an agent out", () => {
  const challengeFor = challengeAt;

  test('unregistered DIDs get nothing and leave no state; registered ones spoofed by the thousand do not block opens either way', async () => {
    const w = world();
    for (let i = 0; i < 1000; i++) {
      const fake = `did:mesh:${i.toString(16).padStart(32, '0')}`;
      await expectE2EErrorAsync(w.bobBridge.answerChallenge(fake, challengeFor(w, i)), 'TRUST_REJECTED', 'unknown_identity');
    }
    expect(w.bobBridge.pendingChallenges).toEqual({ own: 0, counter: 0 });
    // 3,000 challenges in Alice's, Carol's and Mallory's names at Bob, and at Alice in Bob's name.
    for (let i = 0; i < 1000; i++) {
      for (const did of [w.alice.did, w.carol.did, w.mallory.did]) await w.bobBridge.answerChallenge(did, challengeFor(w, i));
      await w.aliceBridge.answerChallenge(w.bob.did, challengeFor(w, i));
    }
    expect(w.bobBridge.pendingChallenges).toEqual({ own: 0, counter: 48 }); // the newest 16 per peer
    expect(w.aliceBridge.pendingChallenges).toEqual({ own: 0, counter: 16 });
    // Alice can still open to Bob, and Bob to Alice.
    const { ac, bc } = await liveAliceBob(w);
    expect(fromUtf8(bc.receive(ac.send(utf8('through the flood'))))).toBe('through the flood');
    expect(await w.bobBridge.openSecureChannel(w.alice.did, await w.aliceBridge.publishPrekeyBundle())).toBeInstanceOf(SecureChannel);
  });

  test("a flood between Bob's counter-challenge and Alice's answer does not push Alice's out while it is among the newest 16", async () => {
    const w = world();
    const flooding: TrustTransport = {
      sendChallenge: async (from, _to, c) => {
        const reply = await w.bobBridge.answerChallenge(from, c);
        for (let i = 0; i < 15; i++) await w.bobBridge.answerChallenge(w.alice.did, challengeFor(w, i));
        return reply;
      },
      sendAnswer: (from, to, answer) => w.network.sendAnswer(from, to, answer),
    };
    expect(
      await w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle(), { transport: flooding }),
    ).toBeInstanceOf(SecureChannel);
    expect(await w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment)).toBeInstanceOf(
      SecureChannel,
    );
  });
});

describe('finding 7b: a closed bridge wipes what it holds and signs nothing', () => {
  test('close(): sessions wiped, the key manager it made wiped, every method INVALID_STATE, off the network', async () => {
    const w = world();
    const { ac, bc } = await liveAliceBob(w);
    const wipeManager = jest.spyOn(X3DHKeyManager.prototype, 'wipe');
    w.bobBridge.close();
    w.bobBridge.close(); // idempotent
    expect([w.bobBridge.isClosed, bc.isClosed, wipeManager.mock.calls.length]).toEqual([true, true, 1]);
    await expectE2EErrorAsync(w.bobBridge.publishPrekeyBundle(), 'INVALID_STATE', null);
    await expectE2EErrorAsync(w.bobBridge.answerChallenge(w.alice.did, challengeAt(w, 1)), 'INVALID_STATE', null);
    await expectE2EErrorAsync(
      w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment),
      'INVALID_STATE',
      null,
    );
    expect((await rejectionOf(w.bobBridge.receive(w.alice.did, ac.send(utf8('x'))))).code).toBe('INVALID_STATE');
    // Bob is gone from the network: Alice's open fails at the transport.
    await expectE2EErrorAsync(w.aliceBridge.verifyPeer(w.bob.did), 'TRUST_REJECTED', 'transport_failed');
  });

  test("a bridge over a caller's key manager holds no copy of the identity secret: once the manager is wiped it cannot answer", async () => {
    const w = world();
    const manager = w.carol.createKeyManager();
    const carol2 = new EncryptedTrustBridge({
      agentDid: w.carol.did,
      keyManager: manager,
      registry: w.registry,
      transport: w.network,
      now: w.clock.now,
    });
    await w.aliceBridge.verifyPeer(w.carol.did); // works
    carol2.closeAllSessions();
    manager.wipe();
    await expectE2EErrorAsync(carol2.answerChallenge(w.alice.did, challengeAt(w, 2)), 'INVALID_STATE', null);
    await expectE2EErrorAsync(w.aliceBridge.verifyPeer(w.carol.did), 'TRUST_REJECTED', 'transport_failed');
    const identity = AgentIdentity.fromKeyManager(manager, w.carol.did);
    expectE2EError(() => identity.sign(utf8('x')), 'INVALID_STATE');
    carol2.close(); // a caller's key manager is the caller's: close() does not wipe it again
  });
});
