/**
 * How the trust handshake travels. The opener's bridge calls a {@link TrustTransport}; on the
 * other side the transport hands each message to that agent's {@link TrustEndpoint} (its bridge).
 * All messages are plain JSON-safe objects, so any transport (HTTP, a queue, a relay) can carry
 * them. {@link LocalTrustNetwork} is the in-process one, for tests, demos and single-process meshes.
 */
import { E2EError } from '../errors';
import { readOptions } from '../crypto';
import { HandshakeChallenge, HandshakeResponse } from './handshake-messages';
import { TrustRejectReason, trustRejected } from './reasons';

/** The peer's answer to a challenge. */
export interface ChallengeReply {
  /** Its signed response to our challenge. */
  response: HandshakeResponse;
  /** Its own challenge to us, when it verifies initiators too (mutual handshake): answer it. */
  challenge?: HandshakeChallenge;
}

/** Carries one agent's handshake messages to a peer and brings back the peer's answers. */
export interface TrustTransport {
  /** Delivers `challenge` from `fromDid` to `toDid`; resolves to the peer's reply. */
  sendChallenge(fromDid: string, toDid: string, challenge: HandshakeChallenge): Promise<ChallengeReply>;
  /** Delivers `fromDid`'s answer to the peer's challenge; resolves once the peer accepted it, rejects otherwise. */
  sendAnswer(fromDid: string, toDid: string, response: HandshakeResponse): Promise<void>;
  /**
   * Optional: a bridge made with this transport calls it once, last in its constructor, so the
   * transport can bring the peers' messages to it (a {@link LocalTrustNetwork} joins it).
   */
  attach?(endpoint: TrustEndpoint): void;
  /** Optional: the bridge calls it when it closes, so nothing reaches it afterwards. */
  detach?(endpoint: TrustEndpoint): void;
}

/** What a transport calls on the receiving agent (an `EncryptedTrustBridge` is one). */
export interface TrustEndpoint {
  /** The agent's DID: the address a transport delivers to. */
  readonly agentDid: string;
  /** Answers a challenge from `fromDid` (and may challenge it back). */
  answerChallenge(fromDid: string, challenge: HandshakeChallenge | string): Promise<ChallengeReply>;
  /** Verifies `fromDid`'s answer to our challenge; rejects with `TRUST_REJECTED` if it fails. */
  completeHandshake(fromDid: string, response: HandshakeResponse | string): Promise<void>;
}

/** One message as a {@link LocalTrustNetwork} observer sees it (JSON text, as on a wire). */
export interface TrustWireEvent {
  /** A challenge, the challenged agent's reply (response and any counter-challenge), or the answer to a counter-challenge. */
  readonly kind: 'challenge' | 'reply' | 'answer';
  /** The sender's DID. */
  readonly fromDid: string;
  /** The recipient's DID. */
  readonly toDid: string;
  /** The message as JSON text. */
  readonly json: string;
}

/** Options of a {@link LocalTrustNetwork}. */
export interface LocalTrustNetworkOptions {
  /** Sees every message (e.g. to log what a relay would carry). Must not throw. */
  readonly observe?: (event: TrustWireEvent) => void;
}

/**
 * An in-process transport: endpoints join it by DID, and every message is passed through JSON
 * (as over a real wire) so that nothing relies on sharing objects.
 * @example
 * const network = new LocalTrustNetwork();
 * const alice = new EncryptedTrustBridge({ identity, registry, transport: network }); // joins it
 */
export class LocalTrustNetwork implements TrustTransport {
  readonly #endpoints = new Map<string, TrustEndpoint>();
  readonly #observe: ((event: TrustWireEvent) => void) | undefined;

  constructor(input: LocalTrustNetworkOptions = {}) {
    if (input === null) throw new E2EError('INVALID_ARGUMENT', 'options must be an object');
    const options = readOptions(input, ['observe'] as const, 'options') as LocalTrustNetworkOptions;
    if (options.observe !== undefined && typeof options.observe !== 'function') {
      throw new E2EError('INVALID_ARGUMENT', 'observe must be a function');
    }
    this.#observe = options.observe;
  }

  /** Makes `endpoint` reachable at its DID (replacing any endpoint there). */
  join(endpoint: TrustEndpoint): void {
    if (typeof endpoint !== 'object' || endpoint === null || typeof endpoint.agentDid !== 'string') {
      throw new E2EError('INVALID_ARGUMENT', 'endpoint must have an agentDid');
    }
    this.#endpoints.set(endpoint.agentDid, endpoint);
  }

  /** Removes the endpoint at `did` (only if it is `endpoint`, when given); `true` if one was removed. */
  leave(did: string, endpoint?: TrustEndpoint): boolean {
    if (endpoint !== undefined && this.#endpoints.get(did) !== endpoint) return false;
    return this.#endpoints.delete(did);
  }

  /** See {@link TrustTransport.attach}: {@link join}s `endpoint`. */
  attach(endpoint: TrustEndpoint): void {
    this.join(endpoint);
  }

  /** See {@link TrustTransport.detach}: removes `endpoint` if it is still the one at its DID. */
  detach(endpoint: TrustEndpoint): void {
    this.leave(endpoint.agentDid, endpoint);
  }

  /** See {@link TrustTransport.sendChallenge}. */
  async sendChallenge(fromDid: string, toDid: string, challenge: HandshakeChallenge): Promise<ChallengeReply> {
    const peer = this.#endpoint(toDid);
    const reply = await peer.answerChallenge(fromDid, this.#wire('challenge', fromDid, toDid, challenge));
    return JSON.parse(this.#wire('reply', toDid, fromDid, reply)) as ChallengeReply;
  }

  /** See {@link TrustTransport.sendAnswer}. */
  async sendAnswer(fromDid: string, toDid: string, response: HandshakeResponse): Promise<void> {
    await this.#endpoint(toDid).completeHandshake(fromDid, this.#wire('answer', fromDid, toDid, response));
  }

  #endpoint(did: string): TrustEndpoint {
    const e = this.#endpoints.get(did);
    if (!e) throw trustRejected(TrustRejectReason.TRANSPORT_FAILED, 'no endpoint for this DID on the network');
    return e;
  }

  #wire(kind: TrustWireEvent['kind'], fromDid: string, toDid: string, message: unknown): string {
    const json = JSON.stringify(message);
    this.#observe?.({ kind, fromDid, toDid, json });
    return json;
  }
}
