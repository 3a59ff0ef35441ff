/**
 * The pooled CSPRNG (lib/entropy.ts): draws come from the platform's getRandomValues 4 KiB at a
 * time, are handed out once and wiped from the pool; large draws bypass the pool; the test hook
 * makes everything deterministic. The platform call is observed with a spy on
 * `globalThis.crypto.getRandomValues` (which also hands us a view of the pool).
 */
import { ed25519KeyPair, randomBytes, randomSecretBytes, toHex, x25519KeyPair, x25519PublicKey } from '../lib/crypto';
import { fillRandom, randomUint32, setRandomSourceForTesting } from '../lib/entropy';
import { randomFillSync } from 'node:crypto';
import { ready, sodium } from '../lib/sodium';
import { expectE2EError } from './helpers/expect-error';

beforeAll(() => ready());

/** Byte i of every platform fill: never zero, so wiped bytes are visible. */
const pattern = (i: number): number => (i % 255) + 1;

let spy: jest.SpyInstance<ArrayBufferView | null, [ArrayBufferView | null]>;

function spyOnPlatform(deterministic: boolean): void {
  spy = jest.spyOn(globalThis.crypto, 'getRandomValues') as typeof spy;
  if (deterministic) {
    spy.mockImplementation((view) => {
      const bytes = new Uint8Array((view as Uint8Array).buffer, (view as Uint8Array).byteOffset, (view as Uint8Array).length);
      for (let i = 0; i < bytes.length; i++) bytes[i] = pattern(i);
      return view;
    });
  }
}

/** Sizes of the views the platform was asked to fill, in order. */
const platformCalls = (): number[] => spy.mock.calls.map(([v]) => (v as Uint8Array).length);

beforeEach(() => setRandomSourceForTesting(null)); // also empties the pool: the next small draw refills
afterEach(() => {
  spy?.mockRestore();
  setRandomSourceForTesting(null);
});

describe('the pool', () => {
  test('small draws come from one 4 KiB platform call, in order, each byte handed out once', () => {
    spyOnPlatform(true);
    const a = new Uint8Array(12);
    const b = new Uint8Array(12);
    fillRandom(a);
    fillRandom(b);
    expect(platformCalls()).toEqual([4096]);
    expect(Array.from(a)).toEqual(Array.from({ length: 12 }, (_, i) => pattern(i)));
    expect(Array.from(b)).toEqual(Array.from({ length: 12 }, (_, i) => pattern(12 + i)));
  });

  test('what was handed out is wiped from the pool; the rest is untouched', () => {
    spyOnPlatform(true);
    fillRandom(new Uint8Array(12));
    const pool = spy.mock.calls[0][0] as Uint8Array; // the view getRandomValues filled is the pool
    expect(pool.subarray(0, 12)).toEqual(new Uint8Array(12));
    expect(pool[12]).toBe(pattern(12));
    expect(pool[4095]).toBe(pattern(4095));
    fillRandom(new Uint8Array(20));
    expect(pool.subarray(0, 32)).toEqual(new Uint8Array(32));
    expect(pool[32]).toBe(pattern(32));
  });

  test('the pool is used to its last byte, wiped whole, then refilled', () => {
    spyOnPlatform(true);
    const out = new Uint8Array(256);
    for (let i = 0; i < 16; i++) fillRandom(out); // 16 × 256 = 4096: exactly one pool
    expect(platformCalls()).toEqual([4096]);
    expect(Array.from(out)).toEqual(Array.from({ length: 256 }, (_, i) => pattern(3840 + i)));
    const pool = spy.mock.calls[0][0] as Uint8Array;
    expect(pool).toEqual(new Uint8Array(4096));
    const one = new Uint8Array(1);
    fillRandom(one);
    expect(platformCalls()).toEqual([4096, 4096]);
    expect(one[0]).toBe(pattern(0));
  });

  test('a draw that does not fit in what is left refills the whole pool first', () => {
    spyOnPlatform(true);
    for (let i = 0; i < 15; i++) fillRandom(new Uint8Array(256));
    fillRandom(new Uint8Array(250)); // 4090 of 4096 used
    const a = new Uint8Array(12);
    fillRandom(a);
    expect(platformCalls()).toEqual([4096, 4096]);
    expect(Array.from(a)).toEqual(Array.from({ length: 12 }, (_, i) => pattern(i)));
  });

  test('256 bytes still come from the pool; 257 go straight to the platform into the output', () => {
    spyOnPlatform(true);
    fillRandom(new Uint8Array(256));
    expect(platformCalls()).toEqual([4096]);
    const big = new Uint8Array(257);
    fillRandom(big);
    expect(platformCalls()).toEqual([4096, 257]);
    expect((spy.mock.calls[1][0] as Uint8Array).buffer).toBe(big.buffer);
    // The pool was not touched by the direct draw: the next small draw continues at byte 256.
    const next = new Uint8Array(2);
    fillRandom(next);
    expect(platformCalls()).toEqual([4096, 257]);
    expect(Array.from(next)).toEqual([pattern(256), pattern(257)]);
  });

  test('an empty draw costs nothing', () => {
    spyOnPlatform(true);
    fillRandom(new Uint8Array(0));
    expect(platformCalls()).toEqual([]);
  });
});

describe('large draws', () => {
  test('100 KiB is split into the platform limit of 65,536 bytes per call', () => {
    spyOnPlatform(false);
    const out = randomBytes(100 * 1024);
    expect(out).toHaveLength(102400);
    expect(platformCalls()).toEqual([65536, 36864]);
    const [first, second] = spy.mock.calls.map(([v]) => v as Uint8Array);
    expect([first.buffer, first.byteOffset]).toEqual([out.buffer, 0]);
    expect([second.buffer, second.byteOffset]).toEqual([out.buffer, 65536]);
  });

  test('100 KiB of real randomness: not all zero, and two draws differ', () => {
    const a = randomBytes(100 * 1024);
    const b = randomBytes(100 * 1024);
    expect(a.some((x) => x !== 0)).toBe(true);
    expect(a.subarray(65536).some((x) => x !== 0)).toBe(true); // the second platform chunk was filled
    expect(toHex(a.subarray(0, 32))).not.toBe(toHex(b.subarray(0, 32)));
  });

  test('real small draws differ from each other', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) seen.add(toHex(randomBytes(12)));
    expect(seen.size).toBe(100);
  });
});

describe('randomUint32', () => {
  test('is the next 4 bytes, big-endian, unsigned', () => {
    const queue = [Uint8Array.of(1, 2, 3, 4), Uint8Array.of(0xff, 0xff, 0xff, 0xff), Uint8Array.of(0x80, 0, 0, 0)];
    setRandomSourceForTesting((out) => out.set(queue.shift() as Uint8Array));
    expect(randomUint32()).toBe(0x01020304);
    expect(randomUint32()).toBe(4294967295);
    expect(randomUint32()).toBe(0x80000000);
  });
});

describe('setRandomSourceForTesting', () => {
  const counter = (): ((out: Uint8Array) => void) => {
    let n = 0;
    return (out) => {
      for (let i = 0; i < out.length; i++) out[i] = n++ & 0xff;
    };
  };

  test('makes randomBytes deterministic, large draws included', () => {
    setRandomSourceForTesting(counter());
    expect(toHex(randomBytes(4))).toBe('00010203');
    expect(toHex(randomBytes(2))).toBe('0405');
    expect(randomBytes(300)[0]).toBe(6);
    setRandomSourceForTesting(counter());
    expect(toHex(randomBytes(4))).toBe('00010203');
  });

  test('makes x25519KeyPair deterministic: the private key is the next 32 bytes', () => {
    setRandomSourceForTesting(counter());
    const a = x25519KeyPair();
    setRandomSourceForTesting(counter());
    const b = x25519KeyPair();
    expect(toHex(a.privateKey)).toBe(toHex(Uint8Array.from({ length: 32 }, (_, i) => i)));
    expect(b.privateKey).toEqual(a.privateKey);
    expect(b.publicKey).toEqual(x25519PublicKey(a.privateKey));
  });

  test('null restores the platform CSPRNG (and a fresh pool)', () => {
    setRandomSourceForTesting(() => undefined); // a source that writes nothing: all zeros
    expect(randomBytes(16)).toEqual(new Uint8Array(16));
    setRandomSourceForTesting(null);
    spyOnPlatform(false);
    const a = randomBytes(16);
    expect(platformCalls()).toEqual([4096]);
    expect(a.some((x) => x !== 0)).toBe(true);
  });

  test('the injected source replaces the pool: no platform call while it is set', () => {
    spyOnPlatform(false);
    setRandomSourceForTesting(counter());
    randomBytes(12);
    randomBytes(70000);
    x25519KeyPair();
    expect(platformCalls()).toEqual([]);
  });
});

describe("libsodium's own randomness", () => {
  test('its getRandomValue hook is our randomUint32', () => {
    expect(sodium().raw.getRandomValue).toBe(randomUint32);
  });

  test('so libsodium draws through the injected source too (deterministic randombytes_buf)', () => {
    const fixed = (out: Uint8Array): void => out.set([0x11, 0x22, 0x33, 0x44].slice(0, out.length));
    setRandomSourceForTesting(fixed);
    const a = sodium().wrapper.randombytes_buf(8);
    const b = sodium().wrapper.randombytes_buf(8);
    expect(a).toEqual(b);
    expect(sodium().wrapper.randombytes_random()).toBe(0x11223344);
  });
});

describe('a platform without crypto.getRandomValues', () => {
  test('refuses to load the module rather than fall back to a weak source', () => {
    const desc = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
    Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true, writable: true });
    try {
      jest.isolateModules(() => {
        expect(() => require('../lib/entropy')).toThrow(/getRandomValues/);
      });
    } finally {
      if (desc) Object.defineProperty(globalThis, 'crypto', desc);
    }
    expect(typeof globalThis.crypto.getRandomValues).toBe('function');
  });
});

describe('secret keys never come from the pool (finding 7a)', () => {
  /** Records a copy of what the platform wrote into each view, so pool bytes can be recognised later. */
  function recordPlatform(): { views: Uint8Array[]; written: Uint8Array[] } {
    const views: Uint8Array[] = [];
    const written: Uint8Array[] = [];
    spy = jest.spyOn(globalThis.crypto, 'getRandomValues') as typeof spy;
    spy.mockImplementation((view) => {
      const v = view as Uint8Array;
      // Real randomness from another API, so any pool byte that ended up in a key would show.
      randomFillSync(v);
      views.push(v);
      written.push(Uint8Array.from(v));
      return view;
    });
    return { views, written };
  }

  const contains = (hay: Uint8Array, needle: Uint8Array): boolean => toHex(hay).includes(toHex(needle));

  test('x25519KeyPair: one platform call that writes into the private key itself', () => {
    randomBytes(1); // make sure a pool exists and is partly used
    const { views } = recordPlatform();
    const kp = x25519KeyPair();
    expect(views).toHaveLength(1);
    expect(views[0].buffer).toBe(kp.privateKey.buffer);
    expect(views[0].byteOffset).toBe(0);
    expect(kp.privateKey.byteOffset).toBe(0);
    expect(kp.privateKey.buffer.byteLength).toBe(32); // fresh memory of its own, not a slice of a larger pool
  });

  test('with a fresh pool filled first, no pool byte becomes key bytes (X25519, Ed25519, randomSecretBytes)', () => {
    const { views, written } = recordPlatform();
    randomBytes(12); // fills the 4 KiB pool
    expect(views.map((v) => v.length)).toEqual([4096]);
    const pool = written[0];
    const x = x25519KeyPair();
    const ed = ed25519KeyPair();
    const s = randomSecretBytes(32);
    // Three direct 32-byte draws, none of them the pool.
    expect(views.map((v) => v.length)).toEqual([4096, 32, 32, 32]);
    expect(views.slice(1).some((v) => v.buffer === views[0].buffer)).toBe(false);
    expect(x.privateKey).toEqual(written[1]);
    expect(ed.secretKey.subarray(0, 32)).toEqual(written[2]);
    expect(s).toEqual(written[3]);
    for (const key of [x.privateKey, ed.secretKey.subarray(0, 32), s]) expect(contains(pool, key)).toBe(false);
    // The Ed25519 seed buffer is wiped after use.
    expect(views[2]).toEqual(new Uint8Array(32));
  });

  test('pre-keys, ephemeral and ratchet keys follow the same path (a channel set-up never drains the pool for keys)', () => {
    const { views } = recordPlatform();
    randomBytes(1);
    const before = views.length;
    for (let i = 0; i < 5; i++) x25519KeyPair();
    expect(views.slice(before).map((v) => v.length)).toEqual([32, 32, 32, 32, 32]);
  });

  test('the injected test source serves both paths, in call order', () => {
    let n = 0;
    setRandomSourceForTesting((out) => {
      for (let i = 0; i < out.length; i++) out[i] = n++ & 0xff;
    });
    const spyCalls = jest.spyOn(globalThis.crypto, 'getRandomValues');
    const nonce = randomBytes(4);
    const key = randomSecretBytes(4);
    expect(toHex(nonce)).toBe('00010203');
    expect(toHex(key)).toBe('04050607');
    expect(spyCalls).not.toHaveBeenCalled();
    spyCalls.mockRestore();
  });

  test('randomSecretBytes checks its length like randomBytes', () => {
    for (const bad of [-1, 1.5, NaN, 2 ** 25, '32' as unknown as number]) {
      expectE2EError(() => randomSecretBytes(bad), 'INVALID_ARGUMENT');
    }
    expect(randomSecretBytes(0)).toHaveLength(0);
  });
});
