/**
 * `EncryptedMessage`: a header and `nonce(12) ‖ ciphertext ‖ tag(16)`, with the binary envelope
 * `u32be(40) ‖ header ‖ ciphertext field` and the JSON transport form of PROTOCOL.md.
 */
import { E2EError } from '../errors';
import { AEAD_TAG_BYTES, CHACHA20_POLY1305_NONCE_BYTES } from '../crypto/aead';
import { fromBase64, isUsableBytes, readU32BE, toBase64, writeU32BE } from '../crypto/bytes';
import { readFields } from '../crypto/input';
import { parseJsonInput } from '../crypto/json';
import { MAX_PLAINTEXT_BYTES } from '../limits';
import { HEADER_BYTES, MessageHeader, assertHeader } from './header';

/** Bytes before the ciphertext field in an envelope: the length prefix and the header. */
export const ENVELOPE_PREFIX_BYTES = 4 + HEADER_BYTES;
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

/** Characters of standard padded base64 for `n` bytes. */
const base64Chars = (n: number): number => 4 * Math.ceil(n / 3);
/** Longest `ciphertext` string of a valid message's JSON form: the base64 of the largest ciphertext field. */
export const MAX_CIPHERTEXT_BASE64_CHARS = base64Chars(MAX_PLAINTEXT_BYTES + MIN_CIPHERTEXT_BYTES);
/**
 * Longest JSON text {@link EncryptedMessage.fromJSON} parses: the largest ciphertext's base64 and
 * room for the header. Longer text is refused (`MESSAGE_TOO_LARGE`) before `JSON.parse` runs.
 */
export const MAX_MESSAGE_JSON_CHARS = MAX_CIPHERTEXT_BASE64_CHARS + 1024;

/** The JSON transport form (standard base64). */
export interface EncryptedMessageJSON {
  header: { dh: string; pn: number; n: number };
  ciphertext: string;
}

/** One ratchet message. Immutable: treat its byte arrays as read-only. */
export class EncryptedMessage {
  // A message is either built from parts or wraps an envelope; the other form is made on demand,
  // so the ratchet's hot path creates no header object and copies nothing.
  private hdr: MessageHeader | null;
  private body: Uint8Array | null;
  private envelope: Uint8Array | null;

  /** A message from its parts (checked: `MALFORMED_MESSAGE` on bad types or lengths). */
  constructor(header: MessageHeader, ciphertext: Uint8Array) {
    // Read once, then checked: a getter cannot answer differently between the check and the copy.
    const h = readFields(header, ['dhPublicKey', 'previousChainLength', 'messageNumber'] as const, 'header', 'MALFORMED_MESSAGE');
    assertHeader(h);
    if (!isUsableBytes(ciphertext) || ciphertext.length < MIN_CIPHERTEXT_BYTES) {
      throw new E2EError('MALFORMED_MESSAGE', `ciphertext must be at least ${MIN_CIPHERTEXT_BYTES} bytes`);
    }
    if (ciphertext.length > MAX_ENVELOPE_BYTES - ENVELOPE_PREFIX_BYTES) throw new E2EError('MESSAGE_TOO_LARGE', 'message too large');
    // Copies, frozen: the caller's objects may change after the checks, and `header` is handed out.
    this.hdr = Object.freeze({
      dhPublicKey: Uint8Array.from(h.dhPublicKey),
      previousChainLength: h.previousChainLength,
      messageNumber: h.messageNumber,
    });
    this.body = Uint8Array.from(ciphertext);
    this.envelope = null;
  }

  /**
   * A message over an envelope that is known to be well formed (no copy: the ratchet's send path).
   * Only its type and length bounds are checked (`MALFORMED_MESSAGE`), so nothing breaks later.
   * @internal
   */
  static fromTrustedEnvelope(envelope: Uint8Array): EncryptedMessage {
    if (!ArrayBuffer.isView(envelope) || !(envelope instanceof Uint8Array)
      || envelope.length < MIN_ENVELOPE_BYTES || envelope.length > MAX_ENVELOPE_BYTES) {
      throw new E2EError('MALFORMED_MESSAGE', 'not a well-formed envelope');
    }
    const m: EncryptedMessage = Object.create(EncryptedMessage.prototype);
    m.hdr = null;
    m.body = null;
    m.envelope = envelope;
    return m;
  }

  /** The clear-text header. */
  get header(): MessageHeader {
    if (this.hdr === null) {
      const env = this.envelope as Uint8Array;
      this.hdr = Object.freeze({ dhPublicKey: env.subarray(4, 36), previousChainLength: readU32BE(env, 36), messageNumber: readU32BE(env, 40) });
    }
    return this.hdr;
  }

  /** `nonce(12) ‖ ciphertext ‖ tag(16)`. */
  get ciphertext(): Uint8Array {
    if (this.body === null) this.body = (this.envelope as Uint8Array).subarray(ENVELOPE_PREFIX_BYTES);
    return this.body;
  }

  /**
   * The binary envelope `u32be(40) ‖ header ‖ ciphertext field`. The bytes are the message's own
   * (no copy is made): do not modify them.
   */
  serialize(): Uint8Array {
    if (this.envelope === null) {
      const body = this.body as Uint8Array;
      const env = new Uint8Array(ENVELOPE_PREFIX_BYTES + body.length);
      writeU32BE(env, 0, HEADER_BYTES);
      const h = this.hdr as MessageHeader;
      env.set(h.dhPublicKey, 4);
      writeU32BE(env, 36, h.previousChainLength);
      writeU32BE(env, 40, h.messageNumber);
      env.set(body, ENVELOPE_PREFIX_BYTES);
      this.envelope = env;
    }
    return this.envelope;
  }

  /**
   * Parses a binary envelope (copied, so later changes to `bytes` do not affect the message).
   * `MALFORMED_MESSAGE` unless the length prefix is 40 and the ciphertext field holds a nonce and a tag.
   */
  static deserialize(bytes: Uint8Array): EncryptedMessage {
    if (!isUsableBytes(bytes)) throw new E2EError('MALFORMED_MESSAGE', 'message must be a Uint8Array');
    if (bytes.length < MIN_ENVELOPE_BYTES) throw new E2EError('MALFORMED_MESSAGE', 'message too short');
    if (bytes.length > MAX_ENVELOPE_BYTES) throw new E2EError('MESSAGE_TOO_LARGE', `message above ${MAX_ENVELOPE_BYTES} bytes`);
    if (readU32BE(bytes, 0) !== HEADER_BYTES) throw new E2EError('MALFORMED_MESSAGE', 'header length prefix must be 40');
    return EncryptedMessage.fromTrustedEnvelope(Uint8Array.from(bytes));
  }

  /** The JSON transport form `{ header: { dh, pn, n }, ciphertext }` (standard base64). */
  toJSON(): EncryptedMessageJSON {
    return {
      header: { dh: toBase64(this.header.dhPublicKey), pn: this.header.previousChainLength, n: this.header.messageNumber },
      ciphertext: toBase64(this.ciphertext),
    };
  }

  /**
   * Parses the JSON transport form (object or text); `MALFORMED_MESSAGE` on any defect. Sizes are
   * checked before any work: text above {@link MAX_MESSAGE_JSON_CHARS} or a `ciphertext` above
   * {@link MAX_CIPHERTEXT_BASE64_CHARS} is `MESSAGE_TOO_LARGE` before parsing or decoding, and `dh`
   * must be the 44 characters of a 32-byte key.
   */
  static fromJSON(json: EncryptedMessageJSON | string): EncryptedMessage {
    const j = parseJsonInput(json, 'message', MAX_MESSAGE_JSON_CHARS, 'MESSAGE_TOO_LARGE');
    const o = readFields(j, ['header', 'ciphertext'] as const, 'message JSON', 'MALFORMED_MESSAGE');
    const h = readFields(o.header, ['dh', 'pn', 'n'] as const, 'message JSON header', 'MALFORMED_MESSAGE');
    if (typeof h.dh !== 'string' || typeof o.ciphertext !== 'string') {
      throw new E2EError('MALFORMED_MESSAGE', 'message JSON fields must be base64 strings');
    }
    if (h.dh.length !== base64Chars(32)) throw new E2EError('MALFORMED_MESSAGE', 'header ratchet key must be 32 bytes');
    if (o.ciphertext.length > MAX_CIPHERTEXT_BASE64_CHARS) {
      throw new E2EError('MESSAGE_TOO_LARGE', `ciphertext above ${MAX_ENVELOPE_BYTES - ENVELOPE_PREFIX_BYTES} bytes`);
    }
    const header = { dhPublicKey: fromBase64(h.dh), previousChainLength: h.pn, messageNumber: h.n };
    return new EncryptedMessage(header as MessageHeader, fromBase64(o.ciphertext));
  }
}
