/** SHA-256 (lib/crypto/hash.ts): FIPS 180-4 known answers and the error path. */
import { SHA256_BYTES, sha256, toHex, utf8 } from '../../lib/crypto';
import { ready } from '../../lib/sodium';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

describe('sha256', () => {
  test.each([
    ['the empty string', '', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['"abc"', 'abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
    [
      'the two-block message',
      'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq',
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    ],
  ])('FIPS 180-4 example: %s', (_, text, digest) => {
    const out = sha256(utf8(text));
    expect(out).toHaveLength(SHA256_BYTES);
    expect(toHex(out)).toBe(digest);
  });

  test.each([
    ['a string', 'abc'],
    ['null', null],
    ['an Array', [1, 2, 3]],
  ])('input that is %s: INVALID_ARGUMENT', (_, bad) => {
    expectE2EError(() => sha256(bad as unknown as Uint8Array), 'INVALID_ARGUMENT');
  });
});
