/**
 * One byte writer and one byte reader for every binary layout the library defines (ratchet state,
 * key manager, channel, establishment, sealed blob). A layout is then a list of field calls, and
 * truncation or trailing bytes fail the same way everywhere: `MALFORMED_MESSAGE`. Internal to the library.
 */
import { E2EError, ErrorCode } from '../errors';
import { memzero } from './bytes';

/** Largest value a u32 field holds. */
const U32_MAX = 0xffffffff;

/** True when `value` is an integer in [0, 2^32 - 1]: the one u32 check of the library. @internal */
export function isU32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= U32_MAX;
}

/**
 * Appends fields to a growing buffer. Buffers it outgrows, and the one it keeps after `finish`, are
 * wiped: layouts carry secret keys.
 * @internal
 */
export class ByteWriter {
  #buf: Uint8Array;
  #len = 0;

  /** @param capacity bytes to reserve up front (the exact size, when the layout knows it). */
  constructor(capacity = 256) {
    this.#buf = new Uint8Array(Math.max(16, capacity));
  }

  #reserve(n: number): number {
    const at = this.#len;
    if (at + n > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#buf.length * 2, at + n));
      grown.set(this.#buf.subarray(0, at));
      memzero(this.#buf);
      this.#buf = grown;
    }
    this.#len = at + n;
    return at;
  }

  /** One byte. */
  u8(value: number): this {
    const at = this.#reserve(1); // before reading #buf: reserving may replace it
    this.#buf[at] = value & 0xff;
    return this;
  }

  /** A big-endian u32; a value outside [0, 2^32 - 1] is a bug in the caller. */
  u32(value: number): this {
    if (!isU32(value)) throw new E2EError(ErrorCode.INVALID_ARGUMENT, 'value does not fit in a u32');
    const at = this.#reserve(4);
    this.#buf[at] = value >>> 24;
    this.#buf[at + 1] = (value >>> 16) & 0xff;
    this.#buf[at + 2] = (value >>> 8) & 0xff;
    this.#buf[at + 3] = value & 0xff;
    return this;
  }

  /** A big-endian IEEE-754 double (timestamps). */
  f64(value: number): this {
    const at = this.#reserve(8);
    new DataView(this.#buf.buffer, this.#buf.byteOffset + at, 8).setFloat64(0, value, false);
    return this;
  }

  /** Bytes as they are (a field of fixed length). */
  bytes(value: Uint8Array): this {
    const at = this.#reserve(value.length);
    this.#buf.set(value, at);
    return this;
  }

  /** A u32 length, then the bytes. */
  lengthPrefixed(value: Uint8Array): this {
    return this.u32(value.length).bytes(value);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  /** The layout, as a fresh array of exactly its length; the writer's buffer is wiped. */
  finish(): Uint8Array {
    const out = this.#buf.slice(0, this.#len);
    memzero(this.#buf);
    this.#len = 0;
    return out;
  }
}

/**
 * Reads fields off a byte array front to back. Every read past the end, and `end()` with bytes
 * left, throws `MALFORMED_MESSAGE` naming what was being read; fields come back as copies.
 * @internal
 */
export class ByteReader {
  readonly #bytes: Uint8Array;
  readonly #what: string;
  #at = 0;

  /** @param what the layout's name, for error messages ("ratchet state"). */
  constructor(bytes: Uint8Array, what: string) {
    this.#bytes = bytes;
    this.#what = what;
  }

  #malformed(detail: string): E2EError {
    return new E2EError(ErrorCode.MALFORMED_MESSAGE, `${this.#what}: ${detail}`);
  }

  #take(n: number): number {
    const at = this.#at;
    if (n > this.#bytes.length - at) throw this.#malformed('truncated');
    this.#at = at + n;
    return at;
  }

  /** One byte. */
  u8(): number {
    return this.#bytes[this.#take(1)] as number;
  }

  /** A big-endian u32. */
  u32(): number {
    const at = this.#take(4);
    const b = this.#bytes;
    return (b[at] as number) * 0x1000000 + (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number));
  }

  /** A big-endian IEEE-754 double. */
  f64(): number {
    const at = this.#take(8);
    return new DataView(this.#bytes.buffer, this.#bytes.byteOffset + at, 8).getFloat64(0, false);
  }

  /** `n` bytes, copied. */
  bytes(n: number): Uint8Array {
    const at = this.#take(n);
    return this.#bytes.slice(at, at + n);
  }

  /** A u32 length (at most `max`), then that many bytes, copied. */
  lengthPrefixed(max: number = U32_MAX): Uint8Array {
    const n = this.u32();
    if (n > max) throw this.#malformed('field longer than allowed');
    return this.bytes(n);
  }

  /** A u32 count of items each at least `minItemBytes` long; a count the rest cannot hold is refused before any item is read. */
  count(minItemBytes: number, max: number = U32_MAX): number {
    const n = this.u32();
    if (n > max || n * minItemBytes > this.remaining) throw this.#malformed('count larger than the bytes hold');
    return n;
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.#bytes.length - this.#at;
  }

  /** Reads `magic` and fails unless the bytes start with it. */
  expect(magic: Uint8Array, detail: string): void {
    if (magic.length > this.remaining) throw this.#malformed(detail);
    for (let i = 0; i < magic.length; i++) if (this.#bytes[this.#at + i] !== magic[i]) throw this.#malformed(detail);
    this.#at += magic.length;
  }

  /** Fails when bytes are left over: a layout is read whole or not at all. */
  end(): void {
    if (this.#at !== this.#bytes.length) throw this.#malformed('trailing bytes');
  }
}
