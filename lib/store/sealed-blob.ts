/**
 * The sealed-blob layout (format 1), apart from the cipher that fills it:
 *
 * `"AMS"(3) ‖ version(1) ‖ keyId(8) ‖ nonce(24) ‖ ciphertext ‖ tag(16)`
 *
 * The header (magic, version, key id: the first 12 bytes) is also the start of the AEAD's
 * associated data. Read with {@link readSealedBlob}: a blob too short for the layout, or not
 * starting with the magic, is `MALFORMED_MESSAGE` (the cipher reports it as a `STORE_ERROR`); the version is returned, not checked, so a
 * reader can say which format it does not support.
 * @internal
 */
import { E2EError } from '../errors';
import { ByteReader, ByteWriter, XCHACHA20_POLY1305_NONCE_BYTES } from '../crypto';

/** "AMS": the first bytes of every sealed blob. */
const MAGIC = Uint8Array.of(0x41, 0x4d, 0x53);
/** Bytes of the key id (HKDF of the storage key: names it without revealing it). */
export const SEALED_KEY_ID_BYTES = 8;
/** Bytes of the header: magic, version, key id. */
export const SEALED_HEADER_BYTES = MAGIC.length + 1 + SEALED_KEY_ID_BYTES;
/** Bytes of the Poly1305 tag. */
const TAG_BYTES = 16;
/** The shortest blob: a header, a nonce and the tag of an empty plaintext. */
export const SEALED_OVERHEAD = SEALED_HEADER_BYTES + XCHACHA20_POLY1305_NONCE_BYTES + TAG_BYTES;

/** The fields of a sealed blob. */
export interface SealedBlobParts {
  readonly version: number;
  readonly keyId: Uint8Array;
  readonly nonce: Uint8Array;
  /** Ciphertext ‖ tag. */
  readonly sealed: Uint8Array;
}

/** The 12-byte header of a blob of format `version` sealed under the key named `keyId`. */
export function sealedBlobHeader(version: number, keyId: Uint8Array): Uint8Array {
  return new ByteWriter(SEALED_HEADER_BYTES).bytes(MAGIC).u8(version).bytes(keyId).finish();
}

/** A whole blob: `header ‖ nonce ‖ sealed`. */
export function writeSealedBlob(header: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array {
  return new ByteWriter(header.length + nonce.length + sealed.length).bytes(header).bytes(nonce).bytes(sealed).finish();
}

/** The fields of `blob` (copies). `MALFORMED_MESSAGE` if it is shorter than the layout or lacks the magic. */
export function readSealedBlob(blob: Uint8Array): SealedBlobParts {
  const r = new ByteReader(blob, 'sealed blob');
  r.expect(MAGIC, 'not a sealed blob');
  const version = r.u8();
  const keyId = r.bytes(SEALED_KEY_ID_BYTES);
  const nonce = r.bytes(XCHACHA20_POLY1305_NONCE_BYTES);
  // The ciphertext runs to the end (so there are no trailing bytes), its last 16 bytes the tag.
  if (r.remaining < TAG_BYTES) throw new E2EError('MALFORMED_MESSAGE', 'sealed blob: truncated');
  return { version, keyId, nonce, sealed: r.bytes(r.remaining) };
}
