/** HKDF-SHA256: every Wycheproof case, RFC 5869, the AGT X3DH KDF known answer, every error path. */
import {
  HKDF_SHA256_MAX_BYTES,
  concatBytes,
  fromHex,
  hkdfExpand,
  hkdfExtract,
  hkdfSha256,
  hmacSha256,
  toHex,
  utf8,
} from '../../lib/crypto';
import { ready } from '../../lib/sodium';
import { loadConversation } from '../helpers/agt-vectors';
import { expectE2EError } from '../helpers/expect-error';
import { HkdfCase, HkdfGroupFields, hex, loadWycheproof, runCases } from '../helpers/wycheproof';

beforeAll(() => ready());

describe('Wycheproof hkdf_sha256_test.json', () => {
  const file = loadWycheproof<HkdfCase, HkdfGroupFields>('hkdf_sha256_test.json');
  let ran = 0;

  test('the file has the cases we expect (no "acceptable" ones)', () => {
    expect(file.schema).toBe('hkdf_test_schema_v1.json');
    expect(file.testGroups).toHaveLength(5);
    expect(file.allCases.filter((c) => c.result === 'valid')).toHaveLength(83);
    expect(file.allCases.filter((c) => c.result === 'invalid')).toHaveLength(3);
    expect(file.allCases.filter((c) => c.result === 'acceptable')).toHaveLength(0);
    // The largest valid output is the RFC maximum, the invalid ones one byte above it.
    expect(file.allCases.filter((c) => c.flags.includes('MaximalOutputSize')).map((c) => c.size)).toEqual([8160, 8160, 8160]);
  });

  test.each(file.testGroups.map((g) => [g.keySize, g] as const))('group with %i-bit IKM', (_, group) => {
    ran += runCases(group.tests, (c) => {
      const [ikm, salt, info] = [c.ikm, c.salt, c.info].map(hex);
      if (c.result === 'valid') {
        expect(toHex(hkdfSha256(ikm, salt, info, c.size))).toBe(c.okm);
      } else {
        // SizeTooLarge: more than 255 blocks of 32 bytes is not HKDF-SHA256.
        expect(c.flags).toEqual(['SizeTooLarge']);
        expect(c.size).toBe(HKDF_SHA256_MAX_BYTES + 1);
        expectE2EError(() => hkdfSha256(ikm, salt, info, c.size), 'INVALID_ARGUMENT');
      }
    });
  });

  test('ran every case of the file', () => {
    expect(ran).toBe(86);
    expect(file.numberOfTests).toBe(86);
    expect(file.rawTcIdCount).toBe(86);
    expect(new Set(file.allCases.map((c) => c.tcId)).size).toBe(86);
  });
});

describe('RFC 5869 Test Case 1', () => {
  const ikm = fromHex('0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b');
  const salt = fromHex('000102030405060708090a0b0c');
  const info = fromHex('f0f1f2f3f4f5f6f7f8f9');
  const prk = '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5';
  const okm = '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865';

  test('extract gives the PRK, expand the OKM, and hkdfSha256 both', () => {
    expect(toHex(hkdfExtract(salt, ikm))).toBe(prk);
    expect(toHex(hkdfExpand(fromHex(prk), info, 42))).toBe(okm);
    expect(toHex(hkdfSha256(ikm, salt, info, 42))).toBe(okm);
  });

  test('extract is HMAC-SHA256(salt, ikm); an empty salt means 32 zero bytes', () => {
    expect(hkdfExtract(salt, ikm)).toEqual(hmacSha256(salt, ikm));
    expect(hkdfExtract(new Uint8Array(0), ikm)).toEqual(hkdfExtract(new Uint8Array(32), ikm));
  });

  test('a shorter output is a prefix of a longer one; length 0 gives empty', () => {
    expect(toHex(hkdfSha256(ikm, salt, info, 10))).toBe(okm.slice(0, 20));
    expect(hkdfSha256(ikm, salt, info, 0)).toEqual(new Uint8Array(0));
  });
});

describe('AGT X3DH KDF known answer (PROTOCOL.md)', () => {
  test('HKDF(salt = 32 zero bytes, IKM = 32×0xFF ‖ bytes 0..95, "AgentMesh_X3DH_v1", 32)', () => {
    const ikm = concatBytes(
      new Uint8Array(32).fill(0xff),
      Uint8Array.from({ length: 96 }, (_, i) => i),
    );
    const out = hkdfSha256(ikm, new Uint8Array(32), utf8('AgentMesh_X3DH_v1'), 32);
    expect(toHex(out)).toBe('f8682588506e56d9b602f353a83910760692d4939a18b8043305b82f705a5bfa');
    // The same value as the Python reference's run.
    const agt = loadConversation().get('X3DH _kdf(bytes(range(96)))') as { out: string };
    expect(agt.out).toBe(toHex(out));
  });
});

describe('errors', () => {
  const ikm = new Uint8Array(32).fill(1);
  const salt = new Uint8Array(32);
  const info = utf8('info');

  test.each([
    ['one above the maximum', HKDF_SHA256_MAX_BYTES + 1],
    ['negative', -1],
    ['fractional', 1.5],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['a string', '32'],
  ])('an output length that is %s: INVALID_ARGUMENT', (_, length) => {
    expectE2EError(() => hkdfSha256(ikm, salt, info, length as unknown as number), 'INVALID_ARGUMENT');
    expectE2EError(() => hkdfExpand(new Uint8Array(32), info, length as unknown as number), 'INVALID_ARGUMENT');
  });

  test('the maximum output length is accepted', () => {
    expect(hkdfSha256(ikm, salt, info, HKDF_SHA256_MAX_BYTES)).toHaveLength(8160);
  });

  test.each([
    ['31 bytes', new Uint8Array(31)],
    ['33 bytes', new Uint8Array(33)],
    ['a string', 'p'.repeat(32)],
  ])('a PRK that is %s: INVALID_KEY', (_, prk) => {
    expectE2EError(() => hkdfExpand(prk as unknown as Uint8Array, info, 32), 'INVALID_KEY');
  });

  test.each([
    ['ikm', 0],
    ['salt', 1],
    ['info', 2],
  ])('an %s that is not a Uint8Array: INVALID_ARGUMENT', (_, position) => {
    for (const bad of ['text', null, [1, 2], new Uint16Array(4)]) {
      const args: unknown[] = [ikm, salt, info, 32];
      args[position] = bad;
      expectE2EError(() => (hkdfSha256 as (...a: unknown[]) => unknown)(...args), 'INVALID_ARGUMENT');
    }
    expectE2EError(() => hkdfExtract('salt' as unknown as Uint8Array, ikm), 'INVALID_ARGUMENT');
    expectE2EError(() => hkdfExtract(salt, 'ikm' as unknown as Uint8Array), 'INVALID_ARGUMENT');
    expectE2EError(() => hkdfExpand(new Uint8Array(32), 'info' as unknown as Uint8Array, 32), 'INVALID_ARGUMENT');
  });
});
