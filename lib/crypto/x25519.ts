/**
 * X25519 (RFC 7748) over libsodium's `crypto_scalarmult`: through `sodium-native` when `ready()`
 * selected the native backend, else on the WASM heap. Same bytes and the same checks either way.
 */
import { E2EError } from '../errors';
import { assertKey } from './bytes';
import { NativeSodium, sodium } from '../sodium';
import { withScratch } from './heap';
import { randomSecretBytes } from './random';

/** Bytes of an X25519 key (private or public) and of a shared secret. */
export const X25519_BYTES = 32;

/** An X25519 key pair. `privateKey` is the raw 32 bytes (X25519 clamps when it uses them). */
export interface X25519KeyPair {
  /** The private key, 32 bytes. Secret. */
  readonly privateKey: Uint8Array;
  /** The public key, 32 bytes. */
  readonly publicKey: Uint8Array;
}

/** The public key of an X25519 private key (`crypto_scalarmult_base`; native where that backend is active). */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  assertKey(privateKey, 'X25519 private key', X25519_BYTES);
  const native = sodium().native;
  if (native !== null) {
    const pub = new Uint8Array(X25519_BYTES);
    native.crypto_scalarmult_base(pub, privateKey);
    return pub;
  }
  return withScratch(64, (raw, ptr, heap) => {
    heap.set(privateKey, ptr + 32);
    raw._crypto_scalarmult_base(ptr, ptr + 32);
    return heap.slice(ptr, ptr + 32);
  });
}

/** A fresh X25519 key pair; the private key is drawn from the platform CSPRNG straight into its own array. */
export function x25519KeyPair(): X25519KeyPair {
  const privateKey = randomSecretBytes(X25519_BYTES);
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

/**
 * X25519 Diffie-Hellman. Throws `INVALID_KEY` on wrong lengths and when the result is all zero
 * (a low-order or otherwise invalid peer key), so a caller can never derive keys from it.
 */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  assertKey(privateKey, 'X25519 private key', X25519_BYTES);
  assertKey(publicKey, 'X25519 public key', X25519_BYTES);
  const native = sodium().native;
  const shared =
    native !== null
      ? nativeX25519(native, privateKey, publicKey)
      : withScratch(96, (raw, ptr, heap) => {
          heap.set(privateKey, ptr + 32);
          heap.set(publicKey, ptr + 64);
          return raw._crypto_scalarmult(ptr, ptr + 32, ptr + 64) === 0 ? heap.slice(ptr, ptr + 32) : null;
        });
  if (shared === null) throw new E2EError('INVALID_KEY', 'X25519 result is all zero: low-order or invalid public key');
  return shared;
}

/** `crypto_scalarmult` through sodium-native: the shared secret, or `null` where libsodium returned −1 (all-zero result). */
function nativeX25519(native: NativeSodium, privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
  const shared = new Uint8Array(X25519_BYTES);
  try {
    native.crypto_scalarmult(shared, privateKey, publicKey);
    return shared;
  } catch {
    // The inputs were checked: libsodium's −1 is the only way this throws.
    shared.fill(0);
    return null;
  }
}

/**
 * The canonical encoding of an X25519 public key (RFC 7748 §5): bit 255 cleared and the value
 * reduced modulo p = 2^255 − 19. X25519 ignores bit 255 and maps encodings ≥ p onto their
 * residue, so two encodings that differ only that way are the same key to the curve; wherever a
 * public key stands for an identity (replay memory, caches, bindings) compare this form.
 * Returns a new array; `INVALID_KEY` on a wrong length.
 */
export function canonicalX25519PublicKey(publicKey: Uint8Array): Uint8Array {
  assertKey(publicKey, 'X25519 public key', X25519_BYTES);
  const out = Uint8Array.from(publicKey);
  out[31] &= 0x7f;
  // After masking, the value is ≥ p only for 2^255 − 19 … 2^255 − 1: byte 31 = 0x7f, bytes 1–30 =
  // 0xff, byte 0 ≥ 0xed. Subtracting p leaves byte 0 − 0xed and zeros. Branch-free over the bytes.
  let high = out[31] ^ 0x7f;
  for (let i = 1; i < 31; i++) high |= out[i] ^ 0xff;
  const geP = ((high - 1) >>> 31) & (((0xec - out[0]) >>> 31) & 1); // 1 iff high == 0 and out[0] ≥ 0xed
  const mask = -geP & 0xff;
  out[0] = (out[0] & ~mask) | ((out[0] - 0xed) & mask);
  for (let i = 1; i < 32; i++) out[i] &= ~mask;
  return out;
}

/** Whether `publicKey` is already in canonical form (see {@link canonicalX25519PublicKey}). */
export function isCanonicalX25519PublicKey(publicKey: Uint8Array): boolean {
  const c = canonicalX25519PublicKey(publicKey);
  let d = 0;
  for (let i = 0; i < 32; i++) d |= c[i] ^ publicKey[i];
  return d === 0;
}

/**
 * Whether the 32 bytes of `bytes` at `offset` are a canonical X25519 public key, without allocating
 * (the ratchet checks every header's key with it). Public values only: not constant time. Offsets
 * are trusted (the caller checked the length).
 * @internal
 */
export function isCanonicalX25519At(bytes: Uint8Array, offset: number): boolean {
  const top = bytes[offset + 31];
  if (top & 0x80) return false;
  if (top !== 0x7f) return true;
  // 0x7f…: ≥ p only for 2^255 − 19 … 2^255 − 1 (bytes 1–30 all 0xff, byte 0 ≥ 0xed).
  for (let i = 1; i < 31; i++) if (bytes[offset + i] !== 0xff) return true;
  return bytes[offset] < 0xed;
}

/** Throws `INVALID_KEY` unless `publicKey` is a 32-byte canonical X25519 public key (`name` says which). */
export function assertCanonicalX25519PublicKey(publicKey: unknown, name: string): asserts publicKey is Uint8Array {
  assertKey(publicKey, name, X25519_BYTES);
  if (!isCanonicalX25519At(publicKey, 0)) {
    throw new E2EError('INVALID_KEY', `${name} is not in canonical form (bit 255 set or value ≥ 2^255 − 19)`);
  }
}
