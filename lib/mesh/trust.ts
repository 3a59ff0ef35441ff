/**
 * The trust gate of a `MeshAgent` (option `trust`): the bridge's mutual handshake, carried in relayed
 * frames, in both directions. Outbound, a session opens only to a peer that answered our challenge with its
 * registry key and passed our requirements, and only with a bundle under that key. Inbound, an
 * establishment is accepted only from a peer that answered our counter-challenge in the last 5 minutes (one
 * establishment per answer), that the registry still lists as active with the required score and
 * capabilities, and whose establishment identity key is the X25519 form of its registry key.
 */
import { constantTimeEqual } from '../crypto';
import { x25519FormOfEd25519 } from '../x3dh';
import {
  AgentIdentity,
  ChallengeReply,
  EncryptedTrustBridge,
  HandshakeChallenge,
  HandshakeResponse,
  IdentityRegistry,
  TrustRejectReason,
  TrustTransport,
  trustRejected,
} from '../trust';
import { BoundedMap } from '../util/bounded-map';
import { MAX_ADMISSIONS } from '../limits';

/** The `trust` option of `MeshAgent.connect`. */
export interface MeshTrustOptions {
  /** Whose key a DID is, its trust score (0–1000), status and capabilities. */
  readonly registry: IdentityRegistry;
  /** Lowest score accepted, both directions (the bridge's default, 700, when absent). */
  readonly minTrustScore?: number;
  /** Capabilities a peer must hold, both directions. */
  readonly requiredCapabilities?: readonly string[];
  /** Capabilities this agent claims in its answers (the registry's word is what counts). */
  readonly capabilities?: readonly string[];
  /** How long one handshake round trip may take (default 30 s; an offline peer fails the open). */
  readonly handshakeTimeoutMs?: number;
}

/** How long a peer's answer admits an establishment. */
const ADMISSION_MS = 5 * 60_000;

/** The trust side of one agent. */
export class MeshTrust {
  /** The bridge running the handshake (its sessions are unused: the agent keeps its own). */
  readonly bridge: EncryptedTrustBridge;
  readonly #registry: IdentityRegistry;
  readonly #min: number;
  readonly #required: readonly string[];
  readonly #admitted = new BoundedMap<string, number>(MAX_ADMISSIONS);

  /** The gate of `identity`, its handshake carried by `transport`. */
  constructor(identity: AgentIdentity, options: MeshTrustOptions, transport: TrustTransport) {
    this.bridge = new EncryptedTrustBridge({
      identity,
      registry: options.registry,
      transport,
      ...(options.minTrustScore !== undefined ? { minTrustScore: options.minTrustScore } : {}),
      ...(options.requiredCapabilities !== undefined ? { requiredCapabilities: options.requiredCapabilities } : {}),
      ...(options.capabilities !== undefined ? { capabilities: options.capabilities } : {}),
      ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
    });
    this.#registry = options.registry;
    this.#min = this.bridge.minTrustScore;
    this.#required = options.requiredCapabilities ?? [];
  }

  /** Runs the mutual handshake with `peer`; resolves to its registry key. `TRUST_REJECTED` otherwise. */
  async verifyOutbound(peer: string): Promise<Uint8Array> {
    const r = await this.bridge.verifyPeer(peer);
    return r.publicKey;
  }

  /** Answers `from`'s challenge (and challenges it back). `TRUST_REJECTED` for a peer we would never accept. */
  answerChallenge(from: string, challenge: HandshakeChallenge): Promise<ChallengeReply> {
    return this.bridge.answerChallenge(from, challenge);
  }

  /** Verifies `from`'s answer to our counter-challenge; admits one establishment from it. */
  async completeHandshake(from: string, response: HandshakeResponse): Promise<void> {
    await this.bridge.completeHandshake(from, response);
    this.#admitted.set(from, Date.now());
  }

  /** Checks an inbound establishment from `from` with X25519 identity key `ik`; uses up the admission. */
  async admitInbound(from: string, ik: Uint8Array): Promise<void> {
    const at = this.#admitted.get(from);
    if (at === undefined || Date.now() - at > ADMISSION_MS) {
      throw trustRejected(TrustRejectReason.PEER_NOT_VERIFIED, "the initiator has not answered this side's challenge");
    }
    const record = await this.#registry.get(from);
    if (!record) throw trustRejected(TrustRejectReason.UNKNOWN_IDENTITY, 'the registry does not know this DID');
    if (record.status === 'revoked') throw trustRejected(TrustRejectReason.IDENTITY_REVOKED, 'the identity is revoked');
    if (record.status !== 'active') throw trustRejected(TrustRejectReason.IDENTITY_SUSPENDED, 'the identity is not active');
    if (record.trustScore < this.#min) throw trustRejected(TrustRejectReason.TRUST_SCORE_TOO_LOW, 'trust score below the required one');
    if (this.#required.some((c) => !record.capabilities.includes(c))) {
      throw trustRejected(TrustRejectReason.MISSING_CAPABILITY, 'a required capability is missing');
    }
    if (!constantTimeEqual(x25519FormOfEd25519(record.publicKey), ik)) {
      throw trustRejected(TrustRejectReason.IDENTITY_KEY_MISMATCH, "the establishment is not the registry key's");
    }
    this.#admitted.delete(from);
  }

  /** Closes the bridge. */
  close(): void {
    this.bridge.close();
  }
}
