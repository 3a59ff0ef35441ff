/**
 * Property tests of the Double Ratchet and SecureChannel: random schedules of two parties sending
 * both ways, with reordering, loss, duplication, tampering and save/restore, checked against a model
 * of the protocol (PROTOCOL.md, Signal's spec) that predicts the exact outcome of every receive.
 *
 * Set FC_SEED to replay a run (fast-check prints the seed and the shrunk schedule on failure);
 * PROPERTY_STATS=1 prints how often each event occurred.
 */
import fc from 'fast-check';
import { ready } from '../../lib/sodium';
import { concatBytes, fromHex, readU32BE, toHex, utf8, writeU32BE, x25519KeyPair } from '../../lib/crypto';
import { E2EError, ErrorCode } from '../../lib/errors';
import { MAX_COUNTER, MAX_RETIRED_REMOTE_KEYS } from '../../lib/limits';
import { DoubleRatchet, EncryptedMessage, MIN_ENVELOPE_BYTES, RatchetLimits, RatchetState, skippedKeyId } from '../../lib/ratchet';
import { SecureChannel } from '../../lib/channel';
import { channelPair, ratchetPair } from '../helpers/sessions';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

const FC_PARAMS: { seed?: number } = process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {};
const AD = utf8('did:mesh:alice|did:mesh:bob');
const WRONG_AD = utf8('did:mesh:mallory|did:mesh:bob');
/** A point of order 8 (libsodium's blocklist, Wycheproof x25519 "LowOrderPublic"): X25519 with it is all zero. */
const ORDER_8_POINT = fromHex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800');

/**
 * Inside a schedule, checks are plain comparisons that throw: Jest's `expect` builds an error with a
 * stack on every call, which would cost more than the crypto. fast-check reports the thrown message
 * with the shrunk schedule.
 */
function same(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

type Side = 'alice' | 'bob';
const SIDES: readonly Side[] = ['alice', 'bob'];
const other = (s: Side): Side => (s === 'alice' ? 'bob' : 'alice');

/** How a message reaches the receiver: raw envelope bytes, a parsed envelope, or the JSON transport form. */
type Form = 'bytes' | 'envelope' | 'json';

// ---------------------------------------------------------------------------------------------
// The two kinds of endpoint under test, behind one interface.

interface Endpoint {
  /** Encrypts; returns a copy of the envelope. */
  send(plaintext: Uint8Array): Uint8Array;
  /** Decrypts `envelope`, delivered in `form` (and with the wrong associated data when asked). */
  receive(envelope: Uint8Array, form: Form, wrongAd: boolean): Uint8Array;
  /** Everything a failed receive must leave unchanged. */
  fingerprint(): string;
  /** The ratchet state (a parsed copy for a channel). */
  inspect(): RatchetState;
  /** Saves and restores; the restored object replaces the live one. */
  restore(via: 'bytes' | 'dict'): void;
  /** Sent plus received, for a channel; `null` for a bare ratchet. */
  readonly messageCount: number | null;
}

function toForm(envelope: Uint8Array, form: Form): EncryptedMessage | Uint8Array {
  if (form === 'bytes') return envelope;
  const m = EncryptedMessage.deserialize(envelope);
  return form === 'envelope' ? m : EncryptedMessage.fromJSON(JSON.stringify(m.toJSON()));
}

class ChannelEndpoint implements Endpoint {
  constructor(
    private channel: SecureChannel,
    private readonly now: () => number,
  ) {}

  send(plaintext: Uint8Array): Uint8Array {
    return Uint8Array.from(this.channel.send(plaintext).serialize());
  }

  receive(envelope: Uint8Array, form: Form, wrongAd: boolean): Uint8Array {
    if (wrongAd) throw new Error('a channel has no caller-supplied AD per message');
    return this.channel.receive(toForm(envelope, form));
  }

  fingerprint(): string {
    return toHex(this.channel.toBytes());
  }

  inspect(): RatchetState {
    const bytes = this.channel.toBytes();
    return RatchetState.fromBytes(bytes.subarray(12 + readU32BE(bytes, 8)));
  }

  restore(): void {
    const saved = this.channel.toBytes();
    const restored = SecureChannel.fromBytes(saved, { now: this.now });
    same(toHex(restored.toBytes()), toHex(saved), 'channel state after a restore');
    this.channel.close();
    this.channel = restored;
  }

  get messageCount(): number {
    return this.channel.messageCount;
  }
}

class RatchetEndpoint implements Endpoint {
  constructor(
    private ratchet: DoubleRatchet,
    private readonly now: () => number,
  ) {}

  send(plaintext: Uint8Array): Uint8Array {
    return Uint8Array.from(this.ratchet.encrypt(plaintext, AD).serialize());
  }

  receive(envelope: Uint8Array, form: Form, wrongAd: boolean): Uint8Array {
    return this.ratchet.decrypt(toForm(envelope, form), wrongAd ? WRONG_AD : AD);
  }

  fingerprint(): string {
    return JSON.stringify(this.ratchet.state.toDict({ includeLimits: true })) + toHex(this.ratchet.state.toBytes());
  }

  inspect(): RatchetState {
    return this.ratchet.state;
  }

  restore(via: 'bytes' | 'dict'): void {
    const st = this.ratchet.state;
    let restored: RatchetState;
    if (via === 'bytes') {
      const saved = st.toBytes();
      restored = RatchetState.fromBytes(saved);
      same(toHex(restored.toBytes()), toHex(saved), 'ratchet state after a restore');
    } else {
      // The reference's form, through JSON text as a store would keep it.
      const saved = st.toDict({ includeLimits: true });
      restored = RatchetState.fromDict(JSON.parse(JSON.stringify(saved)));
      same(restored.toDict({ includeLimits: true }), saved, 'ratchet dict after a restore');
    }
    this.ratchet.wipe();
    this.ratchet = new DoubleRatchet(restored, { now: this.now });
  }

  readonly messageCount = null;
}

// ---------------------------------------------------------------------------------------------
// The model: what each side knows, and the outcome every receive must have.

/** One party's view: its sending chain and what it has received. Chains are numbered per sender. */
class PartyModel {
  /** Our sending chain (-1: cannot send yet), its next N, and the PN we put in headers. */
  sendChain: number;
  sendN = 0;
  pn = 0;
  /** The peer's chain we receive on (-1: none yet, or, for the initiator, the peer's signed pre-key). */
  cur = -1;
  /** Whether `cur` names a remote ratchet key (the initiator starts with the signed pre-key). */
  hasRemote: boolean;
  hasRecvChain = false;
  recvN = 0;
  /** Skipped keys as `chain:N` with the time they were stored, oldest first. */
  skipped: Array<{ id: string; at: number }> = [];
  /** The peer's previous chains, oldest first (-1 is the initiator's signed pre-key). */
  retired: number[] = [];
  sent = 0;
  received = 0;

  constructor(initiator: boolean) {
    this.sendChain = initiator ? 0 : -1;
    this.hasRemote = initiator;
  }

  get canSend(): boolean {
    return this.sendChain >= 0;
  }
}

/**
 * A header as the model sees it: `chain` is null for a ratchet key no chain uses (a forged one),
 * `lowOrder` marks a forged key whose X25519 result is all zero.
 */
interface ModelHeader {
  chain: number | null;
  pn: number;
  n: number;
  lowOrder?: boolean;
}

type Path = 'skipped' | 'current' | 'newChain';
type Expected = { ok: true; path: Path } | { ok: false; code: ErrorCode };
const ok = (path: Path): Expected => ({ ok: true, path });
const fail = (code: ErrorCode): Expected => ({ ok: false, code });
const skipId = (chain: number, n: number): string => `${chain}:${n}`;

/**
 * The outcome of receiving a message with header `h`; only an `authentic` one can decrypt. The order
 * of the checks is the documented one: counter range, skipped keys, current chain (replay and
 * window before authentication), remembered old chains and chains with skipped keys, then a DH ratchet step.
 */
function expectReceive(rx: PartyModel, h: ModelHeader, authentic: boolean, limits: RatchetLimits, now: number): Expected {
  if (h.n >= MAX_COUNTER) return fail('MALFORMED_MESSAGE');
  // An expired skipped key still sits in the cache (until the next success prunes it) but is not used.
  const key = h.chain === null ? undefined : rx.skipped.find((k) => k.id === skipId(h.chain as number, h.n));
  if (key && !expired(key.at, limits, now)) return authentic ? ok('skipped') : fail('DECRYPT_FAILED');
  if (h.chain !== null && rx.hasRemote && h.chain === rx.cur) {
    if (!rx.hasRecvChain) return fail('DECRYPT_FAILED');
    if (h.n < rx.recvN) return fail('DUPLICATE_MESSAGE');
    if (h.n - rx.recvN > limits.maxSkip) return fail('TOO_MANY_SKIPPED');
    return authentic ? ok('current') : fail('DECRYPT_FAILED');
  }
  if (h.chain !== null && rx.retired.includes(h.chain)) return fail('DUPLICATE_MESSAGE');
  // A chain that still has skipped keys is an old chain too, even when no longer remembered (e.g. after a dict restore).
  if (h.chain !== null && rx.skipped.some((k) => k.id.startsWith(`${h.chain}:`))) return fail('DUPLICATE_MESSAGE');
  const oldChainGap = rx.hasRecvChain && h.pn > rx.recvN ? h.pn - rx.recvN : 0;
  if (oldChainGap > limits.maxSkip || h.n > limits.maxSkip) return fail('TOO_MANY_SKIPPED');
  if (h.lowOrder) return fail('MALFORMED_MESSAGE');
  if (authentic && h.chain !== null && h.chain > rx.cur + 1)
    throw new Error(`model: chain ${h.chain} cannot arrive before chain ${rx.cur + 1}`);
  // An old chain no longer remembered is tried as a new one and does not authenticate.
  return authentic && h.chain === rx.cur + 1 ? ok('newChain') : fail('DECRYPT_FAILED');
}

function expired(at: number, limits: RatchetLimits, now: number): boolean {
  return limits.skippedKeyMaxAgeMs !== null && at < now - limits.skippedKeyMaxAgeMs;
}

/** Applies a successful receive to the receiver's model; returns how many skipped keys expired. */
function applyReceive(rx: PartyModel, h: ModelHeader & { chain: number }, path: Path, limits: RatchetLimits, now: number): number {
  const skip = (chain: number, n: number): void => {
    rx.skipped.push({ id: skipId(chain, n), at: now });
  };
  if (path === 'skipped') {
    rx.skipped.splice(
      rx.skipped.findIndex((k) => k.id === skipId(h.chain, h.n)),
      1,
    );
  } else if (path === 'current') {
    for (let k = rx.recvN; k < h.n; k++) skip(rx.cur, k);
    rx.recvN = h.n + 1;
  } else {
    if (rx.hasRecvChain) for (let k = rx.recvN; k < h.pn; k++) skip(rx.cur, k);
    for (let k = 0; k < h.n; k++) skip(h.chain, k);
    if (rx.hasRemote) {
      rx.retired.push(rx.cur);
      if (rx.retired.length > MAX_RETIRED_REMOTE_KEYS) rx.retired.shift();
    }
    rx.cur = h.chain;
    rx.hasRemote = true;
    rx.hasRecvChain = true;
    rx.recvN = h.n + 1;
    // The DH ratchet step also starts our next sending chain.
    rx.pn = rx.sendN;
    rx.sendN = 0;
    rx.sendChain++;
  }
  while (rx.skipped.length > limits.maxSkippedKeys) rx.skipped.shift();
  const kept = rx.skipped.filter((k) => !expired(k.at, limits, now));
  const pruned = rx.skipped.length - kept.length;
  rx.skipped = kept;
  rx.received++;
  return pruned;
}

// ---------------------------------------------------------------------------------------------
// Schedules.

type Tamper =
  | { type: 'flip'; pos: number; bit: number }
  | { type: 'truncate'; keep: number }
  | { type: 'extend'; extra: Uint8Array }
  | { type: 'set'; field: 'PN' | 'N'; choice: number }
  | { type: 'forge'; key: 'fresh' | 'zero' | 'low order'; pn: number; n: number }
  | { type: 'wrongAd' };

type Action =
  | { kind: 'send'; side: Side; body: Uint8Array }
  | { kind: 'deliver'; pick: number; form: Form }
  | { kind: 'drop'; pick: number }
  | { kind: 'duplicate'; pick: number; form: Form }
  | { kind: 'tamper'; pick: number; how: Tamper; form: Form }
  | { kind: 'restore'; side: Side; via: 'bytes' | 'dict' }
  | { kind: 'pingpong'; rounds: number }
  | { kind: 'tick'; ms: number };

const sideArb = fc.constantFrom<Side>('alice', 'bob');
const formArb = fc.constantFrom<Form>('bytes', 'envelope', 'json');
const pickArb = fc.nat({ max: 1000 });

function tamperArb(withAd: boolean): fc.Arbitrary<Tamper> {
  const arbs: fc.Arbitrary<Tamper>[] = [
    fc.record({ type: fc.constant('flip' as const), pos: fc.nat({ max: 200 }), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ type: fc.constant('flip' as const), pos: fc.integer({ min: 0, max: 43 }), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ type: fc.constant('truncate' as const), keep: fc.nat({ max: 200 }) }),
    fc.record({ type: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
    fc.record({ type: fc.constant('set' as const), field: fc.constantFrom<'PN' | 'N'>('PN', 'N'), choice: fc.nat({ max: 100 }) }),
    fc.record({
      type: fc.constant('forge' as const),
      key: fc.constantFrom<'fresh' | 'zero' | 'low order'>('fresh', 'fresh', 'zero', 'low order'),
      pn: fc.nat({ max: 100 }),
      n: fc.nat({ max: 100 }),
    }),
  ];
  if (withAd) arbs.push(fc.constant({ type: 'wrongAd' as const }));
  return fc.oneof(...arbs);
}

interface Scenario {
  /** Bare ratchets (wrong-AD tampering, dict restores) or channels. */
  kind: 'ratchet' | 'channel';
  limits: RatchetLimits;
  /** Model-independent checks: every first delivery decrypts, every duplicate is DUPLICATE_MESSAGE. */
  strict: boolean;
  restoreVia: ReadonlyArray<'bytes' | 'dict'>;
  /** A test clock that `tick` actions advance, so skipped keys expire (restores then only via bytes). */
  clock: boolean;
}

function actionArb(s: Scenario): fc.Arbitrary<Action> {
  const weighted: Array<{ weight: number; arbitrary: fc.Arbitrary<Action> }> = [
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('send' as const), side: sideArb, body: fc.uint8Array({ maxLength: 48 }) }) },
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: pickArb, form: formArb }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), pick: pickArb }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), pick: pickArb, form: formArb }) },
    {
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant('tamper' as const), pick: pickArb, how: tamperArb(s.kind === 'ratchet'), form: formArb }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('restore' as const), side: sideArb, via: fc.constantFrom(...s.restoreVia) }) },
  ];
  if (!s.strict)
    weighted.push({ weight: 1, arbitrary: fc.record({ kind: fc.constant('pingpong' as const), rounds: fc.integer({ min: 1, max: 12 }) }) });
  if (s.clock)
    weighted.push({
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.constantFrom(0, 1, 250, 500, 999, 1000, 1001, 1500) }),
    });
  return fc.oneof(...weighted);
}

/** One message as sent, with what the model knows about it. */
interface Sent {
  id: number;
  from: Side;
  chain: number;
  n: number;
  pn: number;
  envelope: Uint8Array;
  plaintext: Uint8Array;
  /** inflight: may still be delivered; dropped: lost on the way; lost: the receiver can no longer decrypt it. */
  status: 'inflight' | 'delivered' | 'dropped' | 'lost';
  decrypts: number;
}

/** Totals of one run, for the exact-count assertions. */
interface Tally {
  sent: number;
  decrypted: number;
  dropped: number;
  failures: number;
}

/** How often each kind of event happened (`what → outcome`), so a test can show it covered them all. */
type Coverage = Map<string, number>;
const note = (cov: Coverage, label: string): void => {
  cov.set(label, (cov.get(label) ?? 0) + 1);
};

/** Runs a schedule against fresh endpoints and the model; every receive is checked as it happens. */
function runSchedule(s: Scenario, actions: Action[], cov: Coverage): Tally {
  // Both sides read one clock; only `tick` moves it.
  let time = Date.now();
  const now = (): number => time;
  const ends: Record<Side, Endpoint> = (() => {
    if (s.kind === 'channel') {
      const p = channelPair({ associatedData: AD, options: { ...s.limits, now } });
      return { alice: new ChannelEndpoint(p.alice, now), bob: new ChannelEndpoint(p.bob, now) };
    }
    const p = ratchetPair({ ...s.limits, now });
    return { alice: new RatchetEndpoint(p.alice, now), bob: new RatchetEndpoint(p.bob, now) };
  })();
  const model: Record<Side, PartyModel> = { alice: new PartyModel(true), bob: new PartyModel(false) };
  /** Each side's ratchet public key (hex) per chain, learnt from the headers. */
  const chainKeys: Record<Side, string[]> = { alice: [], bob: [] };
  const sent: Sent[] = [];
  const tally: Tally = { sent: 0, decrypted: 0, dropped: 0, failures: 0 };
  const inflight = (): Sent[] => sent.filter((m) => m.status === 'inflight');
  /** The initiator's first remote key, Bob's signed pre-key: the first key she retires. */
  const spk = toHex(ends.alice.inspect().dhRemote as Uint8Array);

  /** Checks the live state against the model (skipped keys in order, counters, remembered chains). */
  const checkState = (side: Side): void => {
    const st = ends[side].inspect();
    const mine = model[side];
    const peerKeys = chainKeys[other(side)];
    const skipped = mine.skipped.map(({ id, at }) => {
      const [c, n] = id.split(':').map(Number);
      return `${peerKeys[c]}:${n}@${s.clock ? at : '-'}`;
    });
    const actual = [...st.skippedKeys.values()].map((k) => `${skippedKeyId(k.dhPublicKey, k.messageNumber)}@${s.clock ? k.storedAt : '-'}`);
    same(actual, skipped, `${side}'s skipped keys`);
    same(
      [st.recvMessageNumber, st.sendMessageNumber, st.previousSendChainLength],
      [mine.recvN, mine.sendN, mine.pn],
      `${side}'s Nr, Ns, PN`,
    );
    same(
      st.retiredRemoteKeys,
      mine.retired.map((c) => (c === -1 ? spk : peerKeys[c])),
      `${side}'s remembered old ratchet keys`,
    );
    if (mine.cur >= 0) same(toHex(st.dhRemote as Uint8Array), peerKeys[mine.cur], `${side}'s DHr`);
    if (ends[side].messageCount !== null) same(ends[side].messageCount, mine.sent + mine.received, `${side}'s messageCount`);
  };

  const send = (side: Side, body: Uint8Array): Sent | null => {
    const tx = model[side];
    if (!tx.canSend) {
      // A responder cannot send before its first message arrived; nothing changes.
      const before = ends[side].fingerprint();
      let code: unknown = null;
      try {
        ends[side].send(body);
      } catch (e) {
        code = e instanceof E2EError ? e.code : e;
      }
      same(code, 'INVALID_STATE', `${side} sending before it can`);
      same(ends[side].fingerprint(), before, `${side}'s state after a refused send`);
      note(cov, 'send → INVALID_STATE');
      return null;
    }
    const plaintext = concatBytes(utf8(`#${sent.length}:`), body);
    const envelope = ends[side].send(plaintext);
    const m: Sent = {
      id: sent.length,
      from: side,
      chain: tx.sendChain,
      n: tx.sendN,
      pn: tx.pn,
      envelope,
      plaintext,
      status: 'inflight',
      decrypts: 0,
    };
    tx.sendN++;
    tx.sent++;
    // The header says what the model says, and each chain has its own fresh ratchet key.
    same([readU32BE(envelope, 0), readU32BE(envelope, 36), readU32BE(envelope, 40)], [40, m.pn, m.n], 'length prefix, PN, N');
    const dh = toHex(envelope.subarray(4, 36));
    const keys = chainKeys[side];
    if (keys[m.chain] === undefined) {
      same(keys.includes(dh), false, 'a new chain reuses an old ratchet key');
      keys[m.chain] = dh;
    } else {
      same(dh, keys[m.chain], 'ratchet key within a chain');
    }
    sent.push(m);
    tally.sent++;
    return m;
  };

  /**
   * Delivers `envelope` (message `m` itself, or a tampered copy described by `header`) and checks the
   * outcome against the model; on failure the receiver's state must be exactly as before.
   */
  const receive = (
    m: Sent,
    envelope: Uint8Array,
    form: Form,
    wrongAd: boolean,
    header: ModelHeader | 'malformed',
    why: string,
  ): Expected => {
    const side = other(m.from);
    const rx = model[side];
    const authentic = envelope === m.envelope && !wrongAd;
    const expected = header === 'malformed' ? fail('MALFORMED_MESSAGE') : expectReceive(rx, header, authentic, s.limits, time);
    const before = ends[side].fingerprint();
    let plaintext: Uint8Array | null = null;
    let error: unknown = null;
    try {
      plaintext = ends[side].receive(envelope, form, wrongAd);
    } catch (e) {
      error = e;
    }
    if (expected.ok) {
      if (error !== null) throw error;
      same(toHex(plaintext as Uint8Array), toHex(m.plaintext), `plaintext of message ${m.id}`);
      if (applyReceive(rx, { ...(header as ModelHeader), chain: m.chain }, expected.path, s.limits, time) > 0)
        note(cov, 'skipped keys expired');
      m.decrypts++;
      same(m.decrypts, 1, `decryptions of message ${m.id}`);
      m.status = 'delivered';
      tally.decrypted++;
    } else {
      if (error === null) throw new Error(`${why} of message ${m.id}: decrypted, expected ${expected.code}`);
      if (!(error instanceof E2EError)) throw error;
      same(error.code, expected.code, `${why} of message ${m.id}`);
      same(ends[side].fingerprint(), before, `${side}'s state after a failed receive`);
      tally.failures++;
    }
    checkState(side);
    note(cov, `${why} → ${expected.ok ? expected.path : expected.code}`);
    return expected;
  };

  const headerOf = (m: Sent): ModelHeader => ({ chain: m.chain, pn: m.pn, n: m.n });

  /** Counter values at the edges that matter, around `was`: replay boundary, skip window, range. */
  const edges = (was: number, rx: PartyModel): number[] => {
    const max = s.limits.maxSkip;
    const recv = rx.recvN;
    return [0, was, was - 1, was + 1, recv - 1, recv + max, recv + max + 1, max, max + 1, 2 ** 31, 0xfffffffe, 0xffffffff].filter(
      (v) => v >= 0,
    );
  };

  /** Delivers a genuine message; if the model says it can never decrypt any more, it is lost. */
  const deliver = (m: Sent, form: Form): void => {
    const wasInflight = m.status === 'inflight';
    const key = model[other(m.from)].skipped.find((k) => k.id === skipId(m.chain, m.n));
    if (key && expired(key.at, s.limits, time)) note(cov, 'deliver with an expired key');
    const r = receive(m, m.envelope, form, false, headerOf(m), wasInflight ? 'deliver' : 'duplicate');
    if (s.strict && wasInflight) same(r.ok, true, `first delivery of message ${m.id}`);
    if (!r.ok && m.status === 'inflight' && r.code !== 'TOO_MANY_SKIPPED') m.status = 'lost';
  };

  const tamper = (m: Sent, how: Tamper, form: Form): void => {
    const env = m.envelope;
    let t: Uint8Array;
    if (how.type === 'wrongAd') {
      receive(m, env, form, true, headerOf(m), 'wrong AD');
      return;
    }
    if (how.type === 'flip') {
      t = Uint8Array.from(env);
      t[how.pos % env.length] ^= 1 << how.bit;
    } else if (how.type === 'set') {
      const was = how.field === 'N' ? m.n : m.pn;
      const values = edges(was, model[other(m.from)]).filter((v) => v !== was);
      t = Uint8Array.from(env);
      writeU32BE(t, how.field === 'N' ? 40 : 36, values[how.choice % values.length]);
    } else if (how.type === 'forge') {
      // A header with a ratchet key of no chain: a new DH ratchet step (or a low-order key) to refuse.
      t = Uint8Array.from(env);
      t.set(how.key === 'fresh' ? x25519KeyPair().publicKey : how.key === 'zero' ? new Uint8Array(32) : ORDER_8_POINT, 4);
      const pns = edges(m.pn, model[other(m.from)]);
      const ns = edges(m.n, model[other(m.from)]);
      writeU32BE(t, 36, pns[how.pn % pns.length]);
      writeU32BE(t, 40, ns[how.n % ns.length]);
    } else if (how.type === 'truncate') {
      t = env.slice(0, how.keep % env.length);
    } else {
      t = concatBytes(env, how.extra);
    }
    const header: ModelHeader | 'malformed' =
      t.length < MIN_ENVELOPE_BYTES || readU32BE(t, 0) !== 40
        ? 'malformed'
        : {
            chain: toHex(t.subarray(4, 36)) === toHex(env.subarray(4, 36)) ? m.chain : null,
            pn: readU32BE(t, 36),
            n: readU32BE(t, 40),
            lowOrder: how.type === 'forge' && how.key !== 'fresh',
          };
    const pos = how.type === 'flip' ? how.pos % env.length : -1;
    const inHeader = how.type === 'set' || how.type === 'forge' || (pos >= 4 && pos < 44);
    const region =
      how.type === 'set'
        ? `set ${how.field}`
        : how.type === 'forge'
          ? `forge ${how.key} key`
          : pos < 0
            ? how.type
            : pos < 4
              ? 'flip prefix'
              : pos < 36
                ? 'flip ratchet key'
                : pos < 40
                  ? 'flip PN'
                  : pos < 44
                    ? 'flip N'
                    : 'flip body';
    const r = receive(m, t, form, false, header, region);
    // Outside the header only authentication (or parsing) can fail.
    if (s.strict && !inHeader && m.status === 'inflight') {
      same(['DECRYPT_FAILED', 'MALFORMED_MESSAGE'].includes((r as { code: ErrorCode }).code), true, `${region} outside the header`);
    }
  };

  for (const a of actions) {
    switch (a.kind) {
      case 'send':
        send(a.side, a.body);
        break;
      case 'deliver': {
        const list = inflight();
        if (list.length > 0) deliver(list[a.pick % list.length], a.form);
        break;
      }
      case 'drop': {
        const list = inflight();
        if (list.length > 0) {
          list[a.pick % list.length].status = 'dropped';
          tally.dropped++;
        }
        break;
      }
      case 'duplicate': {
        const list = sent.filter((m) => m.status === 'delivered' || m.status === 'lost');
        if (list.length === 0) break;
        const m = list[a.pick % list.length];
        const r = receive(m, m.envelope, a.form, false, headerOf(m), 'duplicate');
        if (s.strict) same(r, fail('DUPLICATE_MESSAGE'), `replay of message ${m.id}`);
        break;
      }
      case 'tamper': {
        const list = s.strict ? inflight() : sent;
        if (list.length > 0) tamper(list[a.pick % list.length], a.how, a.form);
        break;
      }
      case 'restore':
        ends[a.side].restore(a.via);
        // The reference's dict form does not carry the remembered old chains.
        if (a.via === 'dict') model[a.side].retired = [];
        checkState(a.side);
        note(cov, `restore via ${a.via}`);
        break;
      case 'tick':
        time += a.ms;
        break;
      case 'pingpong':
        for (let i = 0; i < a.rounds; i++) {
          for (const side of SIDES) {
            const m = send(side, new Uint8Array(0));
            if (m) deliver(m, 'bytes');
          }
        }
        break;
    }
  }

  // Drain: deliver what is still in flight, in sending order, until nothing more can decrypt.
  for (let progress = true; progress;) {
    progress = false;
    for (const m of inflight()) {
      const r = expectReceive(model[other(m.from)], headerOf(m), true, s.limits, time);
      if (r.ok || r.code !== 'TOO_MANY_SKIPPED') {
        deliver(m, 'bytes');
        progress = true;
      }
    }
  }
  // What is left is beyond the skip window for good (a gap that only lost messages could fill).
  for (const m of inflight()) deliver(m, 'bytes');

  // The conversation goes on: a fresh message each way.
  for (const side of SIDES) {
    const m = send(side, utf8('still talking'));
    if (m) deliver(m, 'envelope');
    if (s.strict) same(m?.status, 'delivered', `a fresh message from ${side} at the end`);
  }

  // Exactly once: every message decrypted once, except those the model says were lost or dropped.
  for (const m of sent) same(m.decrypts, m.status === 'delivered' ? 1 : 0, `decryptions of message ${m.id} (${m.status})`);
  if (s.strict) {
    same(
      sent.filter((m) => m.status === 'lost' || m.status === 'inflight').map((m) => m.id),
      [],
      'messages never decrypted',
    );
    same(tally.decrypted, tally.sent - tally.dropped, 'messages decrypted');
  }
  for (const side of SIDES) checkState(side);
  return tally;
}

const DEFAULTS: RatchetLimits = { maxSkip: 100, maxSkippedKeys: 2000, skippedKeyMaxAgeMs: 7 * 24 * 3600 * 1000 };

/**
 * What every strict run set must have exercised at least once. Each of these happens 15 times or
 * more in 1,000 schedules, so a miss (a sign that the generators no longer reach it) is not luck.
 */
const STRICT_EVENTS = [
  'deliver → current',
  'deliver → skipped',
  'deliver → newChain',
  'duplicate → DUPLICATE_MESSAGE',
  'flip prefix → MALFORMED_MESSAGE',
  'flip ratchet key → DECRYPT_FAILED',
  'flip PN → DECRYPT_FAILED',
  'flip body → DECRYPT_FAILED',
  'truncate → MALFORMED_MESSAGE',
  'extend → DECRYPT_FAILED',
  'set N → DECRYPT_FAILED',
  'set N → TOO_MANY_SKIPPED',
  'set PN → DECRYPT_FAILED',
  'forge fresh key → DECRYPT_FAILED',
  'forge fresh key → TOO_MANY_SKIPPED',
  'forge zero key → MALFORMED_MESSAGE',
  'forge low order key → MALFORMED_MESSAGE',
  'send → INVALID_STATE',
  'restore via bytes',
];

/** Runs `numRuns` schedules of scenario(s) from `arb`; returns what they covered and their totals. */
function check(arb: fc.Arbitrary<[Scenario, Action[]]>, numRuns: number): { cov: Coverage; runs: number; total: Tally } {
  const cov: Coverage = new Map();
  const total: Tally = { sent: 0, decrypted: 0, dropped: 0, failures: 0 };
  let runs = 0;
  fc.assert(
    fc.property(arb, ([s, actions]) => {
      const t = runSchedule(s, actions, cov);
      total.sent += t.sent;
      total.decrypted += t.decrypted;
      total.dropped += t.dropped;
      total.failures += t.failures;
      runs++;
    }),
    { ...FC_PARAMS, numRuns },
  );
  // PROPERTY_STATS=1 prints what the runs covered (counts of `what → outcome`).
  if (process.env.PROPERTY_STATS)
    console.log(
      [...cov.entries()]
        .sort()
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n'),
      total,
    );
  return { cov, runs, total };
}

const schedules = (s: Scenario): fc.Arbitrary<[Scenario, Action[]]> =>
  fc.tuple(fc.constant(s), fc.array(actionArb(s), { maxLength: 30, size: 'max' }));

describe('random schedules: every authentic message decrypts exactly once, every failure changes nothing', () => {
  test('SecureChannel pairs, default limits, save/restore of either side (1,000 schedules)', () => {
    const { cov, runs, total } = check(
      schedules({ kind: 'channel', limits: DEFAULTS, strict: true, restoreVia: ['bytes'], clock: false }),
      1000,
    );
    expect(runs).toBe(1000);
    expect(STRICT_EVENTS.filter((e) => !cov.has(e))).toEqual([]);
    expect(total.decrypted).toBe(total.sent - total.dropped);
  });

  test('bare DoubleRatchets, default limits, wrong AD and three delivery forms (1,000 schedules)', () => {
    const { cov, runs, total } = check(
      schedules({ kind: 'ratchet', limits: DEFAULTS, strict: true, restoreVia: ['bytes'], clock: false }),
      1000,
    );
    expect(runs).toBe(1000);
    expect([...STRICT_EVENTS, 'wrong AD → DECRYPT_FAILED'].filter((e) => !cov.has(e))).toEqual([]);
    expect(total.decrypted).toBe(total.sent - total.dropped);
  });

  test('tight limits (maxSkip 0..4, maxSkippedKeys 0..6), a clock that expires skipped keys, dict restores, ping-pongs: every outcome as the model predicts (800 schedules)', () => {
    const arb = fc
      .record({
        maxSkip: fc.integer({ min: 0, max: 4 }),
        maxSkippedKeys: fc.integer({ min: 0, max: 6 }),
        kind: fc.constantFrom<'ratchet' | 'channel'>('ratchet', 'ratchet', 'channel'),
        clock: fc.boolean(),
      })
      .chain(({ maxSkip, maxSkippedKeys, kind, clock }) =>
        schedules({
          kind,
          // With the clock, keep more keys so that some live long enough to expire.
          limits: {
            maxSkip,
            maxSkippedKeys: clock ? 3 * maxSkippedKeys + 4 : maxSkippedKeys,
            skippedKeyMaxAgeMs: clock ? 1000 : DEFAULTS.skippedKeyMaxAgeMs,
          },
          strict: false,
          // The reference's dict form keeps no times: a restored key is stamped with the restore time.
          restoreVia: kind === 'ratchet' && !clock ? ['bytes', 'dict'] : ['bytes'],
          clock,
        }),
      );
    const { cov, runs } = check(arb, 800);
    expect(runs).toBe(800);
    expect(
      [
        'deliver → current',
        'deliver → skipped',
        'deliver → newChain',
        // beyond the window; key evicted; a replay from an old chain no longer remembered (after a dict restore)
        'deliver → TOO_MANY_SKIPPED',
        'deliver → DUPLICATE_MESSAGE',
        'duplicate → DECRYPT_FAILED',
        // the documented caveat: a forged header naming a consumed message is a duplicate before authentication
        'set N → DUPLICATE_MESSAGE',
        'set PN → DUPLICATE_MESSAGE',
        'wrong AD → DUPLICATE_MESSAGE',
        'restore via dict',
        'wrong AD → DECRYPT_FAILED',
        'skipped keys expired',
        'deliver with an expired key',
      ].filter((e) => !cov.has(e)),
    ).toEqual([]);
  });
});

describe('the edges of the model, as examples', () => {
  /** Alice's chain 0 message, then `turns` round trips: Bob is on Alice's chain `turns`. */
  function afterTurns(turns: number): { replay: () => unknown; bob: DoubleRatchet } {
    const { alice, bob } = ratchetPair();
    const first = alice.encrypt(utf8('chain 0'), AD);
    bob.decrypt(first, AD);
    for (let i = 0; i < turns; i++) {
      alice.decrypt(bob.encrypt(utf8('b'), AD), AD);
      bob.decrypt(alice.encrypt(utf8('a'), AD), AD);
    }
    return { replay: () => bob.decrypt(first, AD), bob };
  }

  test(`a replay from ${MAX_RETIRED_REMOTE_KEYS} chains back is DUPLICATE_MESSAGE; from one more, DECRYPT_FAILED (still refused, state unchanged)`, () => {
    const near = afterTurns(MAX_RETIRED_REMOTE_KEYS);
    expect(near.bob.state.retiredRemoteKeys).toHaveLength(MAX_RETIRED_REMOTE_KEYS);
    expectE2EError(near.replay, 'DUPLICATE_MESSAGE');
    const far = afterTurns(MAX_RETIRED_REMOTE_KEYS + 1);
    const before = toHex(far.bob.state.toBytes());
    expectE2EError(far.replay, 'DECRYPT_FAILED');
    expect(toHex(far.bob.state.toBytes())).toBe(before);
  });
});
