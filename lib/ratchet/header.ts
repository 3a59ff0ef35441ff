/** The 40-byte message header: `ratchet public key(32) ‖ u32be(PN) ‖ u32be(N)`. */
import { E2EError } from '../errors';
import { isU32 } from '../crypto/byte-io';
import { isUsableBytes, readU32BE, writeU32BE } from '../crypto/bytes';
import { HEADER_BYTES, HEADER_DH_AT, HEADER_N_AT, HEADER_PN_AT } from '../crypto/envelope-layout';
import { readFields } from '../crypto/input';

// Re-exported: the header length is part of the ratchet's public surface.
export { HEADER_BYTES } from '../crypto/envelope-layout';

/** The clear-text header of a ratchet message (authenticated as associated data). */
export interface MessageHeader {
  /** The sender's current ratchet public key (32 bytes). */
  readonly dhPublicKey: Uint8Array;
  /** Length of the sender's previous sending chain (PN). */
  readonly previousChainLength: number;
  /** Number of this message in its chain (N). */
  readonly messageNumber: number;
}

/** Checks a header object's types and ranges; `MALFORMED_MESSAGE` otherwise. */
export function assertHeader(h: unknown): asserts h is MessageHeader {
  const o = readFields(h, ['dhPublicKey', 'previousChainLength', 'messageNumber'] as const, 'header', 'MALFORMED_MESSAGE');
  if (!isUsableBytes(o.dhPublicKey) || o.dhPublicKey.length !== 32) {
    throw new E2EError('MALFORMED_MESSAGE', 'header ratchet key must be 32 bytes');
  }
  if (!isU32(o.previousChainLength) || !isU32(o.messageNumber)) {
    throw new E2EError('MALFORMED_MESSAGE', 'header counters must be integers in [0, 2^32)');
  }
}

/**
 * Writes the 40-byte form of `header` into `out` at `offset`. `MALFORMED_MESSAGE` for a bad header,
 * `INVALID_ARGUMENT` when the 40 bytes do not fit in `out` there; nothing is written then.
 */
export function writeHeader(header: MessageHeader, out: Uint8Array, offset: number): void {
  const h = readFields(header, ['dhPublicKey', 'previousChainLength', 'messageNumber'] as const, 'header', 'MALFORMED_MESSAGE');
  assertHeader(h);
  if (!isUsableBytes(out)) throw new E2EError('INVALID_ARGUMENT', 'out must be a Uint8Array');
  if (!Number.isInteger(offset) || offset < 0 || offset > out.length - HEADER_BYTES) {
    throw new E2EError('INVALID_ARGUMENT', 'header does not fit at that offset');
  }
  put(h, out, offset);
}

function put(header: MessageHeader, out: Uint8Array, offset: number): void {
  out.set(header.dhPublicKey, offset + HEADER_DH_AT);
  writeU32BE(out, offset + HEADER_PN_AT, header.previousChainLength);
  writeU32BE(out, offset + HEADER_N_AT, header.messageNumber);
}

/** The 40-byte form of `header`. */
export function encodeHeader(header: MessageHeader): Uint8Array {
  const h = readFields(header, ['dhPublicKey', 'previousChainLength', 'messageNumber'] as const, 'header', 'MALFORMED_MESSAGE');
  assertHeader(h);
  const out = new Uint8Array(HEADER_BYTES);
  put(h, out, 0);
  return out;
}

/** Parses 40 bytes as a header (the key is copied); `MALFORMED_MESSAGE` on a wrong length. */
export function decodeHeader(bytes: Uint8Array): MessageHeader {
  if (!isUsableBytes(bytes) || bytes.length !== HEADER_BYTES) {
    throw new E2EError('MALFORMED_MESSAGE', `header must be ${HEADER_BYTES} bytes`);
  }
  return {
    dhPublicKey: bytes.slice(HEADER_DH_AT, HEADER_DH_AT + 32),
    previousChainLength: readU32BE(bytes, HEADER_PN_AT),
    messageNumber: readU32BE(bytes, HEADER_N_AT),
  };
}
