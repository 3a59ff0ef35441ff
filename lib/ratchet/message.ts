/**
 * `EncryptedMessage`: a header and `nonce(12) ‖ ciphertext ‖ tag(16)`, with the binary envelope
 * `u32be(40) ‖ header ‖ ciphertext field` and the JSON transport form of PROTOCOL.md.
 */
import { E2EError } from '../errors';
import { AEAD_TAG_BYTES, CHACHA20_POLY1305_NONCE_BYTES, fromBase64, readU32BE, toBase64, writeU32BE } from '../crypto';
import { HEADER_BYTES, MessageHeader, assertHeader, writeHeader } from './header';

/** Bytes before the ciphertext field in an envelope: the length prefix and the header. */
export const ENVELOPE_PREFIX_BYTES = 4 + HEADER_BYTES;
/** Smallest valid ciphertext field: nonce and tag around an empty plaintext. */
export const MIN_CIPHERTEXT_BYTES = CHACHA20_POLY1305_NONCE_BYTES + AEAD_TAG_BYTES;
/** Smallest valid envelope. */
export const MIN_ENVELOPE_BYTES = ENVELOPE_PREFIX_BYTES + MIN_CIPHERTEXT_BYTES;

/** The JSON transport form (standard base64). */
export interface EncryptedMessageJSON {
  header: { dh: string; pn: number; n: number };
  ciphertext: string;
}

/** One ratchet message. Immutable: treat its byte arrays as read-only. */
export class EncryptedMessage {
  /** The clear-text header. */
  readonly header: MessageHeader;
  /** `nonce(12) ‖ ciphertext ‖ tag(16)`. */
  readonly ciphertext: Uint8Array;
  private envelope: Uint8Array | null;

  /** A message from its parts (checked: `MALFORMED_MESSAGE` on bad types or lengths). */
  constructor(header: MessageHeader, ciphertext: Uint8Array) {
    assertHeader(header);
    if (!(ciphertext instanceof Uint8Array) || ciphertext.length < MIN_CIPHERTEXT_BYTES) {
      throw new E2EError('MALFORMED_MESSAGE', `ciphertext must be at least ${MIN_CIPHERTEXT_BYTES} bytes`);
    }
    this.header = header;
    this.ciphertext = ciphertext;
    this.envelope = null;
  }

  /**
   * A message over an envelope the ratchet just built (no checks, no copies).
   * @internal
   */
  static fromTrustedEnvelope(envelope: Uint8Array): EncryptedMessage {
    const header: MessageHeader = {
      dhPublicKey: envelope.subarray(4, 36),
      previousChainLength: readU32BE(envelope, 36),
      messageNumber: readU32BE(envelope, 40),
    };
    const m = new EncryptedMessage(header, envelope.subarray(ENVELOPE_PREFIX_BYTES));
    m.envelope = envelope;
    return m;
  }

  /**
   * The binary envelope `u32be(40) ‖ header ‖ ciphertext field`. The bytes are the message's own
   * (no copy is made): do not modify them.
   */
  serialize(): Uint8Array {
    if (this.envelope === null) {
      const env = new Uint8Array(ENVELOPE_PREFIX_BYTES + this.ciphertext.length);
      writeU32BE(env, 0, HEADER_BYTES);
      writeHeader(this.header, env, 4);
      env.set(this.ciphertext, ENVELOPE_PREFIX_BYTES);
      this.envelope = env;
    }
    return this.envelope;
  }

  /** The 40 header bytes, as authenticated by the AEAD. @internal */
  headerBytes(): Uint8Array {
    return this.serialize().subarray(4, ENVELOPE_PREFIX_BYTES);
  }

  /**
   * Parses a binary envelope (copied, so later changes to `bytes` do not affect the message).
   * `MALFORMED_MESSAGE` unless the length prefix is 40 and the ciphertext field holds a nonce and a tag.
   */
  static deserialize(bytes: Uint8Array): EncryptedMessage {
    if (!(bytes instanceof Uint8Array)) throw new E2EError('MALFORMED_MESSAGE', 'message must be a Uint8Array');
    if (bytes.length < MIN_ENVELOPE_BYTES) throw new E2EError('MALFORMED_MESSAGE', 'message too short');
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

  /** Parses the JSON transport form (object or text); `MALFORMED_MESSAGE` on any defect. */
  static fromJSON(json: EncryptedMessageJSON | string): EncryptedMessage {
    let j: unknown = json;
    if (typeof json === 'string') {
      try {
        j = JSON.parse(json);
      } catch {
        throw new E2EError('MALFORMED_MESSAGE', 'message is not valid JSON');
      }
    }
    const o = j as Partial<EncryptedMessageJSON> | null;
    if (typeof o !== 'object' || o === null || typeof o.header !== 'object' || o.header === null) {
      throw new E2EError('MALFORMED_MESSAGE', 'message JSON needs header and ciphertext');
    }
    if (typeof o.header.dh !== 'string' || typeof o.ciphertext !== 'string') {
      throw new E2EError('MALFORMED_MESSAGE', 'message JSON fields must be base64 strings');
    }
    const header = { dhPublicKey: fromBase64(o.header.dh), previousChainLength: o.header.pn, messageNumber: o.header.n };
    return new EncryptedMessage(header as MessageHeader, fromBase64(o.ciphertext));
  }
}
