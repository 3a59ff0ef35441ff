/**
 * The async init layer (lib/sodium.ts): ready() loads once, is idempotent and safe to call
 * concurrently, points libsodium's randomness at our pool, and a failed load is a typed NOT_READY
 * that can be retried; the backends of X25519 and Ed25519 (auto, wasm, native) and their errors.
 * Fresh module state comes from jest.isolateModules.
 */
import { randomUint32 } from '../lib/entropy';
import { E2EError } from '../lib/errors';
import { Backend, RawSodium, ReadyOptions, backend, isReady, ready, sodium } from '../lib/sodium';

type SodiumModule = typeof import('../lib/sodium');
type EntropyModule = typeof import('../lib/entropy');

/** lib/sodium.ts (and its lib/entropy.ts) loaded afresh, over the real libsodium or a fake one. */
function freshSodium(fakeWrapper?: object): { mod: SodiumModule; entropy: EntropyModule } {
  let mod: SodiumModule | undefined;
  let entropy: EntropyModule | undefined;
  jest.isolateModules(() => {
    if (fakeWrapper) jest.doMock('libsodium-wrappers-sumo', () => fakeWrapper);
    mod = require('../lib/sodium') as SodiumModule;
    entropy = require('../lib/entropy') as EntropyModule;
  });
  jest.dontMock('libsodium-wrappers-sumo');
  return { mod: mod as SodiumModule, entropy: entropy as EntropyModule };
}

/** A stand-in for libsodium-wrappers-sumo whose `ready` fails the first `failures` times. */
function fakeWrapper(failures: number, reason: unknown = new Error('wasm instantiation failed: secret detail')) {
  const raw = { getRandomValue: () => 0 } as unknown as RawSodium;
  const state = { readyReads: 0, raw };
  const wrapper = {
    get ready(): Promise<void> {
      state.readyReads++;
      return state.readyReads <= failures ? Promise.reject(reason) : Promise.resolve();
    },
    libsodium: raw,
  };
  return { wrapper, state };
}

describe('ready()', () => {
  test('declares no parameter, so `beforeAll(ready)` is not taken for a hook with a done callback', () => {
    expect(ready.length).toBe(0);
  });

  test('resolves, and then the library is loaded', async () => {
    await expect(ready()).resolves.toBeUndefined();
    expect(isReady()).toBe(true);
    expect(sodium().raw.HEAPU8).toBeInstanceOf(Uint8Array);
    expect(typeof sodium().wrapper.crypto_hash_sha256).toBe('function');
  });

  test('is idempotent: every later call returns the same resolved promise', async () => {
    const p = ready();
    expect(ready()).toBe(p);
    await p;
    expect(ready()).toBe(p);
    const loaded = sodium();
    await ready();
    expect(sodium()).toBe(loaded);
  });

  test('many concurrent first calls share one promise and one load', async () => {
    const { wrapper, state } = fakeWrapper(0);
    const { mod } = freshSodium(wrapper);
    expect(mod.isReady()).toBe(false);
    const calls = Array.from({ length: 50 }, () => mod.ready());
    expect(new Set(calls).size).toBe(1);
    expect(mod.isReady()).toBe(false); // not before the promise settles
    await Promise.all(calls);
    expect(mod.isReady()).toBe(true);
    expect(state.readyReads).toBe(1);
    expect(mod.sodium().raw).toBe(state.raw);
  });

  test('concurrent calls on a fresh copy of the real libsodium all resolve', async () => {
    const { mod, entropy } = freshSodium();
    await expect(Promise.all(Array.from({ length: 20 }, () => mod.ready()))).resolves.toHaveLength(20);
    expect(mod.isReady()).toBe(true);
    // The real module (not a leftover fake): a working libsodium, hooked to this copy's pool.
    expect(mod.sodium().wrapper.to_hex(mod.sodium().wrapper.crypto_hash_sha256(new Uint8Array(0)))).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(mod.sodium().raw.getRandomValue).toBe(entropy.randomUint32);
  });
});

describe('libsodium randomness', () => {
  test("after ready(), libsodium's getRandomValue hook is our pooled randomUint32", async () => {
    await ready();
    expect(sodium().raw.getRandomValue).toBe(randomUint32);
  });

  test('the hook is installed by load itself (also on a fake module)', async () => {
    const { wrapper, state } = fakeWrapper(0);
    const { mod, entropy } = freshSodium(wrapper);
    await mod.ready();
    expect(state.raw.getRandomValue).toBe(entropy.randomUint32);
  });
});

describe('a failed load', () => {
  test('rejects with NOT_READY, without the underlying message, and leaves the library unloaded', async () => {
    const { wrapper } = fakeWrapper(1);
    const { mod } = freshSodium(wrapper);
    const err = await mod.ready().then(
      () => null,
      (e: unknown) => e,
    );
    // Jest's module registry gives the isolated copy its own E2EError class: compare by shape.
    expect(err).toMatchObject({ name: 'E2EError', code: 'NOT_READY', message: 'libsodium failed to load: Error' });
    expect(err).not.toBeInstanceOf(E2EError);
    expect(String((err as Error).message)).not.toMatch(/secret detail/);
    expect(mod.isReady()).toBe(false);
    expect(() => mod.sodium()).toThrow(expect.objectContaining({ code: 'NOT_READY' }));
  });

  test('a rejection that is not an Error is reported as "unknown error"', async () => {
    const { wrapper } = fakeWrapper(1, 'a string');
    const { mod } = freshSodium(wrapper);
    await expect(mod.ready()).rejects.toMatchObject({ code: 'NOT_READY', message: 'libsodium failed to load: unknown error' });
  });

  test('can be retried: the next call loads again and succeeds', async () => {
    const { wrapper, state } = fakeWrapper(1);
    const { mod } = freshSodium(wrapper);
    const first = mod.ready();
    await expect(first).rejects.toMatchObject({ code: 'NOT_READY' });
    const second = mod.ready();
    expect(second).not.toBe(first);
    await expect(second).resolves.toBeUndefined();
    expect(state.readyReads).toBe(2);
    expect(mod.isReady()).toBe(true);
    expect(mod.ready()).toBe(second);
  });
});

/**
 * lib/sodium.ts loaded afresh over the real libsodium, with sodium-native replaced by `native` (a
 * factory that may throw) until the test ends: the binding is imported when ready() runs. Errors
 * come from the fresh copy's lib/errors.ts, so they are checked by code, not by class.
 */
function freshWithNative(native: () => unknown): SodiumModule {
  let mod: SodiumModule | undefined;
  jest.isolateModules(() => {
    jest.doMock('sodium-native', native);
    mod = require('../lib/sodium') as SodiumModule;
  });
  return mod as SodiumModule;
}

function missingNative(): never {
  throw Object.assign(new Error("Cannot find module 'sodium-native'"), { code: 'MODULE_NOT_FOUND' });
}

describe('backends', () => {
  afterEach(() => jest.dontMock('sodium-native'));
  afterAll(() => ready({ backend: 'auto' }));

  test("auto picks sodium-native under Node when it loads; 'wasm' and 'native' select; ready() alone keeps the choice", async () => {
    await ready({ backend: 'auto' });
    expect(backend()).toBe('native');
    expect(sodium().native).not.toBeNull();
    await ready({ backend: 'wasm' });
    expect(backend()).toBe('wasm');
    expect(sodium().native).toBeNull();
    await ready();
    expect(backend()).toBe('wasm');
    await ready({ backend: 'native' });
    expect(backend()).toBe('native');
    await ready();
    expect(backend()).toBe('native');
  });

  test('calls with options take effect in the order they were made', async () => {
    const a = ready({ backend: 'wasm' });
    const b = ready({ backend: 'native' });
    const c = ready({ backend: 'wasm' });
    await Promise.all([a, b, c]);
    expect(backend()).toBe('wasm');
    expect(ready()).toBe(c);
  });

  test('an unknown backend is INVALID_ARGUMENT and changes nothing', async () => {
    await ready({ backend: 'native' });
    await expect(ready({ backend: 'gpu' as unknown as Backend })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(backend()).toBe('native');
  });

  test('options whose getter throws are INVALID_ARGUMENT, never a synchronous throw', async () => {
    const hostile = Object.defineProperty({}, 'backend', {
      get: () => {
        throw new TypeError('hostile getter');
      },
    }) as ReadyOptions;
    await expect(ready(hostile)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  test('auto falls back to WASM when sodium-native is missing', async () => {
    const mod = freshWithNative(missingNative);
    await mod.ready();
    expect(mod.backend()).toBe('wasm');
  });

  test("'native' when sodium-native is missing: NOT_READY with the loader's error as cause and an install hint; the library stays as it was", async () => {
    const mod = freshWithNative(missingNative);
    const err = (await mod.ready({ backend: 'native' }).catch((e: unknown) => e)) as E2EError;
    expect(err.name).toBe('E2EError');
    expect(err.code).toBe('NOT_READY');
    expect(err.reason).toBe('backend_unavailable');
    expect((err.cause as Error).message).toContain("Cannot find module 'sodium-native'");
    expect(err.message).toMatch(/\nHint: install it with `npm install sodium-native`/);
    expect(mod.isReady()).toBe(false);
    // A later call without options loads (auto: WASM here).
    await mod.ready();
    expect(mod.backend()).toBe('wasm');
    // Asking again fails again and keeps the WASM backend working.
    await expect(mod.ready({ backend: 'native' })).rejects.toMatchObject({ code: 'NOT_READY' });
    expect(mod.backend()).toBe('wasm');
    expect(mod.ready()).toBeInstanceOf(Promise);
    await mod.ready();
    expect(mod.backend()).toBe('wasm');
  });

  test('a sodium-native without the functions we call is refused like a missing one', async () => {
    const mod = freshWithNative(() => ({ crypto_scalarmult: () => undefined }));
    const err = (await mod.ready({ backend: 'native' }).catch((e: unknown) => e)) as E2EError;
    expect(err.code).toBe('NOT_READY');
    expect((err.cause as Error).message).toMatch(/has no crypto_scalarmult_base/);
  });

  test('outside Node (Bun, Deno, browsers) auto is WASM and native is NOT_READY, without touching sodium-native', async () => {
    const g = globalThis as { Bun?: unknown };
    const factory = jest.fn(missingNative);
    const mod = freshWithNative(factory);
    g.Bun = {};
    try {
      await mod.ready();
      expect(mod.backend()).toBe('wasm');
      const err = (await mod.ready({ backend: 'native' }).catch((e: unknown) => e)) as E2EError;
      expect(err.code).toBe('NOT_READY');
      expect(err.message).toMatch(/Hint: sodium-native runs under Node only/);
      expect(factory).not.toHaveBeenCalled();
    } finally {
      delete g.Bun;
    }
  });
});
