/**
 * The Double Ratchet's per-message cryptography fused into one pass over the WASM heap: the
 * symmetric-ratchet step (`MK = HMAC(CK, 0x01)`, `CK' = HMAC(CK, 0x02)`) and ChaCha20-Poly1305.
 *
 * It works on the binary envelope of PROTOCOL.md, `u32be(40) ‖ header(40) ‖ nonce(12) ‖ ct ‖ tag(16)`,
 * and lays the heap out as `adPrefix ‖ header ‖ nonce ‖ ct ‖ tag`, so the AEAD's associated data
 * (`adPrefix ‖ header`) and the envelope body are each one contiguous region: one copy in, one out.
 * The message key never leaves WASM memory. Inputs are trusted (the ratchet checks them).
 */
import * as aead from './aead';
import * as chunked from './aead-chunked';
import * as layout from './envelope-layout';
import * as heapModule from './heap';
import * as hmac from './hmac';

// Read once: a bundler's CommonJS output (tsx, esbuild) makes every imported binding a getter, and
// the per-message path reads these several times per call.
const { AEAD_TAG_BYTES: TAG, CHACHA20_POLY1305_NONCE_BYTES: NONCE } = aead;
const { CHUNKED_AEAD_HEAP_BYTES, chunkedOpen, chunkedSeal } = chunked;
const { ENVELOPE_CIPHERTEXT_AT: BODY_START, ENVELOPE_HEADER_AT: PREFIX, ENVELOPE_NONCE_AT, HEADER_BYTES: HEADER } = layout;
const { SCRATCH_WORKING_BYTES, releaseLargeScratch, scratch } = heapModule;
const { CHAIN_KEY_STEP_HEAP_BYTES, chainKeyStepInHeap } = hmac;

/**
 * Seals `plaintext` into `envelope` (whose prefix, header and nonce are already written) under the
 * next message key of `chainKey`, and advances `chainKey` in place. Encrypts in place in the heap
 * (one region of about `adPrefix + 68 + plaintext` bytes), or through a fixed window above the
 * scratch working size.
 * @internal the ratchet's send path.
 */
export function sealMessage(chainKey: Uint8Array, envelope: Uint8Array, plaintext: Uint8Array, adPrefix: Uint8Array): void {
  const n = plaintext.length;
  const adLen = adPrefix.length;
  if (tooLargeForOnePass(adLen + HEADER + NONCE + n + TAG)) {
    const { raw, ptr } = scratch(CHAIN_KEY_STEP_HEAP_BYTES + CHUNKED_AEAD_HEAP_BYTES);
    const { heap, mk, ckNext } = chainKeyStepInHeap(raw, ptr, chainKey);
    const header = envelope.subarray(PREFIX, ENVELOPE_NONCE_AT);
    chunkedSeal(
      raw,
      mk,
      ptr + CHAIN_KEY_STEP_HEAP_BYTES,
      envelope.subarray(ENVELOPE_NONCE_AT, BODY_START),
      [adPrefix, header],
      plaintext,
      envelope,
      BODY_START,
    );
    chainKey.set(heap.subarray(ckNext, ckNext + 32));
    heap.fill(0, ptr, ptr + CHAIN_KEY_STEP_HEAP_BYTES);
    return;
  }
  const { raw, ptr } = scratch(CHAIN_KEY_STEP_HEAP_BYTES + adLen + HEADER + NONCE + n + TAG);
  const { heap, mk, ckNext } = chainKeyStepInHeap(raw, ptr, chainKey);
  const a = ptr + CHAIN_KEY_STEP_HEAP_BYTES;
  const npub = a + adLen + HEADER;
  const c = npub + NONCE;
  heap.set(adPrefix, a);
  heap.set(envelope.subarray(PREFIX, BODY_START), a + adLen);
  heap.set(plaintext, c);
  raw._crypto_aead_chacha20poly1305_ietf_encrypt(c, 0, c, n, 0, a, adLen + HEADER, 0, 0, npub, mk);
  envelope.set(heap.subarray(c, c + n + TAG), BODY_START);
  chainKey.set(heap.subarray(ckNext, ckNext + 32));
  heap.fill(0, ptr, c + n + TAG);
  releaseLargeScratch();
}

/**
 * Whether a message of `bytes` on the heap (associated data and envelope) would not fit the
 * scratch region's working size: then it goes through the chunked AEAD, whose heap use is fixed.
 */
function tooLargeForOnePass(bytes: number): boolean {
  return CHAIN_KEY_STEP_HEAP_BYTES + bytes > SCRATCH_WORKING_BYTES;
}

function openChunked(
  raw: ReturnType<typeof scratch>['raw'],
  key: number,
  work: number,
  envelope: Uint8Array,
  adPrefix: Uint8Array,
): Uint8Array | null {
  const header = envelope.subarray(PREFIX, ENVELOPE_NONCE_AT);
  return chunkedOpen(raw, key, work, envelope.subarray(ENVELOPE_NONCE_AT, BODY_START), [adPrefix, header], envelope.subarray(BODY_START));
}

/** Opens the envelope copied to `a` in place; the plaintext (a JS copy) or `null`. */
function open(
  raw: ReturnType<typeof scratch>['raw'],
  heap: Uint8Array,
  key: number,
  a: number,
  envelope: Uint8Array,
  adPrefix: Uint8Array,
): { plaintext: Uint8Array | null; end: number } {
  const adLen = adPrefix.length;
  const bodyLen = envelope.length - PREFIX;
  const ctLen = envelope.length - BODY_START;
  const npub = a + adLen + HEADER;
  const c = npub + NONCE;
  heap.set(adPrefix, a);
  heap.set(envelope.subarray(PREFIX), a + adLen);
  // In place (libsodium verifies the tag over the ciphertext before it decrypts over it).
  const rc = raw._crypto_aead_chacha20poly1305_ietf_decrypt(c, 0, 0, c, ctLen, 0, a, adLen + HEADER, 0, npub, key);
  const ptLen = ctLen - TAG;
  return { plaintext: rc === 0 ? heap.slice(c, c + ptLen) : null, end: a + adLen + bodyLen };
}

/**
 * Opens `envelope` with the next message key of `chainKey`; on success writes CK' into
 * `nextChainKeyOut` and returns the plaintext, else returns `null` and writes nothing.
 * Heap cost: one region of about `adPrefix + envelope` bytes, decrypted in place, up to the scratch
 * working size (256 KiB); above it a fixed window of about 66 KiB (`aead-chunked.ts`), the tag
 * verified before anything is decrypted. The caller has already refused envelopes above
 * `MAX_ENVELOPE_BYTES`; no envelope grows the WASM memory.
 * @internal the ratchet's receive path.
 */
export function openMessage(
  chainKey: Uint8Array,
  nextChainKeyOut: Uint8Array,
  envelope: Uint8Array,
  adPrefix: Uint8Array,
): Uint8Array | null {
  if (tooLargeForOnePass(adPrefix.length + envelope.length)) {
    const { raw, ptr } = scratch(CHAIN_KEY_STEP_HEAP_BYTES + CHUNKED_AEAD_HEAP_BYTES);
    const { heap, mk, ckNext } = chainKeyStepInHeap(raw, ptr, chainKey);
    const plaintext = openChunked(raw, mk, ptr + CHAIN_KEY_STEP_HEAP_BYTES, envelope, adPrefix);
    if (plaintext !== null) nextChainKeyOut.set(heap.subarray(ckNext, ckNext + 32));
    heap.fill(0, ptr, ptr + CHAIN_KEY_STEP_HEAP_BYTES);
    return plaintext;
  }
  const { raw, ptr } = scratch(CHAIN_KEY_STEP_HEAP_BYTES + adPrefix.length + envelope.length);
  const { heap, mk, ckNext } = chainKeyStepInHeap(raw, ptr, chainKey);
  const { plaintext, end } = open(raw, heap, mk, ptr + CHAIN_KEY_STEP_HEAP_BYTES, envelope, adPrefix);
  if (plaintext !== null) nextChainKeyOut.set(heap.subarray(ckNext, ckNext + 32));
  heap.fill(0, ptr, end);
  releaseLargeScratch();
  return plaintext;
}

/**
 * Opens `envelope` with a known message key (a skipped one); `null` when it does not authenticate.
 * Same heap cost as {@link openMessage}.
 * @internal the ratchet's receive path.
 */
export function openMessageWithKey(messageKey: Uint8Array, envelope: Uint8Array, adPrefix: Uint8Array): Uint8Array | null {
  if (tooLargeForOnePass(adPrefix.length + envelope.length)) {
    const { raw, ptr } = scratch(32 + CHUNKED_AEAD_HEAP_BYTES);
    raw.HEAPU8.set(messageKey, ptr);
    const plaintext = openChunked(raw, ptr, ptr + 32, envelope, adPrefix);
    raw.HEAPU8.fill(0, ptr, ptr + 32);
    return plaintext;
  }
  const { raw, ptr } = scratch(32 + adPrefix.length + envelope.length);
  const heap = raw.HEAPU8;
  heap.set(messageKey, ptr);
  const { plaintext, end } = open(raw, heap, ptr, ptr + 32, envelope, adPrefix);
  heap.fill(0, ptr, end);
  releaseLargeScratch();
  return plaintext;
}
