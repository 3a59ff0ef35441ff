/** The 40-byte message header: `ratchet public key(32) ‖ u32be(PN) ‖ u32be(N)`. */
import { E2EError } from '../errors';
import { readU32BE, writeU32BE } from '../crypto';

/** Bytes of an encoded header. */
export const HEADER_BYTES = 40;

/** The clear-text header of a ratchet message (authenticated as associated data). */
export interface MessageHeader {
  /** The sender's current ratchet public key (32 bytes). */
  readonly dhPublicKey: Uint8Array;
  /** Length of the sender's previous sending chain (PN). */
  readonly previousChainLength: number;
  /** Number of this message in its chain (N). */
  readonly messageNumber: number;
}

function isU32(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

/** Checks a header object's types and ranges; `MALFORMED_MESSAGE` otherwise. */
export function assertHeader(h: unknown): asserts h is MessageHeader {
  if (typeof h !== 'object' || h === null) throw new E2EError('MALFORMED_MESSAGE', 'header must be an object');
  const o = h as Record<string, unknown>;
  if (!(o.dhPublicKey instanceof Uint8Array) || o.dhPublicKey.length !== 32) {
    throw new E2EError('MALFORMED_MESSAGE', 'header ratchet key must be 32 bytes');
  }
  if (!isU32(o.previousChainLength) || !isU32(o.messageNumber)) {
    throw new E2EError('MALFORMED_MESSAGE', 'header counters must be integers in [0, 2^32)');
  }
}

/** Writes the 40-byte form of `header` into `out` at `offset`. */
export function writeHeader(header: MessageHeader, out: Uint8Array, offset: number): void {
  out.set(header.dhPublicKey, offset);
  writeU32BE(out, offset + 32, header.previousChainLength);
  writeU32BE(out, offset + 36, header.messageNumber);
}

/** The 40-byte form of `header`. */
export function encodeHeader(header: MessageHeader): Uint8Array {
  assertHeader(header);
  const out = new Uint8Array(HEADER_BYTES);
  writeHeader(header, out, 0);
  return out;
}

/** Parses 40 bytes as a header (the key is copied); `MALFORMED_MESSAGE` on a wrong length. */
export function decodeHeader(bytes: Uint8Array): MessageHeader {
  if (!(bytes instanceof Uint8Array) || bytes.length !== HEADER_BYTES) {
    throw new E2EError('MALFORMED_MESSAGE', `header must be ${HEADER_BYTES} bytes`);
  }
  return { dhPublicKey: bytes.slice(0, 32), previousChainLength: readU32BE(bytes, 32), messageNumber: readU32BE(bytes, 36) };
}
