/**
 * The world of the network-adversary model: three honest agents and two adversarial ones (full
 * bridges of their own, registered with score 900 and every capability) on ONE registry, and a
 * transport that is the adversary. Everything is in-process; every message crosses the wire as JSON.
 *
 * The adversary's knowledge (its "pocket") is everything that crossed the wire: challenges,
 * responses, establishments. From each establishment it builds every channel its own key managers
 * can make (the I1 oracle), and it keeps every channel it opened itself.
 */
import { canonicalX25519PublicKey, ed25519PublicKeyToX25519, fromBase64, randomBytes, toBase64, toHex, utf8 } from '../../../lib/crypto';
import { E2EError } from '../../../lib/errors';
import { PreKeyBundle, X3DHKeyManager } from '../../../lib/x3dh';
import { ChannelEstablishment, SecureChannel } from '../../../lib/channel';
import {
  AgentIdentity,
  ChallengeReply,
  EncryptedTrustBridge,
  HandshakeChallenge,
  HandshakeResponse,
  InMemoryIdentityRegistry,
  TrustTransport,
  handshakeSignedPayload,
} from '../../../lib/trust';

export const HONEST = ['alice', 'bob', 'carol'] as const;
export const ADVERSARIES = ['mallory', 'mallet'] as const;
export type HonestName = (typeof HONEST)[number];
export type AdvName = (typeof ADVERSARIES)[number];
export type AgentName = HonestName | AdvName;
export const ALL: readonly AgentName[] = [...HONEST, ...ADVERSARIES];
/** DIDs no registry knows (for floods and spoofs). */
export const MADE_UP = ['did:mesh:nobody', 'did:mesh:ghost'] as const;

/**
 * Registry entries. Carol is below 900 and lacks `pay`/`audit`; Bob lacks `audit`; everyone honest
 * passes the bridges' defaults (700, no capability). The adversaries pass everything.
 */
export const REGISTRATION: Record<AgentName, { trustScore: number; capabilities: string[] }> = {
  alice: { trustScore: 850, capabilities: ['audit', 'pay'] },
  bob: { trustScore: 850, capabilities: ['pay'] },
  carol: { trustScore: 750, capabilities: [] },
  mallory: { trustScore: 900, capabilities: ['audit', 'pay'] },
  mallet: { trustScore: 900, capabilities: ['audit', 'pay'] },
};
export const DEFAULT_MIN_SCORE = 700;
export const CHALLENGE_TTL_MS = 30_000;

export const did = (n: AgentName): string => `did:mesh:${n}`;
export const isHonest = (n: string): n is HonestName => (HONEST as readonly string[]).includes(n);
export const nameOf = (d: string): AgentName | undefined => ALL.find((n) => did(n) === d);

/** Which invariant broke: the message says which, and why. */
export class InvariantViolation extends Error {
  constructor(
    readonly invariant: 'I1' | 'I2' | 'I3' | 'I4' | 'I5' | 'I6',
    message: string,
  ) {
    super(`${invariant} ${TITLES[invariant]} violated: ${message}`);
    this.name = 'InvariantViolation';
  }
}
const TITLES = {
  I1: '(confidentiality/binding)',
  I2: '(requirements)',
  I3: '(no loss of live sessions)',
  I4: '(liveness)',
  I5: '(no lockout)',
  I6: '(replays)',
} as const;

export function describeError(e: unknown): string {
  if (e instanceof E2EError) return `${e.code}${e.reason ? `/${e.reason}` : ''}`;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

export const wire = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
export const wireEst = (e: ChannelEstablishment): ChannelEstablishment => ChannelEstablishment.fromJSON(JSON.stringify(e));
export const ekKey = (ek: Uint8Array): string => toHex(canonicalX25519PublicKey(ek));

export class Clock {
  t = Date.UTC(2026, 0, 1);
  readonly now = (): number => this.t;
}

export interface Agent {
  readonly name: AgentName;
  readonly did: string;
  readonly identity: AgentIdentity;
  readonly manager: X3DHKeyManager;
  readonly bridge: EncryptedTrustBridge;
}

/** A fresh challenge made by the adversary (valid AGT format). */
export function advChallenge(now: number): HandshakeChallenge {
  return {
    challenge_id: `challenge_${toHex(randomBytes(8))}`,
    nonce: toHex(randomBytes(32)),
    timestamp: new Date(now).toISOString(),
    expires_in_seconds: 30,
  };
}

/** `signer`'s signed response to `c`, with a response nonce of the adversary's choosing. */
export function signResponse(signer: Agent, c: HandshakeChallenge, responseNonce: string, now: number): HandshakeResponse {
  const r: HandshakeResponse = {
    challenge_id: c.challenge_id,
    response_nonce: responseNonce,
    agent_did: signer.did,
    capabilities: [],
    signature: toBase64(signer.identity.sign(handshakeSignedPayload(c, responseNonce, signer.did))),
    public_key: toBase64(signer.identity.publicKey),
    timestamp: new Date(now).toISOString(),
  };
  if (c.freshness_nonce !== undefined) r.freshness_nonce = c.freshness_nonce;
  return r;
}

/** A response that names challenge `id` but whose signature is garbage (an unauthenticated forgery). */
export function forgedResponse(id: string, claimedDid: string, claimedKey: Uint8Array | undefined, now: number): HandshakeResponse {
  return {
    challenge_id: id,
    response_nonce: toHex(randomBytes(16)),
    agent_did: claimedDid,
    capabilities: [],
    signature: toBase64(randomBytes(64)),
    public_key: toBase64(claimedKey ?? randomBytes(32)),
    timestamp: new Date(now).toISOString(),
  };
}

/**
 * What the adversary does with the handshake of the one honest open in progress. `undefined`
 * (or no plan) = honest delivery, as a `LocalTrustNetwork` would.
 */
export interface Plan {
  /** Called instead of delivering the opener's challenge; returns the reply the opener gets. */
  onChallenge?(fromDid: string, toDid: string, challenge: HandshakeChallenge): Promise<ChallengeReply>;
  /** Called instead of delivering the opener's answer to the counter-challenge. */
  onAnswer?(fromDid: string, toDid: string, response: HandshakeResponse): Promise<void>;
}

/** The transport: the adversary. Every bridge uses it; it sees and may rewrite everything. */
export class AdversaryNet implements TrustTransport {
  readonly endpoints = new Map<string, EncryptedTrustBridge>();
  plan: Plan | undefined;
  /** Everything seen on the wire. */
  readonly challenges: HandshakeChallenge[] = [];
  readonly responses: HandshakeResponse[] = [];

  endpoint(d: string): EncryptedTrustBridge {
    const e = this.endpoints.get(d);
    if (!e) throw new Error(`adversary: no endpoint ${d}`);
    return e;
  }

  async sendChallenge(fromDid: string, toDid: string, challenge: HandshakeChallenge): Promise<ChallengeReply> {
    const c = wire(challenge);
    this.challenges.push(c);
    const plan = this.plan;
    const reply = plan?.onChallenge ? await plan.onChallenge(fromDid, toDid, c) : await this.endpoint(toDid).answerChallenge(fromDid, c);
    const r = wire(reply);
    if (r?.response) this.responses.push(r.response);
    if (r?.challenge) this.challenges.push(r.challenge);
    return r;
  }

  async sendAnswer(fromDid: string, toDid: string, response: HandshakeResponse): Promise<void> {
    const r = wire(response);
    this.responses.push(r);
    const plan = this.plan;
    if (plan?.onAnswer) await plan.onAnswer(fromDid, toDid, r);
    else await this.endpoint(toDid).completeHandshake(fromDid, r);
  }
}

/** A channel the adversary holds: a snapshot, so that every try starts from the same state. */
interface Candidate {
  readonly holder: string;
  readonly snapshot: Uint8Array;
}

/**
 * I1 oracle. The adversary's channels, indexed by the (canonical) ephemeral key of the
 * establishment they come from: an honest envelope can only be readable by a channel that shares
 * its root key, i.e. that comes from the same X3DH. Channels from honest agents' establishments
 * are built with every adversary key manager (and every responder DID the AD could name), and
 * channels the adversary opened itself are kept after its first message.
 */
export class Oracle {
  readonly #byEk = new Map<string, Candidate[]>();
  readonly #seen = new Set<string>();
  tries = 0;

  constructor(private readonly adversaries: readonly Agent[]) {}

  /**
   * An establishment crossed the wire from `initiatorDid`, for a session it records under one of
   * `responderDids` (the channel AD names them: the adversary knows both DIDs).
   */
  seeEstablishment(est: ChannelEstablishment, initiatorDid: string, responderDids: readonly string[]): void {
    const k = ekKey(est.ephemeralPublicKey);
    for (const adv of this.adversaries) {
      for (const r of new Set(responderDids)) {
        const tag = `${k}|${adv.did}|${initiatorDid}|${r}`;
        if (this.#seen.has(tag)) continue;
        this.#seen.add(tag);
        const spkId = est.signedPreKeyId ?? adv.manager.signedPreKey?.keyId;
        if (spkId === undefined || !adv.manager.getSignedPreKey(spkId)) continue;
        if (est.usedOneTimeKeyId !== undefined && !adv.manager.getOneTimePreKey(est.usedOneTimeKeyId)) continue;
        const clone = X3DHKeyManager.fromBytes(adv.manager.toBytes());
        try {
          const ch = SecureChannel.createReceiver(clone, est, utf8(`${initiatorDid}|${r}`));
          this.add(k, adv.did, ch);
          ch.close();
        } catch {
          // not a channel this adversary can make
        } finally {
          clone.wipe();
        }
      }
    }
  }

  /** A channel the adversary holds for the establishment with ephemeral key `ek`. */
  add(k: string, holder: string, channel: SecureChannel): void {
    const list = this.#byEk.get(k) ?? [];
    list.push({ holder, snapshot: channel.toBytes() });
    this.#byEk.set(k, list);
  }

  /**
   * I1: `envelope`, sent by an honest agent on its session recorded under `recordedUnder` (whose
   * establishment is `est`), must not be readable by any adversary other than `recordedUnder`.
   */
  assertUnreadable(envelope: Uint8Array, senderDid: string, recordedUnder: string, est: ChannelEstablishment, during: string): void {
    for (const c of this.#byEk.get(ekKey(est.ephemeralPublicKey)) ?? []) {
      if (c.holder === recordedUnder) continue;
      this.tries++;
      let read = false;
      try {
        SecureChannel.fromBytes(c.snapshot).receive(envelope);
        read = true;
      } catch {
        // unreadable: good
      }
      if (read) {
        throw new InvariantViolation(
          'I1',
          `${c.holder} decrypted a message ${senderDid} sent on its session recorded under ${recordedUnder} (${during})`,
        );
      }
    }
  }
}

export interface PocketEstablishment {
  readonly est: ChannelEstablishment;
  readonly from: string;
  readonly to: string;
  /** Accepted by `to` (so a later copy is a replay). */
  accepted: boolean;
}

export interface World {
  readonly clock: Clock;
  readonly registry: InMemoryIdentityRegistry;
  readonly net: AdversaryNet;
  readonly agents: Record<AgentName, Agent>;
  readonly oracle: Oracle;
  readonly pocket: PocketEstablishment[];
  /** Honest pairs ("a|b", a < b) whose sessions carried a message both ways: I3 applies. */
  readonly live: Set<string>;
  /** Last unauthenticated answerChallenge flood aimed at each agent (ms). */
  readonly floodedAt: Map<string, number>;
  /** Counter of messages, for distinct plaintexts. */
  seq: number;
  readonly log: string[];
}

export const pairKey = (a: HonestName, b: HonestName): string => (a < b ? `${a}|${b}` : `${b}|${a}`);

export function makeWorld(): World {
  const clock = new Clock();
  const registry = new InMemoryIdentityRegistry();
  const net = new AdversaryNet();
  const agents = {} as Record<AgentName, Agent>;
  for (const name of ALL) {
    const identity = AgentIdentity.generate({ did: did(name) });
    registry.register({ did: identity.did, publicKey: identity.publicKey, ...REGISTRATION[name] });
    // The adversaries number their pre-keys in ranges of their own (their choice), so an establishment
    // naming an honest agent's pre-key ids is one no adversary key can open: the oracle skips it.
    const base = identity.createKeyManager();
    const offset = ADVERSARIES.indexOf(name as AdvName) + 1;
    const manager =
      offset === 0
        ? base
        : X3DHKeyManager.fromState({
            ...base.exportState(),
            nextSignedPreKeyId: offset * 1000,
            nextOneTimePreKeyId: offset * 1_000_000,
          });
    const bridge = new EncryptedTrustBridge({ identity, keyManager: manager, registry, transport: net, now: clock.now });
    net.endpoints.set(identity.did, bridge);
    agents[name] = { name, did: identity.did, identity, manager, bridge };
  }
  return {
    clock,
    registry,
    net,
    agents,
    oracle: new Oracle(ADVERSARIES.map((n) => agents[n])),
    pocket: [],
    live: new Set(),
    floodedAt: new Map(),
    seq: 0,
    log: [],
  };
}

/** The X25519 form of `d`'s registry key (what an establishment claiming `d` must carry). */
export function registeredX25519(w: World, d: string): Uint8Array {
  const r = w.registry.get(d);
  return r ? ed25519PublicKeyToX25519(r.publicKey) : randomBytes(32);
}

export function flipBit255(key: Uint8Array): Uint8Array {
  const k = Uint8Array.from(key);
  k[31] ^= 0x80;
  return k;
}

export function mutateBundle(b: PreKeyBundle, how: 'ik255' | 'spk255' | 'sig' | 'edOf', other?: Uint8Array): PreKeyBundle {
  switch (how) {
    case 'ik255':
      return { ...b, identityKey: flipBit255(b.identityKey) };
    case 'spk255':
      return { ...b, signedPreKey: flipBit255(b.signedPreKey) };
    case 'sig': {
      const s = Uint8Array.from(b.signedPreKeySignature);
      s[5] ^= 1;
      return { ...b, signedPreKeySignature: s };
    }
    case 'edOf':
      return { ...b, identityKeyEd: Uint8Array.from(other ?? randomBytes(32)) };
  }
}

export { fromBase64 };
