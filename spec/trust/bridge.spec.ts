import { ready } from '../../lib/sodium';
import { fromUtf8, toHex, utf8 } from '../../lib/crypto';
import { PreKeyBundle, X3DHKeyManager } from '../../lib/x3dh';
import { DoubleRatchet } from '../../lib/ratchet';
import { ChannelEstablishment, SecureChannel } from '../../lib/channel';
import { InMemoryStore } from '../../lib/store';
import {
  AgentIdentity,
  ChallengeReply,
  EncryptedTrustBridge,
  EncryptedTrustBridgeOptions,
  InMemoryIdentityRegistry,
  LocalTrustNetwork,
  TrustHandshake,
  TrustTransport,
} from '../../lib/trust';
import { expectE2EError, rejectionOf } from '../helpers/expect-error';
import { FakeClock, registryWith } from './helpers';

beforeAll(() => ready());
afterEach(() => jest.restoreAllMocks());

/** Two agents (and a clock) on one network with one registry. */
function world(overrides: { alice?: Partial<EncryptedTrustBridgeOptions>; bob?: Partial<EncryptedTrustBridgeOptions> } = {}) {
  const clock = new FakeClock();
  const alice = AgentIdentity.generate();
  const bob = AgentIdentity.generate();
  const mallory = AgentIdentity.generate();
  const registry = registryWith({ id: alice, capabilities: ['pay'] }, { id: bob, trustScore: 920 }, { id: mallory, trustScore: 900 });
  const network = new LocalTrustNetwork();
  const aliceMgr = alice.createKeyManager();
  const bridge = (id: AgentIdentity, o: Partial<EncryptedTrustBridgeOptions> = {}) =>
    new EncryptedTrustBridge({ identity: id, registry, transport: network, now: clock.now, ...o });
  return {
    clock,
    alice,
    bob,
    mallory,
    registry,
    network,
    aliceMgr,
    aliceBridge: bridge(alice, { keyManager: aliceMgr, ...overrides.alice }),
    bobBridge: bridge(bob, overrides.bob),
    malloryBridge: bridge(mallory),
  };
}

async function connected(w = world()) {
  const bundle = await w.bobBridge.publishPrekeyBundle();
  const ac = await w.aliceBridge.openSecureChannel(w.bob.did, bundle);
  const bc = await w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment);
  return { ...w, bundle, ac, bc };
}

async function expectTrustRejected(p: Promise<unknown>, reason: string): Promise<void> {
  const e = await rejectionOf(p);
  expect([e.code, e.reason]).toEqual(['TRUST_REJECTED', reason]);
}

describe('EncryptedTrustBridge: open and accept', () => {
  test('messages both ways, out of order, under AD did_i|did_r', async () => {
    const { ac, bc, alice, bob, aliceBridge, bobBridge } = await connected();
    const m = [0, 1, 2].map((i) => ac.send(utf8(`a${i}`)));
    expect([2, 0, 1].map((i) => fromUtf8(bc.receive(m[i].serialize())))).toEqual(['a2', 'a0', 'a1']);
    expect(fromUtf8(ac.receive(bc.send(utf8('b0'))))).toBe('b0');
    const ad = utf8(`${alice.did}|${bob.did}`);
    expect(toHex(ac.associatedData.subarray(0, ad.length))).toBe(toHex(ad));
    expect(toHex(bc.associatedData)).toBe(toHex(ac.associatedData));
    const s = aliceBridge.getSession(bob.did)!;
    expect([s.role, s.peerDid, s.trustScore, s.trustLevel, s.capabilities]).toEqual(['initiator', bob.did, 920, 'verified_partner', []]);
    const r = bobBridge.getSession(alice.did)!;
    expect([r.role, r.trustScore, r.trustLevel, r.capabilities]).toEqual(['responder', 850, 'trusted', ['pay']]);
    expect(r.establishment.serialize()).toEqual(s.establishment.serialize());
    expect(r.establishedAt).toBe(Date.UTC(2026, 0, 1));
  });

  test("a bundle whose Ed25519 key is not the registry's key for the DID is refused before X3DH", async () => {
    const w = world();
    const initiate = jest.spyOn(X3DHKeyManager.prototype, 'initiate');
    const malloryBundle = await w.malloryBridge.publishPrekeyBundle(); // valid, but Mallory's
    await expectTrustRejected(w.aliceBridge.openSecureChannel(w.bob.did, malloryBundle), 'bundle_key_mismatch');
    expect(initiate).not.toHaveBeenCalled();
    expect(w.aliceBridge.activeSessions.size).toBe(0);
  });

  test("an establishment whose initiator key is not the claimed DID's is refused on accept, before X3DH", async () => {
    const w = world();
    const bundle = await w.bobBridge.publishPrekeyBundle();
    await w.aliceBridge.openSecureChannel(w.bob.did, bundle); // Bob now holds Alice's verification
    // Mallory's own establishment (her key), claimed to be Alice's:
    const { establishment } = SecureChannel.createSender(w.mallory.createKeyManager(), await w.bobBridge.publishPrekeyBundle());
    const respond = jest.spyOn(X3DHKeyManager.prototype, 'respond');
    await expectTrustRejected(w.bobBridge.acceptSecureChannel(w.alice.did, establishment), 'identity_key_mismatch');
    expect(respond).not.toHaveBeenCalled();
    expect(w.bobBridge.activeSessions.size).toBe(0);
    // and Alice's verification is still there for her real establishment
    expect(await w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment)).toBeInstanceOf(
      SecureChannel,
    );
  });

  test('the same check without the mutual handshake', async () => {
    const w = world({ bob: { requireMutualHandshake: false } });
    const { establishment } = SecureChannel.createSender(w.mallory.createKeyManager(), await w.bobBridge.publishPrekeyBundle());
    await expectTrustRejected(w.bobBridge.acceptSecureChannel(w.alice.did, establishment), 'identity_key_mismatch');
  });

  test('mutual: an initiator that did not answer our challenge is refused; a verification is used up by the session it admits', async () => {
    const w = await connected();
    expect(fromUtf8(w.bc.receive(w.ac.send(utf8('hi'))))).toBe('hi'); // the accepted session authenticates: the verification is spent
    const direct = SecureChannel.createSender(w.aliceMgr, await w.bobBridge.publishPrekeyBundle());
    const respond = jest.spyOn(X3DHKeyManager.prototype, 'respond');
    await expectTrustRejected(w.bobBridge.acceptSecureChannel(w.alice.did, direct.establishment), 'peer_not_verified');
    expect(respond).not.toHaveBeenCalled();
    expect(w.bobBridge.getSession(w.alice.did)!.channel).toBe(w.bc); // the live session is untouched
  });

  test('mutual: the verification expires', async () => {
    const w = world();
    await w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle());
    w.clock.advance(300_001);
    await expectTrustRejected(
      w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment),
      'peer_not_verified',
    );
  });

  test('without the mutual handshake, accept still checks the registry (score, status, capabilities)', async () => {
    const w = world({ bob: { requireMutualHandshake: false, requiredCapabilities: ['pay'] } });
    const mk = async () => SecureChannel.createSender(w.aliceMgr, await w.bobBridge.publishPrekeyBundle()).establishment;
    w.registry.setTrustScore(w.alice.did, 650);
    await expectTrustRejected(w.bobBridge.acceptSecureChannel(w.alice.did, await mk()), 'trust_score_too_low');
    w.registry.setTrustScore(w.alice.did, 850);
    w.registry.setCapabilities(w.alice.did, []);
    await expectTrustRejected(w.bobBridge.acceptSecureChannel(w.alice.did, await mk()), 'missing_capability');
    w.registry.setCapabilities(w.alice.did, ['pay']);
    const bc = await w.bobBridge.acceptSecureChannel(w.alice.did, await mk());
    expect(bc.isClosed).toBe(false);
    w.registry.setStatus(w.alice.did, 'revoked');
    await expectTrustRejected(w.bobBridge.acceptSecureChannel(w.alice.did, await mk()), 'identity_revoked');
    await expectTrustRejected(w.bobBridge.acceptSecureChannel('did:mesh:nobody', await mk()), 'unknown_identity');
  });

  test('a peer that falls below the threshold between handshake and accept is refused', async () => {
    const w = world();
    await w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle());
    w.registry.setStatus(w.alice.did, 'suspended');
    await expectTrustRejected(
      w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment),
      'identity_suspended',
    );
  });

  test('the responder refuses an initiator below ITS threshold: the opener gets peer_refused, no X3DH', async () => {
    const w = world({ bob: { minTrustScore: 900 } });
    const initiate = jest.spyOn(X3DHKeyManager.prototype, 'initiate');
    await expectTrustRejected(w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle()), 'peer_refused');
    expect(initiate).not.toHaveBeenCalled();
    expect(w.aliceBridge.activeSessions.size).toBe(0);
  });

  test("the opener's own requirements: score (0 honoured) and capabilities", async () => {
    const w = world();
    w.registry.setTrustScore(w.bob.did, 100);
    await expectTrustRejected(w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle()), 'trust_score_too_low');
    const ch = await w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle(), { requiredTrustScore: 0 });
    expect(w.aliceBridge.getSession(w.bob.did)!.trustLevel).toBe('untrusted');
    expect(ch.isClosed).toBe(false);
    await expectTrustRejected(
      w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle(), {
        requiredTrustScore: 0,
        requiredCapabilities: ['audit'],
      }),
      'missing_capability',
    );
    expect(w.aliceBridge.getSession(w.bob.did)!.channel).toBe(ch); // a failed open leaves the old session alone
  });

  test('a replayed establishment is DUPLICATE_MESSAGE even after a fresh handshake, and the live session goes on', async () => {
    const w = await connected();
    const est = w.aliceBridge.getSession(w.bob.did)!.establishment;
    await w.aliceBridge.verifyPeer(w.bob.did); // a fresh verification of Alice at Bob
    const e = await rejectionOf(w.bobBridge.acceptSecureChannel(w.alice.did, ChannelEstablishment.fromJSON(JSON.stringify(est))));
    expect(e.code).toBe('DUPLICATE_MESSAGE');
    expect(fromUtf8(w.bc.receive(w.ac.send(utf8('still here'))))).toBe('still here');
  });

  test('a replay that drops (or adds) the signed pre-key id is the same establishment: DUPLICATE_MESSAGE', async () => {
    const w = await connected();
    const est = w.aliceBridge.getSession(w.bob.did)!.establishment;
    expect(est.signedPreKeyId).toBe(0);
    await w.aliceBridge.verifyPeer(w.bob.did);
    const withoutId = new ChannelEstablishment({ ...est, signedPreKeyId: undefined, usedOneTimeKeyId: undefined });
    const e = await rejectionOf(w.bobBridge.acceptSecureChannel(w.alice.did, withoutId));
    expect(e.code).toBe('DUPLICATE_MESSAGE');
    expect(fromUtf8(w.bc.receive(w.ac.send(utf8('still here'))))).toBe('still here');
  });

  test('an establishment naming an unknown one-time key is OTK_NOT_FOUND, and creates no session', async () => {
    const w = world();
    const bundle = await w.bobBridge.publishPrekeyBundle();
    await w.aliceBridge.openSecureChannel(w.bob.did, bundle);
    const est = w.aliceBridge.getSession(w.bob.did)!.establishment;
    const forged = new ChannelEstablishment({ ...est, usedOneTimeKeyId: 999 });
    expect((await rejectionOf(w.bobBridge.acceptSecureChannel(w.alice.did, forged))).code).toBe('OTK_NOT_FOUND');
    expect(w.bobBridge.activeSessions.size).toBe(0);
  });

  test('a malformed establishment is MALFORMED_MESSAGE', async () => {
    const w = world();
    const e = await rejectionOf(w.bobBridge.acceptSecureChannel(w.alice.did, { initiatorIdentityKey: new Uint8Array(3) } as never));
    expect(e.code).toBe('MALFORMED_MESSAGE');
  });
});

describe('EncryptedTrustBridge: sessions', () => {
  test('close wipes: the ratchet is wiped, the channel refuses use, the session is gone', async () => {
    const w = await connected();
    const wipe = jest.spyOn(DoubleRatchet.prototype, 'wipe');
    expect(w.aliceBridge.closeSession(w.bob.did)).toBe(true);
    expect(wipe).toHaveBeenCalledTimes(1);
    expect(w.ac.isClosed).toBe(true);
    expectE2EError(() => w.ac.send(utf8('x')), 'CHANNEL_CLOSED');
    expectE2EError(() => w.ac.toBytes(), 'CHANNEL_CLOSED');
    expect(w.aliceBridge.getSession(w.bob.did)).toBeUndefined();
    expect(w.aliceBridge.closeSession(w.bob.did)).toBe(false);
  });

  test('closeAllSessions wipes every session', async () => {
    const w = await connected();
    await w.aliceBridge.openSecureChannel(w.mallory.did, await w.malloryBridge.publishPrekeyBundle());
    expect([...w.aliceBridge.activeSessions.keys()].sort()).toEqual([w.bob.did, w.mallory.did].sort());
    const wipe = jest.spyOn(DoubleRatchet.prototype, 'wipe');
    w.aliceBridge.closeAllSessions();
    w.bobBridge.closeAllSessions();
    expect(wipe).toHaveBeenCalledTimes(3);
    expect(w.aliceBridge.activeSessions.size).toBe(0);
    expectE2EError(() => w.bc.receive(new Uint8Array(100)), 'CHANNEL_CLOSED');
  });

  test('reopening to the same DID closes and wipes the first session, on both sides', async () => {
    const w = await connected();
    expect(fromUtf8(w.bc.receive(w.ac.send(utf8('first'))))).toBe('first');
    const wipe = jest.spyOn(DoubleRatchet.prototype, 'wipe');
    const ac2 = await w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle());
    expect([w.ac.isClosed, wipe.mock.calls.length]).toEqual([true, 1]);
    expect(w.aliceBridge.getSession(w.bob.did)!.channel).toBe(ac2);
    const bc2 = await w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment);
    // Bob's first session stays until the new one has authenticated a message from Alice
    expect([w.bc.isClosed, wipe.mock.calls.length, w.bobBridge.getSession(w.alice.did)!.channel]).toEqual([false, 1, w.bc]);
    expect(fromUtf8(await w.bobBridge.receive(w.alice.did, ac2.send(utf8('again'))))).toBe('again');
    expect(w.bobBridge.getSession(w.alice.did)!.channel).toBe(bc2);
    expect([w.bc.isClosed, wipe.mock.calls.length]).toEqual([true, 2]);
    expect(w.aliceBridge.activeSessions.size).toBe(1);
  });

  test('receive(peerDid, message): live session first, then waiting ones; errors when none can read it', async () => {
    const w = await connected();
    expect((await rejectionOf(w.bobBridge.receive(w.mallory.did, w.ac.send(utf8('x'))))).code).toBe('INVALID_STATE'); // no session with Mallory
    const m1 = w.ac.send(utf8('one'));
    expect(fromUtf8(await w.bobBridge.receive(w.alice.did, m1))).toBe('one');
    expect((await rejectionOf(w.bobBridge.receive(w.alice.did, m1))).code).toBe('DUPLICATE_MESSAGE');
    const garbled = Uint8Array.from(w.ac.send(utf8('two')).serialize());
    garbled[garbled.length - 1] ^= 1;
    expect((await rejectionOf(w.bobBridge.receive(w.alice.did, garbled))).code).toBe('DECRYPT_FAILED');
    expect((await rejectionOf(w.bobBridge.receive(w.alice.did, new Uint8Array(3)))).code).toBe('MALFORMED_MESSAGE');
    // A second session from Alice waits; its messages are read through the bridge, which then promotes it.
    const ac2 = await w.aliceBridge.openSecureChannel(w.bob.did, await w.bobBridge.publishPrekeyBundle());
    const bc2 = await w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment);
    expect(w.bobBridge.getSession(w.alice.did)!.channel).toBe(w.bc);
    const late = Array.from({ length: 40 }, (_, i) => ac2.send(utf8(`m${i}`)));
    expect(fromUtf8(await w.bobBridge.receive(w.alice.did, late[39]))).toBe('m39');
    expect(w.bobBridge.getSession(w.alice.did)!.channel).toBe(bc2);
    expect(fromUtf8(await w.bobBridge.receive(w.alice.did, late[0]))).toBe('m0');
    expect(w.bc.isClosed).toBe(true);
  });

  test('activeSessions is a copy, and a channel closed directly drops out', async () => {
    const w = await connected();
    const copy = w.aliceBridge.activeSessions;
    copy.delete(w.bob.did);
    expect(w.aliceBridge.activeSessions.size).toBe(1);
    w.ac.close();
    expect(w.aliceBridge.activeSessions.size).toBe(0);
    expect(w.aliceBridge.getSession(w.bob.did)).toBeUndefined();
  });
});

describe('EncryptedTrustBridge: handshake plumbing', () => {
  test('transport failures are TRUST_REJECTED and nothing is set up', async () => {
    const w = world();
    const bundle = await w.bobBridge.publishPrekeyBundle();
    const failing: TrustTransport = {
      sendChallenge: async () => {
        throw new Error('ECONNRESET');
      },
      sendAnswer: async () => undefined,
    };
    await expectTrustRejected(w.aliceBridge.openSecureChannel(w.bob.did, bundle, { transport: failing }), 'transport_failed');
    const garbage: TrustTransport = { sendChallenge: async () => 'nope' as unknown as ChallengeReply, sendAnswer: async () => undefined };
    await expectTrustRejected(w.aliceBridge.openSecureChannel(w.bob.did, bundle, { transport: garbage }), 'malformed_response');
    const silent: TrustTransport = { sendChallenge: () => new Promise(() => undefined), sendAnswer: async () => undefined };
    const slow = new EncryptedTrustBridge({ identity: w.alice, registry: w.registry, transport: silent, handshakeTimeoutMs: 20 });
    await expectTrustRejected(slow.openSecureChannel(w.bob.did, bundle), 'handshake_timeout');
    await expectTrustRejected(w.aliceBridge.openSecureChannel('did:mesh:elsewhere', bundle), 'transport_failed');
    expect(w.aliceBridge.activeSessions.size).toBe(0);
  });

  test('a reply that answers a different challenge is refused', async () => {
    const w = world();
    const other = {
      challenge_id: 'challenge_0011223344556677',
      nonce: 'ab'.repeat(32),
      timestamp: new Date(w.clock.t).toISOString(),
      expires_in_seconds: 30,
    };
    const misdirected: TrustTransport = {
      sendChallenge: async (from) => w.bobBridge.answerChallenge(from, other), // Bob's valid answer, to another challenge
      sendAnswer: async () => undefined,
    };
    const bundle = await w.bobBridge.publishPrekeyBundle();
    await expectTrustRejected(w.aliceBridge.openSecureChannel(w.bob.did, bundle, { transport: misdirected }), 'unexpected_challenge');
  });

  test('a relayed third-party challenge is not signed: unbound_challenge', async () => {
    const w = world();
    const carol = new TrustHandshake({ agentDid: 'did:mesh:carol', registry: w.registry, now: w.clock.now });
    const carolsChallenge = carol.createChallenge(w.alice.did); // what Bob would like Alice to sign for him
    const sendAnswer = jest.fn(async () => undefined);
    const relaying: TrustTransport = {
      sendChallenge: async (from, _to, c) => ({ ...(await w.bobBridge.answerChallenge(from, c)), challenge: carolsChallenge }),
      sendAnswer,
    };
    const bundle = await w.bobBridge.publishPrekeyBundle();
    await expectTrustRejected(w.aliceBridge.openSecureChannel(w.bob.did, bundle, { transport: relaying }), 'unbound_challenge');
    const malformed: TrustTransport = {
      sendChallenge: async (from, _to, c) => ({ ...(await w.bobBridge.answerChallenge(from, c)), challenge: { nonce: 1 } as never }),
      sendAnswer,
    };
    await expectTrustRejected(w.aliceBridge.openSecureChannel(w.bob.did, bundle, { transport: malformed }), 'malformed_challenge');
    expect(sendAnswer).not.toHaveBeenCalled();
    expect(w.aliceBridge.activeSessions.size).toBe(0);
  });

  test('verifyPeer checks its options and transport', async () => {
    const w = world();
    expect((await rejectionOf(w.aliceBridge.verifyPeer(w.bob.did, null as never))).code).toBe('INVALID_ARGUMENT');
    expect((await rejectionOf(w.aliceBridge.verifyPeer(w.bob.did, { transport: {} as TrustTransport }))).code).toBe('INVALID_ARGUMENT');
    const v = await w.aliceBridge.verifyPeer(w.bob.did);
    expect([v.peerDid, v.trustScore, v.trustLevel]).toEqual([w.bob.did, 920, 'verified_partner']);
    const textual: TrustTransport = {
      // a transport that hands the response over as JSON text
      sendChallenge: async (from, _to, c) => {
        const r = await w.bobBridge.answerChallenge(from, c);
        return { ...r, response: JSON.stringify(r.response) as never };
      },
      sendAnswer: (from, _to, a) => w.bobBridge.completeHandshake(from, JSON.stringify(a)),
    };
    expect((await w.aliceBridge.verifyPeer(w.bob.did, { transport: textual })).peerDid).toBe(w.bob.did);
  });

  test('answerChallenge refuses a peer this side would never accept', async () => {
    const w = world();
    const c = {
      challenge_id: 'challenge_0011223344556677',
      nonce: 'ab'.repeat(32),
      timestamp: new Date(w.clock.t).toISOString(),
      expires_in_seconds: 30,
    };
    await expectTrustRejected(w.bobBridge.answerChallenge('did:mesh:nobody', c), 'unknown_identity');
    w.registry.setTrustScore(w.alice.did, 10);
    await expectTrustRejected(w.bobBridge.answerChallenge(w.alice.did, c), 'trust_score_too_low');
  });

  test('completeHandshake refuses an answer sent under another DID than the one challenged', async () => {
    const w = world();
    const c = {
      challenge_id: 'challenge_0011223344556677',
      nonce: 'ab'.repeat(32),
      timestamp: new Date(w.clock.t).toISOString(),
      expires_in_seconds: 30,
    };
    const reply = await w.bobBridge.answerChallenge(w.alice.did, c);
    const answer = await w.aliceBridge.answerChallenge(w.bob.did, reply.challenge!);
    await expectTrustRejected(w.bobBridge.completeHandshake(w.mallory.did, answer.response), 'did_mismatch');
  });

  test('without the mutual handshake no challenge is sent back', async () => {
    const w = world({ bob: { requireMutualHandshake: false } });
    const c = {
      challenge_id: 'challenge_0011223344556677',
      nonce: 'ab'.repeat(32),
      timestamp: new Date(w.clock.t).toISOString(),
      expires_in_seconds: 30,
    };
    expect(Object.keys(await w.bobBridge.answerChallenge(w.alice.did, c))).toEqual(['response']);
    const { bc, ac } = await connected(w);
    expect(fromUtf8(bc.receive(ac.send(utf8('one-way verified'))))).toBe('one-way verified');
  });
});

describe('EncryptedTrustBridge: pre-key store', () => {
  test('publish to a store, open without a bundle (claimed from the store), accept', async () => {
    const store = new InMemoryStore();
    const w = world({ alice: { preKeyStore: store }, bob: { preKeyStore: store, oneTimePreKeyPool: 4 } });
    await w.bobBridge.publishPrekeyBundle();
    expect(store.countOneTimePreKeys(w.bob.did)).toBe(4);
    const ac = await w.aliceBridge.openSecureChannel(w.bob.did);
    expect(store.countOneTimePreKeys(w.bob.did)).toBe(3);
    const bc = await w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment);
    expect(fromUtf8(bc.receive(ac.send(utf8('via store'))))).toBe('via store');
  });

  test('accepting an establishment made from a peeked bundle takes its key off the public pool', async () => {
    const store = new InMemoryStore();
    const w = world({ bob: { preKeyStore: store, oneTimePreKeyPool: 2 } });
    await w.bobBridge.publishPrekeyBundle();
    const peeked = store.getBundle(w.bob.did) as PreKeyBundle;
    await w.aliceBridge.openSecureChannel(w.bob.did, peeked);
    expect(store.countOneTimePreKeys(w.bob.did)).toBe(2);
    await w.bobBridge.acceptSecureChannel(w.alice.did, w.aliceBridge.getSession(w.bob.did)!.establishment);
    expect(store.countOneTimePreKeys(w.bob.did)).toBe(1);
    expect(store.consumeOneTimeKey(w.bob.did, peeked.oneTimePreKeyId!)).toBe(false);
  });

  test('no bundle: INVALID_STATE without a store, or when the store has none', async () => {
    const w = world({ alice: { preKeyStore: new InMemoryStore() } });
    expect((await rejectionOf(w.bobBridge.openSecureChannel(w.alice.did))).code).toBe('INVALID_STATE');
    expect((await rejectionOf(w.aliceBridge.openSecureChannel(w.bob.did))).code).toBe('INVALID_STATE');
  });
});

describe('EncryptedTrustBridge: arguments and options', () => {
  test('bad calls are typed errors', async () => {
    const w = world();
    const bundle = await w.bobBridge.publishPrekeyBundle();
    const code = async (p: Promise<unknown>) => (await rejectionOf(p)).code;
    expect(await code(w.aliceBridge.openSecureChannel(w.alice.did, bundle))).toBe('INVALID_ARGUMENT');
    expect(await code(w.aliceBridge.openSecureChannel('bob', bundle))).toBe('INVALID_ARGUMENT');
    expect(await code(w.aliceBridge.openSecureChannel(w.bob.did, { ...bundle, identityKey: new Uint8Array(2) }))).toBe('INVALID_KEY');
    expect(await code(w.aliceBridge.openSecureChannel(w.bob.did, bundle, null as never))).toBe('INVALID_ARGUMENT');
    expect(await code(w.aliceBridge.acceptSecureChannel(w.alice.did, {} as never))).toBe('INVALID_ARGUMENT');
    const lonely = new EncryptedTrustBridge({ identity: w.alice, registry: w.registry });
    expect(await code(lonely.openSecureChannel(w.bob.did, bundle))).toBe('INVALID_STATE');
  });

  test.each<[string, Partial<EncryptedTrustBridgeOptions>, string]>([
    ['no identity or key manager', { identity: undefined }, 'INVALID_ARGUMENT'],
    [
      'key manager of the wrong type',
      { identity: undefined, agentDid: 'did:mesh:x', keyManager: {} as X3DHKeyManager },
      'INVALID_ARGUMENT',
    ],
    ['agentDid differs from identity.did', { agentDid: 'did:mesh:other' }, 'INVALID_ARGUMENT'],
    ['bad minTrustScore', { minTrustScore: 1200 }, 'INVALID_ARGUMENT'],
    ['bad pool size', { oneTimePreKeyPool: 0 }, 'INVALID_ARGUMENT'],
    ['bad verified-peer TTL', { verifiedPeerTtlSeconds: 0 }, 'INVALID_ARGUMENT'],
    ['bad timeout', { handshakeTimeoutMs: 0 }, 'INVALID_ARGUMENT'],
    ['bad transport', { transport: {} as TrustTransport }, 'INVALID_ARGUMENT'],
    ['bad store', { preKeyStore: { storeBundle: () => undefined } as never }, 'INVALID_ARGUMENT'],
    ['bad capabilities', { capabilities: [''] }, 'INVALID_ARGUMENT'],
    ['identity of the wrong type', { identity: {} as AgentIdentity }, 'INVALID_ARGUMENT'],
  ])('%s → %s', (_, o, code) => {
    const id = AgentIdentity.generate();
    expectE2EError(() => new EncryptedTrustBridge({ identity: id, registry: new InMemoryIdentityRegistry(), ...o }), code as never);
  });

  test('identity and key manager of different keys → IDENTITY_MISMATCH; options must be an object', () => {
    const id = AgentIdentity.generate();
    const registry = new InMemoryIdentityRegistry();
    expectE2EError(() => new EncryptedTrustBridge({ keyManager: id.createKeyManager(), registry }), 'INVALID_ARGUMENT'); // no DID
    expectE2EError(
      () => new EncryptedTrustBridge({ identity: id, keyManager: AgentIdentity.generate().createKeyManager(), registry }),
      'IDENTITY_MISMATCH',
    );
    expectE2EError(() => new EncryptedTrustBridge(null as never), 'INVALID_ARGUMENT');
  });

  test("a key manager alone with a DID works (the tutorial's form)", () => {
    const id = AgentIdentity.generate();
    const b = new EncryptedTrustBridge({
      agentDid: 'did:mesh:carol',
      keyManager: id.createKeyManager(),
      registry: new InMemoryIdentityRegistry(),
    });
    expect([b.agentDid, b.minTrustScore]).toEqual(['did:mesh:carol', 700]);
  });
});
