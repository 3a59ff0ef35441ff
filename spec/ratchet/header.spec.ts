/** The 40-byte header (lib/ratchet/header.ts): exact bytes and every error path. */
import { ready } from '../../lib/sodium';
import { toHex } from '../../lib/crypto';
import { HEADER_BYTES, MessageHeader, assertHeader, decodeHeader, encodeHeader, writeHeader } from '../../lib/ratchet';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const H: MessageHeader = { dhPublicKey: KEY, previousChainLength: 0x01020304, messageNumber: 0xfffffffe };
const H_HEX = '0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20' + '01020304' + 'fffffffe';

describe('header bytes', () => {
  test('HEADER_BYTES is 40', () => expect(HEADER_BYTES).toBe(40));

  test('encodeHeader: key ‖ u32be(PN) ‖ u32be(N)', () => {
    expect(toHex(encodeHeader(H))).toBe(H_HEX);
    expect(toHex(encodeHeader({ dhPublicKey: new Uint8Array(32), previousChainLength: 0, messageNumber: 0xffffffff }))).toBe(
      '00'.repeat(36) + 'ffffffff',
    );
  });

  test('decodeHeader inverts it and copies the key', () => {
    const b = encodeHeader(H);
    const h = decodeHeader(b);
    expect(h).toEqual(H);
    b.fill(0);
    expect(toHex(h.dhPublicKey)).toBe(H_HEX.slice(0, 64));
  });

  test('writeHeader writes exactly the 40 bytes at its offset', () => {
    const out = new Uint8Array(50).fill(0xaa);
    writeHeader(H, out, 7);
    expect(toHex(out)).toBe('aa'.repeat(7) + H_HEX + 'aa'.repeat(3));
    writeHeader(H, out, 10); // the last offset that fits
    expect(toHex(out.subarray(10))).toBe(H_HEX);
  });
});

describe('header errors', () => {
  test.each([
    ['not an object', null],
    ['a number', 5],
    ['no key', { previousChainLength: 0, messageNumber: 0 }],
    ['31-byte key', { ...H, dhPublicKey: new Uint8Array(31) }],
    ['33-byte key', { ...H, dhPublicKey: new Uint8Array(33) }],
    ['key not bytes', { ...H, dhPublicKey: 'ab'.repeat(32) }],
    ['PN negative', { ...H, previousChainLength: -1 }],
    ['PN fractional', { ...H, previousChainLength: 1.5 }],
    ['PN as string', { ...H, previousChainLength: '1' }],
    ['N of 2^32', { ...H, messageNumber: 2 ** 32 }],
    ['N NaN', { ...H, messageNumber: NaN }],
  ])('%s: MALFORMED_MESSAGE from assertHeader, encodeHeader and writeHeader', (_name, h) => {
    expectE2EError(() => assertHeader(h), 'MALFORMED_MESSAGE');
    expectE2EError(() => encodeHeader(h as never), 'MALFORMED_MESSAGE');
    const out = new Uint8Array(40);
    expectE2EError(() => writeHeader(h as never, out, 0), 'MALFORMED_MESSAGE');
    expect(out).toEqual(new Uint8Array(40));
  });

  test.each([
    ['39 bytes', new Uint8Array(39)],
    ['41 bytes', new Uint8Array(41)],
    ['empty', new Uint8Array(0)],
    ['not bytes', 'x'.repeat(40)],
    ['null', null],
  ])('decodeHeader of %s: MALFORMED_MESSAGE', (_name, b) => {
    expectE2EError(() => decodeHeader(b as never), 'MALFORMED_MESSAGE');
  });

  test.each([
    ['a negative offset', 40, -1],
    ['a fractional offset', 41, 0.5],
    ['an offset past the end', 40, 1],
    ['a buffer too short', 39, 0],
  ])('writeHeader at %s: INVALID_ARGUMENT, nothing written', (_name, size, offset) => {
    const out = new Uint8Array(size);
    expectE2EError(() => writeHeader(H, out, offset), 'INVALID_ARGUMENT');
    expect(out).toEqual(new Uint8Array(size));
  });

  test('writeHeader into something not bytes: INVALID_ARGUMENT', () => {
    expectE2EError(() => writeHeader(H, [] as never, 0), 'INVALID_ARGUMENT');
  });
});
