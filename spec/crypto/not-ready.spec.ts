/**
 * Before `ready()`: every primitive that needs libsodium fails with NOT_READY (never a crash or a
 * wrong answer); the pure-JavaScript helpers work. This file must never call ready(): Jest gives
 * each spec file its own module registry, so lib/sodium.ts starts here unloaded.
 */
import * as c from '../../lib/crypto';
import { backend, isReady, sodium } from '../../lib/sodium';
import { expectE2EError } from '../helpers/expect-error';

const k32 = new Uint8Array(32).fill(1);
const k64 = new Uint8Array(64).fill(1);
const n12 = new Uint8Array(12);
const n24 = new Uint8Array(24);
const m = Uint8Array.of(1, 2, 3);

test('the library reports that it is not loaded', () => {
  expect(isReady()).toBe(false);
  expectE2EError(() => sodium(), 'NOT_READY');
});

test.each<[string, () => unknown]>([
  ['randomBytes', () => c.randomBytes(12)],
  ['fillRandomBytes', () => c.fillRandomBytes(new Uint8Array(12))],
  ['x25519KeyPair', () => c.x25519KeyPair()],
  ['x25519PublicKey', () => c.x25519PublicKey(k32)],
  ['x25519', () => c.x25519(k32, k32)],
  ['ed25519KeyPair', () => c.ed25519KeyPair()],
  ['ed25519KeyPairFromSeed', () => c.ed25519KeyPairFromSeed(k32)],
  ['ed25519Sign', () => c.ed25519Sign(k64, m)],
  ['ed25519Verify (well-formed input)', () => c.ed25519Verify(k64, m, k32)],
  ['ed25519SecretKeyToX25519', () => c.ed25519SecretKeyToX25519(k64)],
  ['ed25519PublicKeyToX25519', () => c.ed25519PublicKeyToX25519(k32)],
  ['hmacSha256', () => c.hmacSha256(k32, m)],
  ['chainKeyStep', () => c.chainKeyStep(k32, new Uint8Array(32), new Uint8Array(32))],
  ['hkdfExtract', () => c.hkdfExtract(k32, m)],
  ['hkdfExpand', () => c.hkdfExpand(k32, m, 32)],
  ['hkdfSha256', () => c.hkdfSha256(m, k32, m, 32)],
  ['chacha20Poly1305Encrypt', () => c.chacha20Poly1305Encrypt(k32, n12, m)],
  ['chacha20Poly1305Decrypt', () => c.chacha20Poly1305Decrypt(k32, n12, new Uint8Array(19))],
  ['xchacha20Poly1305Encrypt', () => c.xchacha20Poly1305Encrypt(k32, n24, m)],
  ['xchacha20Poly1305Decrypt', () => c.xchacha20Poly1305Decrypt(k32, n24, new Uint8Array(19))],
  ['sha256', () => c.sha256(m)],
  ['mlkem768KeyPair', () => c.mlkem768KeyPair()],
  ['mlkem768KeyPairFromSeed', () => c.mlkem768KeyPairFromSeed(k64)],
  ['mlkem768Encapsulate', () => c.mlkem768Encapsulate(new Uint8Array(c.MLKEM768_PUBLIC_KEY_BYTES))],
  ['mlkem768EncapsulateDerandomized', () => c.mlkem768EncapsulateDerandomized(new Uint8Array(c.MLKEM768_PUBLIC_KEY_BYTES), k32)],
  [
    'mlkem768Decapsulate',
    () => c.mlkem768Decapsulate(new Uint8Array(c.MLKEM768_CIPHERTEXT_BYTES), new Uint8Array(c.MLKEM768_SECRET_KEY_BYTES)),
  ],
  ['backend', () => backend()],
  ['constantTimeEqual (equal lengths)', () => c.constantTimeEqual(k32, k32)],
  ['toBase64Url', () => c.toBase64Url(m)],
  ['fromBase64Url', () => c.fromBase64Url('AQID')],
])('%s: NOT_READY', (_, call) => {
  const e = expectE2EError(call, 'NOT_READY');
  expect(e.message).toBe('call and await ready() before using agentmesh-e2e');
});

test('the pure-JavaScript helpers need no libsodium', () => {
  expect(c.toHex(m)).toBe('010203');
  expect(c.fromHex('010203')).toEqual(m);
  expect(c.toBase64(m)).toBe('AQID');
  expect(c.fromBase64('AQID')).toEqual(m);
  expect(c.fromUtf8(c.utf8('é'))).toBe('é');
  expect(c.concatBytes(m, m)).toHaveLength(6);
  expect(c.toHex(c.u32be(258))).toBe('00000102');
  expect(c.readU32BE(c.u32be(258), 0)).toBe(258);
  // Different lengths are unequal without looking at the bytes.
  expect(c.constantTimeEqual(k32, k64)).toBe(false);
  // Malformed input is refused without libsodium: a bad signature length is simply false.
  expect(c.ed25519Verify(new Uint8Array(63), m, k32)).toBe(false);
});

test('memzero wipes even before ready() (plain fill fallback)', () => {
  const secret = new Uint8Array(16).fill(0xee);
  c.memzero(secret);
  expect(secret).toEqual(new Uint8Array(16));
  expect(isReady()).toBe(false);
});
