/**
 * `TrustHandshake`: challenge → response → verify, as plain serializable messages, so two agents in
 * two processes can run it over any transport. The verifier keeps each challenge it issued (bounded,
 * expiring, answerable once) with what it expects of the answer; every failure is a `TRUST_REJECTED`
 * with a reason and removes the challenge.
 */
import { E2EError, isE2EError } from '../errors';
import { constantTimeEqual, ed25519Verify, fromBase64, isInstance, randomBytes, readFields, readOptions, toBase64, toHex } from '../crypto';
import { normalizeCapabilities } from './capabilities';
import { assertMeshDid } from './did';
import {
  HandshakeChallenge,
  HandshakeResponse,
  handshakeSignedPayload,
  parseHandshakeChallenge,
  parseHandshakeResponse,
} from './handshake-messages';
import { AgentIdentity } from './identity';
import {
  DEFAULT_CHALLENGE_TTL_SECONDS,
  DEFAULT_MAX_PENDING_CHALLENGES,
  DEFAULT_MIN_TRUST_SCORE,
  MAX_CHALLENGE_TTL_SECONDS,
  MAX_COUNTER_CHALLENGES,
  MAX_COUNTER_CHALLENGES_PER_PEER,
  MAX_SPENT_CHALLENGES,
} from '../limits';
import { counterChallengeNonce } from './mutual';
import { TrustRequirements, checkRequirements, lookupActiveIdentity } from './policy';
import { TrustRejectReason, trustRejected } from './reasons';
import { IdentityRegistry } from './registry';
import { TrustLevel, assertTrustScore, trustLevel } from './trust-level';
import { BoundedMap } from '../util/bounded-map';

/** Options of a {@link TrustHandshake}. */
export interface TrustHandshakeOptions {
  /** This agent's DID. */
  readonly agentDid: string;
  /** This agent's identity (its DID must be `agentDid`); needed only to answer challenges. */
  readonly identity?: AgentIdentity;
  /** Where peers' keys, scores, statuses and capabilities come from. */
  readonly registry: IdentityRegistry;
  /** Default required trust score of the challenges this side issues (700). */
  readonly minTrustScore?: number;
  /** Default required capabilities of the challenges this side issues (none). */
  readonly requiredCapabilities?: readonly string[];
  /** Lifetime of the challenges this side issues, in seconds (30). */
  readonly challengeTtlSeconds?: number;
  /** Most challenges waiting for an answer at once (1000). */
  readonly maxPendingChallenges?: number;
  /** Clock in milliseconds since the epoch (`Date.now`); injectable for tests. */
  readonly now?: () => number;
}

/** Per-challenge requirements (defaults: the handshake's). */
export interface ChallengeOptions {
  /** Lowest registry trust score accepted; `0` accepts any score. */
  readonly requiredTrustScore?: number;
  /** Capabilities the registry must grant the peer (`missing_capability` otherwise). */
  readonly requiredCapabilities?: readonly string[];
  /** Add an RFC 9334 freshness nonce that the responder must echo and sign. */
  readonly requireFreshness?: boolean;
  /**
   * Make this a counter-challenge (mutual handshake) to the peer whose `challenge` this side has
   * just answered with `responseNonce`: its nonce is derived from both DIDs, that challenge and
   * the response nonce (see {@link counterChallengeNonce}) instead of random. Counter-challenges
   * are kept apart from this side's own, at most {@link MAX_COUNTER_CHALLENGES_PER_PEER} per peer,
   * so challenges sent in others' names can neither fill the table this side's own opens use nor
   * push out another peer's.
   */
  readonly counterTo?: { readonly challenge: HandshakeChallenge; readonly responseNonce: string };
}

/** What {@link TrustHandshake.verify} requires of the response beyond a valid signature. */
export interface VerifyOptions {
  /**
   * Accept only the answer to this challenge (the one this call sent). Any other response is
   * refused (`unexpected_challenge`) and leaves every pending challenge in place.
   */
  readonly challengeId?: string;
  /** Accept only an answer signed by this DID (`did_mismatch` otherwise). */
  readonly peerDid?: string;
  /** Which challenges it may answer: this side's own, counter-challenges, or either (default). */
  readonly kind?: 'own' | 'counter' | 'any';
}

/** A verified peer: everything here comes from the registry, nothing from the peer's claims. */
export interface HandshakeResult {
  /** The DID that signed the response. */
  readonly peerDid: string;
  /** The registry's Ed25519 key for the DID, which signed the response. */
  readonly publicKey: Uint8Array;
  /** The registry's trust score for the DID, 0 to 1000. */
  readonly trustScore: number;
  /** The level of `trustScore` (see {@link trustLevel}). */
  readonly trustLevel: TrustLevel;
  /** The capabilities the registry grants the DID. */
  readonly capabilities: readonly string[];
  /** When the response was verified (ms since the epoch, by the handshake's clock). */
  readonly verifiedAt: number;
}

interface Pending {
  readonly challenge: HandshakeChallenge;
  readonly peerDid: string;
  readonly issuedAt: number;
  readonly requirements: TrustRequirements;
  readonly kind: 'own' | 'counter';
}

/** Reasons a response can fail for without its signer being proven: such a failure keeps the challenge. */
const UNAUTHENTICATED_FAILURES: readonly (string | undefined)[] = [
  TrustRejectReason.MALFORMED_RESPONSE,
  TrustRejectReason.DID_MISMATCH,
  TrustRejectReason.FRESHNESS_MISMATCH,
  TrustRejectReason.BAD_SIGNATURE,
  TrustRejectReason.KEY_MISMATCH,
  TrustRejectReason.UNKNOWN_IDENTITY,
  TrustRejectReason.IDENTITY_SUSPENDED,
  TrustRejectReason.IDENTITY_REVOKED,
  TrustRejectReason.REGISTRY_ERROR,
];

/** One agent's side of the trust handshake: issue and verify challenges, answer the peer's. */
export class TrustHandshake {
  /** This agent's DID. */
  readonly agentDid: string;
  readonly #identity: AgentIdentity | undefined;
  readonly #registry: IdentityRegistry;
  readonly #defaults: TrustRequirements;
  readonly #ttlSeconds: number;
  readonly #maxPending: number;
  readonly #now: () => number;
  /** This side's own challenges, in issue order (all share one lifetime, so also in expiry order). */
  readonly #pending = new Map<string, Pending>();
  /** Counter-challenges, in issue order, and their ids by peer (oldest first). */
  readonly #counters = new Map<string, Pending>();
  readonly #countersByPeer = new Map<string, string[]>();
  /** Ids answered by their signer (or expired while answered) → when they would have expired. */
  readonly #spent = new BoundedMap<string, number>(MAX_SPENT_CHALLENGES);

  /** A handshake for `agentDid`; `INVALID_ARGUMENT` on bad options. */
  constructor(input: TrustHandshakeOptions) {
    const options = readFields(
      input,
      [
        'agentDid',
        'identity',
        'registry',
        'minTrustScore',
        'requiredCapabilities',
        'challengeTtlSeconds',
        'maxPendingChallenges',
        'now',
      ] as const,
      'options',
    ) as TrustHandshakeOptions; // each read once
    assertMeshDid(options.agentDid, 'agentDid');
    if (options.identity !== undefined) {
      if (!isInstance(options.identity, AgentIdentity)) throw new E2EError('INVALID_ARGUMENT', 'identity must be an AgentIdentity');
      if (options.identity.did !== options.agentDid) throw new E2EError('INVALID_ARGUMENT', 'identity.did must be agentDid');
    }
    const registryGet =
      typeof options.registry === 'object' && options.registry !== null
        ? readFields(options.registry, ['get'] as const, 'registry').get
        : undefined;
    if (typeof registryGet !== 'function') throw new E2EError('INVALID_ARGUMENT', 'registry must have get(did)');
    const minTrustScore = options.minTrustScore ?? DEFAULT_MIN_TRUST_SCORE;
    assertTrustScore(minTrustScore, 'minTrustScore');
    const ttl = options.challengeTtlSeconds ?? DEFAULT_CHALLENGE_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_CHALLENGE_TTL_SECONDS) {
      throw new E2EError('INVALID_ARGUMENT', `challengeTtlSeconds must be an integer in [1, ${MAX_CHALLENGE_TTL_SECONDS}]`);
    }
    const maxPending = options.maxPendingChallenges ?? DEFAULT_MAX_PENDING_CHALLENGES;
    if (!Number.isInteger(maxPending) || maxPending < 1 || maxPending > 1_000_000) {
      throw new E2EError('INVALID_ARGUMENT', 'maxPendingChallenges must be an integer in [1, 1000000]');
    }
    if (options.now !== undefined && typeof options.now !== 'function') throw new E2EError('INVALID_ARGUMENT', 'now must be a function');
    this.agentDid = options.agentDid;
    this.#identity = options.identity;
    this.#registry = options.registry;
    this.#defaults = {
      requiredTrustScore: minTrustScore,
      requiredCapabilities: normalizeCapabilities(options.requiredCapabilities ?? [], 'requiredCapabilities'),
    };
    this.#ttlSeconds = ttl;
    this.#maxPending = maxPending;
    this.#now = options.now ?? Date.now;
  }

  /** This side's own challenges issued and not yet answered, failed, cancelled or expired. */
  get pendingCount(): number {
    this.#purge(this.#now());
    return this.#pending.size;
  }

  /** Counter-challenges waiting for an answer (kept apart from {@link pendingCount}). */
  get pendingCounterCount(): number {
    this.#purge(this.#now());
    return this.#counters.size;
  }

  /**
   * A new challenge for `peerDid`, remembered with what its answer must meet. Send it to the peer.
   * `TRUST_REJECTED` (`too_many_pending`) when too many of this side's own challenges are waiting
   * (counter-challenges never count against that limit).
   * @example
   * const challenge = aliceHs.createChallenge(bob.did, { requiredTrustScore: 700 });
   */
  createChallenge(peerDid: string, input: ChallengeOptions = {}): HandshakeChallenge {
    assertMeshDid(peerDid, 'peerDid');
    if (input === null) throw new E2EError('INVALID_ARGUMENT', 'options must be an object');
    const options = readOptions(
      input,
      ['requiredTrustScore', 'requiredCapabilities', 'requireFreshness', 'counterTo'] as const,
      'options',
    ) as ChallengeOptions;
    const requiredTrustScore = options.requiredTrustScore ?? this.#defaults.requiredTrustScore;
    assertTrustScore(requiredTrustScore, 'requiredTrustScore');
    const requiredCapabilities =
      options.requiredCapabilities === undefined
        ? this.#defaults.requiredCapabilities
        : normalizeCapabilities(options.requiredCapabilities, 'requiredCapabilities');
    const counter =
      options.counterTo === undefined
        ? undefined
        : (readFields(options.counterTo, ['challenge', 'responseNonce'] as const, 'counterTo') as ChallengeOptions['counterTo']);
    if (counter !== undefined && typeof counter.responseNonce !== 'string') {
      throw new E2EError('INVALID_ARGUMENT', "counterTo needs the peer's challenge and our response nonce");
    }
    const now = this.#now();
    this.#purge(now);
    if (!counter && this.#pending.size >= this.#maxPending) {
      throw trustRejected(TrustRejectReason.TOO_MANY_PENDING, 'too many challenges are waiting for an answer');
    }
    const nonce = counter
      ? counterChallengeNonce(parseHandshakeChallenge(counter.challenge), counter.responseNonce, {
          openerDid: peerDid,
          answererDid: this.agentDid,
        })
      : toHex(randomBytes(32));
    const challenge: HandshakeChallenge = {
      challenge_id: `challenge_${toHex(randomBytes(8))}`,
      nonce,
      timestamp: new Date(now).toISOString(),
      expires_in_seconds: this.#ttlSeconds,
    };
    if (options.requireFreshness === true) challenge.freshness_nonce = toHex(randomBytes(16));
    const pending: Pending = {
      challenge,
      peerDid,
      issuedAt: now,
      requirements: { requiredTrustScore, requiredCapabilities },
      kind: counter ? 'counter' : 'own',
    };
    if (counter) this.#addCounter(pending);
    else this.#pending.set(challenge.challenge_id, pending);
    return { ...challenge };
  }

  /** Forgets a pending challenge (e.g. when the transport failed); `true` if it was pending. */
  cancel(challengeId: string): boolean {
    if (this.#pending.delete(challengeId)) return true;
    const p = this.#counters.get(challengeId);
    if (!p) return false;
    this.#removeCounter(p);
    return true;
  }

  /**
   * Answers a peer's challenge (object or JSON text) with this agent's signature. `INVALID_STATE`
   * without an identity; `TRUST_REJECTED` for a malformed (`malformed_challenge`) or expired
   * (`challenge_expired`) challenge.
   */
  respond(challenge: HandshakeChallenge | string, capabilities: readonly string[] = []): HandshakeResponse {
    if (!this.#identity) throw new E2EError('INVALID_STATE', 'this handshake has no identity to answer with');
    let c: HandshakeChallenge;
    try {
      c = parseHandshakeChallenge(challenge);
    } catch {
      throw trustRejected(TrustRejectReason.MALFORMED_CHALLENGE, 'the challenge does not parse');
    }
    const caps = normalizeCapabilities(capabilities);
    const now = this.#now();
    if (now - Date.parse(c.timestamp) > c.expires_in_seconds * 1000) {
      throw trustRejected(TrustRejectReason.CHALLENGE_EXPIRED, 'the challenge expired');
    }
    const responseNonce = toHex(randomBytes(16));
    const response: HandshakeResponse = {
      challenge_id: c.challenge_id,
      response_nonce: responseNonce,
      agent_did: this.agentDid,
      capabilities: caps,
      signature: toBase64(this.#identity.sign(handshakeSignedPayload(c, responseNonce, this.agentDid))),
      public_key: toBase64(this.#identity.publicKey),
      timestamp: new Date(now).toISOString(),
    };
    if (c.freshness_nonce !== undefined) response.freshness_nonce = c.freshness_nonce;
    return response;
  }

  /**
   * Verifies a response (object or JSON text) to one of this side's challenges: the challenge is
   * known, unexpired and answered once (and the one `options` names, if any); the DID is the one
   * challenged; the registry knows it and it is active; the signature verifies under the
   * registry's key; `public_key` is that key; the registry's score and capabilities meet the
   * challenge's requirements. Any failure throws `TRUST_REJECTED` (see {@link TrustRejectReason}).
   * A response that fails before its signer is proven (malformed, wrong DID, bad signature,
   * unknown or inactive identity) leaves the challenge pending, so a forged answer cannot spend
   * the genuine one's; once the signer is proven the challenge is spent, pass or fail.
   */
  async verify(response: HandshakeResponse | string, input: VerifyOptions = {}): Promise<HandshakeResult> {
    if (input === null) throw new E2EError('INVALID_ARGUMENT', 'options must be an object');
    const options = readOptions(input, ['challengeId', 'peerDid', 'kind'] as const, 'options') as VerifyOptions;
    // Parse (one read of every field) and take the challenge out synchronously, so a concurrent
    // second answer finds nothing; a response that does not parse takes nothing.
    let r: HandshakeResponse;
    try {
      r = parseHandshakeResponse(response);
    } catch {
      throw trustRejected(TrustRejectReason.MALFORMED_RESPONSE, 'the response does not parse');
    }
    const id = r.challenge_id;
    const now = this.#now();
    if (options.challengeId !== undefined && id !== options.challengeId) {
      throw trustRejected(TrustRejectReason.UNEXPECTED_CHALLENGE, 'the response answers another challenge than the one sent');
    }
    const pending = this.#take(id, options.kind ?? 'any');
    if (pending) this.#markSpent(pending, now);
    try {
      return await this.#check(r, pending, now, options.peerDid);
    } catch (e) {
      const expired = pending !== undefined && now - pending.issuedAt > pending.challenge.expires_in_seconds * 1000;
      if (pending && !expired && isE2EError(e, 'TRUST_REJECTED') && UNAUTHENTICATED_FAILURES.includes(e.reason)) this.#restore(pending);
      throw e;
    }
  }

  async #check(r: HandshakeResponse, pending: Pending | undefined, now: number, peerDid: string | undefined): Promise<HandshakeResult> {
    if (!pending) {
      const replayed = (this.#spent.get(r.challenge_id) ?? -Infinity) >= now;
      throw replayed
        ? trustRejected(TrustRejectReason.CHALLENGE_REPLAYED, 'the challenge was already answered')
        : trustRejected(TrustRejectReason.UNKNOWN_CHALLENGE, 'no such pending challenge');
    }
    if (now - pending.issuedAt > pending.challenge.expires_in_seconds * 1000) {
      throw trustRejected(TrustRejectReason.CHALLENGE_EXPIRED, 'the challenge expired before it was answered');
    }
    if (r.agent_did !== pending.peerDid || (peerDid !== undefined && r.agent_did !== peerDid)) {
      throw trustRejected(TrustRejectReason.DID_MISMATCH, 'the response is for another DID');
    }
    const fresh = pending.challenge.freshness_nonce;
    if (fresh !== undefined && r.freshness_nonce !== fresh) {
      throw trustRejected(TrustRejectReason.FRESHNESS_MISMATCH, 'the response does not echo the freshness nonce');
    }
    const record = await lookupActiveIdentity(this.#registry, r.agent_did);
    const payload = handshakeSignedPayload(pending.challenge, r.response_nonce, r.agent_did);
    if (!ed25519Verify(fromBase64(r.signature), payload, record.publicKey)) {
      throw trustRejected(TrustRejectReason.BAD_SIGNATURE, "the signature does not verify under the registry's key");
    }
    if (!constantTimeEqual(fromBase64(r.public_key), record.publicKey)) {
      throw trustRejected(TrustRejectReason.KEY_MISMATCH, "public_key is not the registry's key for this DID");
    }
    checkRequirements(record, pending.requirements);
    return Object.freeze({
      peerDid: record.did,
      publicKey: Uint8Array.from(record.publicKey),
      trustScore: record.trustScore,
      trustLevel: trustLevel(record.trustScore),
      capabilities: Object.freeze([...record.capabilities]),
      verifiedAt: this.#now(),
    });
  }

  /** Removes and returns the pending challenge `id` of the given kind (if any). */
  #take(id: string, kind: VerifyOptions['kind']): Pending | undefined {
    if (kind !== 'counter') {
      const p = this.#pending.get(id);
      if (p) {
        this.#pending.delete(id);
        return p;
      }
    }
    if (kind === 'own') return undefined;
    const c = this.#counters.get(id);
    if (c) this.#removeCounter(c);
    return c;
  }

  /** Puts back a challenge whose answer failed before its signer was proven. */
  #restore(p: Pending): void {
    this.#spent.delete(p.challenge.challenge_id);
    if (p.kind === 'own') {
      this.#pending.set(p.challenge.challenge_id, p);
      return;
    }
    this.#addCounter(p);
  }

  #markSpent(p: Pending, now: number): void {
    this.#spent.set(p.challenge.challenge_id, Math.max(now, p.issuedAt + p.challenge.expires_in_seconds * 1000));
  }

  /** Adds a counter-challenge; the peer's oldest goes when it has too many, the oldest of all when the table is full. */
  #addCounter(p: Pending): void {
    const ids = this.#countersByPeer.get(p.peerDid) ?? [];
    if (ids.length >= MAX_COUNTER_CHALLENGES_PER_PEER) this.#counters.delete(ids.shift() as string);
    if (this.#counters.size >= MAX_COUNTER_CHALLENGES) {
      const oldest = this.#counters.values().next().value as Pending;
      this.#removeCounter(oldest);
    }
    ids.push(p.challenge.challenge_id);
    this.#countersByPeer.set(p.peerDid, ids);
    this.#counters.set(p.challenge.challenge_id, p);
  }

  #removeCounter(p: Pending): void {
    this.#counters.delete(p.challenge.challenge_id);
    const ids = this.#countersByPeer.get(p.peerDid);
    if (!ids) return;
    const i = ids.indexOf(p.challenge.challenge_id);
    if (i >= 0) ids.splice(i, 1);
    if (ids.length === 0) this.#countersByPeer.delete(p.peerDid);
  }

  /** Drops expired challenges. Each table is in issue order with one lifetime, so only its head needs looking at. */
  #purge(now: number): void {
    for (const [id, p] of this.#pending) {
      if (now - p.issuedAt <= p.challenge.expires_in_seconds * 1000) break;
      this.#pending.delete(id);
    }
    for (const p of this.#counters.values()) {
      if (now - p.issuedAt <= p.challenge.expires_in_seconds * 1000) break;
      this.#removeCounter(p);
    }
    for (const [id, until] of this.#spent) {
      if (until >= now) break; // entries go in roughly in expiry order; a straggler goes on a later pass
      this.#spent.delete(id);
    }
  }
}
