/**
 * Finding 11 (store part): every exported store function and method fails only with `E2EError`s —
 * never a TypeError, RangeError, URIError, plain Error or thrown string — whatever it is given: null,
 * wrong types, huge strings, lone surrogates, detached buffers, Buffers. A `STORE_ERROR` always carries
 * its reason, also at the end of its message.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import fc from 'fast-check';
import Redis from 'ioredis';
import { ready } from '../../lib/sodium';
import { E2EError } from '../../lib/errors';
import { randomBytes, utf8 } from '../../lib/crypto';
import { SecureChannel } from '../../lib/channel';
import {
  AgentStore,
  InMemoryStore,
  PersistentChannel,
  RedisStore,
  SqliteStore,
  StorageCipher,
  StoredKeyManager,
  establishmentFingerprint,
  inboxMessageId,
  maintainPreKeys,
  sessionContext,
} from '../../lib/store';
import { clearPrefix, makeAgent, makePqAgent, openPair, publicKems, randomNamespace, redisTarget } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';

const dir = mkdtempSync(join(tmpdir(), 'agentmesh-typed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function detached(): Uint8Array {
  const ab = new ArrayBuffer(32);
  const view = new Uint8Array(ab);
  structuredClone(ab, { transfer: [ab] }); // the view now has length 0 and no memory
  Object.defineProperty(view, fc.toStringMethod, { value: () => '<detached Uint8Array>' }); // fast-check cannot print it
  return view;
}

/** Values a careless or hostile caller passes. */
const hostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, undefined, NaN, Infinity, -0, -1, 2 ** 53, 1.5, '', true, [], {}, Symbol('s'), 10n, () => 1, new Date(0)),
  fc.constantFrom('\uD800', 'did:\uDC00', 'x\uDBFFy', '\uDFFF\uD800', 'did:mesh:\u0000', 'a:b', '{x}', '%', '*?[', 'é'),
  fc.string({ unit: fc.constantFrom('\uD800', '\uDC00', 'a', ':', '{', '%', '\u0000'), maxLength: 8 }),
  fc.constant('x'.repeat(100_000)),
  fc.constant(null).map(() => detached()),
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  fc.uint8Array({ maxLength: 40 }),
  fc.array(fc.oneof(fc.constant(null), fc.integer(), fc.constant({ keyId: 1, publicKey: new Uint8Array(3) })), { maxLength: 3 }),
  fc.record({
    id: fc.constantFrom<unknown>('m', '\uD800', 1, null),
    data: fc.constantFrom<unknown>(null, new Uint8Array(0), 'x', detached()),
  }),
);

function checkTyped(e: unknown): void {
  if (!(e instanceof E2EError))
    throw new Error(`untyped error escaped: ${String((e as Error)?.name ?? typeof e)}: ${String((e as Error)?.message ?? e)}`);
  if (e.code === 'STORE_ERROR') {
    expect(typeof e.reason).toBe('string');
    expect(e.message.endsWith(`[${e.reason}]`)).toBe(true);
  }
}

async function typedOnly(f: () => unknown): Promise<void> {
  try {
    await f();
  } catch (e) {
    checkTyped(e);
  }
}

type Call = (args: unknown[]) => unknown;

/** Every method of a store, fed with a mix of valid and hostile arguments. */
function storeCalls(s: AgentStore): Record<string, Call> {
  const a = s as unknown as Record<string, (...x: unknown[]) => unknown>;
  const names = [
    'storeBundle',
    'getBundle',
    'consumeOneTimeKey',
    'claimBundle',
    'addOneTimePreKeys',
    'countOneTimePreKeys',
    'addKemPreKeys',
    'consumeKemPreKey',
    'countKemPreKeys',
    'removeBundle',
    'loadSession',
    'saveSession',
    'deleteSession',
    'listSessions',
    'saveSessionWithInbox',
    'loadInboxEntry',
    'listInbox',
    'deleteInboxEntry',
    'loadKeyManager',
    'saveKeyManager',
    'deleteKeyManager',
    'markEstablishment',
    'forgetEstablishments',
    'saveAcceptance',
  ];
  const calls: Record<string, Call> = {};
  for (const n of names) calls[n] = (args) => a[n].apply(s, args);
  if (s instanceof RedisStore) calls.clearNamespace = () => undefined; // takes no input
  return calls;
}

const valid: fc.Arbitrary<unknown> = fc.constantFrom<unknown>('did:mesh:a', 'did:mesh:b', 0, 1, utf8('x'), 'm1', 'fp', {
  id: 'm1',
  data: utf8('p'),
});
const arg = fc.oneof({ weight: 2, arbitrary: valid }, { weight: 3, arbitrary: hostile });

function fuzzStore(name: string, open: () => Promise<AgentStore>, runs: number): void {
  it(`${name}: only E2EErrors from every method, whatever the arguments (generative)`, async () => {
    const store = await open();
    try {
      const calls = storeCalls(store);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...Object.keys(calls)), fc.array(arg, { maxLength: 6 }), async (method, args) => {
          await typedOnly(() => calls[method](args));
        }),
        { numRuns: runs },
      );
    } finally {
      await store.close();
    }
  }, 300_000);
}

describe('only typed errors from the stores (finding 11)', () => {
  beforeAll(() => ready());
  let files = 0;
  fuzzStore('InMemoryStore', async () => new InMemoryStore(), 1500);
  fuzzStore('SqliteStore', async () => new SqliteStore(join(dir, `fuzz-${++files}.sqlite`), { synchronous: 'NORMAL' }), 1500);
  const { url } = redisTarget();
  if (url !== null) {
    const ns = randomNamespace();
    let client: Redis;
    beforeAll(() => {
      client = new Redis(url, { maxRetriesPerRequest: 1 });
    });
    afterAll(async () => {
      await clearPrefix(client, ns);
      client.disconnect();
    });
    fuzzStore('RedisStore', async () => new RedisStore({ client, namespace: ns }), 600);
  }

  it("maintainPreKeys: a directory of the application's own that throws foreign errors gives STORE_ERROR with the cause", async () => {
    const store = new InMemoryStore();
    const cipher = new StorageCipher(randomBytes(32));
    const keys = await StoredKeyManager.create({ store, cipher, did: 'did:mesh:m' }, makePqAgent(0));
    for (const method of ['countOneTimePreKeys', 'countKemPreKeys', 'getBundle', 'storeBundle', 'addOneTimePreKeys', 'addKemPreKeys']) {
      const boom = new RangeError('driver exploded');
      const directory = new Proxy(store, {
        get: (t, p) =>
          p === method
            ? () => {
                throw boom;
              }
            : (Reflect.get(t, p) as (...a: unknown[]) => unknown).bind(t),
      });
      let thrown: unknown;
      try {
        await maintainPreKeys(keys, directory, { minOneTimePreKeys: 1, targetOneTimePreKeys: 1, minKemPreKeys: 1, targetKemPreKeys: 1 });
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(E2EError);
      expect([(thrown as E2EError).code, (thrown as E2EError).reason, (thrown as { cause?: unknown }).cause]).toEqual([
        'STORE_ERROR',
        'backend',
        boom,
      ]);
      store.removeBundle('did:mesh:m'); // so the next round publishes (and adds) again
    }
  });

  it('constructors, the cipher, the channel, the key manager and the helpers: only E2EErrors (generative)', async () => {
    const store = new InMemoryStore();
    const cipher = new StorageCipher(randomBytes(32));
    const { alice, bob } = await openPair(store, cipher);
    const m = await alice.send(utf8('x'));
    const keys = await StoredKeyManager.create({ store, cipher, did: 'did:mesh:k' }, makeAgent(1));
    const { establishment } = SecureChannel.createSender(makeAgent(), keys.manager.getPublicBundle({ otkId: 0 }));
    const loc = { store, cipher, localDid: 'did:mesh:bob', peerDid: 'did:mesh:alice' };
    const fns: Record<string, Call> = {
      SqliteStore: ([p, o]) =>
        new SqliteStore(
          typeof p === 'string' && p.length < 50 ? join(dir, `c-${++files}-${p.replace(/[/\\]/g, '')}`) : (p as string),
          o as never,
        ),
      RedisStore: ([o]) => new RedisStore(o as never),
      RedisStoreNs: ([n, t]) => new RedisStore({ client: {} as never, namespace: n as string, sessionTtlMs: t as number }),
      StorageCipher: ([k, o]) => new StorageCipher(k as Uint8Array, o as never),
      seal: ([p, c]) => cipher.seal(p as Uint8Array, c as string),
      open: ([b, c]) => cipher.open(b as Uint8Array, c as string),
      needsReseal: ([b]) => cipher.needsReseal(b as Uint8Array),
      sessionContext: ([a, b]) => sessionContext(a as string, b as string),
      inboxMessageId: ([x]) => inboxMessageId(x as Uint8Array),
      establishmentFingerprint: ([x]) => establishmentFingerprint(x as never),
      pcCreate: ([l, c, o]) => PersistentChannel.create(l as never, c as never, o as never),
      pcLoad: ([l, o]) => PersistentChannel.load((l ?? loc) as never, o as never),
      send: ([p]) => alice.send(p as Uint8Array),
      receive: ([x, o]) => bob.receive((x ?? m) as Uint8Array, o as never),
      ack: ([x]) => bob.ack(x as string),
      pending: () => bob.pending(),
      close: ([o]) => PersistentChannel.load(loc).then((c) => c?.close(o as never)),
      kmCreate: ([l, mgr]) => StoredKeyManager.create(l as never, mgr as never),
      kmLoad: ([l]) => StoredKeyManager.load(l as never),
      accept: ([e, o]) => keys.acceptChannel((e ?? establishment) as never, o as never),
      acceptOpts: ([p, ad, r]) =>
        keys.acceptChannel(establishment, {
          sessions: store,
          peerDid: p as string,
          associatedData: ad as Uint8Array,
          replaceSession: r as boolean,
        }),
      update: ([f]) => keys.update(f as never),
      maintain: ([d, p]) => maintainPreKeys(keys, (d ?? store) as never, p as never),
      maintainPolicy: ([a, b, c]) =>
        maintainPreKeys(keys, store, { minOneTimePreKeys: a as number, targetOneTimePreKeys: b as number, now: c as never }),
    };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...Object.keys(fns)), fc.array(arg, { maxLength: 3 }), async (fn, args) => {
        await typedOnly(() => fns[fn](args));
      }),
      { numRuns: 1500 },
    );
  }, 300_000);
});

// ---------------------------------------------------------------------------------------------
// Hostile objects: throwing getters, Proxies whose traps throw, fake and proxied Uint8Arrays.
// Made fresh inside each call (fast-check would itself trip over them), put in every argument
// position and every field of every object argument, the other arguments valid so deeper checks run.

const boom = (): never => {
  throw new TypeError('hostile getter');
};
/** A Proxy whose every trap throws (get, has, getPrototypeOf, ownKeys, ...). */
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
      defineProperty: boom,
      deleteProperty: boom,
      isExtensible: boom,
      preventExtensions: boom,
      setPrototypeOf: boom,
    },
  );
/** Every field name a store entry point reads off an object argument, each a throwing getter. */
const STORE_FIELDS = [
  'did',
  'peerDid',
  'localDid',
  'session',
  'keyManager',
  'establishment',
  'data',
  'expectedVersion',
  'id',
  'keyId',
  'publicKey',
  'signedPreKeyId',
  'fingerprint',
  'store',
  'cipher',
  'client',
  'namespace',
  'sessionTtlMs',
  'bundleTtlMs',
  'synchronous',
  'busyTimeoutMs',
  'previousKeys',
  'replace',
  'now',
  'deliver',
  'deleteSaved',
  'sessions',
  'associatedData',
  'channelOptions',
  'replaceSession',
  'minOneTimePreKeys',
  'targetOneTimePreKeys',
  'signedPreKeyMaxAgeMs',
  'signedPreKeyGraceMs',
  'postQuantum',
  'minKemPreKeys',
  'targetKemPreKeys',
  'requirePostQuantum',
  'kemPreKey',
  'kemPreKeyId',
  'kemPreKeySignature',
  'kemCiphertext',
  'keyId',
  'publicKey',
  'signature',
  'identityKey',
  'identityKeyEd',
  'signedPreKey',
  'signedPreKeySignature',
  'oneTimePreKey',
  'oneTimePreKeyId',
  'initiatorIdentityKey',
  'ephemeralPublicKey',
  'usedOneTimeKeyId',
  'version',
  'length',
];
const throwingGetters = (): object => {
  const o = {};
  for (const k of STORE_FIELDS) Object.defineProperty(o, k, { get: boom, enumerable: true });
  return o;
};
/** The hostile values, by name (the name is printed when one escapes untyped). */
const HOSTILE: Record<string, () => unknown> = {
  throwingGetters,
  throwingProxy,
  fakeBytes: () => Object.create(Uint8Array.prototype),
  u8Proxy: () => new Proxy(new Uint8Array(32), {}),
  u8ProxyThrowing: () => new Proxy(new Uint8Array(32), { get: boom, getPrototypeOf: boom }),
  arrayProxy: () => new Proxy([{ keyId: 1, publicKey: new Uint8Array(32) }], { get: boom }),
  detached,
  fakeCipher: () => Object.create(StorageCipher.prototype),
  throwingFn: () => boom,
  symbol: () => Symbol('hostile'),
  bigint: () => 1n,
  loneSurrogate: () => '\uD800',
  huge: () => 'x'.repeat(100_000),
  nul: () => null,
  undef: () => undefined,
};

const isPlain = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;

/**
 * Every variant of `args` with one hostile value: in each position, and (two levels deep) in each
 * field of a plain object and each element of an array, the rest kept valid.
 */
function variants(args: readonly unknown[]): { where: string; make: () => unknown[] }[] {
  const out: { where: string; make: () => unknown[] }[] = [];
  const at = (path: string, inner: string): string => `${path}${/^[.[]/.test(inner) ? '' : '='}${inner}`;
  const inside = (v: unknown, depth: number): { where: string; make: () => unknown }[] => {
    const res: { where: string; make: () => unknown }[] = [];
    for (const [name, h] of Object.entries(HOSTILE)) res.push({ where: name, make: h });
    if (depth > 0 && isPlain(v)) {
      for (const k of Object.keys(v)) {
        for (const inner of inside(v[k], depth - 1))
          res.push({ where: at(`.${k}`, inner.where), make: () => ({ ...v, [k]: inner.make() }) });
      }
    }
    if (depth > 0 && Array.isArray(v) && v.length > 0) {
      for (const inner of inside(v[0], depth - 1)) res.push({ where: at('[0]', inner.where), make: () => [inner.make(), ...v.slice(1)] });
    }
    return res;
  };
  args.forEach((a, i) => {
    for (const v of inside(a, 2)) out.push({ where: at(`arg${i}`, v.where), make: () => args.map((x, j) => (j === i ? v.make() : x)) });
  });
  return out;
}

/** Calls `f` with every hostile variant of `valid()`; returns the variants that escaped with an untyped error. */
async function sweep(name: string, valid: () => unknown[], f: (args: unknown[]) => unknown): Promise<string[]> {
  const escaped: string[] = [];
  for (const v of variants(valid())) {
    try {
      await f(v.make());
    } catch (e) {
      try {
        checkTyped(e);
      } catch (why) {
        escaped.push(`${name} ${v.where}: ${(why as Error).message.slice(0, 140)}`);
      }
    }
  }
  return escaped;
}

/** A Proxy over `target` counting the reads of each property (to prove each is read once). */
function counting<T extends object>(target: T): { proxy: T; reads: Map<PropertyKey, number> } {
  const reads = new Map<PropertyKey, number>();
  const proxy = new Proxy(target, {
    get: (t, p, r) => {
      reads.set(p, (reads.get(p) ?? 0) + 1);
      return Reflect.get(t, p, r) as unknown;
    },
  });
  return { proxy, reads };
}
const maxReads = (reads: Map<PropertyKey, number>): number => Math.max(0, ...reads.values());

describe('hostile objects: throwing getters, Proxies, fake Uint8Arrays, in every store entry point (finding 11)', () => {
  beforeAll(() => ready());
  const key32 = (): Uint8Array => makeAgent().getPublicBundle().signedPreKey;

  /** Valid arguments of every store method (`data` a record, the bundle a real one). */
  function storeArgs(): Record<string, () => unknown[]> {
    const agent = makePqAgent(1, 1);
    const bundle = agent.getPublicBundle({ otkId: 0 }); // with the last-resort KEM pre-key
    const [kem] = publicKems(agent);
    const data = utf8('record');
    return {
      storeBundle: () => ['did:mesh:a', bundle],
      getBundle: () => ['did:mesh:a'],
      consumeOneTimeKey: () => ['did:mesh:a', 0],
      claimBundle: () => ['did:mesh:a'],
      addOneTimePreKeys: () => ['did:mesh:a', [{ keyId: 7, publicKey: key32() }]],
      countOneTimePreKeys: () => ['did:mesh:a'],
      addKemPreKeys: () => ['did:mesh:a', [{ keyId: kem.keyId, publicKey: kem.publicKey, signature: kem.signature }]],
      consumeKemPreKey: () => ['did:mesh:a', kem.keyId],
      countKemPreKeys: () => ['did:mesh:a'],
      removeBundle: () => ['did:mesh:z'],
      loadSession: () => ['did:mesh:a', 'did:mesh:b'],
      saveSession: () => ['did:mesh:a', 'did:mesh:b', data, 0],
      deleteSession: () => ['did:mesh:z', 'did:mesh:b'],
      listSessions: () => ['did:mesh:a'],
      saveSessionWithInbox: () => ['did:mesh:a', 'did:mesh:c', data, 0, { id: 'm1', data }],
      loadInboxEntry: () => ['did:mesh:a', 'did:mesh:c', 'm1'],
      listInbox: () => ['did:mesh:a', 'did:mesh:c'],
      deleteInboxEntry: () => ['did:mesh:a', 'did:mesh:c', 'm1'],
      loadKeyManager: () => ['did:mesh:a'],
      saveKeyManager: () => ['did:mesh:a', data, 0],
      deleteKeyManager: () => ['did:mesh:z'],
      markEstablishment: () => ['did:mesh:a', 1, 'fp'],
      forgetEstablishments: () => ['did:mesh:a', 1],
      saveAcceptance: () => [
        { did: 'did:mesh:a', peerDid: 'did:mesh:d', session: { data, expectedVersion: 0 }, keyManager: { data, expectedVersion: 0 } },
      ],
      saveAcceptanceEst: () => [
        {
          did: 'did:mesh:a',
          peerDid: 'did:mesh:e',
          session: { data, expectedVersion: 0 },
          establishment: { signedPreKeyId: 1, fingerprint: 'fp' },
        },
      ],
    };
  }

  async function sweepStore(name: string, store: AgentStore): Promise<string[]> {
    const escaped: string[] = [];
    const m = store as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const [method, valid] of Object.entries(storeArgs())) {
      const real = method === 'saveAcceptanceEst' ? 'saveAcceptance' : method;
      escaped.push(...(await sweep(`${name}#${method}`, valid, (args) => m[real].apply(store, args))));
    }
    return escaped;
  }

  let files = 0;
  it('InMemoryStore and SqliteStore: every method', async () => {
    const sqlite = new SqliteStore(join(dir, `hostile-${++files}.sqlite`), { synchronous: 'NORMAL' });
    try {
      expect([...(await sweepStore('InMemoryStore', new InMemoryStore())), ...(await sweepStore('SqliteStore', sqlite))]).toEqual([]);
    } finally {
      sqlite.close();
    }
  }, 120_000);

  const { url } = redisTarget();
  (url === null ? it.skip : it)(
    'RedisStore: every method',
    async () => {
      const client = new Redis(url as string, { maxRetriesPerRequest: 1 });
      const ns = randomNamespace();
      try {
        expect(await sweepStore('RedisStore', new RedisStore({ client, namespace: ns }))).toEqual([]);
      } finally {
        await clearPrefix(client, ns);
        client.disconnect();
      }
    },
    120_000,
  );

  it('the store constructors and StorageCipher', async () => {
    const cipher = new StorageCipher(randomBytes(32));
    const blob = cipher.seal(utf8('x'), 'ctx');
    const client = { evalsha: () => Promise.resolve(null) }; // never called: the constructor only checks it
    const escaped = [
      ...(await sweep(
        'new SqliteStore',
        () => [join(dir, `ctor-${++files}.sqlite`), { synchronous: 'NORMAL', busyTimeoutMs: 100 }],
        (a) => new SqliteStore(a[0] as string, a[1] as never).close(),
      )),
      ...(await sweep(
        'new RedisStore',
        () => [{ client, namespace: 'ns', sessionTtlMs: 1000, bundleTtlMs: 1000 }],
        (a) => new RedisStore(a[0] as never),
      )),
      ...(await sweep(
        'new StorageCipher',
        () => [randomBytes(32), { previousKeys: [randomBytes(32)] }],
        (a) => new StorageCipher(a[0] as never, a[1] as never),
      )),
      ...(await sweep(
        'StorageCipher#seal',
        () => [utf8('p'), 'ctx'],
        (a) => cipher.seal(a[0] as never, a[1] as never),
      )),
      ...(await sweep(
        'StorageCipher#open',
        () => [blob, 'ctx'],
        (a) => cipher.open(a[0] as never, a[1] as never),
      )),
      ...(await sweep(
        'StorageCipher#needsReseal',
        () => [blob],
        (a) => cipher.needsReseal(a[0] as never),
      )),
    ];
    expect(escaped).toEqual([]);
  }, 120_000);

  it('PersistentChannel, StoredKeyManager, maintainPreKeys and the helpers', async () => {
    const store = new InMemoryStore();
    const cipher = new StorageCipher(randomBytes(32));
    const { alice, bob } = await openPair(store, cipher);
    const message = await alice.send(utf8('m'));
    const keys = await StoredKeyManager.create({ store, cipher, did: 'did:mesh:k' }, makeAgent(4));
    const est = (): unknown => SecureChannel.createSender(makeAgent(), keys.manager.getPublicBundle()).establishment;
    const fresh = (): SecureChannel => SecureChannel.createSender(makeAgent(), makeAgent(1).getPublicBundle({ otkId: 0 })).channel;
    const loc = { store, cipher, localDid: 'did:mesh:bob', peerDid: 'did:mesh:alice' };
    let peers = 0;
    const PC = PersistentChannel as unknown as new (...a: unknown[]) => unknown;
    const SKM = StoredKeyManager as unknown as new (...a: unknown[]) => unknown;
    const escaped = [
      ...(await sweep(
        'new PersistentChannel',
        () => [loc, fresh(), 1, undefined],
        (a) => new PC(...a),
      )),
      ...(await sweep(
        'PersistentChannel.create',
        () => [{ ...loc, peerDid: `did:mesh:p${++peers}` }, fresh(), { replace: true, now: Date.now }],
        (a) => PersistentChannel.create(a[0] as never, a[1] as never, a[2] as never),
      )),
      ...(await sweep(
        'PersistentChannel.load',
        () => [loc, { now: Date.now }],
        (a) => PersistentChannel.load(a[0] as never, a[1] as never),
      )),
      ...(await sweep(
        'PersistentChannel#send',
        () => [utf8('x')],
        (a) => alice.send(a[0] as never),
      )),
      ...(await sweep(
        'PersistentChannel#receive',
        () => [message.serialize(), { deliver: () => undefined }],
        (a) => bob.receive(a[0] as never, a[1] as never),
      )),
      ...(await sweep(
        'PersistentChannel#ack',
        () => [message],
        (a) => bob.ack(a[0] as never),
      )),
      ...(await sweep(
        'PersistentChannel#close',
        () => [{ deleteSaved: false }],
        (a) => PersistentChannel.load(loc).then((c) => c?.close(a[0] as never)),
      )),
      ...(await sweep(
        'new StoredKeyManager',
        () => [{ store, cipher, did: 'did:mesh:k' }, makeAgent(), 1],
        (a) => new SKM(...a),
      )),
      ...(await sweep(
        'StoredKeyManager.create',
        () => [{ store, cipher, did: `did:mesh:c${++peers}` }, makeAgent()],
        (a) => StoredKeyManager.create(a[0] as never, a[1] as never),
      )),
      ...(await sweep(
        'StoredKeyManager.load',
        () => [{ store, cipher, did: 'did:mesh:k' }],
        (a) => StoredKeyManager.load(a[0] as never),
      )),
      ...(await sweep(
        'StoredKeyManager#acceptChannel',
        () => [est(), { sessions: store, peerDid: `did:mesh:i${++peers}`, replaceSession: false }],
        (a) => keys.acceptChannel(a[0] as never, a[1] as never),
      )),
      ...(await sweep(
        'maintainPreKeys',
        () => [keys, store, { minOneTimePreKeys: 1, targetOneTimePreKeys: 2, now: Date.now }],
        (a) => maintainPreKeys(a[0] as never, a[1] as never, a[2] as never),
      )),
      ...(await sweep(
        'inboxMessageId',
        () => [message],
        (a) => inboxMessageId(a[0] as never),
      )),
      ...(await sweep(
        'sessionContext',
        () => ['did:mesh:a', 'did:mesh:b'],
        (a) => sessionContext(a[0] as never, a[1] as never),
      )),
      ...(await sweep(
        'establishmentFingerprint',
        () => [est()],
        (a) => establishmentFingerprint(a[0] as never),
      )),
    ];
    expect(escaped).toEqual([]);
  }, 300_000);

  it('the constructors of PersistentChannel and StoredKeyManager refuse callers outside the module (INVALID_STATE)', async () => {
    const store = new InMemoryStore();
    const cipher = new StorageCipher(randomBytes(32));
    const PC = PersistentChannel as unknown as new (...a: unknown[]) => unknown;
    const SKM = StoredKeyManager as unknown as new (...a: unknown[]) => unknown;
    await expectE2EErrorAsync(() => new PC(), 'INVALID_STATE');
    await expectE2EErrorAsync(
      () => new PC({ store, cipher, localDid: 'did:mesh:a', peerDid: 'did:mesh:b' }, {}, 1, undefined),
      'INVALID_STATE',
    );
    await expectE2EErrorAsync(() => new SKM(), 'INVALID_STATE');
    await expectE2EErrorAsync(() => new SKM({ store, cipher, did: 'did:mesh:a' }, makeAgent(), 1), 'INVALID_STATE');
  });

  it('a cipher, key manager or channel that only inherits the prototype, or is a Proxy, is refused with INVALID_ARGUMENT', async () => {
    const store = new InMemoryStore();
    const cipher = new StorageCipher(randomBytes(32));
    const keys = await StoredKeyManager.create({ store, cipher, did: 'did:mesh:k' }, makeAgent());
    const fake = Object.create(StorageCipher.prototype) as StorageCipher;
    await expectE2EErrorAsync(
      () => PersistentChannel.load({ store, cipher: fake, localDid: 'did:mesh:a', peerDid: 'did:mesh:b' }),
      'INVALID_ARGUMENT',
    );
    await expectE2EErrorAsync(() => StoredKeyManager.load({ store, cipher: fake, did: 'did:mesh:a' }), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(
      () => maintainPreKeys(Object.create(StoredKeyManager.prototype) as StoredKeyManager, store),
      'INVALID_ARGUMENT',
    );
    await expectE2EErrorAsync(() => maintainPreKeys(new Proxy(keys, {}), store), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => maintainPreKeys(throwingProxy() as never, store), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(
      () => PersistentChannel.create({ store, cipher, localDid: 'did:mesh:a', peerDid: 'did:mesh:b' }, throwingProxy() as never),
      'INVALID_ARGUMENT',
    );
  });

  it('fake and proxied Uint8Arrays: the cipher and inboxMessageId answer with typed errors, a valid blob still opens', async () => {
    const cipher = new StorageCipher(randomBytes(32));
    await expectE2EErrorAsync(() => cipher.needsReseal(Object.create(Uint8Array.prototype)), 'STORE_ERROR', 'unknown_format');
    await expectE2EErrorAsync(() => cipher.open(new Proxy(new Uint8Array(80), {}), 'ctx'), 'STORE_ERROR', 'unknown_format');
    await expectE2EErrorAsync(() => cipher.seal(Object.create(Uint8Array.prototype), 'ctx'), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => cipher.seal(throwingProxy() as never, 'ctx'), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => inboxMessageId(throwingProxy() as never), 'MALFORMED_MESSAGE');
    await expectE2EErrorAsync(() => inboxMessageId(Object.create(Uint8Array.prototype)), 'MALFORMED_MESSAGE');
    // Unchanged for valid input: a Buffer seals and opens, a detached plaintext seals as empty.
    expect(cipher.open(cipher.seal(Buffer.from('abc'), 'ctx'), 'ctx')).toEqual(utf8('abc'));
    expect(cipher.open(cipher.seal(detached(), 'ctx'), 'ctx')).toEqual(new Uint8Array(0));
    expect(cipher.needsReseal(cipher.seal(utf8('x'), 'ctx'))).toBe(false);
  });

  it('every option, location and write object is read once (a getter cannot answer differently on a second read)', async () => {
    const data = utf8('record');
    const stores: [string, AgentStore][] = [
      ['memory', new InMemoryStore()],
      ['sqlite', new SqliteStore(join(dir, `once-${++files}.sqlite`))],
    ];
    for (const [name, store] of stores) {
      const session = counting({ data, expectedVersion: 0 });
      const km = counting({ data, expectedVersion: 0 });
      const write = counting({ did: 'did:mesh:a', peerDid: 'did:mesh:b', session: session.proxy, keyManager: km.proxy });
      expect(await store.saveAcceptance(write.proxy)).toEqual({ keyManagerVersion: 1, sessionVersion: 1 });
      const entry = counting({ id: 'm1', data });
      expect(await store.saveSessionWithInbox('did:mesh:a', 'did:mesh:b', data, 1, entry.proxy)).toBe(2);
      const otk = counting({ keyId: 3, publicKey: key32() });
      const bundle = makeAgent().getPublicBundle();
      await store.storeBundle('did:mesh:o', bundle);
      await store.addOneTimePreKeys('did:mesh:o', [otk.proxy]);
      expect(await store.countOneTimePreKeys('did:mesh:o')).toBe(1);
      const pq = makePqAgent(0, 1);
      await store.storeBundle('did:mesh:p', pq.getPublicBundle());
      const [k] = publicKems(pq);
      const kem = counting({ keyId: k.keyId, publicKey: k.publicKey, signature: k.signature });
      await store.addKemPreKeys('did:mesh:p', [kem.proxy]);
      expect(await store.countKemPreKeys('did:mesh:p')).toBe(1);
      expect([name, ...[write, session, km, entry, otk, kem].map((c) => maxReads(c.reads))]).toEqual([name, 1, 1, 1, 1, 1, 1]);
      await store.close();
    }
    const cipherOpts = counting({ previousKeys: [randomBytes(32)] });
    const cipher = new StorageCipher(randomBytes(32), cipherOpts.proxy);
    const sqliteOpts = counting({ synchronous: 'NORMAL' as const, busyTimeoutMs: 100 });
    new SqliteStore(join(dir, `once-${++files}.sqlite`), sqliteOpts.proxy).close();
    const redisOpts = counting({ client: { evalsha: () => undefined } as never, namespace: 'ns' });
    new RedisStore(redisOpts.proxy);
    const store = new InMemoryStore();
    const loc = counting({ store, cipher, localDid: 'did:mesh:a', peerDid: 'did:mesh:b' });
    const createOpts = counting({ replace: true });
    const fresh = SecureChannel.createSender(makeAgent(), makeAgent(1).getPublicBundle({ otkId: 0 })).channel;
    await PersistentChannel.create(loc.proxy, fresh, createOpts.proxy);
    const loadLoc = counting({ store, cipher, localDid: 'did:mesh:a', peerDid: 'did:mesh:b' });
    const loadOpts = counting({ now: Date.now });
    expect(await PersistentChannel.load(loadLoc.proxy, loadOpts.proxy)).not.toBeNull();
    const kmLoc = counting({ store, cipher, did: 'did:mesh:k' });
    const keys = await StoredKeyManager.create(kmLoc.proxy, makeAgent(2));
    const kmLoadLoc = counting({ store, cipher, did: 'did:mesh:k' });
    expect(await StoredKeyManager.load(kmLoadLoc.proxy)).not.toBeNull();
    const policy = counting({ minOneTimePreKeys: 1, targetOneTimePreKeys: 2 });
    await maintainPreKeys(keys, store, policy.proxy);
    const { establishment } = SecureChannel.createSender(makeAgent(), keys.manager.getPublicBundle());
    const acceptOpts = counting({ sessions: store, peerDid: 'did:mesh:i', requirePostQuantum: false, channelOptions: { maxSkip: 10 } });
    expect((await keys.acceptChannel(establishment, acceptOpts.proxy)).peerDid).toBe('did:mesh:i');
    const counts = [cipherOpts, sqliteOpts, redisOpts, loc, createOpts, loadLoc, loadOpts, kmLoc, kmLoadLoc, policy, acceptOpts].map((c) =>
      maxReads(c.reads),
    );
    expect(counts).toEqual(counts.map(() => 1));
  });
});
