/**
 * One scratch region in libsodium's WASM heap, reused by every primitive. JavaScript runs one call
 * at a time and no primitive re-enters another, so a single region is enough; it grows (never
 * shrinks) to the largest request and is wiped after every use that put secrets in it.
 */
import { RawSodium, sodium } from '../sodium';
import { E2EError } from '../errors';

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

function grow(raw: RawSodium, size: number): void {
  const want = Math.max(4096, size, capacity * 2);
  if (owner === raw && base !== 0) {
    raw.HEAPU8.fill(0, base, base + capacity);
    raw._free(base);
  }
  // Forget the freed block before allocating, so a failed allocation leaves no dangling pointer.
  base = 0;
  capacity = 0;
  owner = null;
  const ptr = raw._malloc(want);
  if (ptr === 0) throw new E2EError('INVALID_ARGUMENT', `cannot allocate ${want} bytes of WASM memory`);
  owner = raw;
  base = ptr;
  capacity = want;
}
