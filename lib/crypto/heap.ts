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
 * this call: growing the WASM memory replaces the buffer behind it.
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
