/**
 * Adversarial decoding: tens of thousands of random, mutated and hostile envelopes and JSON messages
 * against a live session (both directions exchanged, skipped keys pending on an old and on the
 * current chain, a previous chain remembered). Every attempt must throw an `E2EError` with the exact
 * code the documented order of checks gives, leave the saved state byte-for-byte as it was, and
 * afterwards every genuine message still decrypts, once.
 *
 * Set FC_SEED to replay the random parts; PROPERTY_STATS=1 prints the attempts by category and code.
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import fc from 'fast-check';
import { ready } from '../../lib/sodium';
import {
  concatBytes,
  fromBase64,
  fromHex,
  fromUtf8,
  randomBytes,
  readU32BE,
  toBase64,
  toBase64Url,
  toHex,
  utf8,
  writeU32BE,
  x25519,
  x25519KeyPair,
} from '../../lib/crypto';
import { E2EError, ErrorCode } from '../../lib/errors';
import { MAX_COUNTER, MAX_PLAINTEXT_BYTES } from '../../lib/limits';
import { DoubleRatchet, EncryptedMessage, MIN_ENVELOPE_BYTES, RatchetState } from '../../lib/ratchet';
import { SecureChannel } from '../../lib/channel';
import { channelPair, ratchetPair } from '../helpers/sessions';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

const FC_PARAMS: { seed?: number } = process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {};
const AD = utf8('did:mesh:alice|did:mesh:bob');
/** What a receive may fail with on hostile input; anything else (or no error) is a bug. */
const ALLOWED: readonly ErrorCode[] = ['MALFORMED_MESSAGE', 'DECRYPT_FAILED', 'DUPLICATE_MESSAGE', 'TOO_MANY_SKIPPED'];

/** Wycheproof's X25519 public keys whose shared secret is all zero: the low-order points (and their non-canonical forms). */
const LOW_ORDER_KEYS: Uint8Array[] = (() => {
  const file = JSON.parse(readFileSync(join(__dirname, '..', 'vectors', 'wycheproof', 'x25519_test.json'), 'utf8')) as {
    testGroups: Array<{ tests: Array<{ public: string; shared: string }> }>;
  };
  const hex = new Set(
    file.testGroups
      .flatMap((g) => g.tests)
      .filter((t) => /^0{64}$/.test(t.shared))
      .map((t) => t.public),
  );
  return [...hex].sort().map(fromHex);
})();

/** True when X25519 with `key` is all zero (refused by the crypto layer). */
function isLowOrder(key: Uint8Array): boolean {
  try {
    // Any clamped scalar will do: it is a multiple of 8, so it sends exactly the low-order points to zero.
    x25519(new Uint8Array(32).fill(0x42), key);
    return false;
  } catch {
    return true;
  }
}

/**
 * The code a receiver in state `st` must give a non-authentic envelope: the lib's documented order
 * of checks (parse, counter range, skipped keys, current chain with its replay and window checks,
 * remembered old chains, window of a DH ratchet step, low-order key) and otherwise authentication.
 */
function expectedCode(st: RatchetState, env: Uint8Array): ErrorCode {
  if (env.length < MIN_ENVELOPE_BYTES || readU32BE(env, 0) !== 40) return 'MALFORMED_MESSAGE';
  const dh = env.subarray(4, 36);
  const pn = readU32BE(env, 36);
  const n = readU32BE(env, 40);
  if (n >= MAX_COUNTER) return 'MALFORMED_MESSAGE';
  if (st.skippedKeys.get(toHex(dh), n)) return 'DECRYPT_FAILED';
  const { maxSkip } = st.limits;
  if (st.dhRemote !== null && toHex(dh) === toHex(st.dhRemote)) {
    if (st.chainKeyRecv === null) return 'DECRYPT_FAILED';
    if (n < st.recvMessageNumber) return 'DUPLICATE_MESSAGE';
    return n - st.recvMessageNumber > maxSkip ? 'TOO_MANY_SKIPPED' : 'DECRYPT_FAILED';
  }
  if (st.retiredRemoteKeys.includes(toHex(dh))) return 'DUPLICATE_MESSAGE';
  const gap = st.chainKeyRecv !== null && pn > st.recvMessageNumber ? pn - st.recvMessageNumber : 0;
  if (gap > maxSkip || n > maxSkip) return 'TOO_MANY_SKIPPED';
  return isLowOrder(dh) ? 'MALFORMED_MESSAGE' : 'DECRYPT_FAILED';
}

function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/**
 * The envelope a JSON message (object or text) stands for, or `null` if the JSON form
 * (PROTOCOL.md: `{header: {dh, pn, n}, ciphertext}`, standard base64) does not admit it.
 */
function envelopeOfJson(json: unknown): Uint8Array | null {
  let o: unknown = json;
  if (typeof json === 'string') {
    try {
      o = JSON.parse(json);
    } catch {
      return null;
    }
  }
  if (typeof o !== 'object' || o === null) return null;
  const { header: h, ciphertext } = o as { header?: unknown; ciphertext?: unknown };
  if (typeof h !== 'object' || h === null) return null;
  const { dh, pn, n } = h as { dh?: unknown; pn?: unknown; n?: unknown };
  if (typeof dh !== 'string' || typeof ciphertext !== 'string' || !isU32(pn) || !isU32(n)) return null;
  let key: Uint8Array;
  let body: Uint8Array;
  try {
    key = fromBase64(dh);
    body = fromBase64(ciphertext);
  } catch {
    return null;
  }
  if (key.length !== 32 || body.length < 28) return null;
  return envelopeOf(key, pn, n, body);
}

/** The binary envelope `u32be(40) ‖ key ‖ u32be(PN) ‖ u32be(N) ‖ body`. */
function envelopeOf(key: Uint8Array, pn: number, n: number, body: Uint8Array): Uint8Array {
  const env = new Uint8Array(44 + body.length);
  writeU32BE(env, 0, 40);
  env.set(key, 4);
  writeU32BE(env, 36, pn);
  writeU32BE(env, 40, n);
  env.set(body, 44);
  return env;
}

// ---------------------------------------------------------------------------------------------
// The live session.

/** One end of a session, bare ratchet or channel, seen the same way. */
interface End {
  send(text: string): Uint8Array;
  receive(m: EncryptedMessage | Uint8Array): Uint8Array;
  /** Everything a failed receive must leave unchanged. */
  snapshot(): string;
  /** A parsed copy of the ratchet state (what the expectations are computed from). */
  state(): RatchetState;
}

function ratchetEnd(r: DoubleRatchet): End {
  return {
    send: (text) => r.encrypt(utf8(text), AD).serialize(),
    receive: (m) => r.decrypt(m, AD),
    snapshot: () => JSON.stringify(r.state.toDict({ includeLimits: true })) + toHex(r.state.toBytes()),
    state: () => RatchetState.fromBytes(r.state.toBytes()),
  };
}

function channelEnd(c: SecureChannel): End {
  return {
    send: (text) => c.send(utf8(text)).serialize(),
    receive: (m) => c.receive(m),
    snapshot: () => toHex(c.toBytes()),
    state: () => {
      const bytes = c.toBytes();
      return RatchetState.fromBytes(bytes.subarray(12 + readU32BE(bytes, 8)));
    },
  };
}

/** A genuine message Bob has not received yet. */
interface Pending {
  label: string;
  envelope: Uint8Array;
  text: string;
}

/**
 * Alice and Bob after: a0, a1 (Bob gets a1; a0 skipped) · b0 (Alice turns) · a2..a5 on Alice's
 * chain 1 (Bob gets a2, a4; a3 skipped, a5 ahead) · b1 (Alice turns) · a6, first of chain 2. Bob
 * holds two skipped keys on two chains and remembers chain 0.
 */
function liveSession(kind: 'ratchet' | 'channel'): { alice: End; bob: End; pending: Pending[]; consumed: Uint8Array[] } {
  let alice: End;
  let bob: End;
  if (kind === 'ratchet') {
    const p = ratchetPair();
    alice = ratchetEnd(p.alice);
    bob = ratchetEnd(p.bob);
  } else {
    const p = channelPair({ associatedData: AD });
    alice = channelEnd(p.alice);
    bob = channelEnd(p.bob);
  }
  const text = (i: number): string => `message a${i}: move 10 credits to account ${1000 + i}`;
  const a = (i: number): Uint8Array => Uint8Array.from(alice.send(text(i)));
  const a0 = a(0);
  const a1 = a(1);
  bob.receive(a1);
  alice.receive(bob.send('b0'));
  const [a2, a3, a4, a5] = [2, 3, 4, 5].map(a);
  bob.receive(a2);
  bob.receive(a4);
  alice.receive(bob.send('b1'));
  const a6 = a(6);
  return {
    alice,
    bob,
    pending: [
      { label: 'a0, skipped on the old chain', envelope: a0, text: text(0) },
      { label: 'a3, skipped on the current chain', envelope: a3, text: text(3) },
      { label: 'a5, ahead on the current chain', envelope: a5, text: text(5) },
      { label: 'a6, first of the next chain', envelope: a6, text: text(6) },
    ],
    consumed: [a1, a2, a4],
  };
}

/** Messages of an unrelated session: both directions, three chains. */
function foreignMessages(kind: 'ratchet' | 'channel'): Uint8Array[] {
  const { alice, bob, pending, consumed } = liveSession(kind);
  const out = [...pending.map((p) => p.envelope), ...consumed];
  const b = Uint8Array.from(bob.send('b2'));
  out.push(b);
  alice.receive(b);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Attempts.

/** Runs hostile attempts against `bob` and keeps count. */
class Attacker {
  /** Attempts made, by category. */
  readonly counts = new Map<string, number>();
  /** Attempts made, by error code. */
  readonly codes = new Map<string, number>();
  readonly oracle: RatchetState;
  readonly initial: string;

  constructor(
    private readonly bob: End,
    private readonly genuine: Uint8Array[],
  ) {
    this.oracle = bob.state();
    this.initial = bob.snapshot();
  }

  get total(): number {
    let t = 0;
    for (const v of this.counts.values()) t += v;
    return t;
  }

  /**
   * One attempt: `input()` builds what reaches `receive` (building may itself fail, which is part
   * of the attempt). It must throw an E2EError, of code `expected` unless 'any', and change nothing.
   */
  attempt(category: string, input: () => EncryptedMessage | Uint8Array, expected: ErrorCode | 'any'): void {
    const before = this.bob.snapshot();
    let thrown: unknown = null;
    try {
      this.bob.receive(input());
    } catch (e) {
      thrown = e;
    }
    const where = `${category} #${this.counts.get(category) ?? 0}`;
    if (thrown === null) throw new Error(`${where}: a hostile input decrypted`);
    if (!(thrown instanceof E2EError)) throw new Error(`${where}: threw a non-E2EError: ${String(thrown)}`);
    if (!ALLOWED.includes(thrown.code)) throw new Error(`${where}: code ${thrown.code} is not allowed`);
    if (expected !== 'any' && thrown.code !== expected)
      throw new Error(`${where}: expected ${expected}, got ${thrown.code} (${thrown.message})`);
    if (this.bob.snapshot() !== before) throw new Error(`${where}: the state changed`);
    this.counts.set(category, (this.counts.get(category) ?? 0) + 1);
    this.codes.set(thrown.code, (this.codes.get(thrown.code) ?? 0) + 1);
  }

  /** Whether `env` is one of the session's genuine messages (then it is no attack). */
  isGenuine(env: Uint8Array): boolean {
    return this.genuine.some((g) => g.length === env.length && toHex(g) === toHex(env));
  }

  /** An envelope, as raw bytes and through `EncryptedMessage.deserialize`: two attempts. */
  envelope(category: string, env: Uint8Array): void {
    if (this.isGenuine(env)) throw new Error(`${category}: generated a genuine message, not an attack`);
    const code = expectedCode(this.oracle, env);
    this.attempt(category, () => env, code);
    this.attempt(category, () => EncryptedMessage.deserialize(env), code);
  }

  /** A JSON message (object or text) through `EncryptedMessage.fromJSON`: one attempt. */
  json(category: string, json: unknown): void {
    const env = envelopeOfJson(json);
    if (env !== null && this.isGenuine(env)) throw new Error(`${category}: generated a genuine message, not an attack`);
    this.attempt(
      category,
      () => EncryptedMessage.fromJSON(json as string),
      env === null ? 'MALFORMED_MESSAGE' : expectedCode(this.oracle, env),
    );
  }
}

describe.each([
  ['bare DoubleRatchet', 'ratchet'],
  ['SecureChannel', 'channel'],
] as const)('adversarial envelopes against a live %s', (_name, kind) => {
  const live = (): ReturnType<typeof liveSession> => session as ReturnType<typeof liveSession>;
  let session: ReturnType<typeof liveSession> | null = null;
  let atk: Attacker;
  let foreign: Uint8Array[];
  const templates = (): Pending[] => live().pending;

  beforeAll(() => {
    session = liveSession(kind);
    foreign = foreignMessages(kind);
    atk = new Attacker(session.bob, [...session.pending.map((p) => p.envelope), ...session.consumed]);
  });

  test('the live session is as described: two skipped keys on two chains, one remembered chain, a5 and a6 pending', () => {
    const st = atk.oracle;
    expect(st.skippedKeys.size).toBe(2);
    expect(st.recvMessageNumber).toBe(3);
    expect(st.retiredRemoteKeys).toHaveLength(1);
    expect(templates().map((p) => [readU32BE(p.envelope, 36), readU32BE(p.envelope, 40)])).toEqual([
      [0, 0],
      [2, 1],
      [2, 3],
      [4, 0],
    ]);
    expect(LOW_ORDER_KEYS).toHaveLength(14);
    for (const hex of [
      '00'.repeat(32),
      `01${'00'.repeat(31)}`,
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
      `ec${'ff'.repeat(30)}7f`,
      `ed${'ff'.repeat(30)}7f`,
      `ee${'ff'.repeat(30)}7f`,
    ]) {
      expect(LOW_ORDER_KEYS.map(toHex)).toContain(hex);
    }
  });

  test('truncation at every length', () => {
    let expected = 0;
    for (const p of templates()) {
      for (let len = 0; len < p.envelope.length; len++) atk.envelope('truncate', p.envelope.slice(0, len));
      expected += 2 * p.envelope.length;
    }
    expect(atk.counts.get('truncate')).toBe(expected);
  });

  test('every single bit flipped, in every template', () => {
    let expected = 0;
    for (const p of templates()) {
      for (let i = 0; i < p.envelope.length * 8; i++) {
        const t = Uint8Array.from(p.envelope);
        t[i >> 3] ^= 1 << (i & 7);
        atk.envelope('bit flip', t);
      }
      expected += 2 * 8 * p.envelope.length;
    }
    expect(atk.counts.get('bit flip')).toBe(expected);
  });

  test('overwritten length prefix', () => {
    const values = [0, 1, 32, 39, 41, 44, 72, 0x28000000, 0x7fffffff, 0x80000000, 0xffffffff];
    for (const p of templates()) {
      for (const v of values) {
        const t = Uint8Array.from(p.envelope);
        writeU32BE(t, 0, v);
        atk.envelope('length prefix', t);
      }
    }
    expect(atk.counts.get('length prefix')).toBe(2 * values.length * 4);
  });

  test('forged headers: every ratchet key kind × PN × N at the edges (huge, 2^31, window ± 1, replay boundary)', () => {
    const st = atk.oracle;
    const recv = st.recvMessageNumber;
    const max = st.limits.maxSkip;
    const keys: Array<[string, Uint8Array]> = [
      ['current remote key', st.dhRemote as Uint8Array],
      ['remembered old key', fromHex(st.retiredRemoteKeys[0])],
      ['next chain key', templates()[3].envelope.slice(4, 36)],
      ['fresh key', x25519KeyPair().publicKey],
      ['own ratchet key', st.dhSelf.publicKey],
      ['foreign key', foreign[0].slice(4, 36)],
      ...LOW_ORDER_KEYS.map((k, i): [string, Uint8Array] => [`low-order key ${i}`, k]),
    ];
    const pns = [0, 1, recv - 1, recv, recv + 1, recv + max, recv + max + 1, 2 ** 31, 0xfffffffe, 0xffffffff];
    const ns = [0, 1, recv - 1, recv, recv + max, recv + max + 1, max, max + 1, 2 ** 31, 0xfffffffe, 0xffffffff];
    const body = templates()[2].envelope.subarray(44);
    const genuine = toHex(templates()[2].envelope);
    let skipped = 0;
    for (const [, key] of keys) {
      for (const pn of pns) {
        for (const n of ns) {
          const t = envelopeOf(key, pn, n, body);
          // The grid contains a5 itself (current key, PN 2, N 3): that one is no forgery.
          if (toHex(t) === genuine) skipped++;
          else atk.envelope('forged header', t);
        }
      }
    }
    expect(skipped).toBe(1);
    expect(atk.counts.get('forged header')).toBe(2 * (keys.length * pns.length * ns.length - 1));
    // Each kind of refusal was reached.
    for (const code of ALLOWED) expect(atk.codes.get(code) ?? 0).toBeGreaterThan(0);
  });

  test("bytes of another session, as they are and moved onto this session's current chain", () => {
    const st = atk.oracle;
    for (const m of foreign) {
      atk.envelope('foreign', m);
      const moved = Uint8Array.from(m);
      moved.set(st.dhRemote as Uint8Array, 4);
      writeU32BE(moved, 40, st.recvMessageNumber);
      atk.envelope('foreign', moved);
    }
    expect(atk.counts.get('foreign')).toBe(2 * 2 * foreign.length);
  });

  test('random bytes of random length (1,000), and genuine headers with random bodies (1,000)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        atk.envelope('random bytes', bytes);
      }),
      { ...FC_PARAMS, numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.nat({ max: 3 }), fc.uint8Array({ maxLength: 200 }), (i, body) => {
        atk.envelope('random body', concatBytes(templates()[i].envelope.subarray(0, 44), body));
      }),
      { ...FC_PARAMS, numRuns: 1000 },
    );
    expect(atk.counts.get('random bytes')).toBe(2000);
    expect(atk.counts.get('random body')).toBe(2000);
  });

  test('stacked random mutations: flips, cuts, insertions, overwrites, splices of other messages (1,000 × 2 forms)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
      fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
      fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), from: fc.nat(), len: fc.integer({ min: 1, max: 48 }) }),
    );
    const donors = (): Uint8Array[] => [...foreign, ...templates().map((p) => p.envelope), ...live().consumed];
    let undone = 0;
    fc.assert(
      fc.property(fc.nat({ max: 3 }), fc.array(op, { minLength: 1, maxLength: 4 }), (i, ops) => {
        let t: Uint8Array = Uint8Array.from(templates()[i].envelope);
        for (const o of ops) {
          const at = o.at % (t.length + 1);
          if (o.kind === 'flip' && t.length > 0) t[o.at % t.length] ^= 1 << o.bit;
          else if (o.kind === 'cut') t = concatBytes(t.subarray(0, at), t.subarray(Math.min(t.length, at + o.len)));
          else if (o.kind === 'insert') t = concatBytes(t.subarray(0, at), o.bytes, t.subarray(at));
          else if (o.kind === 'overwrite') t = concatBytes(t.subarray(0, at), o.bytes, t.subarray(Math.min(t.length, at + o.bytes.length)));
          else if (o.kind === 'splice') {
            const d = donors()[o.from % donors().length];
            const from = o.from % d.length;
            t = concatBytes(t.subarray(0, at), d.subarray(from, from + o.len), t.subarray(Math.min(t.length, at + o.len)));
          }
        }
        // A mutation list that undid itself is not an attack.
        if (toHex(t) === toHex(templates()[i].envelope)) {
          undone++;
          return;
        }
        atk.envelope('stacked', t);
      }),
      { ...FC_PARAMS, numRuns: 1000 },
    );
    expect(atk.counts.get('stacked')).toBe(2 * (1000 - undone));
    expect(undone).toBeLessThan(50);
  });

  test('hostile JSON: wrong types, bad numbers, bad base64, missing fields, extra nesting, every field replaced', () => {
    const j = (p: Pending): { header: { dh: string; pn: number; n: number }; ciphertext: string } =>
      EncryptedMessage.deserialize(p.envelope).toJSON();
    const base = j(templates()[2]);
    const whole: unknown[] = [
      null,
      undefined,
      0,
      1,
      true,
      false,
      '',
      'null',
      '{',
      '}',
      '[]',
      '{}',
      '"x"',
      '0',
      'true',
      'NaN',
      '{"header":null}',
      [],
      {},
      [base],
      { header: base },
      { message: base },
      { header: [base.header], ciphertext: base.ciphertext },
      { header: { header: base.header }, ciphertext: base.ciphertext },
      { ...base, header: JSON.stringify(base.header) },
      { header: base.header },
      { ciphertext: base.ciphertext },
      { header: { pn: 1, n: 1 }, ciphertext: base.ciphertext },
      `{"__proto__": ${JSON.stringify(base)}}`,
      JSON.stringify(base).replace('"header"', '"Header"'),
      `${'['.repeat(100000)}${']'.repeat(100000)}`,
      `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`,
      JSON.stringify(base).slice(0, -1),
      `${JSON.stringify(base)}x`,
      JSON.stringify(base).replace(/"n":\d+/, '"n":1e999'),
      JSON.stringify(base).replace(/"pn":\d+/, '"pn":-1'),
      JSON.stringify(base).replace(/"n":\d+/, '"n":0x3'),
    ];
    for (const w of whole) atk.json('json whole', w);

    const b64 = (n: number): string => toBase64(randomBytes(n));
    const badStrings = [
      '',
      '=',
      '==',
      'A',
      'AA',
      'AAA',
      '====',
      '*'.repeat(44),
      ' '.repeat(44),
      `${base.header.dh} `,
      ` ${base.header.dh}`,
      base.header.dh.replace(/=+$/, ''),
      `${base.header.dh}==`,
      toBase64Url(fromBase64(base.header.dh)),
      toHex(fromBase64(base.header.dh)),
      'é'.repeat(44),
      '\u0000'.repeat(44),
      'A'.repeat(100_000),
    ];
    const badNumbers: unknown[] = [
      -1,
      -0.5,
      1.5,
      2 ** 32,
      2 ** 53,
      -(2 ** 31),
      Number.MAX_SAFE_INTEGER,
      1e308,
      '1',
      '0x10',
      null,
      true,
      [],
      {},
      [1],
      { n: 1 },
    ];
    const goodNumbers = [0xffffffff, 0xfffffffe, 2 ** 31, 1000, 0];
    const notStrings: unknown[] = [null, 1, true, [], {}, ['AAAA'], { dh: 'AAAA' }];
    let fieldAttempts = 0;
    for (const p of templates()) {
      const t = j(p);
      const variants: unknown[] = [
        ...[...badStrings, b64(31), b64(33), b64(0), ...notStrings].map((dh) => ({ ...t, header: { ...t.header, dh } })),
        ...LOW_ORDER_KEYS.map((k) => ({ ...t, header: { ...t.header, dh: toBase64(k) } })),
        ...[...badNumbers, ...goodNumbers.filter((v) => v !== t.header.pn)].map((pn) => ({ ...t, header: { ...t.header, pn } })),
        ...[...badNumbers, ...goodNumbers.filter((v) => v !== t.header.n)].map((n) => ({ ...t, header: { ...t.header, n } })),
        ...[...badStrings, b64(27), b64(28), b64(100), ...notStrings].map((ciphertext) => ({ ...t, ciphertext })),
        { header: { ...t.header, n: undefined }, ciphertext: t.ciphertext },
      ];
      for (const v of variants) {
        atk.json('json field', v);
        atk.json('json field', JSON.stringify(v));
        fieldAttempts += 2;
      }
    }
    // JSON text cut at every length.
    const text = JSON.stringify(j(templates()[1]));
    for (let len = 0; len < text.length; len++) atk.json('json cut', text.slice(0, len));
    expect(atk.counts.get('json whole')).toBe(whole.length);
    expect(atk.counts.get('json field')).toBe(fieldAttempts);
    expect(atk.counts.get('json cut')).toBe(text.length);
  });

  test('random JSON values and texts (1,000 each)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        atk.json('json random', v);
      }),
      { ...FC_PARAMS, numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.json(), (text) => {
        atk.json('json random', text);
      }),
      { ...FC_PARAMS, numRuns: 1000 },
    );
    expect(atk.counts.get('json random')).toBe(2000);
  });

  test('things that are not messages at all, and messages built from bad parts', () => {
    const t = EncryptedMessage.deserialize(templates()[2].envelope);
    const h = t.header;
    const inputs: Array<() => EncryptedMessage | Uint8Array> = [
      () => null as never,
      () => undefined as never,
      () => 'message' as never,
      () => 42 as never,
      () => ({}) as never,
      () => [1, 2, 3] as never,
      () => new Uint16Array(60) as never,
      () => new DataView(new ArrayBuffer(80)) as never,
      () => t.serialize().buffer as never,
      () => Object.create(EncryptedMessage.prototype) as EncryptedMessage,
      () => ({ header: h, ciphertext: t.ciphertext }) as never,
      () => new EncryptedMessage(null as never, t.ciphertext),
      () => new EncryptedMessage({ ...h, dhPublicKey: new Uint8Array(31) }, t.ciphertext),
      () => new EncryptedMessage({ ...h, messageNumber: -1 }, t.ciphertext),
      () => new EncryptedMessage({ ...h, messageNumber: 1.5 }, t.ciphertext),
      () => new EncryptedMessage({ ...h, previousChainLength: 2 ** 32 }, t.ciphertext),
      () => new EncryptedMessage({ ...h, messageNumber: '3' as never }, t.ciphertext),
      () => new EncryptedMessage(h, t.ciphertext.subarray(0, 27)),
      () => new EncryptedMessage(h, Array.from(t.ciphertext) as never),
      () => new EncryptedMessage({ ...h, dhPublicKey: Array.from(h.dhPublicKey) as never }, t.ciphertext),
      () => EncryptedMessage.deserialize(null as never),
      () => EncryptedMessage.deserialize('AAAA' as never),
      () => new EncryptedMessage({ ...h, messageNumber: MAX_COUNTER }, t.ciphertext),
      () => new EncryptedMessage({ ...h, dhPublicKey: new Uint8Array(32) }, t.ciphertext),
    ];
    for (const f of inputs) atk.attempt('not a message', f, 'MALFORMED_MESSAGE');
    expect(atk.counts.get('not a message')).toBe(inputs.length);
  });

  test('after all of that: at least 10,000 attempts, the state never moved, every genuine message decrypts once, the session goes on', () => {
    const { alice, bob, pending, consumed } = live();
    if (process.env.PROPERTY_STATS) console.log(kind, atk.total, Object.fromEntries(atk.counts), Object.fromEntries(atk.codes));
    expect(atk.total).toBeGreaterThanOrEqual(10_000);
    expect(bob.snapshot()).toBe(atk.initial);
    for (const m of consumed) expectE2EError(() => bob.receive(m), 'DUPLICATE_MESSAGE');
    // Next chain first: it turns a5 into a skipped key on the old chain. Each arrives in another form;
    // fields the JSON form does not define are ignored, as the reference does.
    const json = EncryptedMessage.deserialize(pending[2].envelope).toJSON();
    const forms: Array<EncryptedMessage | Uint8Array> = [
      pending[0].envelope,
      EncryptedMessage.deserialize(pending[1].envelope),
      EncryptedMessage.fromJSON(JSON.stringify({ ...json, header: { ...json.header, extra: [1] }, extra: { nested: json } })),
      pending[3].envelope,
    ];
    for (const i of [3, 2, 0, 1]) expect(fromUtf8(bob.receive(forms[i]))).toBe(pending[i].text);
    for (const p of pending) expectE2EError(() => bob.receive(p.envelope), 'DUPLICATE_MESSAGE');
    expect(bob.state().skippedKeys.size).toBe(0);
    expect(fromUtf8(alice.receive(bob.send('and on')))).toBe('and on');
    expect(fromUtf8(bob.receive(alice.send('and on again')))).toBe('and on again');
  });
});

describe('EncryptedMessage keeps the header it was checked with', () => {
  // Fails today: the constructor keeps the caller's header object and `.header` hands it out, so a
  // change made after the checks reaches serialize() and decrypt() unchecked, and a TypeError escapes
  // instead of an E2EError. Fix in lib/ratchet/message.ts (see the report); then drop `.failing`.
  test('a header changed after construction never reaches decrypt', () => {
    const { alice, bob } = ratchetPair();
    const m = EncryptedMessage.fromJSON(JSON.stringify(alice.encrypt(utf8('as checked'), AD).toJSON()));
    try {
      (m.header as { dhPublicKey: unknown }).dhPublicKey = null;
    } catch {
      // A frozen header refuses the change: that is the fix.
    }
    expect(fromUtf8(bob.decrypt(m, AD))).toBe('as checked');
  });
});

describe('an envelope larger than any sender can produce', () => {
  // Fails today: decrypt accepts an envelope of any size and runs the AEAD over it in the shared WASM
  // scratch region, which grows to twice the envelope and never shrinks (measured: a 300 MB forgery
  // costs ~1 s and leaves the heap at 600 MB; above ~1 GB the allocation fails and INVALID_ARGUMENT,
  // not a decrypt error, escapes). Fix in lib/ratchet/double-ratchet.ts `parse` (see the report);
  // then drop `.failing`.
  test('is refused before any work with MESSAGE_TOO_LARGE, state unchanged', () => {
    const { alice, bob } = ratchetPair();
    bob.decrypt(alice.encrypt(utf8('hello'), AD), AD);
    const next = alice.encrypt(utf8('next'), AD).serialize();
    const huge = new Uint8Array(4 + 40 + 12 + MAX_PLAINTEXT_BYTES + 16 + 1);
    huge.set(next.subarray(0, 56)); // a valid header on the current chain
    const before = toHex(bob.state.toBytes());
    expectE2EError(() => bob.decrypt(huge, AD), 'MESSAGE_TOO_LARGE');
    expect(toHex(bob.state.toBytes())).toBe(before);
    expect(fromUtf8(bob.decrypt(next, AD))).toBe('next');
  });
});
