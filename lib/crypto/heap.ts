/**
 * One scratch region in libsodium's WASM heap, reused by every primitive. JavaScript runs one call
 * at a time and no primitive re-enters another, so a single region is enough. It is wiped after
 * every use that put secrets in it.
 *
 * Size: the region grows (doubling) up to {@link SCRATCH_WORKING_BYTES}, which covers every
 * ordinary call; AEAD inputs above it (messages included) go through a fixed 64 KiB window
 * (`aead-chunked.ts`) and never need more. A larger request can only come from HMAC, HKDF or
 * Ed25519 over a large input (capped at 64 MiB before the heap is touched): it gets a block of
 * exactly its size, and {@link releaseLargeScratch} gives that block back to libsodium's allocator
 * when the call ends, so the region returns to its working size (WebAssembly memory itself never
 * shrinks: such a call grows the module's memory once by about its size).
 */
import { RawSodium, sodium } from '../sodium';
import { E2EError } from '../errors';

/** Largest scratch region kept between calls (256 KiB); larger ones are released after use. */
export const SCRATCH_WORKING_BYTES = 256 * 1024;

let base = 0;
let capacity = 0;
let owner: RawSodium | null = null;

/**
 * The raw module and a scratch pointer of at least `size` bytes. Read `raw.HEAPU8` only after
 * this call: growing the WASM memory replaces the buffer behind it. The caller wipes what it used;
 * prefer {@link withScratch}, which does so on every exit path.
 * @internal
 */
export function scratch(size: number): { raw: RawSodium; ptr: number } {
  const raw = sodium().raw;
  if (owner !== raw || size > capacity) grow(raw, size);
  return { raw, ptr: base };
}

/**
 * Releases the scratch region if a large call made it bigger than the working size (the caller
 * has wiped what it used). One comparison on the common path.
 * @internal
 */
export function releaseLargeScratch(): void {
  if (capacity > SCRATCH_WORKING_BYTES) free();
}

/**
 * Runs `body` on `size` bytes of scratch and wipes them in `finally`, on every exit path (a
 * return, an `E2EError` thrown by `body`, a failure inside libsodium's glue), then gives back a
 * region that a large call grew ({@link releaseLargeScratch}). Every primitive that puts its
 * inputs in WASM memory goes through here, so none can leave a secret behind by returning or
 * throwing early. `body` gets the raw module, the region's pointer and the heap view (read after
 * the allocation, so it is the current buffer); it must not call another scratch user.
 * @param size bytes `body` uses from `ptr` (all of them are wiped).
 * @param body the call: copies inputs in, calls libsodium, copies results out.
 * @returns what `body` returns.
 * @throws `NOT_READY` before `ready()`; `INVALID_ARGUMENT` when WASM memory cannot be allocated;
 *   whatever `body` throws, after the wipe.
 * @internal for `lib/crypto/` only.
 */
export function withScratch<T>(size: number, body: (raw: RawSodium, ptr: number, heap: Uint8Array) => T): T {
  const { raw, ptr } = scratch(size);
  try {
    return body(raw, ptr, raw.HEAPU8);
  } finally {
    raw.HEAPU8.fill(0, ptr, ptr + size);
    if (capacity > SCRATCH_WORKING_BYTES) free();
  }
}

/** Bytes of the scratch region now held (0 when none). @internal for tests. */
export function scratchCapacity(): number {
  return capacity;
}

function free(): void {
  if (owner !== null && base !== 0) {
    owner.HEAPU8.fill(0, base, base + capacity);
    owner._free(base);
  }
  // Forget the freed block before any new allocation, so a failed one leaves no dangling pointer.
  base = 0;
  capacity = 0;
  owner = null;
}

function grow(raw: RawSodium, size: number): void {
  const want = size > SCRATCH_WORKING_BYTES ? size : Math.min(SCRATCH_WORKING_BYTES, Math.max(4096, size, capacity * 2));
  if (owner === raw) free();
  base = 0;
  capacity = 0;
  owner = null;
  const ptr = raw._malloc(want);
  if (ptr === 0) throw new E2EError('INVALID_ARGUMENT', `cannot allocate ${want} bytes of WASM memory`);
  owner = raw;
  base = ptr;
  capacity = want;
}
