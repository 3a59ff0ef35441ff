/**
 * ML-KEM-768 (FIPS 203) over libsodium's `crypto_kem_mlkem768_*`, on the shared WASM scratch.
 *
 * Randomness comes from the platform CSPRNG directly, never through the pool: a key pair is the
 * seeded key generation (`seed_keypair`) of 64 fresh bytes `d ‖ z`, and an encapsulation is the
 * deterministic one (`enc_deterministic`) of 32 fresh bytes `m`; seeds are wiped after use. This
 * makes the randomized functions the FIPS 203 algorithms with their random inputs drawn here, and
 * lets the known-answer tests drive the very same code.
 *
 * Inputs are checked before the heap is touched: wrong lengths of keys and seeds are `INVALID_KEY`,
 * of a ciphertext `INVALID_ARGUMENT`. libsodium applies the encapsulation-key check of FIPS 203
 * §7.2 (every coefficient below q): an encapsulation key that fails it is `INVALID_KEY`.
 * Decapsulation has implicit rejection: a wrong or altered ciphertext of the right length gives a
 * pseudorandom shared secret, not an error, so a caller learns nothing from it.
 */
import { E2EError } from '../errors';
import { assertBytes, assertKey } from './bytes';
import { withScratch } from './heap';
import { randomSecretBytes } from './random';

/** Bytes of an ML-KEM-768 encapsulation (public) key. */
export const MLKEM768_PUBLIC_KEY_BYTES = 1184;
/** Bytes of an ML-KEM-768 decapsulation (secret) key, in FIPS 203's expanded form. */
export const MLKEM768_SECRET_KEY_BYTES = 2400;
/** Bytes of an ML-KEM-768 ciphertext. */
export const MLKEM768_CIPHERTEXT_BYTES = 1088;
/** Bytes of the shared secret ML-KEM-768 establishes. */
export const MLKEM768_SHARED_SECRET_BYTES = 32;
/** Bytes of the key-generation seed `d ‖ z` of FIPS 203 `ML-KEM.KeyGen_internal`. */
export const MLKEM768_SEED_BYTES = 64;
/** Bytes of the message `m` that FIPS 203 `ML-KEM.Encaps_internal` takes. */
export const MLKEM768_ENCAPS_SEED_BYTES = 32;

/** An ML-KEM-768 key pair. */
export interface MlKem768KeyPair {
  /** 1184-byte encapsulation key: publish it. */
  readonly publicKey: Uint8Array;
  /** 2400-byte decapsulation key: keep it secret (wipe it with `memzero` when done). */
  readonly secretKey: Uint8Array;
}

/** What encapsulation gives: the ciphertext to send and the shared secret to keep. */
export interface MlKem768Encapsulation {
  /** 1088 bytes for the holder of the secret key. */
  readonly ciphertext: Uint8Array;
  /** 32 bytes, the same the decapsulation of `ciphertext` gives. */
  readonly sharedSecret: Uint8Array;
}

const PK = MLKEM768_PUBLIC_KEY_BYTES;
const SK = MLKEM768_SECRET_KEY_BYTES;
const CT = MLKEM768_CIPHERTEXT_BYTES;
const SS = MLKEM768_SHARED_SECRET_BYTES;

/**
 * The ML-KEM-768 key pair of a 64-byte seed `d ‖ z` (deterministic: FIPS 203
 * `ML-KEM.KeyGen_internal(d, z)`). The seed is as secret as the secret key it makes.
 * @param seed 64 bytes.
 * @returns the key pair.
 * @throws `INVALID_KEY` when `seed` is not a 64-byte Uint8Array; `NOT_READY` before `ready()`.
 * @example const { publicKey, secretKey } = mlkem768KeyPairFromSeed(seed64);
 */
export function mlkem768KeyPairFromSeed(seed: Uint8Array): MlKem768KeyPair {
  assertKey(seed, 'ML-KEM-768 seed', MLKEM768_SEED_BYTES);
  return withScratch(PK + SK + MLKEM768_SEED_BYTES, (raw, ptr, heap) => {
    const pk = ptr;
    const sk = pk + PK;
    const sd = sk + SK;
    heap.set(seed, sd);
    if (raw._crypto_kem_mlkem768_seed_keypair(pk, sk, sd) !== 0) throw new E2EError('INVALID_KEY', 'ML-KEM-768 key generation failed');
    return { publicKey: heap.slice(pk, pk + PK), secretKey: heap.slice(sk, sk + SK) };
  });
}

/**
 * A fresh ML-KEM-768 key pair: its seed is drawn from the platform CSPRNG directly (never the
 * pool), used once and wiped.
 * @returns the key pair.
 * @throws `NOT_READY` before `ready()`.
 * @example const { publicKey, secretKey } = mlkem768KeyPair();
 */
export function mlkem768KeyPair(): MlKem768KeyPair {
  const seed = randomSecretBytes(MLKEM768_SEED_BYTES);
  try {
    return mlkem768KeyPairFromSeed(seed);
  } finally {
    seed.fill(0);
  }
}

/**
 * Encapsulates a fresh shared secret to `publicKey`: send `ciphertext`, keep `sharedSecret`.
 * @param publicKey the peer's 1184-byte encapsulation key.
 * @returns the ciphertext and the shared secret.
 * @throws `INVALID_KEY` when `publicKey` is not 1184 bytes or fails FIPS 203's modulus check;
 *   `NOT_READY` before `ready()`.
 * @example const { ciphertext, sharedSecret } = mlkem768Encapsulate(peerPublicKey);
 */
export function mlkem768Encapsulate(publicKey: Uint8Array): MlKem768Encapsulation {
  assertKey(publicKey, 'ML-KEM-768 public key', PK);
  const m = randomSecretBytes(MLKEM768_ENCAPS_SEED_BYTES);
  try {
    return encapsulate(publicKey, m);
  } finally {
    m.fill(0);
  }
}

/**
 * FIPS 203 `ML-KEM.Encaps_internal(ek, m)`: the encapsulation with its randomness `m` given.
 * Known-answer tests only: a repeated or guessable `m` gives away the shared secret. Use
 * {@link mlkem768Encapsulate}.
 * @param publicKey 1184-byte encapsulation key.
 * @param m 32 bytes.
 * @returns the ciphertext and the shared secret.
 * @throws `INVALID_KEY` as {@link mlkem768Encapsulate}; `INVALID_ARGUMENT` when `m` is not 32 bytes.
 * @internal
 */
export function mlkem768EncapsulateDerandomized(publicKey: Uint8Array, m: Uint8Array): MlKem768Encapsulation {
  assertKey(publicKey, 'ML-KEM-768 public key', PK);
  assertBytes(m, 'ML-KEM-768 encapsulation seed', MLKEM768_ENCAPS_SEED_BYTES);
  return encapsulate(publicKey, m);
}

function encapsulate(publicKey: Uint8Array, m: Uint8Array): MlKem768Encapsulation {
  return withScratch(CT + SS + PK + MLKEM768_ENCAPS_SEED_BYTES, (raw, ptr, heap) => {
    const ct = ptr;
    const ss = ct + CT;
    const pk = ss + SS;
    const sd = pk + PK;
    heap.set(publicKey, pk);
    heap.set(m, sd);
    if (raw._crypto_kem_mlkem768_enc_deterministic(ct, ss, pk, sd) !== 0) {
      throw new E2EError('INVALID_KEY', 'ML-KEM-768 public key fails the modulus check (a coefficient is not below q)');
    }
    return { ciphertext: heap.slice(ct, ct + CT), sharedSecret: heap.slice(ss, ss + SS) };
  });
}

/**
 * The shared secret of `ciphertext` under `secretKey`. A ciphertext of the right length that was
 * not made for this key, or was altered, gives a pseudorandom secret (FIPS 203 implicit
 * rejection), never an error: the protocol's next authenticated step is what fails.
 * @param ciphertext 1088 bytes.
 * @param secretKey the 2400-byte decapsulation key.
 * @returns 32 bytes.
 * @throws `INVALID_ARGUMENT` when `ciphertext` is not 1088 bytes; `INVALID_KEY` when `secretKey`
 *   is not 2400 bytes (or libsodium refuses it); `NOT_READY` before `ready()`.
 * @example const sharedSecret = mlkem768Decapsulate(ciphertext, secretKey);
 */
export function mlkem768Decapsulate(ciphertext: Uint8Array, secretKey: Uint8Array): Uint8Array {
  assertBytes(ciphertext, 'ML-KEM-768 ciphertext', CT);
  assertKey(secretKey, 'ML-KEM-768 secret key', SK);
  return withScratch(SS + CT + SK, (raw, ptr, heap) => {
    const ss = ptr;
    const ct = ss + SS;
    const sk = ct + CT;
    heap.set(ciphertext, ct);
    heap.set(secretKey, sk);
    if (raw._crypto_kem_mlkem768_dec(ss, ct, sk) !== 0) throw new E2EError('INVALID_KEY', 'ML-KEM-768 secret key was refused');
    return heap.slice(ss, ss + SS);
  });
}
