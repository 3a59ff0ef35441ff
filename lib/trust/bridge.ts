/**
 * `EncryptedTrustBridge`: encrypted channels only to peers that passed the trust handshake, and
 * only with keys bound to their DIDs, in both directions.
 *
 * Opening (initiator): challenge the peer through the transport and verify its answer against the
 * registry (key, status, score, capabilities); answer the peer's own challenge if it sends one;
 * require the bundle's Ed25519 key to be the registry's key for the peer's DID; then X3DH.
 * Accepting (responder): the initiator must have answered this side's challenge (mutual mode, the
 * default) and still pass the registry checks, and the establishment's identity key must be the
 * X25519 form of the registry's key for its DID; only then X3DH. Every refusal is `TRUST_REJECTED`
 * before any key exchange or ratchet state exists. Channel AD = UTF-8 `initiatorDid|responderDid`.
 *
 * Post-quantum: a bundle with a KEM pre-key gives a PQXDH session (`channel.postQuantum`); a bridge
 * whose key manager has a last-resort KEM pre-key publishes one-time KEM pre-keys beside its
 * one-time pre-keys. With `requirePostQuantum`, classic bundles and establishments are refused
 * (`POST_QUANTUM_REQUIRED`), so a registry or relay that strips the KEM pre-key cannot downgrade.
 */
import { E2EError, isE2EError } from '../errors';
import { canonicalX25519PublicKey, constantTimeEqual, isInstance, memzero, readFields, readOptions, toHex, utf8 } from '../crypto';
import { HeldKemPreKey, OneTimePreKey, PreKeyBundle, X3DHKeyManager, assertBundleShape, x25519FormOfEd25519 } from '../x3dh';
import { ChannelEstablishment, ChannelEstablishmentFields, ChannelOptions, SecureChannel } from '../channel';
import { EncryptedMessage } from '../ratchet';
import { normalizeCapabilities } from './capabilities';
import { assertMeshDid } from './did';
import { HandshakeResult, TrustHandshake } from './handshake';
import { HandshakeChallenge, HandshakeResponse, parseHandshakeChallenge, parseHandshakeResponse } from './handshake-messages';
import { AgentIdentity } from './identity';
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MAX_PENDING_CHALLENGES,
  DEFAULT_MIN_TRUST_SCORE,
  DEFAULT_ONE_TIME_PRE_KEY_POOL,
  DEFAULT_VERIFIED_PEER_TTL_SECONDS,
  MAX_PENDING_ESTABLISHMENTS_PER_PEER,
  MAX_REMEMBERED_ESTABLISHMENTS,
} from '../limits';
import { counterChallengeNonce } from './mutual';
import { TrustRequirements, checkRequirements, lookupActiveIdentity } from './policy';
import { KeyManagerSource, PersistedKeyManager, PreKeyPublisher, isPersistedKeyManager, storeCall } from './prekey-pool';
import { TrustRejectReason, trustRejected } from './reasons';
import { IdentityRecord, IdentityRegistry } from './registry';
import { SessionTable, TrustSession } from './session';
import { ChallengeReply, TrustEndpoint, TrustTransport } from './transport';
import { assertTrustScore, trustLevel } from './trust-level';
import { VerifiedPeers } from './verified-peers';
import type { PreKeyStore } from '../store/types';
import { BoundedSet } from '../util/bounded-map';

/** Options of an {@link EncryptedTrustBridge}. Give `identity`, `keyManager`, or both (same key). */
export interface EncryptedTrustBridgeOptions {
  /** This agent's DID; defaults to `identity.did`. Required with `keyManager` alone. */
  readonly agentDid?: string;
  /** This agent's identity (signs handshake answers). */
  readonly identity?: AgentIdentity;
  /**
   * This agent's X3DH key manager (made from `identity` when absent). Give a persisted one (a
   * `StoredKeyManager` from `lib/store`) to restart cleanly: new pre-keys are then saved before
   * they are published, and consumed one-time pre-keys are saved before `receive` returns.
   */
  readonly keyManager?: X3DHKeyManager | PersistedKeyManager;
  /** Source of every peer's key, status, score and capabilities. */
  readonly registry: IdentityRegistry;
  /** Where bundles are published and claimed (optional: without it, bundles are handed over directly). */
  readonly preKeyStore?: PreKeyStore;
  /** Carries the handshake; its `attach`, if any, is given this bridge (a `LocalTrustNetwork` joins it). */
  readonly transport?: TrustTransport;
  /** Score a peer needs, both directions (700). */
  readonly minTrustScore?: number;
  /** Capabilities a peer needs, both directions (none). */
  readonly requiredCapabilities?: readonly string[];
  /** Capabilities this agent claims in its answers (informational: peers use their registry's). */
  readonly capabilities?: readonly string[];
  /** Require initiators to answer this side's challenge before accepting them (true). */
  readonly requireMutualHandshake?: boolean;
  /**
   * One-time pre-keys kept published (20); as many one-time KEM pre-keys when the key manager has a
   * last-resort KEM pre-key.
   */
  readonly oneTimePreKeyPool?: number;
  /**
   * Post-quantum sessions only (false): opens refuse a bundle without a KEM pre-key and accepts an
   * establishment without a KEM ciphertext, both `POST_QUANTUM_REQUIRED` before anything is spent; and
   * publishing makes the key manager a last-resort KEM pre-key if it has none, so peers can open
   * post-quantum sessions to this agent. Per open, {@link OpenChannelOptions.requirePostQuantum}
   * overrides it.
   */
  readonly requirePostQuantum?: boolean;
  /** How long an initiator's verified answer admits its establishment, in seconds (300). */
  readonly verifiedPeerTtlSeconds?: number;
  /** How long each handshake round trip may take, in ms (30000). */
  readonly handshakeTimeoutMs?: number;
  /** Lifetime of this side's challenges, in seconds (30). */
  readonly challengeTtlSeconds?: number;
  /** Ratchet limits of the channels. */
  readonly channelOptions?: ChannelOptions;
  /** Clock (ms since the epoch); injectable for tests. */
  readonly now?: () => number;
}

/** Options of {@link EncryptedTrustBridge.openSecureChannel} and {@link EncryptedTrustBridge.verifyPeer}. */
export interface OpenChannelOptions {
  /** Score this peer needs (default: the bridge's `minTrustScore`; `0` accepts any). */
  readonly requiredTrustScore?: number;
  /** Capabilities this peer needs (default: the bridge's). */
  readonly requiredCapabilities?: readonly string[];
  /** Transport for this call (default: the bridge's). */
  readonly transport?: TrustTransport;
  /** Refuse a bundle without a KEM pre-key (`POST_QUANTUM_REQUIRED`; default: the bridge's `requirePostQuantum`). */
  readonly requirePostQuantum?: boolean;
}

/** Trust-gated encrypted sessions of one agent. */
export class EncryptedTrustBridge implements TrustEndpoint {
  /** This agent's DID. */
  readonly agentDid: string;
  /** Score a peer needs by default. */
  readonly minTrustScore: number;
  readonly #identity: AgentIdentity;
  readonly #keys: KeyManagerSource;
  /**
   * One-time pre-keys spent (in the key manager, saved) by an accepted establishment whose session
   * has not authenticated yet: a copy stays here, in memory only, so that if that establishment was
   * a forgery carrying the genuine one's key id, the genuine one can still be answered. Wiped when
   * a session under it authenticates, on close, or after the verification lifetime.
   */
  readonly #held = new Map<number, { readonly key: OneTimePreKey; readonly until: number }>();
  /** As {@link #held}, for one-time KEM pre-keys: decapsulation keys spent by an accepted establishment not yet authenticated. */
  readonly #heldKem = new Map<number, { readonly key: HeldKemPreKey; readonly until: number }>();
  readonly #requirePq: boolean;
  readonly #heldTtlMs: number;
  readonly #registry: IdentityRegistry;
  readonly #store: PreKeyStore | undefined;
  readonly #transport: TrustTransport | undefined;
  /** The transport's `detach`, read once with its `attach`: called on close. */
  readonly #detach: TrustTransport['detach'];
  readonly #requirements: TrustRequirements;
  readonly #capabilities: readonly string[];
  readonly #mutual: boolean;
  readonly #timeoutMs: number;
  readonly #channelOptions: ChannelOptions;
  readonly #now: () => number;
  readonly #handshake: TrustHandshake;
  readonly #publisher: PreKeyPublisher;
  readonly #verified: VerifiedPeers;
  readonly #sessions: SessionTable;
  /** The verification that admitted each accepted session (used up when the session authenticates). */
  readonly #admittedBy = new WeakMap<TrustSession, HandshakeResult>();
  /** What this bridge made itself and so must wipe on {@link close}. */
  readonly #ownsManager: boolean;
  #closed = false;
  /** Establishments accepted (canonical ephemeral keys), so a replay is refused before anything is spent. */
  readonly #accepted = new BoundedSet<string>(MAX_REMEMBERED_ESTABLISHMENTS);

  /**
   * A bridge for one agent. `INVALID_ARGUMENT` on bad options; `IDENTITY_MISMATCH` when `identity`
   * and `keyManager` hold different keys.
   * @example
   * const bridge = new EncryptedTrustBridge({ identity, registry, transport: network, minTrustScore: 700 });
   */
  constructor(input: EncryptedTrustBridgeOptions) {
    const options = readFields(input, BRIDGE_OPTIONS, 'options') as EncryptedTrustBridgeOptions; // each read once
    const { identity, keyManager } = options;
    if (identity !== undefined && !isInstance(identity, AgentIdentity))
      throw new E2EError('INVALID_ARGUMENT', 'identity must be an AgentIdentity');
    if (keyManager !== undefined && !isInstance(keyManager, X3DHKeyManager) && !isPersistedKeyManager(keyManager)) {
      throw new E2EError('INVALID_ARGUMENT', 'keyManager must be an X3DHKeyManager or a persisted one (StoredKeyManager)');
    }
    if (!identity && !keyManager) throw new E2EError('INVALID_ARGUMENT', 'give an identity or a keyManager');
    const agentDid = options.agentDid ?? identity?.did;
    assertMeshDid(agentDid, 'agentDid');
    if (identity && identity.did !== agentDid) throw new E2EError('INVALID_ARGUMENT', 'agentDid must be identity.did');
    if (identity && keyManager && !identity.ownsKeyManager(keyManager instanceof X3DHKeyManager ? keyManager : keyManager.manager)) {
      throw new E2EError('IDENTITY_MISMATCH', 'identity and keyManager hold different keys');
    }
    const minTrustScore = options.minTrustScore ?? DEFAULT_MIN_TRUST_SCORE;
    assertTrustScore(minTrustScore, 'minTrustScore');
    const pool = options.oneTimePreKeyPool ?? DEFAULT_ONE_TIME_PRE_KEY_POOL;
    if (!Number.isInteger(pool) || pool < 1 || pool > 1000)
      throw new E2EError('INVALID_ARGUMENT', 'oneTimePreKeyPool must be an integer in [1, 1000]');
    const ttl = options.verifiedPeerTtlSeconds ?? DEFAULT_VERIFIED_PEER_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86400)
      throw new E2EError('INVALID_ARGUMENT', 'verifiedPeerTtlSeconds must be an integer in [1, 86400]');
    const timeout = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 600_000)
      throw new E2EError('INVALID_ARGUMENT', 'handshakeTimeoutMs must be an integer in [1, 600000]');
    const requirePq = options.requirePostQuantum ?? false;
    if (typeof requirePq !== 'boolean') throw new E2EError('INVALID_ARGUMENT', 'requirePostQuantum must be a boolean');
    const t = options.transport;
    if (t !== undefined) assertTransport(t);
    const hooks = transportHooks(t);
    const store = options.preKeyStore;
    if (
      store !== undefined &&
      (
        [
          'storeBundle',
          'claimBundle',
          'consumeOneTimeKey',
          'addOneTimePreKeys',
          'countOneTimePreKeys',
          'getBundle',
          'removeBundle',
        ] as const
      ).some((m) => typeof store?.[m] !== 'function')
    ) {
      throw new E2EError('INVALID_ARGUMENT', 'preKeyStore lacks a PreKeyStore method');
    }
    const now = options.now ?? Date.now;

    this.agentDid = agentDid;
    this.minTrustScore = minTrustScore;
    this.#keys = new KeyManagerSource(keyManager ?? (identity as AgentIdentity).createKeyManager());
    this.#ownsManager = keyManager === undefined;
    // Made from the manager, the identity signs through it (the persisted one's newest state) and
    // holds no copy of the secret.
    this.#identity = identity ?? AgentIdentity.fromKeyManager(keyManager ?? this.#keys.current(), agentDid);
    this.#registry = options.registry;
    this.#store = store;
    this.#transport = t;
    this.#detach = hooks.detach;
    this.#requirements = {
      requiredTrustScore: minTrustScore,
      requiredCapabilities: normalizeCapabilities(options.requiredCapabilities ?? [], 'requiredCapabilities'),
    };
    this.#capabilities = normalizeCapabilities(options.capabilities ?? [], 'capabilities');
    this.#mutual = options.requireMutualHandshake ?? true;
    this.#timeoutMs = timeout;
    this.#channelOptions = options.channelOptions ?? {};
    this.#now = now;
    this.#handshake = new TrustHandshake({
      agentDid,
      identity: this.#identity,
      registry: options.registry,
      minTrustScore,
      requiredCapabilities: this.#requirements.requiredCapabilities,
      challengeTtlSeconds: options.challengeTtlSeconds,
      now,
    });
    this.#requirePq = requirePq;
    this.#publisher = new PreKeyPublisher(this.#keys, agentDid, store, pool, requirePq);
    this.#verified = new VerifiedPeers(ttl * 1000, DEFAULT_MAX_PENDING_CHALLENGES, now);
    this.#heldTtlMs = ttl * 1000;
    // A waiting establishment becomes the session once it decrypts its first message: that is
    // when the peer's verification is used up.
    this.#sessions = new SessionTable(MAX_PENDING_ESTABLISHMENTS_PER_PEER, (s) => this.#authenticated(s));
    hooks.attach?.call(t, this);
  }

  /**
   * Publishes this agent's pre-keys (to the store, if any), tops up the one-time pool and returns a
   * bundle with a one-time pre-key no other bundle carries, to hand to one initiator. When the key
   * manager has a last-resort KEM pre-key (with `requirePostQuantum`, one is made), the KEM pool is
   * topped up too and the bundle carries a one-time KEM pre-key no other bundle carries (else the
   * last-resort one).
   */
  async publishPrekeyBundle(): Promise<PreKeyBundle> {
    this.#assertOpen();
    return this.#publisher.publish();
  }

  /**
   * Runs the trust handshake with `peerDid` (and answers its challenge back, if it sends one);
   * resolves to what the registry says about the verified peer. `TRUST_REJECTED` on any failure.
   */
  async verifyPeer(peerDid: string, input: OpenChannelOptions = {}): Promise<HandshakeResult> {
    this.#assertPeer(peerDid);
    const options = readOpenOptions(input);
    const transport = options.transport ?? this.#transport;
    if (!transport) throw new E2EError('INVALID_STATE', 'no transport to run the trust handshake over');
    assertTransport(transport);
    const challenge = this.#handshake.createChallenge(peerDid, {
      requiredTrustScore: options.requiredTrustScore,
      requiredCapabilities: options.requiredCapabilities,
    });
    let reply: ChallengeReply;
    let result: HandshakeResult;
    try {
      reply = await this.#roundTrip(() => transport.sendChallenge(this.agentDid, peerDid, challenge));
      if (typeof reply !== 'object' || reply === null)
        throw trustRejected(TrustRejectReason.MALFORMED_RESPONSE, 'the reply is not an object');
      // Only the answer to this call's challenge, signed by `peerDid`: an answer to any other
      // challenge this side has pending (e.g. a counter-challenge it sent a third agent) would let
      // that agent pass as `peerDid`, or skip this call's requirements.
      result = await this.#handshake.verify(reply.response, { challengeId: challenge.challenge_id, peerDid, kind: 'own' });
    } finally {
      this.#handshake.cancel(challenge.challenge_id); // no-op unless the transport failed
    }
    if (reply.challenge !== undefined && reply.challenge !== null) {
      // Our signature goes only to a peer we have just verified, and only over a challenge bound to
      // this exchange (so it cannot be a third party's challenge relayed to us).
      let counter: HandshakeChallenge;
      try {
        counter = parseHandshakeChallenge(reply.challenge);
      } catch {
        throw trustRejected(TrustRejectReason.MALFORMED_CHALLENGE, "the peer's challenge does not parse");
      }
      const roles = { openerDid: this.agentDid, answererDid: peerDid };
      if (counter.nonce !== counterChallengeNonce(challenge, parseHandshakeResponse(reply.response).response_nonce, roles)) {
        throw trustRejected(TrustRejectReason.UNBOUND_CHALLENGE, "the peer's challenge is not bound to this handshake");
      }
      const answer = this.#handshake.respond(counter, this.#capabilities);
      await this.#roundTrip(() => transport.sendAnswer(this.agentDid, peerDid, answer));
    }
    return result;
  }

  /**
   * Opens a channel to `peerDid`: the trust handshake, then the check that `bundle.identityKeyEd`
   * is the registry's key for `peerDid`, then X3DH. Without `bundle`, one is claimed from the
   * pre-key store (after the handshake). Replaces (and wipes) an existing session with the peer.
   * A bundle with a KEM pre-key gives a post-quantum session. Errors: `TRUST_REJECTED` (no key
   * exchange happened), `INVALID_STATE` (no transport, no bundle), `POST_QUANTUM_REQUIRED` (a bundle
   * without KEM pre-key under `requirePostQuantum`: a given one before the handshake, a claimed one
   * before any key exchange), and X3DH's own (`BAD_SIGNATURE`, `IDENTITY_MISMATCH`, `INVALID_KEY`,
   * `MALFORMED_MESSAGE`).
   */
  async openSecureChannel(peerDid: string, bundle?: PreKeyBundle, input: OpenChannelOptions = {}): Promise<SecureChannel> {
    this.#assertPeer(peerDid);
    const options = readOpenOptions(input);
    const requirePostQuantum = options.requirePostQuantum ?? this.#requirePq;
    if (bundle !== undefined) {
      assertBundleShape(bundle);
      // Refused before the handshake: nothing is signed or sent for a session that cannot be had.
      if (requirePostQuantum && !bundle.kemPreKey) throw postQuantumRequired();
    } else if (!this.#store) throw new E2EError('INVALID_STATE', 'no bundle given and no pre-key store to claim one from');
    const verified = await this.verifyPeer(peerDid, options);
    this.#assertOpen();
    const b = bundle ?? (await this.#claimBundle(peerDid));
    this.#assertOpen();
    if (!constantTimeEqual(b.identityKeyEd, verified.publicKey)) {
      throw trustRejected(TrustRejectReason.BUNDLE_KEY_MISMATCH, "the bundle's identity key is not the registry's key for this DID");
    }
    const { channel, establishment } = SecureChannel.createSender(this.#keys.current(), b, channelAd(this.agentDid, peerDid), {
      ...this.#channelOptions,
      requirePostQuantum,
    });
    this.#sessions.replace(this.#session(peerDid, 'initiator', channel, establishment, verified));
    return channel;
  }

  /**
   * Accepts `peerDid`'s establishment. Refused with `TRUST_REJECTED` before any ratchet state
   * exists when: the peer has not answered this side's challenge (mutual mode: `peer_not_verified`,
   * one verification admits one establishment), the registry does not list it as active with the
   * required score and capabilities, or `establishment.initiatorIdentityKey` is not the X25519 form
   * of the registry's key (`identity_key_mismatch`). A replayed establishment gets
   * `DUPLICATE_MESSAGE`; a classic one under `requirePostQuantum`, `POST_QUANTUM_REQUIRED`; X3DH's
   * own errors (`OTK_NOT_FOUND`, `KEM_NOT_FOUND`, `SPK_NOT_FOUND`, `INVALID_KEY`) pass through.
   * A one-time pre-key and a one-time KEM pre-key the establishment names are spent at its
   * acceptance, with a copy held in memory until a session under it authenticates, so a forgery
   * naming them cannot make the genuine establishment fail. Replaces (and wipes) an existing session
   * with the peer once the new one authenticates.
   */
  async acceptSecureChannel(peerDid: string, establishment: ChannelEstablishment | ChannelEstablishmentFields): Promise<SecureChannel> {
    this.#assertPeer(peerDid);
    const e = ChannelEstablishment.from(establishment);
    // A replay (also with the ephemeral key re-encoded: X25519 ignores bit 255 and reduces mod p)
    // is refused before anything is looked at or spent.
    const seen = establishmentKey(e);
    if (this.#accepted.has(seen)) throw new E2EError('DUPLICATE_MESSAGE', 'this establishment was already accepted');
    this.#sessions.get(peerDid); // a waiting session that has authenticated uses up its verification first
    const ticket = this.#mutual ? this.#verified.peek(peerDid) : undefined;
    if (this.#mutual && !ticket) throw notVerified();
    const record = await lookupActiveIdentity(this.#registry, peerDid);
    this.#assertOpen();
    checkRequirements(record, this.#requirements);
    if (!constantTimeEqual(x25519Form(record), e.initiatorIdentityKey)) {
      throw trustRejected(TrustRejectReason.IDENTITY_KEY_MISMATCH, "the initiator identity key is not the registry's key for this DID");
    }
    if (ticket && !constantTimeEqual(ticket.publicKey, record.publicKey)) {
      throw trustRejected(TrustRejectReason.KEY_MISMATCH, 'the registry key changed since the peer was verified');
    }
    if (this.#accepted.has(seen)) throw new E2EError('DUPLICATE_MESSAGE', 'this establishment was already accepted');
    const otkId = e.usedOneTimeKeyId;
    const kemId = e.kemPreKeyId;
    this.#sweepHeld();
    const m = this.#keys.current();
    let held = otkId === undefined ? undefined : this.#held.get(otkId)?.key;
    const spendOtk = otkId !== undefined && !held;
    if (otkId !== undefined && !held) {
      const otk = m.getOneTimePreKey(otkId);
      if (!otk) throw new E2EError('OTK_NOT_FOUND', `no unused one-time pre-key with id ${otkId}`);
      held = {
        keyId: otkId,
        keyPair: { privateKey: Uint8Array.from(otk.keyPair.privateKey), publicKey: Uint8Array.from(otk.keyPair.publicKey) },
      };
    }
    // A one-time KEM pre-key is held as a one-time pre-key is; a last-resort one answers any number
    // of establishments (the replay memory above refuses a second use of the same ephemeral key).
    let heldKem = kemId === undefined ? undefined : this.#heldKem.get(kemId)?.key;
    let spendKem = false;
    if (kemId !== undefined && !heldKem && m.getKemPreKey(kemId)?.lastResort === false) {
      heldKem = m.exportKemPreKeySecret(kemId);
      spendKem = heldKem !== undefined;
    }
    const wipeNew = (): void => {
      if (spendOtk && held) memzero(held.keyPair.privateKey);
      if (spendKem && heldKem) memzero(heldKem.secretKey);
    };
    let channel: SecureChannel;
    try {
      channel = SecureChannel.createReceiver(m, e, channelAd(peerDid, this.agentDid), {
        ...this.#channelOptions,
        heldOneTimePreKey: held,
        heldKemPreKey: heldKem,
        requirePostQuantum: this.#requirePq,
      });
    } catch (err) {
      wipeNew();
      throw err;
    }
    if (spendOtk || spendKem) {
      // Spent now, in the manager (saved first when persisted) and off the public pools; the copies
      // stay held for a genuine establishment that may still come with the same ids.
      try {
        await this.#keys.change((km) => {
          if (spendOtk) km.consumeOneTimePreKey(otkId as number);
          if (spendKem) km.consumeKemPreKey(kemId as number);
        });
        const store = this.#store;
        if (store && spendOtk) await storeCall(() => store.consumeOneTimeKey(this.agentDid, otkId as number));
        if (store && spendKem && typeof store.consumeKemPreKey === 'function') {
          await storeCall(() => store.consumeKemPreKey(this.agentDid, kemId as number));
        }
      } catch (err) {
        channel.close();
        wipeNew();
        throw err;
      }
      const until = this.#now() + this.#heldTtlMs;
      if (spendOtk && held) this.#held.set(otkId as number, { key: held, until });
      if (spendKem && heldKem) this.#heldKem.set(kemId as number, { key: heldKem, until });
    }
    this.#assertOpen();
    this.#accepted.add(seen);
    // An establishment the peer never sent can neither replace nor close a session the peer is
    // using: while one has carried messages, the new one waits until its first message decrypts.
    const session = this.#session(peerDid, 'responder', channel, e, record);
    if (ticket) this.#admittedBy.set(session, ticket);
    this.#sessions.addAccepted(session);
    return channel;
  }

  /**
   * Decrypts a message from `peerDid` with whichever of its sessions it belongs to: the live one,
   * else one still waiting for its first message (which then becomes the live one, closing the
   * previous). Each try is transactional, so the sessions it does not belong to are unchanged.
   * `INVALID_STATE` when there is no session with the peer; otherwise, when none can read it, the
   * error of the first one tried (`DECRYPT_FAILED`, `DUPLICATE_MESSAGE`, `TOO_MANY_SKIPPED`, …).
   */
  async receive(peerDid: string, message: EncryptedMessage | Uint8Array): Promise<Uint8Array> {
    this.#assertPeer(peerDid);
    const candidates = this.#sessions.candidates(peerDid);
    if (candidates.length === 0) throw new E2EError('INVALID_STATE', 'no session with this peer');
    let first: unknown;
    for (const s of candidates) {
      let plaintext: Uint8Array;
      try {
        plaintext = s.channel.receive(message);
      } catch (e) {
        // A message of a waiting session can fail on the live one for any reason (a gap above
        // maxSkip, say); the tries change nothing, so go on and report the first failure.
        first ??= e;
        continue;
      }
      this.#sessions.get(peerDid); // promotes it if it was waiting
      return plaintext;
    }
    throw first;
  }

  /**
   * Transport side: answers `fromDid`'s challenge, and (mutual mode) challenges it back. Refuses
   * with `TRUST_REJECTED` a peer this side would never accept (unknown, inactive, score or
   * capabilities short), so it learns nothing and costs nothing.
   */
  async answerChallenge(fromDid: string, challenge: HandshakeChallenge | string): Promise<ChallengeReply> {
    this.#assertPeer(fromDid);
    checkRequirements(await lookupActiveIdentity(this.#registry, fromDid), this.#requirements);
    this.#assertOpen();
    const response = this.#handshake.respond(challenge, this.#capabilities);
    if (!this.#mutual) return { response };
    const counterTo = { challenge: parseHandshakeChallenge(challenge), responseNonce: response.response_nonce };
    return { response, challenge: this.#handshake.createChallenge(fromDid, { counterTo }) };
  }

  /** Transport side: verifies `fromDid`'s answer to this side's challenge and admits one establishment from it. */
  async completeHandshake(fromDid: string, response: HandshakeResponse | string): Promise<void> {
    this.#assertPeer(fromDid);
    // Only an answer to a counter-challenge this side sent `fromDid`: never one of its own opens' challenges.
    const result = await this.#handshake.verify(response, { peerDid: fromDid, kind: 'counter' });
    this.#assertOpen();
    if (result.peerDid !== fromDid) throw trustRejected(TrustRejectReason.DID_MISMATCH, 'the answer is for another DID');
    this.#verified.record(result);
  }

  /**
   * Closes every session and wipes what the bridge holds: the key manager if the bridge made it
   * (from `identity`), its handshake state and replay memory. A key manager or identity passed in
   * stays the caller's (wipe it yourself). Every method afterwards throws `INVALID_STATE`.
   * Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sessions.closeAll();
    for (const id of [...this.#held.keys()]) this.#dropHeld(id);
    for (const id of [...this.#heldKem.keys()]) this.#dropHeldKem(id);
    this.#verified.clear();
    this.#accepted.clear();
    if (this.#ownsManager) this.#keys.current().wipe();
    this.#detach?.call(this.#transport, this);
  }

  /**
   * Challenges waiting for an answer: `own` (this side's opens; only they can hit
   * `too_many_pending`) and `counter` (sent back to agents that challenged this one; at most 16
   * per peer, so traffic in others' names cannot crowd anyone out).
   */
  get pendingChallenges(): { own: number; counter: number } {
    return { own: this.#handshake.pendingCount, counter: this.#handshake.pendingCounterCount };
  }

  /** Whether {@link close} was called. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** The open session with `did` (with its `establishment`), if any. */
  getSession(did: string): TrustSession | undefined {
    return this.#sessions.get(did);
  }

  /** A copy of the open sessions, by peer DID. */
  get activeSessions(): Map<string, TrustSession> {
    return this.#sessions.snapshot();
  }

  /** Closes the session with `did`, wiping its keys; `true` if one was open. */
  closeSession(did: string): boolean {
    return this.#sessions.close(did);
  }

  /** Closes every session, wiping their keys (e.g. on shutdown). */
  closeAllSessions(): void {
    this.#sessions.closeAll();
  }

  /** An accepted session decrypted its first message: its verification and held one-time (KEM) pre-keys are used up. */
  #authenticated(s: TrustSession): void {
    const ticket = this.#admittedBy.get(s);
    if (ticket) this.#verified.takeIf(s.peerDid, ticket);
    const otkId = s.establishment.usedOneTimeKeyId;
    if (otkId !== undefined) this.#dropHeld(otkId);
    const kemId = s.establishment.kemPreKeyId;
    if (kemId !== undefined) this.#dropHeldKem(kemId);
  }

  #dropHeld(otkId: number): void {
    const h = this.#held.get(otkId);
    if (!h) return;
    memzero(h.key.keyPair.privateKey);
    this.#held.delete(otkId);
  }

  #dropHeldKem(kemId: number): void {
    const h = this.#heldKem.get(kemId);
    if (!h) return;
    memzero(h.key.secretKey);
    this.#heldKem.delete(kemId);
  }

  /** Held copies older than the verification lifetime go: no genuine establishment can come for them now. */
  #sweepHeld(): void {
    const now = this.#now();
    for (const [id, h] of this.#held) if (h.until < now) this.#dropHeld(id);
    for (const [id, h] of this.#heldKem) if (h.until < now) this.#dropHeldKem(id);
  }

  #assertOpen(): void {
    if (this.#closed) throw new E2EError('INVALID_STATE', 'the bridge is closed');
  }

  #assertPeer(did: string): void {
    this.#assertOpen();
    assertMeshDid(did, 'peer DID');
    if (did === this.agentDid) throw new E2EError('INVALID_ARGUMENT', 'a bridge cannot open a session with itself');
  }

  async #claimBundle(peerDid: string): Promise<PreKeyBundle> {
    const store = this.#store as PreKeyStore;
    const b = await storeCall(() => store.claimBundle(peerDid));
    if (!b) throw new E2EError('INVALID_STATE', 'the pre-key store has no bundle for this DID');
    assertBundleShape(b);
    return b;
  }

  /** One transport call, bounded in time; its failures become `TRUST_REJECTED`. */
  async #roundTrip<T>(call: () => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(trustRejected(TrustRejectReason.HANDSHAKE_TIMEOUT, 'the peer did not answer in time')),
        this.#timeoutMs,
      );
      (timer as { unref?: () => void }).unref?.();
    });
    try {
      return await Promise.race([Promise.resolve().then(call), timeout]);
    } catch (e) {
      throw transportError(e);
    } finally {
      clearTimeout(timer);
    }
  }

  #session(
    peerDid: string,
    role: TrustSession['role'],
    channel: SecureChannel,
    establishment: ChannelEstablishment,
    peer: { trustScore: number; capabilities: readonly string[] },
  ): TrustSession {
    return Object.freeze({
      peerDid,
      role,
      channel,
      establishment,
      trustScore: peer.trustScore,
      trustLevel: trustLevel(peer.trustScore),
      capabilities: Object.freeze([...peer.capabilities]),
      establishedAt: this.#now(),
    });
  }
}

/** The channel's associated data: UTF-8 `initiatorDid|responderDid` (PROTOCOL.md). */
function channelAd(initiatorDid: string, responderDid: string): Uint8Array {
  return utf8(`${initiatorDid}|${responderDid}`);
}

function assertTransport(t: unknown): asserts t is TrustTransport {
  const o = typeof t === 'object' && t !== null ? readFields(t, ['sendChallenge', 'sendAnswer'] as const, 'transport') : undefined;
  if (!o || typeof o.sendChallenge !== 'function' || typeof o.sendAnswer !== 'function') {
    throw new E2EError('INVALID_ARGUMENT', 'transport must have sendChallenge and sendAnswer');
  }
}

/** The transport's optional `attach` and `detach`, each read once; anything but a function counts as absent. */
function transportHooks(t: TrustTransport | undefined): Pick<TrustTransport, 'attach' | 'detach'> {
  if (t === undefined) return {};
  const o = readFields(t, ['attach', 'detach'] as const, 'transport');
  const fn = <F>(v: unknown): F | undefined => (typeof v === 'function' ? (v as F) : undefined);
  return { attach: fn<TrustTransport['attach']>(o.attach), detach: fn<TrustTransport['detach']>(o.detach) };
}

/** Every option of {@link EncryptedTrustBridgeOptions}, read once from the caller's object. */
const BRIDGE_OPTIONS = [
  'agentDid',
  'identity',
  'keyManager',
  'registry',
  'preKeyStore',
  'transport',
  'minTrustScore',
  'requiredCapabilities',
  'capabilities',
  'requireMutualHandshake',
  'oneTimePreKeyPool',
  'requirePostQuantum',
  'verifiedPeerTtlSeconds',
  'handshakeTimeoutMs',
  'challengeTtlSeconds',
  'channelOptions',
  'now',
] as const;

function readOpenOptions(input: unknown): OpenChannelOptions {
  if (input === null) throw new E2EError('INVALID_ARGUMENT', 'options must be an object');
  const o = readOptions(input, ['requiredTrustScore', 'requiredCapabilities', 'transport', 'requirePostQuantum'] as const, 'options');
  if (o.requirePostQuantum !== undefined && typeof o.requirePostQuantum !== 'boolean')
    throw new E2EError('INVALID_ARGUMENT', 'requirePostQuantum must be a boolean');
  return o as OpenChannelOptions;
}

function postQuantumRequired(): E2EError {
  return new E2EError('POST_QUANTUM_REQUIRED', 'the bundle has no KEM pre-key and a post-quantum session is required');
}

function notVerified(): E2EError {
  return trustRejected(TrustRejectReason.PEER_NOT_VERIFIED, "the initiator has not answered this side's challenge");
}

/**
 * What identifies an establishment for replay memory: the canonical form of its ephemeral key. An
 * initiator makes a fresh one for every establishment, so any second use is a replay — whatever
 * pre-key ids it names or strips, and however the key is encoded.
 */
function establishmentKey(e: ChannelEstablishment): string {
  return toHex(canonicalX25519PublicKey(e.ephemeralPublicKey));
}

/** The X25519 form of a registry key; a key without one fails closed. */
function x25519Form(record: IdentityRecord): Uint8Array {
  try {
    return x25519FormOfEd25519(record.publicKey);
  } catch {
    throw trustRejected(TrustRejectReason.REGISTRY_ERROR, 'the registry key has no X25519 form');
  }
}

/** Our own verdicts pass through; a peer's refusal becomes `peer_refused`; anything else `transport_failed`. */
function transportError(e: unknown): E2EError {
  if (isE2EError(e, 'TRUST_REJECTED')) {
    const own: readonly (string | undefined)[] = [TrustRejectReason.HANDSHAKE_TIMEOUT, TrustRejectReason.TRANSPORT_FAILED];
    if (own.includes(e.reason)) return e;
    return trustRejected(TrustRejectReason.PEER_REFUSED, `the peer refused the handshake (${e.reason ?? 'no reason'})`);
  }
  return trustRejected(TrustRejectReason.TRANSPORT_FAILED, 'the transport failed to carry the handshake');
}
