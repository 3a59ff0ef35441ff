/**
 * The adversary's actions, their interpreter and the invariants checked after each of them.
 *
 * A run: a fresh world, the three honest pairs connected honestly (live sessions, I3 applies),
 * then a generated list of actions. An `open` is one honest agent's `openSecureChannel`, whose
 * handshake the adversary routes (`route`), whose bundle it may substitute or rewrite (`bundle`),
 * between whose handshake and establishment it may act (`between`), and whose establishment it
 * delivers or drops (`deliver`). The other actions are the adversary's own (forged/replayed
 * establishments, floods, opens of its own bridges), the clock, and honest chat with reordered and
 * replayed envelopes. Invariants I1–I6 (see the spec) are asserted during and after every action.
 */
import { randomBytes, toBase64, toHex, utf8, fromUtf8, x25519KeyPair } from '../../../lib/crypto';
import { isE2EError } from '../../../lib/errors';
import { PreKeyBundle } from '../../../lib/x3dh';
import { ChannelEstablishment, SecureChannel } from '../../../lib/channel';
import { ChallengeReply, HandshakeChallenge, HandshakeResponse, OpenChannelOptions, counterChallengeNonce } from '../../../lib/trust';
import {
  ADVERSARIES,
  AdvName,
  Agent,
  AgentName,
  CHALLENGE_TTL_MS,
  DEFAULT_MIN_SCORE,
  HONEST,
  HonestName,
  InvariantViolation,
  MADE_UP,
  Plan,
  World,
  advChallenge,
  describeError,
  did,
  ekKey,
  flipBit255,
  forgedResponse,
  isHonest,
  makeWorld,
  mutateBundle,
  nameOf,
  pairKey,
  registeredX25519,
  signResponse,
  wire,
  wireEst,
} from './world';

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

/** An agent named relative to the open in progress (or the last one), or outright. */
export type Ref = AgentName | 'opener' | 'target' | 'victim' | (typeof MADE_UP)[number];

export type RewriteField =
  | 'agent_did'
  | 'signature'
  | 'public_key'
  | 'challenge_id'
  | 'response_nonce'
  | 'capabilities'
  | 'timestamp'
  | 'counter_nonce'
  | 'counter_id'
  | 'counter_drop'
  | 'counter_freshness';

export type Route =
  /** Honest delivery; optionally first an unauthenticated answer naming the in-flight challenge (at the opener / at the target). */
  | { kind: 'honest'; injectAtOpener: boolean; injectAtTarget: boolean }
  | { kind: 'drop'; leg: 'challenge' | 'answer' }
  /** The challenge goes to `to` (claiming to come from `claimFrom`), its reply comes back. */
  | { kind: 'redirect'; to: AgentName; claimFrom: Ref }
  /**
   * The reply is `signer`'s signature over the opener's own challenge (`this`) or over a
   * counter-challenge the adversary harvests from the opener first (`opener.answerChallenge(harvestFrom, …)`);
   * an honest signer is made to sign by relaying the challenge to it. `counter`: none, or one of the adversary's, bound.
   */
  | { kind: 'substitute'; signer: 'target' | AgentName; source: 'this' | 'harvest'; harvestFrom: 'signer' | Ref; counter: 'none' | 'own' }
  /** (target = an adversary) the opener's challenge is relayed to `victim` as if from the opener; the victim's counter-challenge comes back as the adversary's own. */
  | { kind: 'relayCounter'; victim: HonestName; nonce: 'victim' | 'fresh' }
  | { kind: 'rewrite'; leg: 'reply' | 'answer'; field: RewriteField }
  /** An old response from the wire instead of the target's. */
  | { kind: 'stale'; idx: number };

export type OptsName = 'default' | 'score900' | 'score0' | 'pay' | 'audit';
/** `noOtk`: the genuine bundle with its one-time pre-key stripped (the signature covers only the signed pre-key). */
export type BundleChoice = 'genuine' | 'signer' | AgentName | 'ik255' | 'spk255' | 'sig' | 'edOfMallory' | 'noOtk';

/**
 * replay: an accepted establishment again; flip255: with bit 255 of ek flipped (the same key to X25519);
 * stripIds / stripOtk: with its pre-key ids dropped (the same establishment, PROTOCOL.md: the ids are optional);
 * randomEk: the claimed DID's identity key, a fresh ek; advIk: the adversary's identity key; advOwn: a real X3DH by the adversary.
 */
export type ForgeKind = 'replay' | 'flip255' | 'stripIds' | 'stripOtk' | 'randomEk' | 'advIk' | 'advOwn';
const REPLAYS: readonly ForgeKind[] = ['replay', 'flip255', 'stripIds', 'stripOtk'];
export interface ForgeAction {
  t: 'forge';
  kind: ForgeKind;
  /** For replays: an accepted establishment, sent to the bridge that accepted it under its sender (`original`) or to `to` as `claim`. */
  original: boolean;
  idx: number;
  to: Ref;
  claim: Ref;
  holder: AdvName;
  otk: number | null;
}
export interface FloodAction {
  t: 'flood';
  to: Ref;
  n: number;
  from: 'adv' | 'spoofHonest' | 'madeUp';
  api: 'answerChallenge' | 'completeHandshake';
}
export interface AdvOpenAction {
  t: 'advOpen';
  adv: AdvName;
  target: HonestName;
}
export type AdvAction = ForgeAction | FloodAction | AdvOpenAction;

export interface OpenAction {
  t: 'open';
  opener: HonestName;
  target: AgentName;
  opts: OptsName;
  bundle: BundleChoice;
  route: Route;
  between: AdvAction[];
  deliver: boolean;
}
/** `from` writes `n` messages to `to`, delivered reordered (`order`), some again (`dups`), each also misdelivered to `misdeliver`'s session for `from`. */
export interface ChatAction {
  t: 'chat';
  from: HonestName;
  to: HonestName;
  n: number;
  order: number[];
  dups: number[];
  misdeliver: HonestName | null;
}
/** An honest agent rotates its signed pre-key (the old one stays usable for establishments in flight). */
export interface RotateAction {
  t: 'rotate';
  who: HonestName;
}
export interface AdvanceAction {
  t: 'advance';
  ms: number;
}
export type Action = OpenAction | AdvAction | ChatAction | AdvanceAction | RotateAction;

const OPTS: Record<OptsName, OpenChannelOptions> = {
  default: {},
  score900: { requiredTrustScore: 900 },
  score0: { requiredTrustScore: 0 },
  pay: { requiredCapabilities: ['pay'] },
  audit: { requiredCapabilities: ['audit'] },
};

// ---------------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------------

interface OpenContext {
  opener: Agent;
  target: Agent;
  victim: Agent;
}

/** I2: the peer a session is recorded under meets every requirement of the open (per the registry). */
export function assertI2Requirements(w: World, opener: Agent, peerDid: string, opts: OpenChannelOptions, during: string): void {
  const r = w.registry.get(peerDid);
  const score = opts.requiredTrustScore ?? DEFAULT_MIN_SCORE;
  const caps = opts.requiredCapabilities ?? [];
  if (!r || r.status !== 'active')
    throw new InvariantViolation(
      'I2',
      `${opener.name} recorded a session under ${peerDid}, which is not active in the registry (${during})`,
    );
  if (r.trustScore < score) {
    throw new InvariantViolation(
      'I2',
      `${opener.name} recorded a session under ${peerDid} (score ${r.trustScore}) although the open required ${score} (${during})`,
    );
  }
  const missing = caps.filter((c) => !r.capabilities.includes(c));
  if (missing.length > 0) {
    throw new InvariantViolation(
      'I2',
      `${opener.name} recorded a session under ${peerDid} lacking ${missing.join(',')} although the open required it (${during})`,
    );
  }
}

/** I2 for the bridge defaults: every session any honest bridge holds is with an active peer meeting 700. */
export function assertI2Defaults(w: World, during: string): void {
  for (const h of HONEST) {
    for (const [peer] of w.agents[h].bridge.activeSessions) assertI2Requirements(w, w.agents[h], peer, {}, `${during}; bridge defaults`);
  }
}

/** One message `a` → `b` on their recorded sessions; I1 oracle on it; `b` must read it. */
function probeOneWay(w: World, a: Agent, b: Agent, inv: 'I3' | 'I4', during: string): void {
  const sa = a.bridge.getSession(b.did);
  const sb = b.bridge.getSession(a.did);
  if (!sa || !sb) {
    throw new InvariantViolation(
      inv,
      `${a.name}↔${b.name}: ${!sa ? a.name : b.name}'s session for ${!sa ? b.name : a.name} is gone (${during})`,
    );
  }
  const text = `probe ${w.seq++} ${a.name}->${b.name}`;
  let env: Uint8Array;
  try {
    env = sa.channel.send(utf8(text)).serialize();
  } catch (e) {
    throw new InvariantViolation(inv, `${a.name} cannot send on its session for ${b.name}: ${describeError(e)} (${during})`);
  }
  w.oracle.assertUnreadable(env, a.did, b.did, sa.establishment, during);
  let got: string;
  try {
    got = fromUtf8(sb.channel.receive(env));
  } catch (e) {
    throw new InvariantViolation(
      inv,
      `${b.name} cannot read ${a.name}'s next message on their live session: ${describeError(e)} (${during})`,
    );
  }
  if (got !== text) throw new InvariantViolation(inv, `${b.name} read a different text from ${a.name} (${during})`);
}

/** I3: every live honest pair still works both ways through `getSession(peer).channel`. */
export function assertI3LiveSessions(w: World, during: string): void {
  for (const k of [...w.live].sort()) {
    const [x, y] = k.split('|') as [HonestName, HonestName];
    probeOneWay(w, w.agents[x], w.agents[y], 'I3', during);
    probeOneWay(w, w.agents[y], w.agents[x], 'I3', during);
  }
}

/** I1 on every other session of the honest agents: what they send on it, no adversary other than its peer reads. */
export function assertI1AllSessions(w: World, during: string): void {
  for (const h of HONEST) {
    const a = w.agents[h];
    for (const [peer, s] of a.bridge.activeSessions) {
      const pn = nameOf(peer);
      if (pn && isHonest(pn) && w.live.has(pairKey(h, pn))) continue; // probed already
      let env: Uint8Array;
      try {
        env = s.channel.send(utf8(`chat ${w.seq++}`)).serialize();
      } catch {
        continue; // a responder that has not received yet cannot send
      }
      w.oracle.assertUnreadable(env, a.did, peer, s.establishment, `${during}; ${h} writes on its session recorded under ${peer}`);
    }
  }
}

/** Which invariant an honest open that fails speaks to: lockout (I5) right after a flood, replay cost (I6), else liveness (I4). */
function livenessInvariant(w: World, ctx: { opener: Agent; target: Agent; replayed: boolean; forced?: 'I5' }): 'I4' | 'I5' | 'I6' {
  if (ctx.forced) return ctx.forced;
  const now = w.clock.t;
  const flooded = [ctx.opener.did, ctx.target.did].some((d) => now - (w.floodedAt.get(d) ?? -Infinity) <= CHALLENGE_TTL_MS);
  if (flooded) return 'I5';
  return ctx.replayed ? 'I6' : 'I4';
}

// ---------------------------------------------------------------------------------------------
// The interpreter
// ---------------------------------------------------------------------------------------------

export interface RunState {
  last: OpenContext;
  /** Inside the `between` of an open that verified `opener` at `target` (a fresh verification is held). */
  fresh?: { opener: Agent; target: Agent };
  replayedInBetween: boolean;
}

function resolve(w: World, s: RunState, r: Ref): Agent | string {
  if (r === 'opener') return s.last.opener;
  if (r === 'target') return s.last.target;
  if (r === 'victim') return s.last.victim;
  if ((MADE_UP as readonly string[]).includes(r)) return r;
  return w.agents[r as AgentName];
}
const didOf = (x: Agent | string): string => (typeof x === 'string' ? x : x.did);

function meets(w: World, target: Agent, opts: OpenChannelOptions): boolean {
  const r = w.registry.get(target.did)!;
  return (
    r.trustScore >= (opts.requiredTrustScore ?? DEFAULT_MIN_SCORE) &&
    (opts.requiredCapabilities ?? []).every((c) => r.capabilities.includes(c))
  );
}

const hex = (n: number): string => toHex(randomBytes(n));

function rewriteResponse(w: World, r: HandshakeResponse, field: RewriteField, avoidId: string): void {
  const m = w.agents.mallory;
  switch (field) {
    case 'agent_did':
      r.agent_did = m.did;
      break;
    case 'signature': {
      const s = Uint8Array.from(Buffer.from(r.signature, 'base64'));
      s[0] ^= 1;
      r.signature = toBase64(s);
      break;
    }
    case 'public_key':
      r.public_key = toBase64(m.identity.publicKey);
      break;
    case 'challenge_id': {
      const other = [...w.net.challenges].reverse().find((c) => c.challenge_id !== avoidId);
      r.challenge_id = other?.challenge_id ?? `challenge_${hex(8)}`;
      break;
    }
    case 'response_nonce':
      r.response_nonce = hex(16);
      break;
    case 'capabilities':
      r.capabilities = ['audit', 'pay', 'root'];
      break;
    case 'timestamp':
      r.timestamp = new Date(w.clock.t + 1000).toISOString();
      break;
    default:
      break;
  }
}

function planFor(w: World, a: OpenAction, opener: Agent, target: Agent, signer: Agent): Plan | undefined {
  const route = a.route;
  const now = (): number => w.clock.t;
  const net = w.net;
  switch (route.kind) {
    case 'honest':
      if (!route.injectAtOpener && !route.injectAtTarget) return undefined;
      return {
        async onChallenge(from, to, c) {
          if (route.injectAtOpener) {
            await opener.bridge
              .completeHandshake(to, forgedResponse(c.challenge_id, to, w.registry.get(to)?.publicKey, now()))
              .catch(() => undefined);
          }
          return net.endpoint(to).answerChallenge(from, c);
        },
        async onAnswer(from, to, r) {
          if (route.injectAtTarget) {
            await net
              .endpoint(to)
              .completeHandshake(from, forgedResponse(r.challenge_id, from, w.registry.get(from)?.publicKey, now()))
              .catch(() => undefined);
          }
          await net.endpoint(to).completeHandshake(from, r);
        },
      };
    case 'drop':
      return route.leg === 'challenge'
        ? {
            async onChallenge() {
              throw new Error('adversary dropped the challenge');
            },
          }
        : {
            async onAnswer() {
              throw new Error('adversary dropped the answer');
            },
          };
    case 'redirect': {
      const to = w.agents[route.to];
      const claim = route.claimFrom;
      return {
        async onChallenge(from, _to, c) {
          const claimed = claim === 'opener' ? from : didOf(resolveClaim(w, claim, opener, target));
          return to.bridge.answerChallenge(claimed, c);
        },
        async onAnswer(from, _to, r) {
          const claimed = claim === 'opener' ? from : didOf(resolveClaim(w, claim, opener, target));
          await to.bridge.completeHandshake(claimed, r);
        },
      };
    }
    case 'substitute':
      return {
        async onChallenge(_from, _to, c) {
          let toSign: HandshakeChallenge = c;
          if (route.source === 'harvest') {
            const hf = route.harvestFrom === 'signer' ? signer.did : didOf(resolveClaim(w, route.harvestFrom, opener, target));
            try {
              const rep = await opener.bridge.answerChallenge(hf, advChallenge(now()));
              if (rep.challenge) toSign = wire(rep.challenge);
            } catch {
              // nothing harvested: sign the opener's own challenge
            }
          }
          const response = isHonest(signer.name)
            ? wire((await signer.bridge.answerChallenge(opener.did, toSign)).response) // an honest agent made to sign by relaying
            : signResponse(signer, toSign, hex(16), now());
          const reply: ChallengeReply = { response };
          if (route.counter === 'own') {
            reply.challenge = {
              challenge_id: `challenge_${hex(8)}`,
              nonce: counterChallengeNonce(c, response.response_nonce, { openerDid: opener.did, answererDid: target.did }),
              timestamp: new Date(now()).toISOString(),
              expires_in_seconds: 30,
            };
          }
          return reply;
        },
        async onAnswer() {
          /* the adversary keeps the opener's signature */
        },
      };
    case 'relayCounter': {
      const victim = w.agents[route.victim];
      return {
        async onChallenge(from, _to, c) {
          const rv = await victim.bridge.answerChallenge(from, c); // the victim sees the opener's challenge "from the opener"
          const nonce = route.nonce === 'victim' ? rv.response.response_nonce : hex(16);
          const reply: ChallengeReply = { response: signResponse(target, c, nonce, now()) };
          if (rv.challenge) reply.challenge = wire(rv.challenge); // the victim's counter-challenge, passed off as the adversary's
          return reply;
        },
        async onAnswer(from, _to, r) {
          await victim.bridge.completeHandshake(from, r); // the opener's signature over the victim's challenge
        },
      };
    }
    case 'rewrite':
      return route.leg === 'reply'
        ? {
            async onChallenge(from, to, c) {
              const reply = wire(await net.endpoint(to).answerChallenge(from, c));
              if (route.field.startsWith('counter_')) {
                const cc = reply.challenge;
                if (cc) {
                  if (route.field === 'counter_nonce') cc.nonce = hex(32);
                  if (route.field === 'counter_id') cc.challenge_id = `challenge_${hex(8)}`;
                  if (route.field === 'counter_freshness') cc.freshness_nonce = hex(16);
                  if (route.field === 'counter_drop') delete reply.challenge;
                }
              } else {
                rewriteResponse(w, reply.response, route.field, c.challenge_id);
              }
              return reply;
            },
          }
        : {
            async onAnswer(from, to, r) {
              rewriteResponse(w, r, route.field, r.challenge_id);
              await net.endpoint(to).completeHandshake(from, r);
            },
          };
    case 'stale':
      return {
        async onChallenge(_from, to, c) {
          const old = net.responses.filter((r) => r.challenge_id !== c.challenge_id);
          const fromTarget = old.filter((r) => r.agent_did === to);
          const pool = fromTarget.length > 0 ? fromTarget : old;
          if (pool.length === 0) throw new Error('nothing stale to send');
          return { response: wire(pool[route.idx % pool.length]) };
        },
      };
  }
}

function resolveClaim(w: World, r: Ref, opener: Agent, target: Agent): Agent | string {
  if (r === 'opener') return opener;
  if (r === 'target' || r === 'victim') return target;
  return resolve(w, { last: { opener, target, victim: target }, replayedInBetween: false }, r);
}

async function bundleFor(w: World, a: OpenAction, target: Agent, signer: Agent): Promise<PreKeyBundle> {
  const genuine = (): Promise<PreKeyBundle> => target.bridge.publishPrekeyBundle();
  switch (a.bundle) {
    case 'genuine':
      return genuine();
    case 'signer':
      return signer.bridge.publishPrekeyBundle();
    case 'ik255':
    case 'spk255':
    case 'sig':
      return mutateBundle(await genuine(), a.bundle);
    case 'edOfMallory':
      return mutateBundle(await genuine(), 'edOf', w.agents.mallory.identity.publicKey);
    case 'noOtk': {
      const { oneTimePreKey: _k, oneTimePreKeyId: _id, ...rest } = await genuine();
      return rest;
    }
    default:
      return w.agents[a.bundle].bridge.publishPrekeyBundle();
  }
}

/** One honest open, as the adversary lets it happen. */
export async function runOpen(w: World, s: RunState, a: OpenAction, during: string, forced?: 'I5'): Promise<void> {
  const opener = w.agents[a.opener];
  const target = w.agents[a.target];
  if (opener === target) return;
  let route = a.route;
  let victim = s.last.victim;
  if (route.kind === 'relayCounter') {
    const v = route.victim === a.opener ? HONEST.find((h) => h !== a.opener)! : route.victim;
    route = { ...route, victim: v };
    victim = w.agents[v];
    if (isHonest(target.name)) route = { kind: 'honest', injectAtOpener: false, injectAtTarget: false };
  }
  let signer = target;
  if (route.kind === 'substitute' && route.signer !== 'target') {
    signer = w.agents[route.signer];
    if (signer === opener) signer = target;
  }
  s.last = { opener, target, victim };
  const opts = OPTS[a.opts];
  const act: OpenAction = { ...a, route };
  const bundle = await bundleFor(w, act, target, signer);
  const honestOpen = route.kind === 'honest' && a.bundle === 'genuine' && meets(w, target, opts);
  w.net.plan = planFor(w, act, opener, target, signer);
  let channel: SecureChannel | undefined;
  let err: unknown;
  try {
    channel = await opener.bridge.openSecureChannel(target.did, bundle, opts);
  } catch (e) {
    err = e;
  } finally {
    w.net.plan = undefined;
  }
  const ctx = `${during}; ${opener.name} opens ${target.name} (${a.opts}, bundle ${a.bundle}, route ${JSON.stringify(route)})`;
  if (!channel) {
    if (honestOpen) {
      const inv = livenessInvariant(w, { opener, target, replayed: false, forced });
      throw new InvariantViolation(inv, `the open failed with ${describeError(err)} although the adversary delivered it honestly (${ctx})`);
    }
    return;
  }
  assertI2Requirements(w, opener, target.did, opts, ctx);
  const session = opener.bridge.getSession(target.did);
  if (!session)
    throw new InvariantViolation('I4', `openSecureChannel resolved but ${opener.name} has no session for ${target.name} (${ctx})`);
  if (isHonest(target.name)) w.live.delete(pairKey(opener.name as HonestName, target.name));
  const est = session.establishment;
  const entry = { est, from: opener.did, to: target.did, accepted: false };
  w.pocket.push(entry);
  w.oracle.seeEstablishment(est, opener.did, [target.did]);

  // The adversary acts between the handshake and the delivery of the establishment.
  const saved = { fresh: s.fresh, replayed: s.replayedInBetween };
  s.fresh = honestOpen && isHonest(target.name) ? { opener, target } : undefined;
  s.replayedInBetween = false;
  let replayed = false;
  try {
    for (const b of a.between) await runAdv(w, s, b, `${ctx}; between: ${JSON.stringify(b)}`);
  } finally {
    replayed = s.replayedInBetween;
    s.fresh = saved.fresh;
    s.replayedInBetween = saved.replayed || replayed;
  }
  if (!a.deliver) return;

  const inv = (): 'I4' | 'I5' | 'I6' => livenessInvariant(w, { opener, target, replayed, forced });
  let peerChannel: SecureChannel | undefined;
  try {
    peerChannel = await target.bridge.acceptSecureChannel(opener.did, wireEst(est));
    entry.accepted = true;
  } catch (e) {
    if (honestOpen && isHonest(target.name)) {
      throw new InvariantViolation(inv(), `${target.name} refused ${opener.name}'s genuine establishment: ${describeError(e)} (${ctx})`);
    }
  }
  // The opener's first message (readable by no adversary but the peer it is recorded under).
  const text = `first ${w.seq++}`;
  let m1: Uint8Array;
  try {
    m1 = channel.send(utf8(text)).serialize();
  } catch (e) {
    // (an adversarial peer may itself replace the session it just got: its own message, no invariant)
    if (honestOpen && isHonest(target.name)) {
      throw new InvariantViolation(inv(), `${opener.name}'s new channel to ${target.name} no longer works: ${describeError(e)} (${ctx})`);
    }
    return;
  }
  w.oracle.assertUnreadable(m1, opener.did, target.did, est, `${ctx}; first message`);
  if (!peerChannel) return;
  if (!isHonest(target.name)) return; // an adversary's bridge: nothing to assert
  let read: string | undefined;
  try {
    read = fromUtf8(peerChannel.receive(m1));
  } catch (e) {
    throw new InvariantViolation(
      honestOpen ? inv() : 'I1',
      `${target.name} accepted ${opener.name}'s establishment but cannot read its first message: ${describeError(e)} (${ctx})`,
    );
  }
  if (read !== text) throw new InvariantViolation('I1', `${target.name} read another text (${ctx})`);
  const reply = `reply ${w.seq++}`;
  const m2 = peerChannel.send(utf8(reply)).serialize();
  w.oracle.assertUnreadable(m2, target.did, opener.did, est, `${ctx}; reply`);
  try {
    if (fromUtf8(channel.receive(m2)) !== reply) throw new Error('another text');
  } catch (e) {
    throw new InvariantViolation(
      honestOpen ? inv() : 'I1',
      `${opener.name} cannot read ${target.name}'s reply: ${describeError(e)} (${ctx})`,
    );
  }
  // Both ways through getSession: the pair is live from now on.
  probeOneWay(w, opener, target, honestOpen ? 'I4' : 'I3', `${ctx}; after the exchange`);
  probeOneWay(w, target, opener, honestOpen ? 'I4' : 'I3', `${ctx}; after the exchange`);
  w.live.add(pairKey(opener.name as HonestName, target.name));
}

async function runForge(w: World, s: RunState, a: ForgeAction, during: string): Promise<void> {
  let to = resolve(w, s, a.to);
  let claim = resolve(w, s, a.claim);
  let est: ChannelEstablishment;
  let isReplayOf: { from: string; to: string } | undefined;
  let advSender: SecureChannel | undefined;
  const holder = w.agents[a.holder];
  if (REPLAYS.includes(a.kind)) {
    const accepted = w.pocket.filter((p) => p.accepted);
    if (accepted.length === 0) return;
    const p = accepted[a.idx % accepted.length];
    if (a.original) {
      to = w.agents[nameOf(p.to)!];
      claim = nameOf(p.from) ? w.agents[nameOf(p.from)!] : p.from;
    }
    const e = p.est;
    est =
      a.kind === 'replay'
        ? wireEst(e)
        : a.kind === 'flip255'
          ? new ChannelEstablishment({ ...e, ephemeralPublicKey: flipBit255(e.ephemeralPublicKey) })
          : a.kind === 'stripIds'
            ? new ChannelEstablishment({ ...e, usedOneTimeKeyId: undefined, signedPreKeyId: undefined })
            : new ChannelEstablishment({ ...e, usedOneTimeKeyId: undefined });
    if (didOf(to) === p.to && didOf(claim) === p.from) isReplayOf = { from: p.from, to: p.to };
  } else if (a.kind === 'randomEk' || a.kind === 'advIk') {
    est = new ChannelEstablishment({
      initiatorIdentityKey: a.kind === 'randomEk' ? registeredX25519(w, didOf(claim)) : holder.manager.identityKey.publicKey,
      ephemeralPublicKey: x25519KeyPair().publicKey,
      usedOneTimeKeyId: a.otk ?? undefined,
    });
  } else {
    if (typeof to === 'string' || !isHonest(to.name)) return;
    const made = SecureChannel.createSender(holder.manager, await to.bridge.publishPrekeyBundle(), utf8(`${didOf(claim)}|${to.did}`));
    est = made.establishment;
    advSender = made.channel;
  }
  if (typeof to === 'string' || !isHonest(to.name) || didOf(claim) === to.did) return;
  const ctx = `${during}; forged establishment (${a.kind}) to ${to.name} claiming ${didOf(claim)}`;
  let accepted: SecureChannel | undefined;
  let err: unknown;
  try {
    accepted = await to.bridge.acceptSecureChannel(didOf(claim), est);
  } catch (e) {
    err = e;
  }
  if (isReplayOf) {
    s.replayedInBetween = true;
    if (accepted) throw new InvariantViolation('I6', `a replayed establishment was accepted (${ctx})`);
    const fresh = s.fresh && s.fresh.opener.did === isReplayOf.from && s.fresh.target.did === isReplayOf.to;
    if (fresh && !isE2EError(err, 'DUPLICATE_MESSAGE')) {
      throw new InvariantViolation(
        'I6',
        `a replay (with ${claim && didOf(claim)}'s fresh verification held) was refused with ${describeError(err)}, not DUPLICATE_MESSAGE (${ctx})`,
      );
    }
  }
  if (accepted && advSender) {
    // The adversary speaks first on the channel it made (so a bridge that waits for an authentic first message gets one).
    try {
      accepted.receive(advSender.send(utf8('hello from the adversary')).serialize());
    } catch {
      // not a working pair
    }
    w.oracle.add(ekKey(est.ephemeralPublicKey), holder.did, advSender);
  }
}

async function runFlood(w: World, s: RunState, a: FloodAction, during: string, probe: boolean): Promise<void> {
  const to = resolve(w, s, a.to);
  if (typeof to === 'string' || !isHonest(to.name)) return;
  const spoofs = HONEST.filter((h) => h !== to.name).map(did);
  for (let i = 0; i < a.n; i++) {
    const from =
      a.from === 'adv'
        ? did(ADVERSARIES[i % 2])
        : a.from === 'spoofHonest'
          ? spoofs[i % spoofs.length]
          : i % 3 === 2
            ? MADE_UP[i % 2]
            : `did:mesh:${hex(16)}`;
    if (a.api === 'answerChallenge') {
      await to.bridge.answerChallenge(from, advChallenge(w.clock.t)).catch(() => undefined);
    } else {
      const seen = w.net.challenges;
      const id = seen.length > 0 && i % 2 === 0 ? seen[i % seen.length].challenge_id : `challenge_${hex(8)}`;
      await to.bridge.completeHandshake(from, forgedResponse(id, from, w.registry.get(from)?.publicKey, w.clock.t)).catch(() => undefined);
    }
  }
  if (a.api === 'answerChallenge') w.floodedAt.set(to.did, w.clock.t);
  if (!probe) return; // inside an open's `between`: the open itself is the probe
  // I5: right after the flood, the flooded agent can open, and can be opened, honestly.
  const other = w.agents[HONEST.find((h) => h !== to.name)!];
  const honest = (opener: HonestName, target: HonestName): OpenAction => ({
    t: 'open',
    opener,
    target,
    opts: 'default',
    bundle: 'genuine',
    route: { kind: 'honest', injectAtOpener: false, injectAtTarget: false },
    between: [],
    deliver: true,
  });
  const saved = s.last;
  await runOpen(w, s, honest(to.name, other.name as HonestName), `${during}; I5 probe: the flooded agent opens`, 'I5');
  await runOpen(w, s, honest(other.name as HonestName, to.name), `${during}; I5 probe: the flooded agent is opened`, 'I5');
  s.last = saved;
}

async function runAdvOpen(w: World, a: AdvOpenAction): Promise<void> {
  const adv = w.agents[a.adv];
  const t = w.agents[a.target];
  let ch: SecureChannel;
  try {
    ch = await adv.bridge.openSecureChannel(t.did, await t.bridge.publishPrekeyBundle());
  } catch {
    return;
  }
  const est = adv.bridge.getSession(t.did)!.establishment;
  const entry = { est, from: adv.did, to: t.did, accepted: false };
  w.pocket.push(entry);
  try {
    const bc = await t.bridge.acceptSecureChannel(adv.did, wireEst(est));
    entry.accepted = true;
    bc.receive(ch.send(utf8('hi from the adversary')).serialize());
  } catch {
    // a refusal is fine
  }
  w.oracle.add(ekKey(est.ephemeralPublicKey), adv.did, ch);
}

export async function runAdv(w: World, s: RunState, a: AdvAction, during: string, topLevel = false): Promise<void> {
  switch (a.t) {
    case 'forge':
      return runForge(w, s, a, during);
    case 'flood':
      return runFlood(w, s, a, during, topLevel);
    case 'advOpen':
      return runAdvOpen(w, a);
  }
}

async function runChat(w: World, a: ChatAction, during: string): Promise<void> {
  if (a.from === a.to || !w.live.has(pairKey(a.from, a.to))) return;
  const from = w.agents[a.from];
  const to = w.agents[a.to];
  const sa = from.bridge.getSession(to.did)!;
  const envs: { env: Uint8Array; text: string }[] = [];
  for (let i = 0; i < a.n; i++) {
    const text = `chat ${w.seq++}`;
    const env = sa.channel.send(utf8(text)).serialize();
    w.oracle.assertUnreadable(env, from.did, to.did, sa.establishment, during);
    envs.push({ env, text });
  }
  // The adversary delivers them reordered, with replays of some.
  const order = [...envs.keys()].sort((x, y) => (a.order[x] ?? 0) - (a.order[y] ?? 0) || x - y);
  const done = new Set<number>();
  for (const i of [...order, ...a.dups.map((d) => d % Math.max(1, envs.length))].slice(0, envs.length + a.dups.length)) {
    if (envs.length === 0) break;
    const sb = to.bridge.getSession(from.did);
    if (!sb) throw new InvariantViolation('I3', `${to.name}'s session for ${from.name} vanished during reordered delivery (${during})`);
    let got: string | undefined;
    try {
      got = fromUtf8(sb.channel.receive(envs[i].env));
    } catch (e) {
      if (!done.has(i))
        throw new InvariantViolation(
          'I3',
          `${to.name} cannot read ${from.name}'s message delivered out of order: ${describeError(e)} (${during})`,
        );
      continue;
    }
    if (done.has(i)) throw new InvariantViolation('I6', `${to.name} read a replayed envelope twice (${during})`);
    if (got !== envs[i].text) throw new InvariantViolation('I3', `wrong text (${during})`);
    done.add(i);
  }
  // Redirected envelopes: another honest agent's session for `from` must not read them (and goes on working: I3 after the action).
  const m = a.misdeliver;
  if (m && m !== a.from && m !== a.to) {
    const sm = w.agents[m].bridge.getSession(from.did);
    for (const { env } of sm ? envs : []) {
      let read = false;
      try {
        sm!.channel.receive(env);
        read = true;
      } catch {
        // refused: good
      }
      if (read) throw new InvariantViolation('I1', `${m} read a message ${a.from} sent on its session recorded under ${a.to} (${during})`);
    }
  }
}

/** A fresh world with the three honest pairs live, then `actions`, with the invariants after each. */
export async function runScenario(actions: readonly Action[]): Promise<World> {
  const w = makeWorld();
  const s: RunState = { last: { opener: w.agents.alice, target: w.agents.bob, victim: w.agents.carol }, replayedInBetween: false };
  const honest = (opener: HonestName, target: HonestName): OpenAction => ({
    t: 'open',
    opener,
    target,
    opts: 'default',
    bundle: 'genuine',
    route: { kind: 'honest', injectAtOpener: false, injectAtTarget: false },
    between: [],
    deliver: true,
  });
  await runOpen(w, s, honest('alice', 'bob'), 'setup');
  await runOpen(w, s, honest('bob', 'carol'), 'setup');
  await runOpen(w, s, honest('carol', 'alice'), 'setup');
  s.last = { opener: w.agents.alice, target: w.agents.bob, victim: w.agents.carol };
  for (const [i, a] of actions.entries()) {
    const during = `action #${i} ${a.t}`;
    s.replayedInBetween = false;
    switch (a.t) {
      case 'open':
        await runOpen(w, s, a, during);
        break;
      case 'chat':
        await runChat(w, a, during);
        break;
      case 'advance':
        w.clock.t += a.ms;
        break;
      case 'rotate':
        w.agents[a.who].manager.generateSignedPreKey();
        break;
      default:
        await runAdv(w, s, a, during, true);
    }
    assertI3LiveSessions(w, `after ${during}`);
    assertI2Defaults(w, `after ${during}`);
    assertI1AllSessions(w, `after ${during}`);
  }
  return w;
}
