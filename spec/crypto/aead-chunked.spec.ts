/**
 * The chunked ChaCha20-Poly1305 path (lib/crypto/aead-chunked.ts) that large inputs take: the same
 * bytes as libsodium's one-shot functions at every size around its window and the switch-over,
 * forgeries refused before any decryption, and a fixed heap: no input of any size grows it.
 */
import fc from 'fast-check';
import {
  chacha20Poly1305Decrypt,
  chacha20Poly1305Encrypt,
  chainKeyStep,
  randomBytes,
  xchacha20Poly1305Decrypt,
  xchacha20Poly1305Encrypt,
} from '../../lib/crypto';
import { openMessage, openMessageWithKey, sealMessage } from '../../lib/crypto/message-aead';
import { SCRATCH_WORKING_BYTES, scratchCapacity } from '../../lib/crypto/heap';
import { ready, sodium } from '../../lib/sodium';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

const KiB = 1024;
/** Sizes around the one-pass / chunked switch-over and the 64 KiB window. */
const SIZES = [
  0,
  1,
  15,
  16,
  17,
  64 * KiB - 1,
  64 * KiB,
  64 * KiB + 1,
  SCRATCH_WORKING_BYTES - 600,
  SCRATCH_WORKING_BYTES - 500,
  SCRATCH_WORKING_BYTES,
  SCRATCH_WORKING_BYTES + 1,
  3 * 64 * KiB + 7,
  1024 * KiB + 33,
];
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

describe('public AEAD functions, one pass and chunked, against libsodium one-shot', () => {
  const w = (): ReturnType<typeof sodium>['wrapper'] => sodium().wrapper;
  test.each(SIZES)('%d bytes of plaintext (and AD of 0, 13 and 70 KiB)', (size) => {
    for (const adLen of [0, 13, 70 * KiB]) {
      const key = randomBytes(32);
      const pt = randomBytes(size);
      const ad = randomBytes(adLen);
      const n12 = randomBytes(12);
      const n24 = randomBytes(24);
      const c1 = chacha20Poly1305Encrypt(key, n12, pt, ad);
      expect(same(c1, w().crypto_aead_chacha20poly1305_ietf_encrypt(pt, ad, null, n12, key))).toBe(true);
      expect(same(chacha20Poly1305Decrypt(key, n12, c1, ad), pt)).toBe(true);
      const c2 = xchacha20Poly1305Encrypt(key, n24, pt, ad);
      expect(same(c2, w().crypto_aead_xchacha20poly1305_ietf_encrypt(pt, ad, null, n24, key))).toBe(true);
      expect(same(xchacha20Poly1305Decrypt(key, n24, c2, ad), pt)).toBe(true);
      const bad = Uint8Array.from(c1);
      bad[bad.length >> 1] ^= 1;
      expectE2EError(() => chacha20Poly1305Decrypt(key, n12, bad, ad), 'DECRYPT_FAILED');
      const badAd = adLen > 0 ? Uint8Array.from(ad) : Uint8Array.of(1);
      badAd[0] ^= 1;
      expectE2EError(() => xchacha20Poly1305Decrypt(key, n24, c2, badAd), 'DECRYPT_FAILED');
    }
  });
});

describe("the ratchet's fused message AEAD, chunked for large messages", () => {
  /** An envelope (prefix, header, nonce) ready to seal `n` bytes, and the reference ciphertext. */
  function reference(ck: Uint8Array, pt: Uint8Array, ad: Uint8Array): { env: Uint8Array; expected: Uint8Array } {
    const env = new Uint8Array(56 + pt.length + 16);
    env.set([0, 0, 0, 40]);
    env.set(randomBytes(52), 4);
    const mk = new Uint8Array(32);
    chainKeyStep(ck, mk, new Uint8Array(32));
    const fullAd = new Uint8Array(ad.length + 40);
    fullAd.set(ad);
    fullAd.set(env.subarray(4, 44), ad.length);
    const expected = sodium().wrapper.crypto_aead_chacha20poly1305_ietf_encrypt(pt, fullAd, null, env.subarray(44, 56), mk);
    return { env, expected };
  }

  test('seal and open agree with libsodium at every size; a forgery is refused', () => {
    fc.assert(
      fc.property(fc.constantFrom(...SIZES), fc.constantFrom(0, 40, 200 * KiB), (size, adLen) => {
        const ck = randomBytes(32);
        const pt = randomBytes(size);
        const ad = randomBytes(adLen);
        const { env, expected } = reference(ck, pt, ad);
        const sendCk = Uint8Array.from(ck);
        sealMessage(sendCk, env, pt, ad);
        expect(same(env.subarray(56), expected)).toBe(true);
        const next = new Uint8Array(32);
        const opened = openMessage(ck, next, env, ad);
        expect(opened !== null && same(opened, pt)).toBe(true);
        expect(same(next, sendCk)).toBe(true);
        const mk = new Uint8Array(32);
        chainKeyStep(ck, mk, new Uint8Array(32));
        const withKey = openMessageWithKey(mk, env, ad);
        expect(withKey !== null && same(withKey, pt)).toBe(true);
        const forged = Uint8Array.from(env);
        forged[forged.length - 1] ^= 1;
        const untouched = new Uint8Array(32);
        expect(openMessage(ck, untouched, forged, ad)).toBeNull();
        expect(untouched).toEqual(new Uint8Array(32));
        expect(openMessageWithKey(mk, forged, ad)).toBeNull();
      }),
      { numRuns: 30 },
    );
  });

  test('a forged 16 MiB envelope: refused, and the WASM memory and the scratch region do not grow at all', () => {
    const raw = sodium().raw;
    const ck = randomBytes(32);
    const env = new Uint8Array(16 * 1024 * 1024 + 72);
    env.set([0, 0, 0, 40]);
    openMessage(ck, new Uint8Array(32), env.subarray(0, 300 * KiB), new Uint8Array(0)); // warm the chunked path
    const heap = raw.HEAPU8.length;
    const cap = scratchCapacity();
    expect(openMessage(ck, new Uint8Array(32), env, new Uint8Array(0))).toBeNull();
    expect(raw.HEAPU8.length).toBe(heap);
    expect(scratchCapacity()).toBe(cap);
    expect(cap).toBeLessThanOrEqual(SCRATCH_WORKING_BYTES);
  });
});

describe('the chunked path leaves the scratch region wiped', () => {
  test('after large seals and opens, successful and forged', () => {
    const { scratch } = jest.requireActual('../../lib/crypto/heap') as typeof import('../../lib/crypto/heap');
    const dirty = (): number => {
      const { raw, ptr } = scratch(0);
      return raw.HEAPU8.subarray(ptr, ptr + scratchCapacity()).reduce((n, b) => n + (b !== 0 ? 1 : 0), 0);
    };
    // Start from a region at its working size, zeroed: a fresh malloc'd block holds whatever earlier
    // (non-library) allocations left there, e.g. libsodium.js's own reference calls above.
    const start = scratch(SCRATCH_WORKING_BYTES);
    start.raw.HEAPU8.fill(0, start.ptr, start.ptr + scratchCapacity());
    const key = randomBytes(32);
    const pt = randomBytes(300 * KiB);
    const c = chacha20Poly1305Encrypt(key, new Uint8Array(12), pt);
    expect(dirty()).toBe(0);
    chacha20Poly1305Decrypt(key, new Uint8Array(12), c);
    expect(dirty()).toBe(0);
    c[5] ^= 1;
    expectE2EError(() => chacha20Poly1305Decrypt(key, new Uint8Array(12), c), 'DECRYPT_FAILED');
    expect(dirty()).toBe(0);
    const x = xchacha20Poly1305Encrypt(key, new Uint8Array(24), pt);
    expect(dirty()).toBe(0);
    xchacha20Poly1305Decrypt(key, new Uint8Array(24), x);
    expect(dirty()).toBe(0);
    const env = new Uint8Array(56 + pt.length + 16);
    env.set([0, 0, 0, 40]);
    sealMessage(randomBytes(32), env, pt, new Uint8Array(0));
    expect(dirty()).toBe(0);
    openMessage(randomBytes(32), new Uint8Array(32), env, new Uint8Array(0));
    expect(dirty()).toBe(0);
  });
});
