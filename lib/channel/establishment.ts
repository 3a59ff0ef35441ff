/**
 * `ChannelEstablishment`: what the initiator sends so the responder can derive the X3DH secret,
 * with a binary form and the JSON transport form of PROTOCOL.md (`{ ik, ek, otk? }`, plus our
 * optional `spk`, the signed pre-key id, which the reference ignores, and for a post-quantum
 * establishment `kem` and `kct`, the KEM pre-key id and the ML-KEM-768 ciphertext).
 */
import { E2EError } from '../errors';
import { fromBase64, isInstance, isUsableBytes, parseJsonInput, plainView, readFields, toBase64 } from '../crypto';
import { ByteReader, ByteWriter, isU32 } from '../crypto/byte-io';
import { MAX_ESTABLISHMENT_JSON_CHARS } from '../limits';
import { MLKEM768_CIPHERTEXT_BYTES } from '../crypto/mlkem';

/** Standard base64 characters of a KEM ciphertext (1088 bytes). */
const KEM_CIPHERTEXT_BASE64_CHARS = 4 * Math.ceil(MLKEM768_CIPHERTEXT_BYTES / 3);

/** The JSON transport form (standard base64). */
export interface ChannelEstablishmentJSON {
  /** The initiator's X25519 identity key, standard base64 (44 characters). */
  ik: string;
  /** The initiator's X3DH ephemeral public key, standard base64 (44 characters). */
  ek: string;
  /** The responder's one-time pre-key id the initiator used, if any. */
  otk?: number;
  /** The responder's signed pre-key id the initiator used (ours; the reference ignores it). */
  spk?: number;
  /** The KEM pre-key id (post-quantum only, with `kct`). */
  kem?: number;
  /** The ML-KEM-768 ciphertext, standard base64 (post-quantum only, with `kem`). */
  kct?: string;
}

/** The fields of an establishment. */
export interface ChannelEstablishmentFields {
  /** The initiator's X25519 identity key. */
  readonly initiatorIdentityKey: Uint8Array;
  /** The initiator's X3DH ephemeral public key. */
  readonly ephemeralPublicKey: Uint8Array;
  /** The responder's one-time pre-key the initiator used, if any. */
  readonly usedOneTimeKeyId?: number | null | undefined;
  /** The responder's signed pre-key the initiator used (the current one when absent). */
  readonly signedPreKeyId?: number | null | undefined;
  /** The responder's KEM pre-key the initiator encapsulated to (post-quantum only, with `kemCiphertext`). */
  readonly kemPreKeyId?: number | null | undefined;
  /** The ML-KEM-768 ciphertext, 1088 bytes (post-quantum only, with `kemPreKeyId`). */
  readonly kemCiphertext?: Uint8Array | null | undefined;
}

const FLAG_OTK = 1;
const FLAG_SPK = 2;
const FLAG_KEM = 4;

/** An initiator's establishment message. Immutable. */
export class ChannelEstablishment implements ChannelEstablishmentFields {
  /** The initiator's X25519 identity key (32 bytes). */
  readonly initiatorIdentityKey: Uint8Array;
  /** The initiator's X3DH ephemeral public key (32 bytes). */
  readonly ephemeralPublicKey: Uint8Array;
  /** The responder's one-time pre-key the initiator used, or `undefined`. */
  readonly usedOneTimeKeyId: number | undefined;
  /** The responder's signed pre-key the initiator used, or `undefined` (then the responder's current one). */
  readonly signedPreKeyId: number | undefined;
  /** The responder's KEM pre-key the initiator encapsulated to, or `undefined` for a classic establishment. */
  readonly kemPreKeyId: number | undefined;
  readonly #kemCiphertext: Uint8Array | undefined;

  /** An establishment from its fields (copied; `MALFORMED_MESSAGE` on bad types or lengths). */
  constructor(fields: ChannelEstablishmentFields) {
    const {
      initiatorIdentityKey: ik,
      ephemeralPublicKey: ek,
      usedOneTimeKeyId: oneTimePreKeyId,
      signedPreKeyId: spk,
      kemPreKeyId: kemId,
      kemCiphertext: kct,
    } = readFields(
      fields,
      ['initiatorIdentityKey', 'ephemeralPublicKey', 'usedOneTimeKeyId', 'signedPreKeyId', 'kemPreKeyId', 'kemCiphertext'] as const,
      'establishment',
      'MALFORMED_MESSAGE',
    );
    if (!isUsableBytes(ik) || ik.length !== 32) throw new E2EError('MALFORMED_MESSAGE', 'initiatorIdentityKey must be 32 bytes');
    if (!isUsableBytes(ek) || ek.length !== 32) throw new E2EError('MALFORMED_MESSAGE', 'ephemeralPublicKey must be 32 bytes');
    if (oneTimePreKeyId !== undefined && oneTimePreKeyId !== null && !isU32(oneTimePreKeyId))
      throw new E2EError('MALFORMED_MESSAGE', 'usedOneTimeKeyId must be an integer in [0, 2^32)');
    if (spk !== undefined && spk !== null && !isU32(spk))
      throw new E2EError('MALFORMED_MESSAGE', 'signedPreKeyId must be an integer in [0, 2^32)');
    this.initiatorIdentityKey = Uint8Array.from(ik);
    this.ephemeralPublicKey = Uint8Array.from(ek);
    const hasKem = kemId !== undefined && kemId !== null;
    if (hasKem !== (kct !== undefined && kct !== null))
      throw new E2EError('MALFORMED_MESSAGE', 'kemPreKeyId and kemCiphertext go together');
    if (hasKem && !isU32(kemId)) throw new E2EError('MALFORMED_MESSAGE', 'kemPreKeyId must be an integer in [0, 2^32)');
    if (hasKem && (!isUsableBytes(kct) || kct.length !== MLKEM768_CIPHERTEXT_BYTES)) {
      throw new E2EError('MALFORMED_MESSAGE', `kemCiphertext must be ${MLKEM768_CIPHERTEXT_BYTES} bytes`);
    }
    this.usedOneTimeKeyId = oneTimePreKeyId ?? undefined;
    this.signedPreKeyId = spk ?? undefined;
    this.kemPreKeyId = hasKem ? (kemId as number) : undefined;
    this.#kemCiphertext = hasKem ? Uint8Array.from(kct as Uint8Array) : undefined;
  }

  /** Whether this is a post-quantum (PQXDH) establishment: it carries a KEM ciphertext. */
  get postQuantum(): boolean {
    return this.#kemCiphertext !== undefined;
  }

  /** The ML-KEM-768 ciphertext (1088 bytes, a copy), or `undefined` for a classic establishment. */
  get kemCiphertext(): Uint8Array | undefined {
    return this.#kemCiphertext && Uint8Array.from(this.#kemCiphertext);
  }

  /** Binary form: `ik(32) ‖ ek(32) ‖ flags(1) ‖ [u32be otk] ‖ [u32be spk] ‖ [u32be kem ‖ kct(1088)]`. */
  serialize(): Uint8Array {
    const hasOneTimePreKey = this.usedOneTimeKeyId !== undefined;
    const hasSignedPreKey = this.signedPreKeyId !== undefined;
    const kct = this.#kemCiphertext;
    const w = new ByteWriter(73 + (kct ? 4 + kct.length : 0)).bytes(this.initiatorIdentityKey).bytes(this.ephemeralPublicKey);
    w.u8((hasOneTimePreKey ? FLAG_OTK : 0) | (hasSignedPreKey ? FLAG_SPK : 0) | (kct ? FLAG_KEM : 0));
    if (hasOneTimePreKey) w.u32(this.usedOneTimeKeyId as number);
    if (hasSignedPreKey) w.u32(this.signedPreKeyId as number);
    if (kct) w.u32(this.kemPreKeyId as number).bytes(kct);
    return w.finish();
  }

  /** Parses the binary form; `MALFORMED_MESSAGE` on any defect. */
  static deserialize(bytes: Uint8Array): ChannelEstablishment {
    if (!isUsableBytes(bytes)) throw new E2EError('MALFORMED_MESSAGE', 'establishment too short');
    const r = new ByteReader(plainView(bytes), 'establishment');
    const initiatorIdentityKey = r.bytes(32);
    const ephemeralPublicKey = r.bytes(32);
    const flags = r.u8();
    if (flags & ~(FLAG_OTK | FLAG_SPK | FLAG_KEM)) throw new E2EError('MALFORMED_MESSAGE', 'unknown establishment flags');
    const oneTimePreKeyId = flags & FLAG_OTK ? r.u32() : undefined;
    const signedPreKeyId = flags & FLAG_SPK ? r.u32() : undefined;
    const kemPreKeyId = flags & FLAG_KEM ? r.u32() : undefined;
    const kemCiphertext = flags & FLAG_KEM ? r.bytes(MLKEM768_CIPHERTEXT_BYTES) : undefined;
    r.end();
    return new ChannelEstablishment({
      initiatorIdentityKey,
      ephemeralPublicKey,
      usedOneTimeKeyId: oneTimePreKeyId,
      signedPreKeyId,
      kemPreKeyId,
      kemCiphertext,
    });
  }

  /** The JSON transport form `{ ik, ek, otk?, spk?, kem?, kct? }`. */
  toJSON(): ChannelEstablishmentJSON {
    const j: ChannelEstablishmentJSON = { ik: toBase64(this.initiatorIdentityKey), ek: toBase64(this.ephemeralPublicKey) };
    if (this.usedOneTimeKeyId !== undefined) j.otk = this.usedOneTimeKeyId;
    if (this.signedPreKeyId !== undefined) j.spk = this.signedPreKeyId;
    if (this.#kemCiphertext) {
      j.kem = this.kemPreKeyId as number;
      j.kct = toBase64(this.#kemCiphertext);
    }
    return j;
  }

  /**
   * Parses the JSON transport form (object or text); `MALFORMED_MESSAGE` on any defect. Text above
   * {@link MAX_ESTABLISHMENT_JSON_CHARS}, or keys that are not 44 characters, are refused before
   * any parsing or decoding.
   */
  static fromJSON(json: ChannelEstablishmentJSON | string): ChannelEstablishment {
    const j = parseJsonInput(json, 'establishment', MAX_ESTABLISHMENT_JSON_CHARS);
    const o = readFields(j, ['ik', 'ek', 'otk', 'spk', 'kem', 'kct'] as const, 'establishment JSON', 'MALFORMED_MESSAGE');
    if (typeof o.ik !== 'string' || typeof o.ek !== 'string') {
      throw new E2EError('MALFORMED_MESSAGE', 'establishment JSON needs ik and ek');
    }
    if (o.ik.length !== 44 || o.ek.length !== 44) throw new E2EError('MALFORMED_MESSAGE', 'establishment keys must be 32 bytes of base64');
    const kct = o.kct ?? undefined;
    if (kct !== undefined && (typeof kct !== 'string' || kct.length !== KEM_CIPHERTEXT_BASE64_CHARS)) {
      throw new E2EError('MALFORMED_MESSAGE', `establishment kct must be ${MLKEM768_CIPHERTEXT_BYTES} bytes of base64`);
    }
    return new ChannelEstablishment({
      initiatorIdentityKey: fromBase64(o.ik),
      ephemeralPublicKey: fromBase64(o.ek),
      usedOneTimeKeyId: (o.otk ?? undefined) as number | undefined,
      signedPreKeyId: (o.spk ?? undefined) as number | undefined,
      kemPreKeyId: (o.kem ?? undefined) as number | undefined,
      kemCiphertext: kct === undefined ? undefined : fromBase64(kct),
    });
  }

  /** `e` as a `ChannelEstablishment` (it may be one already, or a plain object with its fields). */
  static from(e: ChannelEstablishment | ChannelEstablishmentFields): ChannelEstablishment {
    return isInstance(e, ChannelEstablishment) ? e : new ChannelEstablishment(e);
  }
}
