/**
 * A bundle as stores keep it: the part every initiator gets (identity, signed pre-key, the
 * last-resort KEM pre-key) apart from the pools of one-time pre-keys and one-time KEM pre-keys,
 * with compact text forms for key-value backends.
 */
import { constantTimeEqual, fromBase64, isU32, toBase64 } from '../crypto';
import { PreKeyBundle } from '../x3dh';
import { MLKEM768_PUBLIC_KEY_BYTES as KEM_PUBLIC_KEY_BYTES } from '../crypto/mlkem';
import { storeFailure } from './validate';

/**
 * The part of a bundle shared by every initiator: its fields are `PreKeyBundle`'s, declared there
 * once. Its KEM pre-key, when it has one, is the DID's last-resort KEM pre-key.
 */
export type BundleBase = Omit<PreKeyBundle, 'oneTimePreKey' | 'oneTimePreKeyId'>;

/** A one-time KEM pre-key as the stores keep it. */
export interface PooledKemPreKey {
  readonly keyId: number;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
}

/** The base of a (checked) bundle, copied; `lastResort` (when given) replaces its KEM pre-key, `null` removes it. */
export function baseOf(b: PreKeyBundle, lastResort?: PooledKemPreKey | null): BundleBase {
  const base = {
    identityKey: Uint8Array.from(b.identityKey),
    identityKeyEd: Uint8Array.from(b.identityKeyEd),
    signedPreKey: Uint8Array.from(b.signedPreKey),
    signedPreKeySignature: Uint8Array.from(b.signedPreKeySignature),
    signedPreKeyId: b.signedPreKeyId,
  };
  const kem = lastResort !== undefined ? lastResort : kemOf(b);
  return kem ? withKem(base, kem) : base;
}

/** The KEM pre-key a bundle carries, or `null`. */
export function kemOf(b: PreKeyBundle): PooledKemPreKey | null {
  return b.kemPreKey ? { keyId: b.kemPreKeyId as number, publicKey: b.kemPreKey, signature: b.kemPreKeySignature as Uint8Array } : null;
}

function withKem<T extends BundleBase>(b: T, kem: PooledKemPreKey): T {
  return { ...b, kemPreKey: Uint8Array.from(kem.publicKey), kemPreKeyId: kem.keyId, kemPreKeySignature: Uint8Array.from(kem.signature) };
}

/**
 * A fresh bundle from a base and, optionally, one one-time pre-key and one one-time KEM pre-key
 * (which replaces the base's last-resort one). Everything copied.
 */
export function joinBundle(
  base: BundleBase,
  otk?: { keyId: number; publicKey: Uint8Array } | null,
  kem?: PooledKemPreKey | null,
): PreKeyBundle {
  let b: PreKeyBundle = baseOf(base, kem ?? undefined);
  if (otk) b = { ...b, oneTimePreKey: Uint8Array.from(otk.publicKey), oneTimePreKeyId: otk.keyId };
  return b;
}

/** Whether two bases carry the same Ed25519 identity. */
export function sameIdentity(a: BundleBase, b: BundleBase): boolean {
  return constantTimeEqual(a.identityKeyEd, b.identityKeyEd);
}

/**
 * The JSON text of a base (standard base64), for key-value backends. The last-resort KEM pre-key,
 * when the base has one, is `kid`, `kem` and `ksig`; a base without one is written as before.
 */
export function encodeBase(b: BundleBase): string {
  const o: Record<string, string | number> = {
    ik: toBase64(b.identityKey),
    ed: toBase64(b.identityKeyEd),
    spk: toBase64(b.signedPreKey),
    sig: toBase64(b.signedPreKeySignature),
    id: b.signedPreKeyId,
  };
  if (b.kemPreKey) {
    o.kid = b.kemPreKeyId as number;
    o.kem = toBase64(b.kemPreKey);
    o.ksig = toBase64(b.kemPreKeySignature as Uint8Array);
  }
  return JSON.stringify(o);
}

function bytesField(o: Record<string, unknown>, k: string, len: number): Uint8Array {
  const v = o[k];
  const bytes = typeof v === 'string' ? fromBase64(v) : null;
  if (bytes === null || bytes.length !== len) throw storeFailure('corrupt', 'stored bundle is unreadable');
  return bytes;
}

/**
 * A base from {@link encodeBase}'s text (also one written before KEM pre-keys: it has none);
 * `STORE_ERROR` (reason `corrupt`) on anything else, also a KEM pre-key with a field missing.
 */
export function decodeBase(text: string): BundleBase {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw storeFailure('corrupt', 'stored bundle is unreadable');
  }
  if (typeof o !== 'object' || o === null || !isU32(o.id)) throw storeFailure('corrupt', 'stored bundle is unreadable');
  // Any KEM field makes a KEM pre-key, whose other fields must then be there too (bytesField checks the two byte fields).
  const hasKem = o.kid !== undefined || o.kem !== undefined || o.ksig !== undefined;
  if (hasKem && !isU32(o.kid)) throw storeFailure('corrupt', 'stored bundle is unreadable');
  try {
    const base: BundleBase = {
      identityKey: bytesField(o, 'ik', 32),
      identityKeyEd: bytesField(o, 'ed', 32),
      signedPreKey: bytesField(o, 'spk', 32),
      signedPreKeySignature: bytesField(o, 'sig', 64),
      signedPreKeyId: o.id,
    };
    if (!hasKem) return base;
    return {
      ...base,
      kemPreKey: bytesField(o, 'kem', KEM_PUBLIC_KEY_BYTES),
      kemPreKeyId: o.kid as number,
      kemPreKeySignature: bytesField(o, 'ksig', 64),
    };
  } catch {
    throw storeFailure('corrupt', 'stored bundle is unreadable');
  }
}

/** A pooled KEM pre-key as key-value backends keep it: `base64(publicKey) "." base64(signature)`. */
export function encodePooledKem(k: PooledKemPreKey): string {
  return `${toBase64(k.publicKey)}.${toBase64(k.signature)}`;
}

/** A pooled KEM pre-key `keyId` from {@link encodePooledKem}'s text; `STORE_ERROR` (reason `corrupt`) on anything else. */
export function decodePooledKem(keyId: unknown, text: unknown): PooledKemPreKey {
  const parts = typeof text === 'string' ? text.split('.') : [];
  const id = typeof keyId === 'string' && /^[0-9]{1,10}$/.test(keyId) ? Number(keyId) : keyId;
  if (parts.length !== 2 || !isU32(id)) throw storeFailure('corrupt', 'stored KEM pre-key is unreadable');
  let publicKey: Uint8Array;
  let signature: Uint8Array;
  try {
    publicKey = fromBase64(parts[0]);
    signature = fromBase64(parts[1]);
  } catch {
    throw storeFailure('corrupt', 'stored KEM pre-key is unreadable');
  }
  if (publicKey.length !== KEM_PUBLIC_KEY_BYTES || signature.length !== 64)
    throw storeFailure('corrupt', 'stored KEM pre-key is unreadable');
  return { keyId: id, publicKey, signature };
}
