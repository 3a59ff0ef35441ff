/**
 * `EncryptedMessage`: a header and `nonce(12) ‖ ciphertext ‖ tag(16)`, with the binary envelope
 * `u32be(40) ‖ header ‖ ciphertext field` and the JSON transport form of PROTOCOL.md.
 */
import { E2EError } from '../errors';
import { fromBase64, isUsableBytes, readU32BE, toBase64 } from '../crypto/bytes';
import {
  ENVELOPE_DH_AT,
  ENVELOPE_N_AT,
  ENVELOPE_PN_AT,
  ENVELOPE_PREFIX_BYTES,
  MAX_ENVELOPE_BYTES,
  MIN_CIPHERTEXT_BYTES,
  MIN_ENVELOPE_BYTES,
  assertEnvelope,
  writeEnvelopePrefix,
} from '../crypto/envelope-layout';
import { readFields } from '../crypto/input';
import { parseJsonInput } from '../crypto/json';
import { MAX_PLAINTEXT_BYTES } from '../limits';
import { MessageHeader, assertHeader } from './header';

// The envelope's sizes are part of the ratchet's public surface; they are defined with its layout.
export { ENVELOPE_PREFIX_BYTES, MAX_ENVELOPE_BYTES, MIN_CIPHERTEXT_BYTES, MIN_ENVELOPE_BYTES } from '../crypto/envelope-layout';

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
  /** The clear-text header: the sender's ratchet public key `dh` (base64), PN `pn` and N `n`. */
  header: { dh: string; pn: number; n: number };
  /** `nonce(12) ‖ ciphertext ‖ tag(16)`, base64. */
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
    if (
      !ArrayBuffer.isView(envelope) ||
      !(envelope instanceof Uint8Array) ||
      envelope.length < MIN_ENVELOPE_BYTES ||
      envelope.length > MAX_ENVELOPE_BYTES
    ) {
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
      this.hdr = Object.freeze({
        dhPublicKey: env.subarray(ENVELOPE_DH_AT, ENVELOPE_DH_AT + 32),
        previousChainLength: readU32BE(env, ENVELOPE_PN_AT),
        messageNumber: readU32BE(env, ENVELOPE_N_AT),
      });
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
      const h = this.hdr as MessageHeader;
      writeEnvelopePrefix(env, h.dhPublicKey, h.previousChainLength, h.messageNumber);
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
    assertEnvelope(bytes);
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
