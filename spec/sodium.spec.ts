/**
 * The async init layer (lib/sodium.ts): ready() loads once, is idempotent and safe to call
 * concurrently, points libsodium's randomness at our pool, and a failed load is a typed NOT_READY
 * that can be retried. Fresh module state comes from jest.isolateModules.
 */
import { randomUint32 } from '../lib/entropy';
import { E2EError } from '../lib/errors';
import { RawSodium, isReady, ready, sodium } from '../lib/sodium';

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
