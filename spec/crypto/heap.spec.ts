/**
 * The shared WASM scratch region (lib/crypto/heap.ts): every primitive that puts keys, plaintext
 * or intermediate secrets there wipes them before returning — on success and on failure. Runs on
 * the WASM backend, so that X25519 and Ed25519 use the heap even where sodium-native is installed.
 */
import {
  chacha20Poly1305Decrypt,
  chacha20Poly1305Encrypt,
  chainKeyStep,
  ed25519KeyPairFromSeed,
  ed25519PublicKeyToX25519,
  ed25519SecretKeyToX25519,
  ed25519Sign,
  ed25519Verify,
  hkdfExpand,
  hkdfExtract,
  hkdfSha256,
  hmacSha256,
  utf8,
  x25519,
  x25519PublicKey,
  xchacha20Poly1305Decrypt,
  xchacha20Poly1305Encrypt,
  mlkem768Decapsulate,
  mlkem768Encapsulate,
  mlkem768EncapsulateDerandomized,
  mlkem768KeyPair,
  mlkem768KeyPairFromSeed,
  MLKEM768_CIPHERTEXT_BYTES,
} from '../../lib/crypto';
import { SCRATCH_WORKING_BYTES, scratch, scratchCapacity, withScratch } from '../../lib/crypto/heap';
import { E2EError } from '../../lib/errors';
import { backend, ready } from '../../lib/sodium';

beforeAll(async () => {
  await ready({ backend: 'wasm' });
  expect(backend()).toBe('wasm');
});

/** The smallest scratch region heap.ts ever allocates. */
const MIN_SCRATCH = 4096;

/** Bytes of the scratch region that are not zero (looked up afresh: the heap may have grown). */
function dirtyBytes(length = MIN_SCRATCH): number {
  const { raw, ptr } = scratch(0);
  return raw.HEAPU8.subarray(ptr, ptr + length).reduce((n, b) => n + (b !== 0 ? 1 : 0), 0);
}

const key = new Uint8Array(32).fill(0x5a);
const seed = new Uint8Array(32).fill(0x3c);
const msg = utf8('the plaintext of a governed action');

const calls: Array<[string, () => unknown]> = [
  ['x25519PublicKey', () => x25519PublicKey(key)],
  ['x25519', () => x25519(key, x25519PublicKey(seed))],
  ['x25519 refusing a low-order key', () => expect(() => x25519(key, new Uint8Array(32))).toThrow()],
  ['hmacSha256', () => hmacSha256(key, msg)],
  ['chainKeyStep', () => chainKeyStep(key, new Uint8Array(32), new Uint8Array(32))],
  ['hkdfExtract', () => hkdfExtract(key, msg)],
  ['hkdfExpand', () => hkdfExpand(key, msg, 64)],
  ['hkdfSha256', () => hkdfSha256(msg, key, msg, 64)],
  ['chacha20Poly1305Encrypt', () => chacha20Poly1305Encrypt(key, new Uint8Array(12), msg, msg)],
  [
    'chacha20Poly1305Decrypt',
    () => chacha20Poly1305Decrypt(key, new Uint8Array(12), chacha20Poly1305Encrypt(key, new Uint8Array(12), msg), new Uint8Array(0)),
  ],
  ['chacha20Poly1305Decrypt failing', () => expect(() => chacha20Poly1305Decrypt(key, new Uint8Array(12), new Uint8Array(40))).toThrow()],
  ['xchacha20Poly1305Encrypt', () => xchacha20Poly1305Encrypt(key, new Uint8Array(24), msg, msg)],
  [
    'xchacha20Poly1305Decrypt',
    () => xchacha20Poly1305Decrypt(key, new Uint8Array(24), xchacha20Poly1305Encrypt(key, new Uint8Array(24), msg)),
  ],
  ['ed25519KeyPairFromSeed', () => ed25519KeyPairFromSeed(seed)],
  ['ed25519Sign', () => ed25519Sign(ed25519KeyPairFromSeed(seed).secretKey, msg)],
  ['ed25519Verify', () => ed25519Verify(new Uint8Array(64), msg, ed25519KeyPairFromSeed(seed).publicKey)],
  ['ed25519SecretKeyToX25519', () => ed25519SecretKeyToX25519(ed25519KeyPairFromSeed(seed).secretKey)],
  ['ed25519PublicKeyToX25519', () => ed25519PublicKeyToX25519(ed25519KeyPairFromSeed(seed).publicKey)],
  ['ed25519Sign refusing an inconsistent key', () => expect(() => ed25519Sign(new Uint8Array(64).fill(1), msg)).toThrow(E2EError)],
  ['mlkem768KeyPairFromSeed', () => mlkem768KeyPairFromSeed(new Uint8Array(64).fill(9))],
  ['mlkem768KeyPair', () => mlkem768KeyPair()],
  ['mlkem768Encapsulate', () => mlkem768Encapsulate(mlkem768KeyPair().publicKey)],
  ['mlkem768EncapsulateDerandomized', () => mlkem768EncapsulateDerandomized(mlkem768KeyPair().publicKey, key)],
  [
    'mlkem768Encapsulate refusing an unreduced key',
    () => expect(() => mlkem768Encapsulate(new Uint8Array(1184).fill(0xff))).toThrow(E2EError),
  ],
  [
    'mlkem768Decapsulate',
    () => {
      const { publicKey, secretKey } = mlkem768KeyPair();
      mlkem768Decapsulate(mlkem768Encapsulate(publicKey).ciphertext, secretKey);
    },
  ],
  [
    'mlkem768Decapsulate of a rejected ciphertext',
    () => mlkem768Decapsulate(new Uint8Array(MLKEM768_CIPHERTEXT_BYTES).fill(3), mlkem768KeyPair().secretKey),
  ],
];

describe('the scratch region is all zero after', () => {
  test('ready() and a first use', () => {
    hmacSha256(key, msg);
    expect(dirtyBytes()).toBe(0);
  });

  test.each(calls)('%s', (_, call) => {
    call();
    expect(dirtyBytes()).toBe(0);
  });

  test('a call that grows the region (a 100 KB message), and small calls after it', () => {
    const big = new Uint8Array(100_000).fill(0x77);
    // key ‖ nonce ‖ ciphertext ‖ tag (encrypted in place): exactly the region encrypt grew to.
    const region = 32 + 24 + big.length + 16;
    const sealed = chacha20Poly1305Encrypt(key, new Uint8Array(12), big);
    expect(dirtyBytes(region)).toBe(0);
    expect(chacha20Poly1305Decrypt(key, new Uint8Array(12), sealed)).toEqual(big);
    expect(dirtyBytes(region)).toBe(0);
    // Still correct after growing: the RFC 4231 Test Case 2 answer.
    expect(Buffer.from(hmacSha256(utf8('Jefe'), utf8('what do ya want for nothing?'))).toString('hex')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
    expect(dirtyBytes(region)).toBe(0);
  });
});

describe('withScratch', () => {
  test('wipes the region and passes the error on when the call throws', () => {
    const err = new E2EError('INVALID_KEY', 'refused');
    expect(() =>
      withScratch(64, (_raw, ptr, heap) => {
        heap.fill(0xab, ptr, ptr + 64);
        throw err;
      }),
    ).toThrow(err);
    expect(dirtyBytes()).toBe(0);
  });

  test('returns what the call returns, and wipes what it wrote', () => {
    const out = withScratch(32, (_raw, ptr, heap) => {
      heap.fill(0xcd, ptr, ptr + 32);
      return heap.slice(ptr, ptr + 32);
    });
    expect(out).toEqual(new Uint8Array(32).fill(0xcd));
    expect(dirtyBytes()).toBe(0);
  });

  test('gives a region above the working size back after the call, on the error path too', () => {
    const big = SCRATCH_WORKING_BYTES + 1024;
    expect(() =>
      withScratch(big, (_raw, ptr, heap) => {
        heap.fill(0xef, ptr, ptr + big);
        expect(scratchCapacity()).toBe(big);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(scratchCapacity()).toBe(0);
    expect(hmacSha256(key, msg)).toHaveLength(32);
    expect(scratchCapacity()).toBeLessThanOrEqual(SCRATCH_WORKING_BYTES);
  });
});
