/**
 * `ChannelEstablishment`: what the initiator sends so the responder can derive the X3DH secret,
 * with a binary form and the JSON transport form of PROTOCOL.md (`{ ik, ek, otk? }`, plus our
 * optional `spk`, the signed pre-key id, which the reference ignores).
 */
import { E2EError } from '../errors';
import { fromBase64, isInstance, isUsableBytes, parseJsonInput, plainView, readFields, toBase64 } from '../crypto';
import { ByteReader, ByteWriter, isU32 } from '../crypto/byte-io';
import { MAX_ESTABLISHMENT_JSON_CHARS } from '../limits';

/** The JSON transport form (standard base64). */
export interface ChannelEstablishmentJSON {
  ik: string;
  ek: string;
  otk?: number;
  spk?: number;
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
}

const FLAG_OTK = 1;
const FLAG_SPK = 2;

/** An initiator's establishment message. Immutable. */
export class ChannelEstablishment implements ChannelEstablishmentFields {
  readonly initiatorIdentityKey: Uint8Array;
  readonly ephemeralPublicKey: Uint8Array;
  readonly usedOneTimeKeyId: number | undefined;
  readonly signedPreKeyId: number | undefined;

  /** An establishment from its fields (copied; `MALFORMED_MESSAGE` on bad types or lengths). */
  constructor(fields: ChannelEstablishmentFields) {
    const {
      initiatorIdentityKey: ik,
      ephemeralPublicKey: ek,
      usedOneTimeKeyId: oneTimePreKeyId,
      signedPreKeyId: spk,
    } = readFields(
      fields,
      ['initiatorIdentityKey', 'ephemeralPublicKey', 'usedOneTimeKeyId', 'signedPreKeyId'] as const,
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
    this.usedOneTimeKeyId = oneTimePreKeyId ?? undefined;
    this.signedPreKeyId = spk ?? undefined;
  }

  /** Binary form: `ik(32) ‖ ek(32) ‖ flags(1) ‖ [u32be otk] ‖ [u32be spk]`. */
  serialize(): Uint8Array {
    const hasOneTimePreKey = this.usedOneTimeKeyId !== undefined;
    const hasSignedPreKey = this.signedPreKeyId !== undefined;
    const w = new ByteWriter(73).bytes(this.initiatorIdentityKey).bytes(this.ephemeralPublicKey);
    w.u8((hasOneTimePreKey ? FLAG_OTK : 0) | (hasSignedPreKey ? FLAG_SPK : 0));
    if (hasOneTimePreKey) w.u32(this.usedOneTimeKeyId as number);
    if (hasSignedPreKey) w.u32(this.signedPreKeyId as number);
    return w.finish();
  }

  /** Parses the binary form; `MALFORMED_MESSAGE` on any defect. */
  static deserialize(bytes: Uint8Array): ChannelEstablishment {
    if (!isUsableBytes(bytes)) throw new E2EError('MALFORMED_MESSAGE', 'establishment too short');
    const r = new ByteReader(plainView(bytes), 'establishment');
    const initiatorIdentityKey = r.bytes(32);
    const ephemeralPublicKey = r.bytes(32);
    const flags = r.u8();
    if (flags & ~(FLAG_OTK | FLAG_SPK)) throw new E2EError('MALFORMED_MESSAGE', 'unknown establishment flags');
    const oneTimePreKeyId = flags & FLAG_OTK ? r.u32() : undefined;
    const signedPreKeyId = flags & FLAG_SPK ? r.u32() : undefined;
    r.end();
    return new ChannelEstablishment({ initiatorIdentityKey, ephemeralPublicKey, usedOneTimeKeyId: oneTimePreKeyId, signedPreKeyId });
  }

  /** The JSON transport form `{ ik, ek, otk?, spk? }`. */
  toJSON(): ChannelEstablishmentJSON {
    const j: ChannelEstablishmentJSON = { ik: toBase64(this.initiatorIdentityKey), ek: toBase64(this.ephemeralPublicKey) };
    if (this.usedOneTimeKeyId !== undefined) j.otk = this.usedOneTimeKeyId;
    if (this.signedPreKeyId !== undefined) j.spk = this.signedPreKeyId;
    return j;
  }

  /**
   * Parses the JSON transport form (object or text); `MALFORMED_MESSAGE` on any defect. Text above
   * {@link MAX_ESTABLISHMENT_JSON_CHARS}, or keys that are not 44 characters, are refused before
   * any parsing or decoding.
   */
  static fromJSON(json: ChannelEstablishmentJSON | string): ChannelEstablishment {
    const j = parseJsonInput(json, 'establishment', MAX_ESTABLISHMENT_JSON_CHARS);
    const o = readFields(j, ['ik', 'ek', 'otk', 'spk'] as const, 'establishment JSON', 'MALFORMED_MESSAGE');
    if (typeof o.ik !== 'string' || typeof o.ek !== 'string') {
      throw new E2EError('MALFORMED_MESSAGE', 'establishment JSON needs ik and ek');
    }
    if (o.ik.length !== 44 || o.ek.length !== 44) throw new E2EError('MALFORMED_MESSAGE', 'establishment keys must be 32 bytes of base64');
    return new ChannelEstablishment({
      initiatorIdentityKey: fromBase64(o.ik),
      ephemeralPublicKey: fromBase64(o.ek),
      usedOneTimeKeyId: (o.otk ?? undefined) as number | undefined,
      signedPreKeyId: (o.spk ?? undefined) as number | undefined,
    });
  }

  /** `e` as a `ChannelEstablishment` (it may be one already, or a plain object with its fields). */
  static from(e: ChannelEstablishment | ChannelEstablishmentFields): ChannelEstablishment {
    return isInstance(e, ChannelEstablishment) ? e : new ChannelEstablishment(e);
  }
}
