import fc from 'fast-check';
import * as bytesModule from '../../lib/crypto/bytes';
import { ByteReader, ByteWriter, isU32 } from '../../lib/crypto/byte-io';
import { expectE2EError } from '../helpers/expect-error';

describe('ByteWriter / ByteReader', () => {
  it('writes the exact bytes of each field', () => {
    const out = new ByteWriter(1)
      .u8(0x41)
      .u32(0x01020304)
      .bytes(new Uint8Array([9, 8]))
      .lengthPrefixed(new Uint8Array([7]))
      .f64(1.5)
      .finish();
    expect(Array.from(out)).toEqual([0x41, 1, 2, 3, 4, 9, 8, 0, 0, 0, 1, 7, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
  });

  it('wipes every buffer it outgrows and the one it kept at finish (layouts carry secret keys)', () => {
    const wiped: Uint8Array[] = [];
    const spy = jest.spyOn(bytesModule, 'memzero').mockImplementation((b) => {
      if (!b) return;
      wiped.push(b);
      b.fill(0);
    });
    try {
      const secret = new Uint8Array(32).fill(0xa5);
      const w = new ByteWriter(16); // outgrown twice: 16 → 32 → 64 bytes
      w.bytes(secret.subarray(0, 12)).bytes(secret.subarray(0, 12)).bytes(secret);
      expect(wiped.map((b) => b.length)).toEqual([16, 32]);
      const out = w.finish();
      expect(out).toEqual(new Uint8Array(56).fill(0xa5));
      expect(wiped.map((b) => b.length)).toEqual([16, 32, 64]);
      for (const b of wiped) expect(b.every((x) => x === 0)).toBe(true);
      expect(w.length).toBe(0);
    } finally {
      spy.mockRestore();
    }
  });

  it('reads back what it wrote, for any fields', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.uint8Array({ maxLength: 300 }),
        fc.double({ noNaN: true }),
        (a, b, c, d) => {
          const r = new ByteReader(new ByteWriter(4).u8(a).u32(b).lengthPrefixed(c).f64(d).finish(), 'test');
          expect(r.u8()).toBe(a);
          expect(r.u32()).toBe(b);
          expect(r.lengthPrefixed()).toEqual(c);
          expect(Object.is(r.f64(), d)).toBe(true);
          r.end();
        },
      ),
    );
  });

  it('refuses every truncation and trailing bytes with MALFORMED_MESSAGE', () => {
    const whole = new ByteWriter().u8(1).u32(5).lengthPrefixed(new Uint8Array(5)).finish();
    const read = (b: Uint8Array) => {
      const r = new ByteReader(b, 'test');
      r.u8();
      r.u32();
      r.lengthPrefixed();
      r.end();
    };
    read(whole);
    for (let n = 0; n < whole.length; n++) expectE2EError(() => read(whole.subarray(0, n)), 'MALFORMED_MESSAGE');
    const e = expectE2EError(() => read(new Uint8Array([...whole, 0])), 'MALFORMED_MESSAGE');
    expect(e.message).toBe('test: trailing bytes');
  });

  it('refuses lengths and counts the bytes cannot hold, before reading items', () => {
    expectE2EError(() => new ByteReader(new Uint8Array([0, 0, 0, 9, 1]), 't').lengthPrefixed(8), 'MALFORMED_MESSAGE');
    expectE2EError(() => new ByteReader(new Uint8Array([0xff, 0xff, 0xff, 0xff]), 't').count(1), 'MALFORMED_MESSAGE');
    expect(new ByteReader(new Uint8Array([0, 0, 0, 2, 1, 2]), 't').count(1)).toBe(2);
    expectE2EError(() => new ByteReader(new Uint8Array([0, 0, 0, 2, 1, 2]), 't').count(1, 1), 'MALFORMED_MESSAGE');
  });

  it('checks magic bytes', () => {
    const r = new ByteReader(new Uint8Array([0x41, 0x4d, 1]), 'state');
    r.expect(new Uint8Array([0x41, 0x4d]), 'not a state');
    expect(r.u8()).toBe(1);
    expectE2EError(
      () => new ByteReader(new Uint8Array([0x41]), 'state').expect(new Uint8Array([0x41, 0x4d]), 'not a state'),
      'MALFORMED_MESSAGE',
    );
    expectE2EError(
      () => new ByteReader(new Uint8Array([0x41, 0x4e]), 'state').expect(new Uint8Array([0x41, 0x4d]), 'not a state'),
      'MALFORMED_MESSAGE',
    );
  });

  it('returns copies, and refuses values that are not u32', () => {
    const src = new Uint8Array([1, 2, 3]);
    const got = new ByteReader(src, 't').bytes(3);
    src[0] = 9;
    expect(got[0]).toBe(1);
    for (const v of [-1, 2 ** 32, 1.5, NaN]) {
      expect(isU32(v)).toBe(false);
      expectE2EError(() => new ByteWriter().u32(v), 'INVALID_ARGUMENT');
    }
    expect(isU32(0) && isU32(0xffffffff)).toBe(true);
  });
});
