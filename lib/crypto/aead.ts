/**
 * ChaCha20-Poly1305-IETF (RFC 8439) and XChaCha20-Poly1305 AEAD over libsodium, on the shared WASM
 * scratch. Output of encryption is `ciphertext ‖ tag(16)`.
 */
import { E2EError } from '../errors';
import { MAX_AEAD_INPUT_BYTES } from '../limits';
import { RawSodium } from '../sodium';
import { assertBytes, assertKey } from './bytes';
import { CHUNKED_AEAD_HEAP_BYTES, chunkedOpen, chunkedSeal } from './aead-chunked';
import { SCRATCH_WORKING_BYTES, withScratch } from './heap';

/** Bytes of an AEAD key. */
export const AEAD_KEY_BYTES = 32;
/** Bytes of a ChaCha20-Poly1305-IETF nonce. */
export const CHACHA20_POLY1305_NONCE_BYTES = 12;
/** Bytes of an XChaCha20-Poly1305 nonce. */
export const XCHACHA20_POLY1305_NONCE_BYTES = 24;
/** Bytes of the Poly1305 tag appended to every ciphertext. */
export const AEAD_TAG_BYTES = 16;

const EMPTY = new Uint8Array(0);

type Variant = 'ietf' | 'x';

function checkInputs(key: Uint8Array, nonce: Uint8Array, nonceBytes: number, data: Uint8Array, ad: Uint8Array): void {
  assertKey(key, 'AEAD key', AEAD_KEY_BYTES);
  assertBytes(nonce, 'nonce', nonceBytes);
  assertBytes(data, 'data');
  assertBytes(ad, 'associated data');
  if (data.length + ad.length > MAX_AEAD_INPUT_BYTES) {
    throw new E2EError('MESSAGE_TOO_LARGE', `AEAD input above ${MAX_AEAD_INPUT_BYTES} bytes`);
  }
}

function encryptFn(raw: RawSodium, v: Variant) {
  return v === 'ietf' ? raw._crypto_aead_chacha20poly1305_ietf_encrypt : raw._crypto_aead_xchacha20poly1305_ietf_encrypt;
}

function decryptFn(raw: RawSodium, v: Variant) {
  return v === 'ietf' ? raw._crypto_aead_chacha20poly1305_ietf_decrypt : raw._crypto_aead_xchacha20poly1305_ietf_decrypt;
}

/**
 * For inputs too large for the scratch region's working size: the key (and, for XChaCha20, the
 * HChaCha20 subkey and the shortened nonce) in the heap at `ptr`, the chunked AEAD after it.
 * Returns the heap pointer of the ChaCha20-Poly1305-IETF key and its 12-byte nonce.
 */
function chunkedKey(raw: RawSodium, v: Variant, ptr: number, key: Uint8Array, nonce: Uint8Array): { k: number; n: Uint8Array } {
  const heap = raw.HEAPU8;
  heap.set(key, ptr);
  if (v === 'ietf') return { k: ptr, n: nonce };
  // XChaCha20-Poly1305: subkey = HChaCha20(key, nonce[0..16]), nonce = 0⁴ ‖ nonce[16..24].
  heap.set(nonce.subarray(0, 16), ptr + 64);
  raw._crypto_core_hchacha20(ptr + 32, ptr + 64, ptr, 0);
  const n = new Uint8Array(12);
  n.set(nonce.subarray(16, 24), 4);
  return { k: ptr + 32, n };
}
const CHUNKED_KEY_BYTES = 96;

/**
 * The one-shot layout at `ptr`: key (32) ‖ nonce (24 reserved) ‖ `adPrefix ‖ adSuffix` ‖ `data`,
 * where `data` is encrypted or decrypted in place. Returns the offsets of the nonce, the AD and the data.
 */
function layOut(
  heap: Uint8Array,
  ptr: number,
  key: Uint8Array,
  nonce: Uint8Array,
  adPrefix: Uint8Array,
  adSuffix: Uint8Array,
  data: Uint8Array,
): { n: number; a: number; c: number } {
  const n = ptr + 32;
  const a = n + 24;
  const c = a + adPrefix.length + adSuffix.length;
  heap.set(key, ptr);
  heap.set(nonce, n);
  heap.set(adPrefix, a);
  heap.set(adSuffix, a + adPrefix.length);
  heap.set(data, c);
  return { n, a, c };
}

/**
 * Seals `plaintext` and writes `ciphertext ‖ tag` into `out` at `outOffset`. The associated data is
 * `adPrefix ‖ adSuffix`, assembled in WASM memory so the caller never concatenates. Inputs are
 * trusted (checked by the caller).
 * @internal the ratchet's hot path.
 */
export function sealInto(
  v: Variant,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  adPrefix: Uint8Array,
  adSuffix: Uint8Array,
  out: Uint8Array,
  outOffset: number,
): void {
  const adLen = adPrefix.length + adSuffix.length;
  const ctLen = plaintext.length + AEAD_TAG_BYTES;
  if (32 + 24 + adLen + ctLen > SCRATCH_WORKING_BYTES) {
    withScratch(CHUNKED_KEY_BYTES + CHUNKED_AEAD_HEAP_BYTES, (raw, ptr) => {
      const { k, n } = chunkedKey(raw, v, ptr, key, nonce);
      chunkedSeal(raw, k, ptr + CHUNKED_KEY_BYTES, n, [adPrefix, adSuffix], plaintext, out, outOffset);
    });
    return;
  }
  // Encrypted in place: one region of about the input's size.
  withScratch(32 + 24 + adLen + ctLen, (raw, ptr, heap) => {
    const { n, a, c } = layOut(heap, ptr, key, nonce, adPrefix, adSuffix, plaintext);
    encryptFn(raw, v)(c, 0, c, plaintext.length, 0, a, adLen, 0, 0, n, ptr);
    out.set(heap.subarray(c, c + ctLen), outOffset);
  });
}

/**
 * Opens `ciphertext ‖ tag` with associated data `adPrefix ‖ adSuffix`; `null` when the tag does not
 * verify (the caller decides which error that is). Inputs are trusted (checked by the caller).
 * @internal the ratchet's hot path.
 */
export function openParts(
  v: Variant,
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  adPrefix: Uint8Array,
  adSuffix: Uint8Array,
): Uint8Array | null {
  if (ciphertext.length < AEAD_TAG_BYTES) return null;
  const adLen = adPrefix.length + adSuffix.length;
  const ptLen = ciphertext.length - AEAD_TAG_BYTES;
  if (32 + 24 + adLen + ciphertext.length > SCRATCH_WORKING_BYTES) {
    return withScratch(CHUNKED_KEY_BYTES + CHUNKED_AEAD_HEAP_BYTES, (raw, ptr) => {
      const { k, n } = chunkedKey(raw, v, ptr, key, nonce);
      return chunkedOpen(raw, k, ptr + CHUNKED_KEY_BYTES, n, [adPrefix, adSuffix], ciphertext);
    });
  }
  // Decrypted in place (the tag is verified over the ciphertext first).
  return withScratch(32 + 24 + adLen + ciphertext.length, (raw, ptr, heap) => {
    const { n, a, c } = layOut(heap, ptr, key, nonce, adPrefix, adSuffix, ciphertext);
    const rc = decryptFn(raw, v)(c, 0, 0, c, ciphertext.length, 0, a, adLen, 0, n, ptr);
    return rc === 0 ? heap.slice(c, c + ptLen) : null;
  });
}

function encrypt(v: Variant, nonceBytes: number, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  checkInputs(key, nonce, nonceBytes, plaintext, ad);
  const out = new Uint8Array(plaintext.length + AEAD_TAG_BYTES);
  sealInto(v, key, nonce, plaintext, ad, EMPTY, out, 0);
  return out;
}

function decrypt(v: Variant, nonceBytes: number, key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array {
  checkInputs(key, nonce, nonceBytes, ciphertext, ad);
  const plaintext = openParts(v, key, nonce, ciphertext, ad, EMPTY);
  if (plaintext === null) throw new E2EError('DECRYPT_FAILED', 'authentication failed');
  return plaintext;
}

/** ChaCha20-Poly1305-IETF encryption: returns `ciphertext ‖ tag(16)`. */
export function chacha20Poly1305Encrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array = EMPTY): Uint8Array {
  return encrypt('ietf', CHACHA20_POLY1305_NONCE_BYTES, key, nonce, plaintext, ad);
}

/** ChaCha20-Poly1305-IETF decryption of `ciphertext ‖ tag`; `DECRYPT_FAILED` when it does not authenticate. */
export function chacha20Poly1305Decrypt(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array = EMPTY): Uint8Array {
  return decrypt('ietf', CHACHA20_POLY1305_NONCE_BYTES, key, nonce, ciphertext, ad);
}

/** XChaCha20-Poly1305 encryption (24-byte nonce, safe to pick at random): returns `ciphertext ‖ tag(16)`. */
export function xchacha20Poly1305Encrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array = EMPTY): Uint8Array {
  return encrypt('x', XCHACHA20_POLY1305_NONCE_BYTES, key, nonce, plaintext, ad);
}

/** XChaCha20-Poly1305 decryption of `ciphertext ‖ tag`; `DECRYPT_FAILED` when it does not authenticate. */
export function xchacha20Poly1305Decrypt(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array = EMPTY): Uint8Array {
  return decrypt('x', XCHACHA20_POLY1305_NONCE_BYTES, key, nonce, ciphertext, ad);
}
