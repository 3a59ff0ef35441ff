/**
 * Byte helpers: concatenation, big-endian u32, hex, base64 (standard and url-safe unpadded), UTF-8,
 * constant-time equality and wiping. Decoders are strict and throw `MALFORMED_MESSAGE`.
 */
import naclUtil from 'tweetnacl-util';
import { E2EError } from '../errors';
import { isReady, sodium } from '../sodium';

/**
 * True when `bytes` is a view of a detached (transferred) or out-of-bounds buffer. Such a view
 * reports length 0, so only empty views are probed; every other operation on it (`set`, `slice`,
 * `subarray`, a `DataView`) would throw a `TypeError`.
 */
function isDetachedView(bytes: Uint8Array): boolean {
  const buf = bytes.buffer as ArrayBuffer & { detached?: boolean };
  if (typeof buf.detached === 'boolean') return buf.detached;
  try {
    // Node 20 has no `detached` getter: constructing a view over a detached buffer throws.
    new Uint8Array(buf, 0, 0);
    return false;
  } catch {
    return true;
  }
}

/**
 * True when `value` is a genuine, usable Uint8Array (a Node `Buffer` included): not an object that
 * only inherits from `Uint8Array.prototype`, not a Proxy, not a view of a detached buffer.
 */
export function isUsableBytes(value: unknown): value is Uint8Array {
  // isView first: it sees through no Proxy (whose getPrototypeOf trap could throw in instanceof),
  // and an object made from Uint8Array.prototype passes instanceof but is no view.
  if (!ArrayBuffer.isView(value) || !(value instanceof Uint8Array)) return false;
  return value.length !== 0 || !isDetachedView(value);
}

/** Throws `INVALID_ARGUMENT` unless `value` is a Uint8Array (of `length` bytes, when given) over a live buffer. */
export function assertBytes(value: unknown, name: string, length?: number): asserts value is Uint8Array {
  if (!isUsableBytes(value)) {
    throw new E2EError('INVALID_ARGUMENT', `${name} must be a Uint8Array (over a buffer that is not detached)`);
  }
  if (length !== undefined && value.length !== length) {
    throw new E2EError('INVALID_ARGUMENT', `${name} must be ${length} bytes, got ${value.length}`);
  }
}

/** Throws `INVALID_KEY` unless `key` is a Uint8Array of exactly `length` bytes (a detached view has 0). */
export function assertKey(key: unknown, name: string, length: number): asserts key is Uint8Array {
  if (!isUsableBytes(key) || key.length !== length) {
    const got = ArrayBuffer.isView(key) && key instanceof Uint8Array ? `${key.length} bytes` : typeof key;
    throw new E2EError('INVALID_KEY', `${name} must be ${length} bytes, got ${got}`);
  }
}

/**
 * A plain `Uint8Array` over the same memory as `bytes` (no copy). A Node `Buffer`'s `slice` is a
 * view; a plain array's `slice` copies, so parsers that keep parts of their input use this first.
 */
export function plainView(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Concatenates byte arrays into a new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) {
    assertBytes(p, 'part');
    total += p.length;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Writes `value` (0 ≤ value < 2^32) as 4 big-endian bytes at `offset`. */
export function writeU32BE(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value >>> 24;
  out[offset + 1] = (value >>> 16) & 0xff;
  out[offset + 2] = (value >>> 8) & 0xff;
  out[offset + 3] = value & 0xff;
}

/** Reads 4 big-endian bytes at `offset` as an unsigned integer; `INVALID_ARGUMENT` if they are not all there. */
export function readU32BE(bytes: Uint8Array, offset: number): number {
  assertBytes(bytes, 'bytes');
  if (!Number.isInteger(offset) || offset < 0 || offset > bytes.length - 4) {
    throw new E2EError('INVALID_ARGUMENT', 'u32 read out of range');
  }
  return ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3]) >>> 0;
}

/** `value` as 4 big-endian bytes; `INVALID_ARGUMENT` unless it is an integer in [0, 2^32). */
export function u32be(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new E2EError('INVALID_ARGUMENT', 'u32 value out of range');
  }
  const out = new Uint8Array(4);
  writeU32BE(out, 0, value);
  return out;
}

const HEX = '0123456789abcdef';
const HEX_PAIRS: string[] = Array.from({ length: 256 }, (_, i) => HEX[i >> 4] + HEX[i & 15]);

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  assertBytes(bytes, 'bytes');
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX_PAIRS[bytes[i]];
  return s;
}

function hexNibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Bytes of a hex string (either case); `MALFORMED_MESSAGE` on odd length or a non-hex character. */
export function fromHex(hex: string): Uint8Array {
  if (typeof hex !== 'string' || hex.length % 2 !== 0) throw new E2EError('MALFORMED_MESSAGE', 'invalid hex string');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexNibble(hex.charCodeAt(2 * i));
    const lo = hexNibble(hex.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw new E2EError('MALFORMED_MESSAGE', 'invalid hex string');
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** Standard padded base64 (RFC 4648 §4). */
export function toBase64(bytes: Uint8Array): string {
  assertBytes(bytes, 'bytes');
  return naclUtil.encodeBase64(bytes);
}

/** Bytes of standard padded base64; `MALFORMED_MESSAGE` on anything else. */
export function fromBase64(text: string): Uint8Array {
  if (typeof text !== 'string') throw new E2EError('MALFORMED_MESSAGE', 'invalid base64');
  let out: Uint8Array;
  try {
    out = naclUtil.decodeBase64(text);
  } catch {
    throw new E2EError('MALFORMED_MESSAGE', 'invalid base64');
  }
  // tweetnacl-util ignores the unused low bits of the last character; one string per byte string.
  if (naclUtil.encodeBase64(out) !== text) throw new E2EError('MALFORMED_MESSAGE', 'invalid base64');
  return out;
}

/** URL-safe base64 without padding (RFC 4648 §5). */
export function toBase64Url(bytes: Uint8Array): string {
  assertBytes(bytes, 'bytes');
  const w = sodium().wrapper;
  return w.to_base64(bytes, w.base64_variants.URLSAFE_NO_PADDING);
}

/** Bytes of URL-safe unpadded base64; `MALFORMED_MESSAGE` on anything else. */
export function fromBase64Url(text: string): Uint8Array {
  if (typeof text !== 'string') throw new E2EError('MALFORMED_MESSAGE', 'invalid base64url');
  const w = sodium().wrapper;
  try {
    return w.from_base64(text, w.base64_variants.URLSAFE_NO_PADDING);
  } catch {
    throw new E2EError('MALFORMED_MESSAGE', 'invalid base64url');
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** An unpaired UTF-16 surrogate (a pair is one code point under the `u` flag, so it never matches). */
const LONE_SURROGATE = /\p{Cs}/u;

/** UTF-8 bytes of `text`; `INVALID_ARGUMENT` if it has an unpaired surrogate (TextEncoder would map it to U+FFFD). */
export function utf8(text: string): Uint8Array {
  if (typeof text !== 'string') throw new E2EError('INVALID_ARGUMENT', 'text must be a string');
  if (LONE_SURROGATE.test(text)) throw new E2EError('INVALID_ARGUMENT', 'text has an unpaired surrogate');
  return encoder.encode(text);
}

/** The string of UTF-8 `bytes`; `MALFORMED_MESSAGE` on invalid UTF-8. */
export function fromUtf8(bytes: Uint8Array): string {
  assertBytes(bytes, 'bytes');
  try {
    return decoder.decode(bytes);
  } catch {
    throw new E2EError('MALFORMED_MESSAGE', 'invalid UTF-8');
  }
}

/**
 * Constant-time equality (libsodium's `memcmp`): the time depends only on the lengths, which are
 * public. Different lengths are simply unequal.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  assertBytes(a, 'a');
  assertBytes(b, 'b');
  if (a.length !== b.length) return false;
  return sodium().wrapper.memcmp(a, b);
}

/** Overwrites `bytes` with zeros (libsodium's `memzero`). Safe on `null`/`undefined`. */
export function memzero(bytes: Uint8Array | null | undefined): void {
  if (bytes === null || bytes === undefined) return;
  assertBytes(bytes, 'bytes');
  // Wiping must work even after a failed init, so fall back to a plain fill.
  if (isReady()) sodium().wrapper.memzero(bytes);
  else bytes.fill(0);
}
