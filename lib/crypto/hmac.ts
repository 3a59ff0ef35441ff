/** HMAC-SHA256 (RFC 2104) over libsodium's `crypto_auth_hmacsha256`, on the shared WASM scratch. */
import { E2EError } from '../errors';
import { assertBytes } from './bytes';
import { RawSodium } from '../sodium';
import { withScratch } from './heap';
import { MAX_AEAD_INPUT_BYTES } from '../limits';

/** Bytes in an HMAC-SHA256 tag. */
export const HMAC_SHA256_BYTES = 32;
// Fixed by libsodium 1.0.22's crypto_auth_hmacsha256_state.
const STATE_BYTES = 208;

/**
 * HMAC-SHA256 of `data` under `key` (any key length).
 * @example hmacSha256(chainKey, Uint8Array.of(1)) // a 32-byte tag
 */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  assertBytes(key, 'key');
  assertBytes(data, 'data');
  // Checked before the heap is touched, like every size cap.
  if (key.length + data.length > MAX_AEAD_INPUT_BYTES)
    throw new E2EError('MESSAGE_TOO_LARGE', `HMAC input above ${MAX_AEAD_INPUT_BYTES} bytes`);
  return withScratch(STATE_BYTES + HMAC_SHA256_BYTES + key.length + data.length, (raw, ptr, heap) => {
    const out = ptr + STATE_BYTES;
    const k = out + HMAC_SHA256_BYTES;
    const m = k + key.length;
    heap.set(key, k);
    heap.set(data, m);
    raw._crypto_auth_hmacsha256_init(ptr, k, key.length);
    raw._crypto_auth_hmacsha256_update(ptr, m, data.length, 0);
    raw._crypto_auth_hmacsha256_final(ptr, out);
    return heap.slice(out, out + HMAC_SHA256_BYTES);
  });
}

/**
 * The symmetric-ratchet step of the Double Ratchet in one pass over the heap:
 * `messageKey = HMAC(chainKey, 0x01)`, `nextChainKey = HMAC(chainKey, 0x02)`, written into the
 * two 32-byte outputs (`nextChainKeyOut` may be `chainKey` itself). Both HMACs share one key, so
 * the keyed state (the hashed ipad and opad blocks) is computed once and copied: 6 SHA-256
 * compressions instead of 8. This is half the per-message cost, so it allocates nothing.
 */
export function chainKeyStep(chainKey: Uint8Array, messageKeyOut: Uint8Array, nextChainKeyOut: Uint8Array): void {
  // Checked inline: this is the per-message path (the assert helpers measurably cost more here).
  if (!(chainKey instanceof Uint8Array) || !ArrayBuffer.isView(chainKey) || chainKey.length !== 32) {
    throw new E2EError('INVALID_KEY', 'chain key must be 32 bytes');
  }
  if (
    !(messageKeyOut instanceof Uint8Array) ||
    !ArrayBuffer.isView(messageKeyOut) ||
    messageKeyOut.length !== 32 ||
    !(nextChainKeyOut instanceof Uint8Array) ||
    !ArrayBuffer.isView(nextChainKeyOut) ||
    nextChainKeyOut.length !== 32
  ) {
    throw new E2EError('INVALID_ARGUMENT', 'chain key step outputs must be 32-byte Uint8Arrays');
  }
  withScratch(CHAIN_KEY_STEP_HEAP_BYTES, (raw, ptr) => {
    const { heap, mk, ckNext } = chainKeyStepInHeap(raw, ptr, chainKey);
    messageKeyOut.set(heap.subarray(mk, mk + 32));
    nextChainKeyOut.set(heap.subarray(ckNext, ckNext + 32));
  });
}

/** Heap bytes {@link chainKeyStepInHeap} uses from its pointer. @internal */
export const CHAIN_KEY_STEP_HEAP_BYTES = 2 * STATE_BYTES + 32 + 1 + 32 + 32;

/**
 * KDF_CK in WASM memory at `ptr`: returns the heap and the offsets of MK and CK'. The caller copies
 * what it needs and wipes the region. @internal
 */
export function chainKeyStepInHeap(raw: RawSodium, ptr: number, chainKey: Uint8Array): { heap: Uint8Array; mk: number; ckNext: number } {
  const st1 = ptr;
  const st2 = ptr + STATE_BYTES;
  const ck = st2 + STATE_BYTES;
  const m = ck + 32;
  const mk = m + 1;
  const ckNext = mk + 32;
  const heap = raw.HEAPU8;
  heap.set(chainKey, ck);
  raw._crypto_auth_hmacsha256_init(st1, ck, 32);
  heap.copyWithin(st2, st1, st1 + STATE_BYTES);
  heap[m] = 0x01;
  raw._crypto_auth_hmacsha256_update(st1, m, 1, 0);
  raw._crypto_auth_hmacsha256_final(st1, mk);
  heap[m] = 0x02;
  raw._crypto_auth_hmacsha256_update(st2, m, 1, 0);
  raw._crypto_auth_hmacsha256_final(st2, ckNext);
  return { heap, mk, ckNext };
}
