/** Every limit of the library in one place. */

/** Largest plaintext `encrypt`/`send` accepts (16 MiB); larger ones are refused before any work. */
export const MAX_PLAINTEXT_BYTES = 16 * 1024 * 1024;
/** Largest input the AEAD primitives accept (64 MiB), so no call can exhaust the WASM heap. */
export const MAX_AEAD_INPUT_BYTES = 64 * 1024 * 1024;
/** Largest message counter; a chain at this value refuses to go on instead of wrapping. */
export const MAX_COUNTER = 0xffffffff;
/** Default most message keys skipped in one gap (Double Ratchet MAX_SKIP). */
export const DEFAULT_MAX_SKIP = 100;
/** Default most skipped message keys kept in all; the oldest are evicted first. */
export const DEFAULT_MAX_SKIPPED_KEYS = 2000;
