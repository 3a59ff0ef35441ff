/**
 * A bundle as stores keep it: the part every initiator gets (identity and signed pre-key) apart
 * from the pool of one-time pre-keys, with a compact JSON form for key-value backends.
 */
import { constantTimeEqual, fromBase64, isU32, toBase64 } from '../crypto';
import { PreKeyBundle } from '../x3dh';
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

/** The JSON text of a base (standard base64), for key-value backends. */
export function encodeBase(b: BundleBase): string {
  return JSON.stringify({
    ik: toBase64(b.identityKey),
    ed: toBase64(b.identityKeyEd),
    spk: toBase64(b.signedPreKey),
    sig: toBase64(b.signedPreKeySignature),
    id: b.signedPreKeyId,
  });
}

function bytesField(o: Record<string, unknown>, k: string, len: number): Uint8Array {
  const v = o[k];
  const bytes = typeof v === 'string' ? fromBase64(v) : null;
  if (bytes === null || bytes.length !== len) throw storeFailure('corrupt', 'stored bundle is unreadable');
  return bytes;
}

/** A base from {@link encodeBase}'s text; `STORE_ERROR` (reason `corrupt`) on anything else. */
export function decodeBase(text: string): BundleBase {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw storeFailure('corrupt', 'stored bundle is unreadable');
  }
  if (typeof o !== 'object' || o === null || !isU32(o.id)) throw storeFailure('corrupt', 'stored bundle is unreadable');
  try {
    return {
      identityKey: bytesField(o, 'ik', 32),
      identityKeyEd: bytesField(o, 'ed', 32),
      signedPreKey: bytesField(o, 'spk', 32),
      signedPreKeySignature: bytesField(o, 'sig', 64),
      signedPreKeyId: o.id,
    };
  } catch {
    throw storeFailure('corrupt', 'stored bundle is unreadable');
  }
}
