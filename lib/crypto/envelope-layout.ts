/**
 * The ratchet message envelope of PROTOCOL.md, in one place:
 * `u32be(40) ‖ ratchet key(32) ‖ u32be(PN) ‖ u32be(N) ‖ nonce(12) ‖ ciphertext ‖ tag(16)`.
 * The header (key, PN, N) is 40 bytes; the sealer and the opener (`message-aead.ts`), the codecs and
 * the ratchet all read their offsets here, and every receive path checks an envelope with
 * {@link assertEnvelope}. A leaf: it imports nothing from the ratchet.
 * @internal
 */
import { E2EError } from '../errors';
import { MAX_PLAINTEXT_BYTES } from '../limits';
import { AEAD_TAG_BYTES, CHACHA20_POLY1305_NONCE_BYTES } from './aead';
import { readU32BE, writeU32BE } from './bytes';

/** Bytes of an encoded header: ratchet key, PN, N. */
export const HEADER_BYTES = 40;
/** Offset of the ratchet public key in a header. */
export const HEADER_DH_AT = 0;
/** Offset of PN (length of the sender's previous sending chain) in a header. */
export const HEADER_PN_AT = 32;
/** Offset of N (number of the message in its chain) in a header. */
export const HEADER_N_AT = 36;

/** Offset of the header in an envelope, after its u32be length prefix (whose value is always 40). */
export const ENVELOPE_HEADER_AT = 4;
/** Offset of the sender's ratchet public key in an envelope. */
export const ENVELOPE_DH_AT = ENVELOPE_HEADER_AT + HEADER_DH_AT;
/** Offset of PN in an envelope. */
export const ENVELOPE_PN_AT = ENVELOPE_HEADER_AT + HEADER_PN_AT;
/** Offset of N in an envelope. */
export const ENVELOPE_N_AT = ENVELOPE_HEADER_AT + HEADER_N_AT;
/** Bytes before the ciphertext field (`nonce ‖ ciphertext ‖ tag`): the length prefix and the header. */
export const ENVELOPE_PREFIX_BYTES = ENVELOPE_HEADER_AT + HEADER_BYTES;
/** Offset of the nonce in an envelope. */
export const ENVELOPE_NONCE_AT = ENVELOPE_PREFIX_BYTES;
/** Offset of the ciphertext proper (after the nonce) in an envelope. */
export const ENVELOPE_CIPHERTEXT_AT = ENVELOPE_NONCE_AT + CHACHA20_POLY1305_NONCE_BYTES;

/** Smallest valid ciphertext field: nonce and tag around an empty plaintext. */
export const MIN_CIPHERTEXT_BYTES = CHACHA20_POLY1305_NONCE_BYTES + AEAD_TAG_BYTES;
/** Smallest valid envelope. */
export const MIN_ENVELOPE_BYTES = ENVELOPE_PREFIX_BYTES + MIN_CIPHERTEXT_BYTES;
/**
 * Largest valid envelope (16 MiB + 72): what a sender makes of the largest plaintext it accepts.
 * Every receive path refuses a larger one (`MESSAGE_TOO_LARGE`) before it decodes or touches the
 * WASM heap. Cost of one at the cap: a message above the scratch region's 256 KiB working size
 * goes through the heap in 64 KiB windows (tag checked first, then decrypted window by window), so
 * no message of any size grows libsodium's WASM memory; a forged one costs one Poly1305 pass over
 * its bytes (and, for `fromJSON`, one base64 decode of at most 22.4 MiB of text).
 */
export const MAX_ENVELOPE_BYTES = MIN_ENVELOPE_BYTES + MAX_PLAINTEXT_BYTES;

/**
 * The envelope checks every receive path makes before anything else: at least
 * {@link MIN_ENVELOPE_BYTES} (`MALFORMED_MESSAGE`), at most {@link MAX_ENVELOPE_BYTES}
 * (`MESSAGE_TOO_LARGE`), and a length prefix of 40 (`MALFORMED_MESSAGE`).
 * @internal
 */
export function assertEnvelope(env: Uint8Array): void {
  if (env.length < MIN_ENVELOPE_BYTES) throw new E2EError('MALFORMED_MESSAGE', 'message too short');
  if (env.length > MAX_ENVELOPE_BYTES) throw new E2EError('MESSAGE_TOO_LARGE', `message above ${MAX_ENVELOPE_BYTES} bytes`);
  if (readU32BE(env, 0) !== HEADER_BYTES) throw new E2EError('MALFORMED_MESSAGE', 'header length prefix must be 40');
}

/**
 * Writes the length prefix and the header (`dh`, `pn`, `n`) at the front of `env`. Trusted inputs
 * (a 32-byte key, u32 counters, an envelope of at least {@link ENVELOPE_PREFIX_BYTES}).
 * @internal
 */
export function writeEnvelopePrefix(env: Uint8Array, dh: Uint8Array, pn: number, n: number): void {
  writeU32BE(env, 0, HEADER_BYTES);
  env.set(dh, ENVELOPE_DH_AT);
  writeU32BE(env, ENVELOPE_PN_AT, pn);
  writeU32BE(env, ENVELOPE_N_AT, n);
}
