/** The public pre-key bundle an agent publishes so others can start X3DH with it, and its codecs. */
import { E2EError } from '../errors';
import { fromBase64Url, isUsableBytes, parseJsonInput, readFields, toBase64Url } from '../crypto';
import { isU32 } from '../crypto/byte-io';
import { MAX_BUNDLE_JSON_CHARS } from '../limits';
import { KEM_PRE_KEY_BASE64URL_CHARS } from './kem-prekey';
import { MLKEM768_PUBLIC_KEY_BYTES as KEM_PUBLIC_KEY_BYTES } from '../crypto/mlkem';

/**
 * What a responder publishes (PROTOCOL.md, "X3DH" and "PQXDH"). The X25519 and Ed25519 keys are 32
 * bytes, signatures 64; the optional ML-KEM-768 KEM pre-key is 1184. A bundle with a KEM pre-key
 * gives a post-quantum (PQXDH) establishment; one without gives the classic X3DH, byte for byte.
 */
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
  /** Optional ML-KEM-768 KEM pre-key (1184 bytes), one-time or last-resort: its presence makes the establishment post-quantum. */
  readonly kemPreKey?: Uint8Array;
  /** Id of `kemPreKey` (present exactly when it is). */
  readonly kemPreKeyId?: number;
  /** Ed25519 signature by `identityKeyEd` of `kemPreKeySignedBytes(kemPreKey)` (present exactly when `kemPreKey` is). */
  readonly kemPreKeySignature?: Uint8Array;
}

/** A bundle while it is being built (the fields of {@link PreKeyBundle}, writable). */
type MutableBundle = { -readonly [K in keyof PreKeyBundle]: PreKeyBundle[K] };

function isBytes(v: unknown, len: number): v is Uint8Array {
  return isUsableBytes(v) && v.length === len;
}

const BUNDLE_FIELDS = [
  'identityKey',
  'identityKeyEd',
  'signedPreKey',
  'signedPreKeySignature',
  'signedPreKeyId',
  'oneTimePreKey',
  'oneTimePreKeyId',
  'kemPreKey',
  'kemPreKeyId',
  'kemPreKeySignature',
] as const;

/**
 * Checks the shape of a bundle (types, lengths, ids); throws `INVALID_KEY` for a bad key,
 * `BAD_SIGNATURE` for a signature of the wrong length and `MALFORMED_MESSAGE` for anything else.
 * Cryptographic checks are `initiate`'s.
 */
export function assertBundleShape(bundle: unknown): asserts bundle is PreKeyBundle {
  checkFields(readFields(bundle, BUNDLE_FIELDS, 'bundle', 'MALFORMED_MESSAGE'));
}

/**
 * A checked copy of `bundle` that the caller owns: each field read once (a getter cannot answer
 * differently between the checks and the use), every array copied (the caller may reuse its
 * buffers), frozen. Throws as {@link assertBundleShape}.
 */
export function snapshotBundle(bundle: unknown): PreKeyBundle {
  const b = readFields(bundle, BUNDLE_FIELDS, 'bundle', 'MALFORMED_MESSAGE');
  checkFields(b);
  const out: MutableBundle = {
    identityKey: Uint8Array.from(b.identityKey as Uint8Array),
    identityKeyEd: Uint8Array.from(b.identityKeyEd as Uint8Array),
    signedPreKey: Uint8Array.from(b.signedPreKey as Uint8Array),
    signedPreKeySignature: Uint8Array.from(b.signedPreKeySignature as Uint8Array),
    signedPreKeyId: b.signedPreKeyId as number,
  };
  if (b.oneTimePreKey !== undefined && b.oneTimePreKey !== null) {
    out.oneTimePreKey = Uint8Array.from(b.oneTimePreKey as Uint8Array);
    out.oneTimePreKeyId = b.oneTimePreKeyId as number;
  }
  if (isPresent(b.kemPreKey)) {
    out.kemPreKey = Uint8Array.from(b.kemPreKey as Uint8Array);
    out.kemPreKeyId = b.kemPreKeyId as number;
    out.kemPreKeySignature = Uint8Array.from(b.kemPreKeySignature as Uint8Array);
  }
  return Object.freeze(out);
}

function isPresent(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function checkFields(b: Record<(typeof BUNDLE_FIELDS)[number], unknown>): void {
  for (const k of ['identityKey', 'identityKeyEd', 'signedPreKey'] as const) {
    if (!isBytes(b[k], 32)) throw new E2EError('INVALID_KEY', `bundle.${k} must be 32 bytes`);
  }
  if (!isBytes(b.signedPreKeySignature, 64)) throw new E2EError('BAD_SIGNATURE', 'bundle.signedPreKeySignature must be 64 bytes');
  if (!isU32(b.signedPreKeyId)) throw new E2EError('MALFORMED_MESSAGE', 'bundle.signedPreKeyId must be an integer in [0, 2^32)');
  const hasOtk = b.oneTimePreKey !== undefined && b.oneTimePreKey !== null;
  const hasOtkId = b.oneTimePreKeyId !== undefined && b.oneTimePreKeyId !== null;
  if (hasOtk !== hasOtkId) throw new E2EError('MALFORMED_MESSAGE', 'bundle.oneTimePreKey and oneTimePreKeyId go together');
  if (hasOtk && !isBytes(b.oneTimePreKey, 32)) throw new E2EError('INVALID_KEY', 'bundle.oneTimePreKey must be 32 bytes');
  if (hasOtkId && !isU32(b.oneTimePreKeyId))
    throw new E2EError('MALFORMED_MESSAGE', 'bundle.oneTimePreKeyId must be an integer in [0, 2^32)');
  const kem = [b.kemPreKey, b.kemPreKeyId, b.kemPreKeySignature].map(isPresent);
  if (kem.some((p) => p !== kem[0])) {
    throw new E2EError('MALFORMED_MESSAGE', 'bundle.kemPreKey, kemPreKeyId and kemPreKeySignature go together');
  }
  if (kem[0]) {
    if (!isBytes(b.kemPreKey, KEM_PUBLIC_KEY_BYTES))
      throw new E2EError('INVALID_KEY', `bundle.kemPreKey must be ${KEM_PUBLIC_KEY_BYTES} bytes`);
    if (!isU32(b.kemPreKeyId)) throw new E2EError('MALFORMED_MESSAGE', 'bundle.kemPreKeyId must be an integer in [0, 2^32)');
    if (!isBytes(b.kemPreKeySignature, 64)) throw new E2EError('BAD_SIGNATURE', 'bundle.kemPreKeySignature must be 64 bytes');
  }
}

/** The registry's JSON form of a bundle (unpadded base64url keys, snake_case, as AGT's registry). */
export interface PreKeyBundleJSON {
  /** X25519 identity key (32 bytes), base64url. */
  identity_key: string;
  /** Ed25519 identity key (32 bytes, the agent's DID key), base64url. */
  identity_key_ed: string;
  /** The signed pre-key: id, X25519 key (32 bytes) and its signature by `identity_key_ed` (64 bytes), base64url. */
  signed_pre_key: { key_id: number; public_key: string; signature: string };
  /** The one-time pre-key: id and X25519 key (32 bytes), base64url; absent or `null` when none. */
  one_time_pre_key?: { key_id: number; public_key: string } | null;
  /** The ML-KEM-768 KEM pre-key (absent from classic bundles, and from AGT's). */
  kem_pre_key?: { key_id: number; public_key: string; signature: string } | null;
}

/** A bundle in the registry's JSON form. */
export function bundleToJSON(input: PreKeyBundle): PreKeyBundleJSON {
  const bundle = snapshotBundle(input);
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
  if (bundle.kemPreKey) {
    out.kem_pre_key = {
      key_id: bundle.kemPreKeyId as number,
      public_key: toBase64Url(bundle.kemPreKey),
      signature: toBase64Url(bundle.kemPreKeySignature as Uint8Array),
    };
  }
  return out;
}

/**
 * A bundle from the registry's JSON form (an object or its JSON text). A key of the wrong length is
 * `INVALID_KEY` and a signature of the wrong length `BAD_SIGNATURE` (the codes {@link assertBundleShape}
 * gives), any other defect `MALFORMED_MESSAGE`. Text above {@link MAX_BUNDLE_JSON_CHARS} and fields
 * longer than their keys' encodings are refused before any parsing or decoding.
 */
export function bundleFromJSON(json: PreKeyBundleJSON | string): PreKeyBundle {
  const j = parseJsonInput(json, 'bundle', MAX_BUNDLE_JSON_CHARS);
  const o = readFields(
    j,
    ['identity_key', 'identity_key_ed', 'signed_pre_key', 'one_time_pre_key', 'kem_pre_key'] as const,
    'bundle',
    'MALFORMED_MESSAGE',
  );
  const spk = readFields(o.signed_pre_key, ['key_id', 'public_key', 'signature'] as const, 'bundle.signed_pre_key', 'MALFORMED_MESSAGE');
  // Unpadded base64url: 43 characters for 32 bytes, 86 for 64; checked before decoding.
  // Longer is refused undecoded (with the code a wrong-length key gets); shorter decodes cheaply.
  const str = (v: unknown, name: string, chars = 43, tooLong: 'INVALID_KEY' | 'BAD_SIGNATURE' = 'INVALID_KEY'): string => {
    if (typeof v !== 'string') throw new E2EError('MALFORMED_MESSAGE', `bundle.${name} must be a string`);
    if (v.length > chars) throw new E2EError(tooLong, `bundle.${name} is too long`);
    return v;
  };
  const bundle: MutableBundle = {
    identityKey: fromBase64Url(str(o.identity_key, 'identity_key')),
    identityKeyEd: fromBase64Url(str(o.identity_key_ed, 'identity_key_ed')),
    signedPreKey: fromBase64Url(str(spk.public_key, 'signed_pre_key.public_key')),
    signedPreKeySignature: fromBase64Url(str(spk.signature, 'signed_pre_key.signature', 86, 'BAD_SIGNATURE')),
    signedPreKeyId: spk.key_id as number,
  };
  if (o.one_time_pre_key !== undefined && o.one_time_pre_key !== null) {
    const otk = readFields(o.one_time_pre_key, ['key_id', 'public_key'] as const, 'bundle.one_time_pre_key', 'MALFORMED_MESSAGE');
    bundle.oneTimePreKey = fromBase64Url(str(otk.public_key, 'one_time_pre_key.public_key'));
    bundle.oneTimePreKeyId = otk.key_id as number;
  }
  if (isPresent(o.kem_pre_key)) {
    const kem = readFields(o.kem_pre_key, ['key_id', 'public_key', 'signature'] as const, 'bundle.kem_pre_key', 'MALFORMED_MESSAGE');
    bundle.kemPreKey = fromBase64Url(str(kem.public_key, 'kem_pre_key.public_key', KEM_PRE_KEY_BASE64URL_CHARS));
    bundle.kemPreKeyId = kem.key_id as number;
    bundle.kemPreKeySignature = fromBase64Url(str(kem.signature, 'kem_pre_key.signature', 86, 'BAD_SIGNATURE'));
  }
  assertBundleShape(bundle);
  return bundle;
}
