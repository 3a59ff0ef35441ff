/** The public pre-key bundle an agent publishes so others can start X3DH with it, and its codecs. */
import { E2EError } from '../errors';
import { fromBase64Url, parseJsonInput, toBase64Url } from '../crypto';

/** What a responder publishes (PROTOCOL.md, "X3DH"). All keys are 32 bytes, the signature 64. */
export interface PreKeyBundle {
  /** X25519 identity key: must be the conversion of `identityKeyEd`. */
  readonly identityKey: Uint8Array;
  /** Ed25519 identity key (the agent's DID key). */
  readonly identityKeyEd: Uint8Array;
  /** X25519 signed pre-key. */
  readonly signedPreKey: Uint8Array;
  /** Ed25519 signature of the 32 raw bytes of `signedPreKey` by `identityKeyEd`. */
  readonly signedPreKeySignature: Uint8Array;
  /** Id of the signed pre-key. */
  readonly signedPreKeyId: number;
  /** Optional X25519 one-time pre-key. */
  readonly oneTimePreKey?: Uint8Array;
  /** Id of `oneTimePreKey` (present exactly when it is). */
  readonly oneTimePreKeyId?: number;
}

/** True for an integer usable as a key id or counter (0 ≤ n < 2^32). */
export function isU32(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function isBytes(v: unknown, len: number): v is Uint8Array {
  return v instanceof Uint8Array && v.length === len;
}

/**
 * Checks the shape of a bundle (types, lengths, ids); throws `INVALID_KEY` for a bad key and
 * `MALFORMED_MESSAGE` for anything else. Cryptographic checks are `initiate`'s.
 */
export function assertBundleShape(bundle: unknown): asserts bundle is PreKeyBundle {
  if (typeof bundle !== 'object' || bundle === null) throw new E2EError('MALFORMED_MESSAGE', 'bundle must be an object');
  const b = bundle as Record<string, unknown>;
  for (const k of ['identityKey', 'identityKeyEd', 'signedPreKey'] as const) {
    if (!isBytes(b[k], 32)) throw new E2EError('INVALID_KEY', `bundle.${k} must be 32 bytes`);
  }
  if (!isBytes(b.signedPreKeySignature, 64)) throw new E2EError('BAD_SIGNATURE', 'bundle.signedPreKeySignature must be 64 bytes');
  if (!isU32(b.signedPreKeyId)) throw new E2EError('MALFORMED_MESSAGE', 'bundle.signedPreKeyId must be an integer in [0, 2^32)');
  const hasOtk = b.oneTimePreKey !== undefined && b.oneTimePreKey !== null;
  const hasOtkId = b.oneTimePreKeyId !== undefined && b.oneTimePreKeyId !== null;
  if (hasOtk !== hasOtkId) throw new E2EError('MALFORMED_MESSAGE', 'bundle.oneTimePreKey and oneTimePreKeyId go together');
  if (hasOtk && !isBytes(b.oneTimePreKey, 32)) throw new E2EError('INVALID_KEY', 'bundle.oneTimePreKey must be 32 bytes');
  if (hasOtkId && !isU32(b.oneTimePreKeyId)) throw new E2EError('MALFORMED_MESSAGE', 'bundle.oneTimePreKeyId must be an integer in [0, 2^32)');
}

/** The registry's JSON form of a bundle (unpadded base64url keys, snake_case, as AGT's registry). */
export interface PreKeyBundleJSON {
  identity_key: string;
  identity_key_ed: string;
  signed_pre_key: { key_id: number; public_key: string; signature: string };
  one_time_pre_key?: { key_id: number; public_key: string } | null;
}

/** A bundle in the registry's JSON form. */
export function bundleToJSON(bundle: PreKeyBundle): PreKeyBundleJSON {
  assertBundleShape(bundle);
  const out: PreKeyBundleJSON = {
    identity_key: toBase64Url(bundle.identityKey),
    identity_key_ed: toBase64Url(bundle.identityKeyEd),
    signed_pre_key: {
      key_id: bundle.signedPreKeyId,
      public_key: toBase64Url(bundle.signedPreKey),
      signature: toBase64Url(bundle.signedPreKeySignature),
    },
  };
  if (bundle.oneTimePreKey) {
    out.one_time_pre_key = { key_id: bundle.oneTimePreKeyId as number, public_key: toBase64Url(bundle.oneTimePreKey) };
  }
  return out;
}

/** A bundle from the registry's JSON form (an object or its JSON text); `MALFORMED_MESSAGE` on any defect. */
export function bundleFromJSON(json: PreKeyBundleJSON | string): PreKeyBundle {
  const j = parseJsonInput(json, 'bundle');
  if (typeof j !== 'object' || j === null) throw new E2EError('MALFORMED_MESSAGE', 'bundle must be an object');
  const o = j as Record<string, unknown>;
  const spk = o.signed_pre_key as Record<string, unknown> | undefined;
  if (typeof spk !== 'object' || spk === null) throw new E2EError('MALFORMED_MESSAGE', 'bundle.signed_pre_key missing');
  const str = (v: unknown, name: string): string => {
    if (typeof v !== 'string') throw new E2EError('MALFORMED_MESSAGE', `bundle.${name} must be a string`);
    return v;
  };
  const bundle: {
    identityKey: Uint8Array; identityKeyEd: Uint8Array; signedPreKey: Uint8Array; signedPreKeySignature: Uint8Array;
    signedPreKeyId: number; oneTimePreKey?: Uint8Array; oneTimePreKeyId?: number;
  } = {
    identityKey: fromBase64Url(str(o.identity_key, 'identity_key')),
    identityKeyEd: fromBase64Url(str(o.identity_key_ed, 'identity_key_ed')),
    signedPreKey: fromBase64Url(str(spk.public_key, 'signed_pre_key.public_key')),
    signedPreKeySignature: fromBase64Url(str(spk.signature, 'signed_pre_key.signature')),
    signedPreKeyId: spk.key_id as number,
  };
  const otk = o.one_time_pre_key as Record<string, unknown> | null | undefined;
  if (otk !== undefined && otk !== null) {
    if (typeof otk !== 'object') throw new E2EError('MALFORMED_MESSAGE', 'bundle.one_time_pre_key must be an object');
    bundle.oneTimePreKey = fromBase64Url(str(otk.public_key, 'one_time_pre_key.public_key'));
    bundle.oneTimePreKeyId = otk.key_id as number;
  }
  assertBundleShape(bundle);
  return bundle;
}
