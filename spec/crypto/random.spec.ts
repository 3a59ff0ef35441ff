/** randomBytes and fillRandomBytes (lib/crypto/random.ts): lengths, freshness, error paths. */
import { fillRandomBytes, randomBytes, toHex } from '../../lib/crypto';
import { setRandomSourceForTesting } from '../../lib/entropy';
import { ready } from '../../lib/sodium';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());
afterEach(() => setRandomSourceForTesting(null));

describe('randomBytes', () => {
  test.each([0, 1, 12, 32, 256, 257, 4096, 65537])('gives exactly %i bytes', (n) => {
    expect(randomBytes(n)).toHaveLength(n);
  });

  test('the maximum, 2^24 bytes, is allowed', () => {
    expect(randomBytes(1 << 24)).toHaveLength(16777216);
  });

  test('two 32-byte draws differ', () => {
    expect(toHex(randomBytes(32))).not.toBe(toHex(randomBytes(32)));
  });

  test('returns a fresh array each call (never a view of the pool)', () => {
    const a = randomBytes(12);
    const b = randomBytes(12);
    expect(a.buffer).not.toBe(b.buffer);
    expect(a.byteOffset).toBe(0);
    expect(a.buffer.byteLength).toBe(12);
  });

  test.each([
    ['negative', -1],
    ['fractional', 1.5],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['above 2^24', (1 << 24) + 1],
    ['a string', '12'],
    ['null', null],
  ])('a length that is %s: INVALID_ARGUMENT', (_, n) => {
    expectE2EError(() => randomBytes(n as unknown as number), 'INVALID_ARGUMENT');
  });
});

describe('fillRandomBytes', () => {
  test('fills the given view in place and nothing around it', () => {
    setRandomSourceForTesting((out) => out.fill(0xab));
    const buf = new Uint8Array(16);
    fillRandomBytes(buf.subarray(4, 12));
    expect(toHex(buf)).toBe('00000000' + 'ab'.repeat(8) + '00000000');
  });

  // BUG (reported): no input check. A number throws "out.set is not a function" (a TypeError), and
  // a Uint16Array is filled one random byte per 16-bit element — silently weak.
  test.each([
    ['a number', 12],
    ['null', null],
    ['a Uint16Array', new Uint16Array(6)],
    ['an Array', [0, 0, 0]],
  ])('an output that is %s: INVALID_ARGUMENT', (_, bad) => {
    expectE2EError(() => fillRandomBytes(bad as unknown as Uint8Array), 'INVALID_ARGUMENT');
  });
});
