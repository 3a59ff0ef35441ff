/**
 * ChaCha20-Poly1305-IETF (RFC 8439 §2.8) through a fixed window of the WASM heap, for inputs too
 * large for the scratch region's working size: the tag is computed over the associated data and
 * the ciphertext fed through the window, and data is encrypted or decrypted window by window
 * (`crypto_stream_chacha20_ietf_xor_ic` with the block counter carried on). Opening verifies the
 * tag before it decrypts anything, so a forged input of any size costs one pass of Poly1305 and
 * no heap beyond {@link CHUNKED_AEAD_HEAP_BYTES}: nothing grows, nothing needs shrinking.
 * Same bytes as libsodium's one-shot functions (tested against them).
 * @internal for `lib/crypto/` only.
 */
import { RawSodium } from '../sodium';

/** Bytes moved through the heap at a time (a multiple of the 64-byte ChaCha20 block). */
const WINDOW = 64 * 1024;
const BLOCK = 0;
const STATE = BLOCK + 64;
const TAG = STATE + 256; // crypto_onetimeauth_poly1305_statebytes() in libsodium 1.0.22
const EXPECTED = TAG + 16;
const NONCE = EXPECTED + 16;
const WIN = NONCE + 16;
/** Heap bytes the chunked functions use from their work pointer. */
export const CHUNKED_AEAD_HEAP_BYTES = WIN + WINDOW;

function lengths(adLen: number, ctLen: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, adLen >>> 0, true);
  v.setUint32(4, Math.floor(adLen / 2 ** 32), true);
  v.setUint32(8, ctLen >>> 0, true);
  v.setUint32(12, Math.floor(ctLen / 2 ** 32), true);
  return b;
}

class Mac {
  readonly #raw: RawSodium;
  readonly #heap: Uint8Array;
  readonly #w: number;

  constructor(raw: RawSodium, heap: Uint8Array, work: number, key: number, nonce: Uint8Array) {
    this.#raw = raw;
    this.#heap = heap;
    this.#w = work;
    heap.set(nonce, work + NONCE);
    // The Poly1305 key is the first 32 bytes of keystream block 0.
    raw._crypto_stream_chacha20_ietf(work + BLOCK, 64, 0, work + NONCE, key);
    raw._crypto_onetimeauth_poly1305_init(work + STATE, work + BLOCK);
    heap.fill(0, work + BLOCK, work + BLOCK + 64);
  }

  /** Feeds `data` through the window. */
  feed(data: Uint8Array): void {
    for (let off = 0; off < data.length; off += WINDOW) {
      const part = data.subarray(off, Math.min(data.length, off + WINDOW));
      this.#heap.set(part, this.#w + WIN);
      this.#raw._crypto_onetimeauth_poly1305_update(this.#w + STATE, this.#w + WIN, part.length, 0);
    }
  }

  /** Feeds the heap bytes at `ptr` (already there). */
  feedHeap(ptr: number, n: number): void {
    this.#raw._crypto_onetimeauth_poly1305_update(this.#w + STATE, ptr, n, 0);
  }

  /** Zeros up to the next multiple of 16 after `n` bytes. */
  pad(n: number): void {
    const p = (16 - (n % 16)) % 16;
    if (p === 0) return;
    this.#heap.fill(0, this.#w + WIN, this.#w + WIN + p);
    this.feedHeap(this.#w + WIN, p);
  }

  /** Finishes the tag into the heap at `TAG`. */
  finish(adLen: number, ctLen: number): void {
    this.pad(ctLen);
    this.#heap.set(lengths(adLen, ctLen), this.#w + WIN);
    this.feedHeap(this.#w + WIN, 16);
    this.#raw._crypto_onetimeauth_poly1305_final(this.#w + STATE, this.#w + TAG);
  }
}

function feedAd(mac: Mac, adParts: readonly Uint8Array[]): number {
  let adLen = 0;
  for (const p of adParts) {
    mac.feed(p);
    adLen += p.length;
  }
  mac.pad(adLen);
  return adLen;
}

/**
 * Seals `plaintext` under the key at heap `key` with associated data `adParts` (concatenated),
 * writing `ciphertext ‖ tag` into `out` at `outOffset`. Wipes its work region on every exit path
 * (the caller's scratch region holds it, see `heap.ts` `withScratch`).
 */
export function chunkedSeal(
  raw: RawSodium,
  key: number,
  work: number,
  nonce: Uint8Array,
  adParts: readonly Uint8Array[],
  plaintext: Uint8Array,
  out: Uint8Array,
  outOffset: number,
): void {
  const heap = raw.HEAPU8;
  try {
    const mac = new Mac(raw, heap, work, key, nonce);
    const adLen = feedAd(mac, adParts);
    const win = work + WIN;
    for (let off = 0; off < plaintext.length; off += WINDOW) {
      const n = Math.min(WINDOW, plaintext.length - off);
      heap.set(plaintext.subarray(off, off + n), win);
      raw._crypto_stream_chacha20_ietf_xor_ic(win, win, n, 0, work + NONCE, 1 + off / 64, key);
      mac.feedHeap(win, n);
      out.set(heap.subarray(win, win + n), outOffset + off);
    }
    mac.finish(adLen, plaintext.length);
    out.set(heap.subarray(work + TAG, work + TAG + 16), outOffset + plaintext.length);
  } finally {
    heap.fill(0, work, work + CHUNKED_AEAD_HEAP_BYTES);
  }
}

/**
 * Opens `ciphertext ‖ tag` (at least 16 bytes) under the key at heap `key`; the plaintext, or
 * `null` when the tag does not verify (then nothing was decrypted). Wipes its work region on every
 * exit path.
 */
export function chunkedOpen(
  raw: RawSodium,
  key: number,
  work: number,
  nonce: Uint8Array,
  adParts: readonly Uint8Array[],
  sealed: Uint8Array,
): Uint8Array | null {
  const heap = raw.HEAPU8;
  const ctLen = sealed.length - 16;
  const ct = sealed.subarray(0, ctLen);
  try {
    const mac = new Mac(raw, heap, work, key, nonce);
    const adLen = feedAd(mac, adParts);
    mac.feed(ct);
    mac.finish(adLen, ctLen);
    heap.set(sealed.subarray(ctLen), work + EXPECTED);
    if (raw._crypto_verify_16(work + TAG, work + EXPECTED) !== 0) return null;
    const plaintext = new Uint8Array(ctLen);
    const win = work + WIN;
    for (let off = 0; off < ctLen; off += WINDOW) {
      const n = Math.min(WINDOW, ctLen - off);
      heap.set(ct.subarray(off, off + n), win);
      raw._crypto_stream_chacha20_ietf_xor_ic(win, win, n, 0, work + NONCE, 1 + off / 64, key);
      plaintext.set(heap.subarray(win, win + n), off);
    }
    return plaintext;
  } finally {
    heap.fill(0, work, work + CHUNKED_AEAD_HEAP_BYTES);
  }
}
