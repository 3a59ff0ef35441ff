/**
 * The async init layer: the only module that imports libsodium. `await ready()` once, then every
 * primitive in `lib/crypto/` is synchronous.
 */
import sodiumWrapper from 'libsodium-wrappers-sumo';
import { E2EError } from './errors';
import { randomUint32 } from './entropy';

/** The libsodium.js wrapper API (used where a call is not on the hot path). */
export type SodiumWrapper = typeof sodiumWrapper;

/**
 * The raw Emscripten exports of libsodium 1.0.22 that the crypto layer calls directly on
 * preallocated heap buffers. 64-bit lengths are passed as two 32-bit halves (low, high).
 */
export interface RawSodium {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  getRandomValue: () => number;
  _crypto_auth_hmacsha256(out: number, msg: number, lenLo: number, lenHi: number, key: number): number;
  _crypto_auth_hmacsha256_init(state: number, key: number, keyLen: number): number;
  _crypto_auth_hmacsha256_update(state: number, msg: number, lenLo: number, lenHi: number): number;
  _crypto_auth_hmacsha256_final(state: number, out: number): number;
  _crypto_auth_hmacsha256_statebytes(): number;
  _crypto_kdf_hkdf_sha256_extract(prk: number, salt: number, saltLen: number, ikm: number, ikmLen: number): number;
  _crypto_kdf_hkdf_sha256_expand(out: number, outLen: number, info: number, infoLen: number, prk: number): number;
  _crypto_aead_chacha20poly1305_ietf_encrypt(
    c: number, clenP: number, m: number, mLenLo: number, mLenHi: number,
    ad: number, adLenLo: number, adLenHi: number, nsec: number, npub: number, k: number,
  ): number;
  _crypto_aead_chacha20poly1305_ietf_decrypt(
    m: number, mlenP: number, nsec: number, c: number, cLenLo: number, cLenHi: number,
    ad: number, adLenLo: number, adLenHi: number, npub: number, k: number,
  ): number;
  _crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: number, clenP: number, m: number, mLenLo: number, mLenHi: number,
    ad: number, adLenLo: number, adLenHi: number, nsec: number, npub: number, k: number,
  ): number;
  _crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: number, mlenP: number, nsec: number, c: number, cLenLo: number, cLenHi: number,
    ad: number, adLenLo: number, adLenHi: number, npub: number, k: number,
  ): number;
  _crypto_stream_chacha20_ietf(c: number, cLenLo: number, cLenHi: number, n: number, k: number): number;
  _crypto_stream_chacha20_ietf_xor_ic(c: number, m: number, mLenLo: number, mLenHi: number, n: number, ic: number, k: number): number;
  _crypto_onetimeauth_poly1305_init(state: number, key: number): number;
  _crypto_onetimeauth_poly1305_update(state: number, m: number, mLenLo: number, mLenHi: number): number;
  _crypto_onetimeauth_poly1305_final(state: number, out: number): number;
  _crypto_verify_16(x: number, y: number): number;
  _crypto_core_hchacha20(out: number, input: number, k: number, c: number): number;
  _crypto_scalarmult(q: number, n: number, p: number): number;
  _crypto_scalarmult_base(q: number, n: number): number;
  _crypto_sign_seed_keypair(pk: number, sk: number, seed: number): number;
  _crypto_sign_detached(sig: number, sigLenP: number, m: number, mLenLo: number, mLenHi: number, sk: number): number;
  _crypto_sign_verify_detached(sig: number, m: number, mLenLo: number, mLenHi: number, pk: number): number;
  _crypto_sign_ed25519_sk_to_curve25519(out: number, sk: number): number;
  _crypto_sign_ed25519_pk_to_curve25519(out: number, pk: number): number;
}

/** What `ready()` loads: the wrapper and its raw module. */
export interface Sodium {
  readonly wrapper: SodiumWrapper;
  readonly raw: RawSodium;
}

let loaded: Sodium | null = null;
let loading: Promise<void> | null = null;

async function load(): Promise<void> {
  await sodiumWrapper.ready;
  const raw = (sodiumWrapper as unknown as { libsodium: RawSodium }).libsodium;
  // libsodium.js draws 4 bytes per call from Node's crypto.randomBytes; point it at our pool.
  raw.getRandomValue = randomUint32;
  loaded = { wrapper: sodiumWrapper, raw };
}

/**
 * Loads libsodium (once; safe to call many times and concurrently). Every other function of the
 * library needs this promise to have resolved.
 * @example
 * await ready();
 */
export function ready(): Promise<void> {
  if (loading === null) {
    loading = load().catch((e: unknown) => {
      loading = null;
      throw new E2EError('NOT_READY', `libsodium failed to load: ${e instanceof Error ? e.name : 'unknown error'}`);
    });
  }
  return loading;
}

/** True once `ready()` has resolved. */
export function isReady(): boolean {
  return loaded !== null;
}

/**
 * The loaded libsodium. Throws `NOT_READY` before `ready()` resolved.
 * @internal for `lib/crypto/` only.
 */
export function sodium(): Sodium {
  if (loaded === null) throw new E2EError('NOT_READY', 'call and await ready() before using agentmesh-e2e');
  return loaded;
}
