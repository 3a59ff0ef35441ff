/** ChaCha20-Poly1305-IETF and XChaCha20-Poly1305: every Wycheproof case, RFC 8439, every error path. */
import {
  AEAD_TAG_BYTES,
  CHACHA20_POLY1305_NONCE_BYTES,
  XCHACHA20_POLY1305_NONCE_BYTES,
  chacha20Poly1305Decrypt,
  chacha20Poly1305Encrypt,
  concatBytes,
  fromHex,
  fromUtf8,
  toHex,
  utf8,
  xchacha20Poly1305Decrypt,
  xchacha20Poly1305Encrypt,
} from '../../lib/crypto';
import { MAX_AEAD_INPUT_BYTES } from '../../lib/limits';
import { ready } from '../../lib/sodium';
import { expectE2EError } from '../helpers/expect-error';
import { AeadCase, AeadGroupFields, hex, loadWycheproof, runCases } from '../helpers/wycheproof';

beforeAll(() => ready());

type Seal = (key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array) => Uint8Array;

interface Variant {
  name: string;
  file: string;
  nonceBytes: number;
  encrypt: Seal;
  decrypt: Seal;
  /** Cases in the file, valid and invalid (there are no acceptable ones). */
  total: number;
  valid: number;
  groups: number;
}

const VARIANTS: Variant[] = [
  {
    name: 'ChaCha20-Poly1305-IETF',
    file: 'chacha20_poly1305_test.json',
    nonceBytes: CHACHA20_POLY1305_NONCE_BYTES,
    encrypt: chacha20Poly1305Encrypt,
    decrypt: chacha20Poly1305Decrypt,
    total: 325,
    valid: 256,
    groups: 10,
  },
  {
    name: 'XChaCha20-Poly1305',
    file: 'xchacha20_poly1305_test.json',
    nonceBytes: XCHACHA20_POLY1305_NONCE_BYTES,
    encrypt: xchacha20Poly1305Encrypt,
    decrypt: xchacha20Poly1305Decrypt,
    total: 315,
    valid: 246,
    groups: 10,
  },
];

describe.each(VARIANTS)('Wycheproof $file', (v) => {
  const file = loadWycheproof<AeadCase, AeadGroupFields>(v.file);
  let ran = 0;

  test('the file has the cases we expect (no "acceptable" ones)', () => {
    expect(file.schema).toBe('aead_test_schema_v1.json');
    expect(file.testGroups).toHaveLength(v.groups);
    expect(file.allCases.filter((c) => c.result === 'valid')).toHaveLength(v.valid);
    expect(file.allCases.filter((c) => c.result === 'invalid')).toHaveLength(v.total - v.valid);
    expect(file.allCases.filter((c) => c.result === 'acceptable')).toHaveLength(0);
    for (const g of file.testGroups) expect([g.keySize, g.tagSize]).toEqual([256, 128]);
  });

  test.each(file.testGroups.map((g) => [g.ivSize, g] as const))('group with %i-bit nonces', (ivSize, group) => {
    ran += runCases(group.tests, (c) => {
      const [key, iv, aad, msg, ct, tag] = [c.key, c.iv, c.aad, c.msg, c.ct, c.tag].map(hex);
      if (ivSize !== v.nonceBytes * 8) {
        // InvalidNonceSize: refused before any work, in both directions.
        expect(c.flags).toEqual(['InvalidNonceSize']);
        expect(c.result).toBe('invalid');
        expectE2EError(() => v.encrypt(key, iv, msg, aad), 'INVALID_ARGUMENT');
        expectE2EError(() => v.decrypt(key, iv, concatBytes(ct, tag), aad), 'INVALID_ARGUMENT');
        return;
      }
      if (c.result === 'valid') {
        expect(toHex(v.encrypt(key, iv, msg, aad))).toBe(c.ct + c.tag);
        expect(toHex(v.decrypt(key, iv, concatBytes(ct, tag), aad))).toBe(c.msg);
      } else {
        // ModifiedTag: must not authenticate.
        expect(c.flags).toEqual(['ModifiedTag']);
        expectE2EError(() => v.decrypt(key, iv, concatBytes(ct, tag), aad), 'DECRYPT_FAILED');
      }
    });
  });

  test('ran every case of the file', () => {
    expect(ran).toBe(v.total);
    expect(file.numberOfTests).toBe(v.total);
    expect(file.rawTcIdCount).toBe(v.total);
    expect(new Set(file.allCases.map((c) => c.tcId)).size).toBe(v.total);
  });
});

describe('RFC 8439 §2.8.2 AEAD test vector', () => {
  const key = fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = fromHex('070000004041424344454647');
  const aad = fromHex('50515253c0c1c2c3c4c5c6c7');
  const plaintext = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
  const ciphertext =
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b29' +
    '05d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116';
  const tag = '1ae10b594f09e26a7e902ecbd0600691';

  test('encrypts to the RFC ciphertext and tag, and decrypts back', () => {
    const sealed = chacha20Poly1305Encrypt(key, nonce, utf8(plaintext), aad);
    expect(toHex(sealed)).toBe(ciphertext + tag);
    expect(fromUtf8(chacha20Poly1305Decrypt(key, nonce, sealed, aad))).toBe(plaintext);
  });
});

describe.each(VARIANTS)('$name properties and errors', (v) => {
  const key = fromHex('1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0');
  const nonce = Uint8Array.from({ length: v.nonceBytes }, (_, i) => i + 1);
  const ad = utf8('did:mesh:alice|did:mesh:bob');
  const pt = utf8('governed action request');

  test('output is ciphertext ‖ 16-byte tag; decrypt inverts; inputs are not modified', () => {
    const before = [key, nonce, pt, ad].map(toHex);
    const sealed = v.encrypt(key, nonce, pt, ad);
    expect(sealed).toHaveLength(pt.length + AEAD_TAG_BYTES);
    expect(v.decrypt(key, nonce, sealed, ad)).toEqual(pt);
    expect([key, nonce, pt, ad].map(toHex)).toEqual(before);
  });

  test('the AD defaults to empty; an empty plaintext gives a bare tag', () => {
    expect(v.encrypt(key, nonce, pt)).toEqual(v.encrypt(key, nonce, pt, new Uint8Array(0)));
    const bare = v.encrypt(key, nonce, new Uint8Array(0));
    expect(bare).toHaveLength(AEAD_TAG_BYTES);
    expect(v.decrypt(key, nonce, bare)).toEqual(new Uint8Array(0));
  });

  test('every flipped bit of ciphertext or tag: DECRYPT_FAILED', () => {
    const sealed = v.encrypt(key, nonce, pt, ad);
    let failed = 0;
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      const bad = Uint8Array.from(sealed);
      bad[bit >> 3] ^= 1 << (bit & 7);
      expectE2EError(() => v.decrypt(key, nonce, bad, ad), 'DECRYPT_FAILED');
      failed++;
    }
    expect(failed).toBe((pt.length + AEAD_TAG_BYTES) * 8);
  });

  test('a flipped bit of the AD, the nonce or the key: DECRYPT_FAILED', () => {
    const sealed = v.encrypt(key, nonce, pt, ad);
    const flip = (b: Uint8Array, i: number): Uint8Array => {
      const c = Uint8Array.from(b);
      c[i >> 3] ^= 1 << (i & 7);
      return c;
    };
    for (const i of [0, 7, ad.length * 8 - 1]) expectE2EError(() => v.decrypt(key, nonce, sealed, flip(ad, i)), 'DECRYPT_FAILED');
    for (const i of [0, 9, nonce.length * 8 - 1]) expectE2EError(() => v.decrypt(key, flip(nonce, i), sealed, ad), 'DECRYPT_FAILED');
    for (const i of [0, 255]) expectE2EError(() => v.decrypt(flip(key, i), nonce, sealed, ad), 'DECRYPT_FAILED');
    expectE2EError(() => v.decrypt(key, nonce, sealed), 'DECRYPT_FAILED');
    expectE2EError(() => v.decrypt(key, nonce, sealed, concatBytes(ad, new Uint8Array(1))), 'DECRYPT_FAILED');
  });

  test('truncated or extended ciphertexts: DECRYPT_FAILED (shorter than a tag included)', () => {
    const sealed = v.encrypt(key, nonce, pt, ad);
    for (const n of [0, 1, 15, 16, sealed.length - 1]) {
      expectE2EError(() => v.decrypt(key, nonce, sealed.subarray(0, n), ad), 'DECRYPT_FAILED');
    }
    expectE2EError(() => v.decrypt(key, nonce, concatBytes(sealed, new Uint8Array(1)), ad), 'DECRYPT_FAILED');
  });

  test.each([
    ['31 bytes', new Uint8Array(31)],
    ['33 bytes', new Uint8Array(33)],
    ['a string', 'k'.repeat(32)],
    ['null', null],
  ])('a key that is %s: INVALID_KEY', (_, bad) => {
    expectE2EError(() => v.encrypt(bad as unknown as Uint8Array, nonce, pt, ad), 'INVALID_KEY');
    expectE2EError(() => v.decrypt(bad as unknown as Uint8Array, nonce, new Uint8Array(32), ad), 'INVALID_KEY');
  });

  test.each([
    ['one byte short', -1],
    ['one byte long', 1],
  ])('a nonce %s: INVALID_ARGUMENT', (_, delta) => {
    const bad = new Uint8Array(v.nonceBytes + delta);
    expectE2EError(() => v.encrypt(key, bad, pt, ad), 'INVALID_ARGUMENT');
    expectE2EError(() => v.decrypt(key, bad, new Uint8Array(32), ad), 'INVALID_ARGUMENT');
  });

  test.each([
    ['nonce', 2],
    ['plaintext/ciphertext', 3],
    ['AD', 4],
  ])('a %s that is not a Uint8Array: INVALID_ARGUMENT', (_, position) => {
    const args = (sealed: Uint8Array): unknown[] => [key, nonce, sealed, ad];
    for (const [f, sealed] of [
      [v.encrypt, pt],
      [v.decrypt, v.encrypt(key, nonce, pt, ad)],
    ] as const) {
      for (const bad of ['text', [1, 2, 3], 42, new Uint16Array(v.nonceBytes)]) {
        const a = args(sealed);
        a[position - 1] = bad;
        expectE2EError(() => (f as (...x: unknown[]) => unknown)(...a), 'INVALID_ARGUMENT');
      }
    }
  });

  test('input above MAX_AEAD_INPUT_BYTES (data + AD): MESSAGE_TOO_LARGE, before any work', () => {
    const big = new Uint8Array(MAX_AEAD_INPUT_BYTES);
    expectE2EError(() => v.encrypt(key, nonce, big, new Uint8Array(1)), 'MESSAGE_TOO_LARGE');
    expectE2EError(() => v.decrypt(key, nonce, big, new Uint8Array(1)), 'MESSAGE_TOO_LARGE');
    expectE2EError(() => v.encrypt(key, nonce, new Uint8Array(1), big), 'MESSAGE_TOO_LARGE');
  });
});

describe('the limit itself', () => {
  test('exactly MAX_AEAD_INPUT_BYTES (data + AD) is accepted', () => {
    const key = new Uint8Array(32).fill(1);
    const nonce = new Uint8Array(12);
    // A forged ciphertext of the largest size: passes the size check, fails only the tag.
    const ct = new Uint8Array(MAX_AEAD_INPUT_BYTES - 16);
    expectE2EError(() => chacha20Poly1305Decrypt(key, nonce, ct, new Uint8Array(16)), 'DECRYPT_FAILED');
  });
});
