/**
 * Ed25519 (RFC 8032) signatures and the conversion of Ed25519 keys to X25519, over libsodium.
 * Key pairs, signing and verification go through `sodium-native` when `ready()` selected the native
 * backend (same bytes, same checks); the conversions always run on WASM.
 */
import { E2EError } from '../errors';
import { MAX_AEAD_INPUT_BYTES } from '../limits';
import { assertBytes, assertKey, isUsableBytes } from './bytes';
import { NativeSodium, sodium } from '../sodium';
import { withScratch } from './heap';
import { randomSecretBytes } from './random';

/** Bytes of an Ed25519 seed. */
export const ED25519_SEED_BYTES = 32;
/** Bytes of an Ed25519 public key. */
export const ED25519_PUBLIC_KEY_BYTES = 32;
/** Bytes of a libsodium Ed25519 secret key (seed ‖ public key). */
export const ED25519_SECRET_KEY_BYTES = 64;
/** Bytes of an Ed25519 signature. */
export const ED25519_SIGNATURE_BYTES = 64;

/** An Ed25519 key pair in libsodium's layout. */
export interface Ed25519KeyPair {
  /** 32-byte public key. */
  readonly publicKey: Uint8Array;
  /** 64-byte secret key: seed ‖ public key. */
  readonly secretKey: Uint8Array;
}

/** The Ed25519 key pair of a 32-byte seed (deterministic; native where that backend is active). */
export function ed25519KeyPairFromSeed(seed: Uint8Array): Ed25519KeyPair {
  assertKey(seed, 'Ed25519 seed', ED25519_SEED_BYTES);
  const native = sodium().native;
  if (native !== null) {
    const publicKey = new Uint8Array(ED25519_PUBLIC_KEY_BYTES);
    const secretKey = new Uint8Array(ED25519_SECRET_KEY_BYTES);
    native.crypto_sign_seed_keypair(publicKey, secretKey, seed);
    return { publicKey, secretKey };
  }
  return withScratch(32 + 64 + 32, (raw, ptr, heap) => {
    const pk = ptr;
    const sk = ptr + 32;
    const sd = ptr + 96;
    heap.set(seed, sd);
    raw._crypto_sign_seed_keypair(pk, sk, sd);
    return { publicKey: heap.slice(pk, pk + 32), secretKey: heap.slice(sk, sk + 64) };
  });
}

/** A fresh Ed25519 key pair; its seed is drawn from the platform CSPRNG directly (never the pool), then wiped. */
export function ed25519KeyPair(): Ed25519KeyPair {
  const seed = randomSecretBytes(ED25519_SEED_BYTES);
  try {
    return ed25519KeyPairFromSeed(seed);
  } finally {
    seed.fill(0);
  }
}

/**
 * Ed25519 signature of `message` under a 64-byte secret key (seed ‖ public key). Throws
 * `INVALID_KEY` when the public half is not the seed's: libsodium signs with the stored half, and
 * signing under a mismatched one leaks the private key (the "double public key" attack). The check
 * costs one base-point multiplication; signing is never on the per-message path.
 */
export function ed25519Sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  assertKey(secretKey, 'Ed25519 secret key', ED25519_SECRET_KEY_BYTES);
  assertBytes(message, 'message');
  if (message.length > MAX_AEAD_INPUT_BYTES) throw new E2EError('MESSAGE_TOO_LARGE', `message above ${MAX_AEAD_INPUT_BYTES} bytes`);
  const native = sodium().native;
  if (native !== null) return nativeSign(native, secretKey, message);
  return withScratch(64 + 64 + 32 + 64 + message.length, (raw, ptr, heap) => {
    const sig = ptr;
    const sk = ptr + 64;
    const pk = ptr + 128;
    const skCheck = ptr + 160;
    const m = ptr + 224;
    heap.set(secretKey, sk);
    heap.set(message, m);
    raw._crypto_sign_seed_keypair(pk, skCheck, sk);
    let consistent = 0;
    for (let i = 0; i < 32; i++) consistent |= heap[pk + i] ^ heap[sk + 32 + i];
    if (consistent !== 0) throw inconsistentKey();
    raw._crypto_sign_detached(sig, 0, m, message.length, 0, sk);
    return heap.slice(sig, sig + 64);
  });
}

function inconsistentKey(): E2EError {
  return new E2EError('INVALID_KEY', 'the public half of the Ed25519 secret key does not belong to its seed');
}

/** {@link ed25519Sign} through sodium-native: the same public-half check, then `crypto_sign_detached`. */
function nativeSign(native: NativeSodium, secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  const pk = new Uint8Array(ED25519_PUBLIC_KEY_BYTES);
  const skCheck = new Uint8Array(ED25519_SECRET_KEY_BYTES);
  try {
    native.crypto_sign_seed_keypair(pk, skCheck, secretKey.subarray(0, ED25519_SEED_BYTES));
    let consistent = 0;
    for (let i = 0; i < 32; i++) consistent |= pk[i] ^ secretKey[32 + i];
    if (consistent !== 0) throw inconsistentKey();
    const sig = new Uint8Array(ED25519_SIGNATURE_BYTES);
    native.crypto_sign_detached(sig, message, secretKey);
    return sig;
  } finally {
    skCheck.fill(0);
  }
}

/**
 * True only when `signature` is a valid Ed25519 signature of `message` under `publicKey`
 * (libsodium's strict verification: canonical S, no small-order keys). Any bad input — wrong
 * types or lengths included — gives `false`, never an exception.
 */
export function ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (!isUsableBytes(signature) || signature.length !== ED25519_SIGNATURE_BYTES) return false;
  if (!isUsableBytes(message) || message.length > MAX_AEAD_INPUT_BYTES) return false;
  if (!isUsableBytes(publicKey) || publicKey.length !== ED25519_PUBLIC_KEY_BYTES) return false;
  const native = sodium().native;
  if (native !== null) return native.crypto_sign_verify_detached(signature, message, publicKey);
  return withScratch(64 + 32 + message.length, (raw, ptr, heap) => {
    heap.set(signature, ptr);
    heap.set(publicKey, ptr + 64);
    heap.set(message, ptr + 96);
    return raw._crypto_sign_verify_detached(ptr, ptr + 96, message.length, 0, ptr + 64) === 0;
  });
}

/** The X25519 private key of a 64-byte Ed25519 secret key (`crypto_sign_ed25519_sk_to_curve25519`). */
export function ed25519SecretKeyToX25519(secretKey: Uint8Array): Uint8Array {
  assertKey(secretKey, 'Ed25519 secret key', ED25519_SECRET_KEY_BYTES);
  const out = withScratch(96, (raw, ptr, heap) => {
    heap.set(secretKey, ptr + 32);
    return raw._crypto_sign_ed25519_sk_to_curve25519(ptr, ptr + 32) === 0 ? heap.slice(ptr, ptr + 32) : null;
  });
  if (out === null) throw new E2EError('INVALID_KEY', 'Ed25519 secret key cannot be converted to X25519');
  return out;
}

/**
 * The X25519 public key of an Ed25519 public key (`crypto_sign_ed25519_pk_to_curve25519`).
 * Throws `INVALID_KEY` for a key that is not a valid, non-small-order curve point.
 */
export function ed25519PublicKeyToX25519(publicKey: Uint8Array): Uint8Array {
  assertKey(publicKey, 'Ed25519 public key', ED25519_PUBLIC_KEY_BYTES);
  const out = withScratch(64, (raw, ptr, heap) => {
    heap.set(publicKey, ptr + 32);
    return raw._crypto_sign_ed25519_pk_to_curve25519(ptr, ptr + 32) === 0 ? heap.slice(ptr, ptr + 32) : null;
  });
  if (out === null) throw new E2EError('INVALID_KEY', 'Ed25519 public key cannot be converted to X25519');
  return out;
}
