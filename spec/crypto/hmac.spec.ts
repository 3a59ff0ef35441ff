/** HMAC-SHA256 and the ratchet's chain-key step: every Wycheproof case, RFC 4231, every error path. */
import { HMAC_SHA256_BYTES, chainKeyStep, constantTimeEqual, fromHex, hmacSha256, toHex, utf8 } from '../../lib/crypto';
import { ready, sodium } from '../../lib/sodium';
import { expectE2EError } from '../helpers/expect-error';
import { MacCase, MacGroupFields, hex, loadWycheproof, runCases } from '../helpers/wycheproof';

beforeAll(() => ready());

describe('Wycheproof hmac_sha256_test.json', () => {
  const file = loadWycheproof<MacCase, MacGroupFields>('hmac_sha256_test.json');
  let ran = 0;

  test('the file has the cases we expect (no "acceptable" ones)', () => {
    expect(file.schema).toBe('mac_test_schema_v1.json');
    expect(file.testGroups.map((g) => [g.keySize, g.tagSize])).toEqual([
      [256, 256],
      [256, 128],
      [128, 256],
      [128, 128],
      [520, 256],
      [520, 128],
    ]);
    expect(file.allCases.filter((c) => c.result === 'valid')).toHaveLength(66);
    expect(file.allCases.filter((c) => c.result === 'invalid')).toHaveLength(108);
    expect(file.allCases.filter((c) => c.result === 'acceptable')).toHaveLength(0);
  });

  // Groups with tagSize 128 carry truncated tags: the expected tag is a prefix of the full one.
  test.each(file.testGroups.map((g) => [g.keySize, g.tagSize, g] as const))(
    'group with %i-bit keys and %i-bit tags',
    (keySize, tagSize, group) => {
      ran += runCases(group.tests, (c) => {
        const key = hex(c.key);
        expect(key.length * 8).toBe(keySize);
        const full = hmacSha256(key, hex(c.msg));
        expect(full).toHaveLength(HMAC_SHA256_BYTES);
        const tag = hex(c.tag);
        expect(tag.length * 8).toBe(tagSize);
        const prefix = full.subarray(0, tag.length);
        if (c.result === 'valid') {
          expect(toHex(prefix)).toBe(c.tag);
        } else {
          expect(c.flags).toEqual(['ModifiedTag']);
          expect(constantTimeEqual(prefix, tag)).toBe(false);
        }
      });
    },
  );

  test('ran every case of the file', () => {
    expect(ran).toBe(174);
    expect(file.numberOfTests).toBe(174);
    expect(file.rawTcIdCount).toBe(174);
    expect(new Set(file.allCases.map((c) => c.tcId)).size).toBe(174);
  });
});

describe('RFC 4231 known answers', () => {
  test('Test Case 1: 20 bytes of 0x0b, "Hi There"', () => {
    expect(toHex(hmacSha256(new Uint8Array(20).fill(0x0b), utf8('Hi There')))).toBe(
      'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    );
  });

  test('Test Case 2: "Jefe", "what do ya want for nothing?"', () => {
    expect(toHex(hmacSha256(utf8('Jefe'), utf8('what do ya want for nothing?')))).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  test('Test Case 6: a 131-byte key (longer than a block, hashed first)', () => {
    const key = new Uint8Array(131).fill(0xaa);
    expect(toHex(hmacSha256(key, utf8('Test Using Larger Than Block-Size Key - Hash Key First')))).toBe(
      '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    );
  });
});

describe('hmacSha256 errors', () => {
  test.each([
    ['a string', 'key'],
    ['null', null],
    ['an Array', [1, 2, 3]],
    ['a Uint16Array', new Uint16Array(16)],
  ])('a key or message that is %s: INVALID_ARGUMENT', (_, bad) => {
    expectE2EError(() => hmacSha256(bad as unknown as Uint8Array, utf8('m')), 'INVALID_ARGUMENT');
    expectE2EError(() => hmacSha256(utf8('k'), bad as unknown as Uint8Array), 'INVALID_ARGUMENT');
  });

  test('empty key and empty message are valid inputs', () => {
    expect(toHex(hmacSha256(new Uint8Array(0), new Uint8Array(0)))).toBe(
      'b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad',
    );
  });
});

describe('chainKeyStep (KDF_CK of PROTOCOL.md)', () => {
  // chainKeyStep copies libsodium's HMAC state by a hard-coded size (208 bytes in 1.0.22); a
  // libsodium whose state is larger would silently corrupt the second HMAC.
  test("libsodium's HMAC-SHA256 state is the 208 bytes chainKeyStep copies", () => {
    expect(sodium().raw._crypto_auth_hmacsha256_statebytes()).toBe(208);
  });

  const ck = fromHex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');

  test('message key = HMAC(ck, 0x01), next chain key = HMAC(ck, 0x02)', () => {
    const mk = new Uint8Array(32);
    const next = new Uint8Array(32);
    chainKeyStep(ck, mk, next);
    expect(mk).toEqual(hmacSha256(ck, Uint8Array.of(1)));
    expect(next).toEqual(hmacSha256(ck, Uint8Array.of(2)));
    expect(toHex(mk)).not.toBe(toHex(next));
  });

  test('works in place (next chain key written over the chain key), as the ratchet calls it', () => {
    const work = Uint8Array.from(ck);
    const mk = new Uint8Array(32);
    chainKeyStep(work, mk, work);
    expect(mk).toEqual(hmacSha256(ck, Uint8Array.of(1)));
    expect(work).toEqual(hmacSha256(ck, Uint8Array.of(2)));
  });

  test('writes only into the outputs of the right size (a subarray view of a larger buffer)', () => {
    const buf = new Uint8Array(96).fill(0xee);
    chainKeyStep(ck, buf.subarray(16, 48), buf.subarray(48, 80));
    expect(buf.subarray(0, 16)).toEqual(new Uint8Array(16).fill(0xee));
    expect(buf.subarray(80)).toEqual(new Uint8Array(16).fill(0xee));
    expect(buf.subarray(16, 48)).toEqual(hmacSha256(ck, Uint8Array.of(1)));
  });

  // BUG (reported): chainKeyStep checks nothing. A 64-byte chain key is silently truncated to 32
  // bytes (a wrong answer), a short output throws a RangeError, a non-array a TypeError.
  test.each([
    ['16 bytes', new Uint8Array(16)],
    ['64 bytes', new Uint8Array(64).fill(1)],
    ['a string', 'c'.repeat(32)],
  ])('a chain key that is %s: INVALID_KEY', (_, bad) => {
    expectE2EError(() => chainKeyStep(bad as unknown as Uint8Array, new Uint8Array(32), new Uint8Array(32)), 'INVALID_KEY');
  });

  test.each([
    ['16 bytes', new Uint8Array(16)],
    ['33 bytes', new Uint8Array(33)],
    ['null', null],
  ])('an output that is %s: INVALID_ARGUMENT', (_, bad) => {
    expectE2EError(() => chainKeyStep(ck, bad as unknown as Uint8Array, new Uint8Array(32)), 'INVALID_ARGUMENT');
    expectE2EError(() => chainKeyStep(ck, new Uint8Array(32), bad as unknown as Uint8Array), 'INVALID_ARGUMENT');
  });
});
