/**
 * The fused per-message AEAD (lib/crypto/message-aead.ts) against the plain primitives: MK = HMAC(CK, 0x01),
 * CK' = HMAC(CK, 0x02), ChaCha20-Poly1305(MK, nonce, pt, adPrefix ‖ header), on the envelope layout.
 */
import { ready } from '../../lib/sodium';
import { chacha20Poly1305Encrypt, concatBytes, hmacSha256, toHex, utf8 } from '../../lib/crypto';
import {
  ENVELOPE_CIPHERTEXT_AT,
  ENVELOPE_DH_AT,
  ENVELOPE_NONCE_AT,
  ENVELOPE_N_AT,
  ENVELOPE_PN_AT,
  ENVELOPE_PREFIX_BYTES,
  HEADER_BYTES,
  MAX_ENVELOPE_BYTES,
  MIN_ENVELOPE_BYTES,
  assertEnvelope,
  writeEnvelopePrefix,
} from '../../lib/crypto/envelope-layout';
import { openMessage, openMessageWithKey, sealMessage } from '../../lib/crypto/message-aead';
import { MAX_PLAINTEXT_BYTES } from '../../lib/limits';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

// Fixed bytes (sodium is not ready at load time).
const CK = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
const DH = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
const NONCE = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);
const AD = utf8('ad prefix');
const PT = utf8('hello, ratchet');

/** An envelope with its prefix, header and nonce written, room for `pt`. */
function envelopeFor(pt: Uint8Array): Uint8Array {
  const env = new Uint8Array(ENVELOPE_CIPHERTEXT_AT + pt.length + 16);
  writeEnvelopePrefix(env, DH, 3, 9);
  env.set(NONCE, ENVELOPE_NONCE_AT);
  return env;
}

describe('envelope layout', () => {
  test("offsets and sizes are PROTOCOL.md's", () => {
    expect([ENVELOPE_DH_AT, ENVELOPE_PN_AT, ENVELOPE_N_AT, ENVELOPE_NONCE_AT, ENVELOPE_CIPHERTEXT_AT]).toEqual([4, 36, 40, 44, 56]);
    expect([HEADER_BYTES, ENVELOPE_PREFIX_BYTES, MIN_ENVELOPE_BYTES, MAX_ENVELOPE_BYTES]).toEqual([40, 44, 72, 72 + MAX_PLAINTEXT_BYTES]);
  });

  test('writeEnvelopePrefix: u32be(40) ‖ key ‖ u32be(PN) ‖ u32be(N)', () => {
    const env = new Uint8Array(ENVELOPE_PREFIX_BYTES + 1);
    writeEnvelopePrefix(env, DH, 0x01020304, 0xffffffff);
    expect(toHex(env)).toBe(`00000028${toHex(DH)}01020304ffffffff00`);
  });

  test('assertEnvelope: the three checks, in order', () => {
    const ok = envelopeFor(new Uint8Array(0));
    expect(() => assertEnvelope(ok)).not.toThrow();
    expect(expectE2EError(() => assertEnvelope(ok.subarray(0, MIN_ENVELOPE_BYTES - 1)), 'MALFORMED_MESSAGE').message).toBe(
      'message too short',
    );
    const big = { length: MAX_ENVELOPE_BYTES + 1 } as Uint8Array; // length is checked before any byte is read
    expectE2EError(() => assertEnvelope(big), 'MESSAGE_TOO_LARGE');
    const badPrefix = Uint8Array.from(ok);
    badPrefix[3] = 41;
    expect(expectE2EError(() => assertEnvelope(badPrefix), 'MALFORMED_MESSAGE').message).toBe('header length prefix must be 40');
  });
});

describe('sealMessage / openMessage / openMessageWithKey', () => {
  let mk: Uint8Array;
  let ckNext: Uint8Array;
  beforeAll(() => {
    mk = hmacSha256(CK, Uint8Array.of(1));
    ckNext = hmacSha256(CK, Uint8Array.of(2));
  });

  test('seal: the ciphertext of the plain primitives, and CK advanced in place', () => {
    const env = envelopeFor(PT);
    const ck = Uint8Array.from(CK);
    sealMessage(ck, env, PT, AD);
    const expected = chacha20Poly1305Encrypt(mk, NONCE, PT, concatBytes(AD, env.subarray(4, 44)));
    expect(toHex(env.subarray(ENVELOPE_CIPHERTEXT_AT))).toBe(toHex(expected));
    expect(toHex(env.subarray(0, ENVELOPE_CIPHERTEXT_AT))).toBe(`00000028${toHex(DH)}0000000300000009${toHex(NONCE)}`);
    expect(toHex(ck)).toBe(toHex(ckNext));
  });

  test("open: the plaintext, CK' written out, CK untouched; with the message key too", () => {
    const env = envelopeFor(PT);
    sealMessage(Uint8Array.from(CK), env, PT, AD);
    const next = new Uint8Array(32);
    expect(openMessage(CK, next, env, AD)).toEqual(PT);
    expect(toHex(next)).toBe(toHex(ckNext));
    expect(CK).toEqual(Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i));
    expect(openMessageWithKey(mk, env, AD)).toEqual(PT);
  });

  test('an empty plaintext', () => {
    const env = envelopeFor(new Uint8Array(0));
    sealMessage(Uint8Array.from(CK), env, new Uint8Array(0), new Uint8Array(0));
    expect(openMessage(CK, new Uint8Array(32), env, new Uint8Array(0))).toEqual(new Uint8Array(0));
  });

  test.each([
    [
      'a flipped ciphertext bit',
      (e: Uint8Array) => {
        e[ENVELOPE_CIPHERTEXT_AT] ^= 1;
      },
    ],
    [
      'a flipped tag bit',
      (e: Uint8Array) => {
        e[e.length - 1] ^= 1;
      },
    ],
    [
      'a changed header (PN)',
      (e: Uint8Array) => {
        e[ENVELOPE_PN_AT + 3] ^= 1;
      },
    ],
    [
      'a changed ratchet key',
      (e: Uint8Array) => {
        e[ENVELOPE_DH_AT] ^= 1;
      },
    ],
    [
      'a changed nonce',
      (e: Uint8Array) => {
        e[ENVELOPE_NONCE_AT] ^= 1;
      },
    ],
  ])('%s: null, and nothing written', (_name, tamper) => {
    const env = envelopeFor(PT);
    sealMessage(Uint8Array.from(CK), env, PT, AD);
    tamper(env);
    const next = new Uint8Array(32);
    expect(openMessage(CK, next, env, AD)).toBeNull();
    expect(next).toEqual(new Uint8Array(32));
    expect(openMessageWithKey(mk, env, AD)).toBeNull();
  });

  test('other associated data, another chain key: null', () => {
    const env = envelopeFor(PT);
    sealMessage(Uint8Array.from(CK), env, PT, AD);
    expect(openMessage(CK, new Uint8Array(32), env, utf8('other'))).toBeNull();
    expect(openMessage(ckNext, new Uint8Array(32), env, AD)).toBeNull();
    expect(openMessageWithKey(ckNext, env, AD)).toBeNull();
  });
});
