/**
 * `ChannelEstablishment`: what the initiator sends so the responder can derive the X3DH secret,
 * with a binary form and the JSON transport form of PROTOCOL.md (`{ ik, ek, otk? }`, plus our
 * optional `spk`, the signed pre-key id, which the reference ignores).
 */
import { E2EError } from '../errors';
import { fromBase64, isInstance, isUsableBytes, parseJsonInput, readFields, readU32BE, toBase64, writeU32BE } from '../crypto';
import { isU32 } from '../x3dh';

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

/** Longest JSON text {@link ChannelEstablishment.fromJSON} parses (a real one is about 130 characters). */
export const MAX_ESTABLISHMENT_JSON_CHARS = 1024;

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
    const { initiatorIdentityKey: ik, ephemeralPublicKey: ek, usedOneTimeKeyId: otk, signedPreKeyId: spk } = readFields(
      fields, ['initiatorIdentityKey', 'ephemeralPublicKey', 'usedOneTimeKeyId', 'signedPreKeyId'] as const, 'establishment', 'MALFORMED_MESSAGE',
    );
    if (!isUsableBytes(ik) || ik.length !== 32) throw new E2EError('MALFORMED_MESSAGE', 'initiatorIdentityKey must be 32 bytes');
    if (!isUsableBytes(ek) || ek.length !== 32) throw new E2EError('MALFORMED_MESSAGE', 'ephemeralPublicKey must be 32 bytes');
    if (otk !== undefined && otk !== null && !isU32(otk)) throw new E2EError('MALFORMED_MESSAGE', 'usedOneTimeKeyId must be an integer in [0, 2^32)');
    if (spk !== undefined && spk !== null && !isU32(spk)) throw new E2EError('MALFORMED_MESSAGE', 'signedPreKeyId must be an integer in [0, 2^32)');
    this.initiatorIdentityKey = Uint8Array.from(ik);
    this.ephemeralPublicKey = Uint8Array.from(ek);
    this.usedOneTimeKeyId = otk ?? undefined;
    this.signedPreKeyId = spk ?? undefined;
  }

  /** Binary form: `ik(32) ‖ ek(32) ‖ flags(1) ‖ [u32be otk] ‖ [u32be spk]`. */
  serialize(): Uint8Array {
    const hasOtk = this.usedOneTimeKeyId !== undefined;
    const hasSpk = this.signedPreKeyId !== undefined;
    const out = new Uint8Array(65 + (hasOtk ? 4 : 0) + (hasSpk ? 4 : 0));
    out.set(this.initiatorIdentityKey, 0);
    out.set(this.ephemeralPublicKey, 32);
    out[64] = (hasOtk ? FLAG_OTK : 0) | (hasSpk ? FLAG_SPK : 0);
    let off = 65;
    if (hasOtk) {
      writeU32BE(out, off, this.usedOneTimeKeyId as number);
      off += 4;
    }
    if (hasSpk) writeU32BE(out, off, this.signedPreKeyId as number);
    return out;
  }

  /** Parses the binary form; `MALFORMED_MESSAGE` on any defect. */
  static deserialize(bytes: Uint8Array): ChannelEstablishment {
    if (!isUsableBytes(bytes) || bytes.length < 65) throw new E2EError('MALFORMED_MESSAGE', 'establishment too short');
    const flags = bytes[64];
    if (flags & ~(FLAG_OTK | FLAG_SPK)) throw new E2EError('MALFORMED_MESSAGE', 'unknown establishment flags');
    const want = 65 + (flags & FLAG_OTK ? 4 : 0) + (flags & FLAG_SPK ? 4 : 0);
    if (bytes.length !== want) throw new E2EError('MALFORMED_MESSAGE', 'establishment has the wrong length');
    let off = 65;
    let otk: number | undefined;
    let spk: number | undefined;
    if (flags & FLAG_OTK) {
      otk = readU32BE(bytes, off);
      off += 4;
    }
    if (flags & FLAG_SPK) spk = readU32BE(bytes, off);
    return new ChannelEstablishment({
      initiatorIdentityKey: bytes.subarray(0, 32), ephemeralPublicKey: bytes.subarray(32, 64),
      usedOneTimeKeyId: otk, signedPreKeyId: spk,
    });
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
      initiatorIdentityKey: fromBase64(o.ik), ephemeralPublicKey: fromBase64(o.ek),
      usedOneTimeKeyId: (o.otk ?? undefined) as number | undefined, signedPreKeyId: (o.spk ?? undefined) as number | undefined,
    });
  }

  /** `e` as a `ChannelEstablishment` (it may be one already, or a plain object with its fields). */
  static from(e: ChannelEstablishment | ChannelEstablishmentFields): ChannelEstablishment {
    return isInstance(e, ChannelEstablishment) ? e : new ChannelEstablishment(e);
  }
}
