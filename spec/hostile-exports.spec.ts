/**
 * Finding 11: every runtime export of the package entry point, called with hostile arguments.
 *
 * For each export of `lib/index.ts`: functions are called; classes get their static methods and
 * their constructor called; the classes that are cheap to make get every method and getter of a
 * valid instance called too. Arguments come from fast-check: nullish values, numbers at the edges,
 * NaN, huge and ill-formed strings (lone surrogates), symbols, objects whose getters throw, Proxies
 * whose traps throw, views of detached buffers, objects that only pretend to be Uint8Arrays, arrays,
 * Buffers, Uint8Arrays of the wrong (and right) lengths, valid keys and objects mixed in so deeper
 * checks are reached. The only acceptable outcomes are a normal return or an `E2EError` (a resolved
 * promise, or one rejected with an `E2EError`), within a time bound.
 *
 * A failure names the target and what escaped, so it can be fixed at the boundary it reached.
 */
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
// eslint-disable-next-line @typescript-eslint/no-require-imports -- the brief: enumerate require('../lib')
import lib = require('../lib');
import { E2EError } from '../lib/errors';

/** Runtime exports of lib/index.ts when this spec was written; a new export must be added to the plan below. */
const EXPECTED_EXPORTS = 89;
/** Constants, functions, classes, and call targets (functions, constructors, statics, instance methods). */
const EXPECTED_SHAPE = [23, 49, 17, 184];
/** Per target: fast-check runs (fixed seed, so the run is reproducible). */
const RUNS = 100;
/** The time bound for one call, sync or async (generous: the machine is shared). */
const TIME_BOUND_MS = 5000;

const L = lib as unknown as Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// Hostile values.

function detached(n: number): Uint8Array {
  const u = new Uint8Array(n);
  structuredClone(u.buffer, { transfer: [u.buffer] });
  return u;
}

const boom = (): never => {
  throw new TypeError('hostile getter');
};
/** A Proxy whose every trap throws (get, has, ownKeys, getPrototypeOf, …). */
const throwingProxy = (): object =>
  new Proxy(
    {},
    {
      get: boom,
      has: boom,
      ownKeys: boom,
      getOwnPropertyDescriptor: boom,
      getPrototypeOf: boom,
      set: boom,
      apply: boom,
      defineProperty: boom,
      deleteProperty: boom,
      isExtensible: boom,
      preventExtensions: boom,
      setPrototypeOf: boom,
    },
  );
/** Names the library reads off its object arguments: a throwing getter for each. */
const FIELD_NAMES = [
  'otkId',
  'maxSkip',
  'maxSkippedKeys',
  'skippedKeyMaxAgeMs',
  'now',
  'sharedSecret',
  'remoteDhPublic',
  'dhKeyPair',
  'privateKey',
  'publicKey',
  'secretKey',
  'dhPublicKey',
  'previousChainLength',
  'messageNumber',
  'messageKey',
  'storedAt',
  'header',
  'ciphertext',
  'dh',
  'pn',
  'n',
  'ik',
  'ek',
  'otk',
  'spk',
  'initiatorIdentityKey',
  'ephemeralPublicKey',
  'usedOneTimeKeyId',
  'signedPreKeyId',
  'peerIdentityKey',
  'identityKey',
  'identityKeyEd',
  'signedPreKey',
  'signedPreKeySignature',
  'oneTimePreKey',
  'oneTimePreKeyId',
  'version',
  'identitySecretKey',
  'signedPreKeys',
  'oneTimePreKeys',
  'keyId',
  'signature',
  'createdAt',
  'currentSignedPreKeyId',
  'nextSignedPreKeyId',
  'nextOneTimePreKeyId',
  'identity_key',
  'identity_key_ed',
  'signed_pre_key',
  'one_time_pre_key',
  'key_id',
  'public_key',
  'dh_self_private',
  'dh_self_public',
  'dh_remote_public',
  'root_key',
  'chain_key_send',
  'chain_key_recv',
  'send_message_number',
  'recv_message_number',
  'previous_send_chain_length',
  'skipped_keys',
  'client',
  'namespace',
  'agentDid',
  'keyManager',
  'identity',
  'minTrustScore',
  'transport',
  'registry',
  'preKeyStore',
  'store',
  'did',
  'challenge',
  'nonce',
  'then',
  'length',
  'includeLimits',
  'previousKeys',
  'synchronous',
  'busyTimeoutMs',
  'heldOneTimePreKey',
  'counterTo',
  'responseNonce',
  'challengeId',
  'peerDid',
  'kind',
  'openerDid',
  'answererDid',
  'requiredTrustScore',
  'requiredCapabilities',
  'requireFreshness',
  'observe',
  'update',
  'manager',
  'capabilities',
  'status',
  'trustScore',
  'challenge_id',
  'response_nonce',
  'agent_did',
  'freshness_nonce',
  'timestamp',
  'expires_in_seconds',
  'get',
] as const;
const throwingGetters = (): object => {
  const o = {};
  for (const k of FIELD_NAMES) Object.defineProperty(o, k, { get: boom, enumerable: true });
  return o;
};
const fakeBytes = (): unknown => Object.create(Uint8Array.prototype);
const hugeString = 'A'.repeat(1 << 20);
const hugeHex = 'ab'.repeat(1 << 19);

/** Valid-looking values, so that checks after the first argument are reached too. */
interface Valid {
  key32: Uint8Array;
  sk64: Uint8Array;
  sig64: Uint8Array;
  bundle: unknown;
  bundleJSON: unknown;
  establishment: unknown;
  message: unknown;
  envelope: Uint8Array;
  manager: unknown;
  did: string;
  state: unknown;
  dict: unknown;
}
let valid: Valid;

/**
 * Hostile values are generated as tokens and made only inside the property: fast-check inspects
 * what it generates (and would itself trip over a throwing Proxy).
 */
const MADE = [
  'detached0',
  'detached32',
  'throwingProxy',
  'throwingGetters',
  'fakeBytes',
  'u8Proxy',
  'buffer32',
  'view32',
  'float64',
  'arrayBuffer',
  'dataView',
  'bigint',
  'symbol',
  'throwingFn',
  'date',
  'map',
  'key32',
  'sk64',
  'sig64',
  'bundle',
  'bundleJSON',
  'establishment',
  'message',
  'envelope',
  'manager',
  'did',
  'state',
  'dict',
] as const;
type Token = { readonly made: (typeof MADE)[number] };

function make(t: Token): unknown {
  switch (t.made) {
    case 'detached0':
      return detached(0);
    case 'detached32':
      return detached(32);
    case 'throwingProxy':
      return throwingProxy();
    case 'throwingGetters':
      return throwingGetters();
    case 'fakeBytes':
      return fakeBytes();
    case 'u8Proxy':
      return new Proxy(new Uint8Array(32), {});
    case 'buffer32':
      return Buffer.alloc(32, 9);
    case 'view32':
      return new Uint8Array(new ArrayBuffer(64), 16, 32);
    case 'float64':
      return new Float64Array(4);
    case 'arrayBuffer':
      return new ArrayBuffer(32);
    case 'dataView':
      return new DataView(new ArrayBuffer(32));
    case 'bigint':
      return 1n;
    case 'symbol':
      return Symbol('hostile');
    case 'throwingFn':
      return boom;
    case 'date':
      return new Date(NaN);
    case 'map':
      return new Map([[1, 2]]);
    default:
      return valid[t.made];
  }
}

const isToken = (v: unknown): v is Token => typeof v === 'object' && v !== null && 'made' in v && Object.keys(v).length === 1;

/** Turns generated tokens (at any depth of arrays and plain objects) into the hostile values they name. */
function materialize(v: unknown): unknown {
  if (isToken(v)) return make(v);
  if (Array.isArray(v)) return v.map(materialize);
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, materialize(x)]));
  }
  return v;
}

const CONSTANTS: readonly unknown[] = [
  null,
  undefined,
  0,
  -0,
  -1,
  1,
  1.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  2 ** 32,
  2 ** 32 - 1,
  2 ** 53,
  Number.MAX_VALUE,
  true,
  false,
  '',
  'x',
  '\uD800',
  'a\uDC00b',
  hugeString,
  hugeHex,
  '{}',
  '[]',
  'null',
  '{"header":1}',
  'did:mesh:x',
  ':memory:',
  [],
  [1, 2, 3],
  [null],
  {},
];
/** What the sweep puts alone in each argument position. */
const SWEEP: readonly unknown[] = [...MADE.map((k): Token => ({ made: k })), ...CONSTANTS];

function hostileValue(): fc.Arbitrary<unknown> {
  const made = fc.constantFrom(...MADE).map((k): Token => ({ made: k }));
  const constants = fc.constantFrom<unknown>(...CONSTANTS);
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 80 }),
    fc.constantFrom(0, 12, 16, 24, 31, 32, 33, 40, 63, 64, 65, 72, 84, 97).map((n) => new Uint8Array(n).fill(n & 0xff)),
  );
  const leaf = fc.oneof({ weight: 3, arbitrary: made }, constants, bytes, fc.string({ maxLength: 20 }), fc.integer(), fc.double());
  const shaped = fc.dictionary(fc.constantFrom(...FIELD_NAMES), leaf, { maxKeys: 6 });
  return fc.oneof(
    { weight: 4, arbitrary: leaf },
    { weight: 2, arbitrary: shaped },
    { weight: 1, arbitrary: fc.array(leaf, { maxLength: 4 }) },
  );
}

// ---------------------------------------------------------------------------------------------
// Calling a target and judging the outcome.

type Outcome = { ok: true } | { ok: false; what: string };

const describeError = (e: unknown): string => {
  if (e instanceof Error) return `${e.constructor.name}: ${e.message.slice(0, 120)}`;
  try {
    return `non-Error ${String(e)}`;
  } catch {
    return 'non-Error (unprintable)';
  }
};

async function judge(call: () => unknown): Promise<Outcome> {
  const start = Date.now();
  let result: unknown;
  try {
    result = call();
  } catch (e) {
    if (e instanceof E2EError) return { ok: true };
    return { ok: false, what: `threw ${describeError(e)}` };
  }
  if (Date.now() - start > TIME_BOUND_MS) return { ok: false, what: 'took longer than the time bound' };
  if (result instanceof Promise) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), TIME_BOUND_MS);
    });
    try {
      const r = await Promise.race([
        result.then(
          () => 'ok' as const,
          (e: unknown) => e,
        ),
        timeout,
      ]);
      if (r === 'ok') return { ok: true };
      if (r === 'timeout') return { ok: false, what: 'promise did not settle in time' };
      if (r instanceof E2EError) return { ok: true };
      return { ok: false, what: `rejected ${describeError(r)}` };
    } finally {
      clearTimeout(timer);
    }
  }
  return { ok: true };
}

interface Target {
  /** `fn`, `Class.static`, `new Class`, `Class#method` (instance methods and getters). */
  readonly name: string;
  readonly arity: number;
  readonly call: (args: unknown[]) => unknown;
}

const isClass = (f: unknown): f is new (...a: unknown[]) => unknown =>
  typeof f === 'function' && /^class\b/.test(Function.prototype.toString.call(f));

/** Classes whose instances are cheap to make from valid values; their methods are probed too. */
function instanceFactories(): Record<string, () => object> {
  const { X3DHKeyManager, SecureChannel, DoubleRatchet, ChannelEstablishment } = lib;
  const mgr = (): lib.X3DHKeyManager => {
    const id = lib.ed25519KeyPair();
    const m = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
    m.generateSignedPreKey();
    m.generateOneTimePreKeys(2);
    return m;
  };
  const channels = (): { alice: lib.SecureChannel; bob: lib.SecureChannel } => {
    const a = mgr();
    const b = mgr();
    const { channel: alice, establishment } = SecureChannel.createSender(a, b.getPublicBundle({ otkId: 0 }));
    const bob = SecureChannel.createReceiver(b, establishment);
    bob.receive(alice.send(lib.utf8('hi')));
    return { alice, bob };
  };
  const ratchet = (): lib.DoubleRatchet => {
    const spk = lib.x25519KeyPair();
    return DoubleRatchet.initSender({ sharedSecret: lib.randomBytes(32), remoteDhPublic: spk.publicKey });
  };
  return {
    X3DHKeyManager: mgr,
    SecureChannel: () => channels().bob,
    DoubleRatchet: ratchet,
    RatchetState: () => ratchet().state,
    EncryptedMessage: () => channels().alice.send(lib.utf8('m')),
    ChannelEstablishment: () => ChannelEstablishment.from(valid.establishment as never),
    E2EError: () => new lib.E2EError('INVALID_ARGUMENT', 'x'),
    InMemoryStore: () => new lib.InMemoryStore(),
    InMemoryPreKeyStore: () => new lib.InMemoryPreKeyStore(),
    InMemoryIdentityRegistry: () => new lib.InMemoryIdentityRegistry(),
    AgentIdentity: () => lib.AgentIdentity.generate(),
    StorageCipher: () => new lib.StorageCipher(lib.randomBytes(32)),
  };
}

/** Prototype members not probed as methods (the constructor is probed as `new Class`). */
const INSTANCE_SKIP = new Set(['constructor']);

function plan(): { targets: Target[]; constants: string[]; functions: string[]; classes: string[] } {
  const targets: Target[] = [];
  const constants: string[] = [];
  const functions: string[] = [];
  const classes: string[] = [];
  const factories = instanceFactories();
  for (const [name, value] of Object.entries(L)) {
    if (typeof value !== 'function') {
      constants.push(name);
      continue;
    }
    if (!isClass(value)) {
      functions.push(name);
      targets.push({ name, arity: value.length, call: (args) => (value as (...a: unknown[]) => unknown)(...args) });
      continue;
    }
    classes.push(name);
    const C = value as unknown as Record<string, unknown> & (new (...a: unknown[]) => unknown);
    targets.push({ name: `new ${name}`, arity: C.length, call: (args) => new C(...args) });
    for (const s of Object.getOwnPropertyNames(C)) {
      if (['length', 'name', 'prototype'].includes(s)) continue;
      const f = C[s];
      if (typeof f !== 'function') continue;
      targets.push({ name: `${name}.${s}`, arity: f.length, call: (args) => (f as (...a: unknown[]) => unknown).apply(C, args) });
    }
    const make = factories[name];
    if (!make) continue;
    for (const m of Object.getOwnPropertyNames(C.prototype)) {
      if (INSTANCE_SKIP.has(m)) continue;
      const d = Object.getOwnPropertyDescriptor(C.prototype, m) as PropertyDescriptor;
      if (d.get) {
        const get = d.get;
        targets.push({ name: `${name}#${m}`, arity: 0, call: () => get.call(make()) });
      } else if (typeof d.value === 'function') {
        const f = d.value as (...a: unknown[]) => unknown;
        targets.push({ name: `${name}#${m}`, arity: f.length, call: (args) => f.apply(make(), args) });
      }
    }
  }
  return { targets, constants, functions, classes };
}

// ---------------------------------------------------------------------------------------------

let cwd = '';
let tmp = '';

beforeAll(async () => {
  await lib.ready();
  // SqliteStore opens any path it is given: run inside a scratch directory.
  cwd = process.cwd();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-exports-'));
  process.chdir(tmp);
  const id = lib.ed25519KeyPair();
  const bob = lib.X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
  bob.generateSignedPreKey();
  bob.generateOneTimePreKeys(3);
  const a = lib.ed25519KeyPair();
  const alice = lib.X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey);
  const bundle = bob.getPublicBundle({ otkId: 2 });
  const { channel, establishment } = lib.SecureChannel.createSender(alice, bundle);
  const message = channel.send(lib.utf8('hello'));
  const r = lib.DoubleRatchet.initSender({ sharedSecret: lib.randomBytes(32), remoteDhPublic: lib.x25519KeyPair().publicKey });
  valid = {
    key32: lib.x25519KeyPair().publicKey,
    sk64: id.secretKey,
    sig64: lib.ed25519Sign(id.secretKey, lib.utf8('m')),
    bundle,
    bundleJSON: lib.bundleToJSON(bundle),
    establishment,
    message,
    envelope: message.serialize(),
    manager: bob,
    did: lib.didFromPublicKey(id.publicKey),
    state: r.state,
    dict: r.state.toDict(),
  };
});

afterAll(() => {
  process.chdir(cwd);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const failures = new Map<string, string>();

describe('every runtime export of lib/index.ts, with hostile arguments', () => {
  test(`covers all ${EXPECTED_EXPORTS} exports`, () => {
    const p = plan();
    expect(p.constants.length + p.functions.length + p.classes.length).toBe(EXPECTED_EXPORTS);
    expect(Object.keys(L)).toHaveLength(EXPECTED_EXPORTS);
    expect([p.constants.length, p.functions.length, p.classes.length, p.targets.length]).toEqual(EXPECTED_SHAPE);
  });

  test('every function, constructor, static method and instance method: a return or an E2EError, in time', async () => {
    const { targets } = plan();
    const value = hostileValue();
    for (const t of targets) {
      const args = fc.array(value, { minLength: 0, maxLength: Math.max(1, t.arity) + 1 });
      await fc.assert(
        fc.asyncProperty(args, async (a) => {
          const out = await judge(() => t.call(materialize(a) as unknown[]));
          if (!out.ok && !failures.has(t.name)) failures.set(t.name, out.what);
          return true; // collected, all reported at the end
        }),
        { numRuns: RUNS, seed: 0x9e11, endOnFailure: true },
      );
    }
    // Then a systematic sweep: every hostile token and constant alone in each argument position.
    for (const t of targets) {
      for (let pos = 0; pos < Math.max(1, t.arity); pos++) {
        for (const h of SWEEP) {
          const a: unknown[] = new Array(pos + 1).fill(undefined);
          a[pos] = h;
          const out = await judge(() => t.call(materialize(a) as unknown[]));
          if (!out.ok && !failures.has(t.name)) failures.set(t.name, out.what);
        }
      }
    }
    if (process.env.HOSTILE_REPORT) fs.writeFileSync(process.env.HOSTILE_REPORT, JSON.stringify([...failures], null, 1));
    expect([...failures]).toEqual([]);
  });
});
