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
  AgentStore, InMemoryStore, PersistentChannel, RedisStore, SqliteStore, StorageCipher, StoredKeyManager, establishmentFingerprint,
  inboxMessageId, maintainPreKeys, sessionContext,
} from '../../lib/store';
import { clearPrefix, makeAgent, openPair, randomNamespace, redisTarget } from './helpers';

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
  fc.record({ id: fc.constantFrom<unknown>('m', '\uD800', 1, null), data: fc.constantFrom<unknown>(null, new Uint8Array(0), 'x', detached()) }),
);

function checkTyped(e: unknown): void {
  if (!(e instanceof E2EError)) throw new Error(`untyped error escaped: ${String((e as Error)?.name ?? typeof e)}: ${String((e as Error)?.message ?? e)}`);
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
    'storeBundle', 'getBundle', 'consumeOneTimeKey', 'claimBundle', 'addOneTimePreKeys', 'countOneTimePreKeys', 'removeBundle',
    'loadSession', 'saveSession', 'deleteSession', 'listSessions', 'saveSessionWithInbox', 'loadInboxEntry', 'listInbox', 'deleteInboxEntry',
    'loadKeyManager', 'saveKeyManager', 'deleteKeyManager', 'markEstablishment', 'forgetEstablishments', 'saveAcceptance',
  ];
  const calls: Record<string, Call> = {};
  for (const n of names) calls[n] = (args) => a[n].apply(s, args);
  if (s instanceof RedisStore) calls.clearNamespace = () => undefined; // takes no input
  return calls;
}

const valid: fc.Arbitrary<unknown> = fc.constantFrom<unknown>('did:mesh:a', 'did:mesh:b', 0, 1, utf8('x'), 'm1', 'fp', { id: 'm1', data: utf8('p') });
const arg = fc.oneof({ weight: 2, arbitrary: valid }, { weight: 3, arbitrary: hostile });

function fuzzStore(name: string, open: () => Promise<AgentStore>, runs: number): void {
  it(`${name}: only E2EErrors from every method, whatever the arguments (generative)`, async () => {
    const store = await open();
    try {
      const calls = storeCalls(store);
      await fc.assert(fc.asyncProperty(fc.constantFrom(...Object.keys(calls)), fc.array(arg, { maxLength: 6 }), async (method, args) => {
        await typedOnly(() => calls[method](args));
      }), { numRuns: runs });
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

  it('maintainPreKeys: a directory of the application\'s own that throws foreign errors gives STORE_ERROR with the cause', async () => {
    const store = new InMemoryStore();
    const cipher = new StorageCipher(randomBytes(32));
    const keys = await StoredKeyManager.create({ store, cipher, did: 'did:mesh:m' }, makeAgent(0));
    for (const method of ['countOneTimePreKeys', 'getBundle', 'storeBundle', 'addOneTimePreKeys']) {
      const boom = new RangeError('driver exploded');
      const directory = new Proxy(store, {
        get: (t, p) => (p === method ? () => { throw boom; } : (Reflect.get(t, p) as (...a: unknown[]) => unknown).bind(t)),
      });
      let thrown: unknown;
      try {
        await maintainPreKeys(keys, directory, { minOneTimePreKeys: 1, targetOneTimePreKeys: 1 });
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(E2EError);
      expect([(thrown as E2EError).code, (thrown as E2EError).reason, (thrown as { cause?: unknown }).cause]).toEqual(['STORE_ERROR', 'backend', boom]);
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
      SqliteStore: ([p, o]) => new SqliteStore(typeof p === 'string' && p.length < 50 ? join(dir, `c-${++files}-${p.replace(/[/\\]/g, '')}`) : (p as string), o as never),
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
      acceptOpts: ([p, ad, r]) => keys.acceptChannel(establishment, { sessions: store, peerDid: p as string, associatedData: ad as Uint8Array, replaceSession: r as boolean }),
      update: ([f]) => keys.update(f as never),
      maintain: ([d, p]) => maintainPreKeys(keys, (d ?? store) as never, p as never),
      maintainPolicy: ([a, b, c]) => maintainPreKeys(keys, store, { minOneTimePreKeys: a as number, targetOneTimePreKeys: b as number, now: c as never }),
    };
    await fc.assert(fc.asyncProperty(fc.constantFrom(...Object.keys(fns)), fc.array(arg, { maxLength: 3 }), async (fn, args) => {
      await typedOnly(() => fns[fn](args));
    }), { numRuns: 1500 });
  }, 300_000);
});
