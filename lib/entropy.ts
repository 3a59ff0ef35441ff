/**
 * The platform CSPRNG behind every random byte of the library, pooled.
 *
 * libsodium.js asks Node for 4 bytes at a time (about 35 µs for a 12-byte nonce); one
 * `crypto.getRandomValues` call per 4 KiB makes a nonce cost about 0.1 µs. Bytes are wiped from
 * the pool as they are handed out, so the pool never holds randomness that was already used.
 *
 * The pool holds bytes that will be handed out later, so a snapshot of memory would reveal them:
 * it serves only public or short-lived values (nonces, ids). Secret keys come from
 * {@link fillRandomSecret}, which has the platform write straight into the key's own memory.
 */

const POOL_SIZE = 4096;
/** Requests larger than this bypass the pool (the pool would only add a copy). */
const DIRECT_THRESHOLD = 256;
/** `getRandomValues` refuses more than 65,536 bytes per call. */
const PLATFORM_CHUNK = 65536;

type RandomSource = (out: Uint8Array) => void;

const pool = new Uint8Array(POOL_SIZE);
let poolPos = POOL_SIZE;
let injected: RandomSource | null = null;

function platformCrypto(): Crypto {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (!c || typeof c.getRandomValues !== 'function') {
    throw new Error('agentmesh-e2e needs globalThis.crypto.getRandomValues (Node 20+ or a browser)');
  }
  return c;
}

const platform = platformCrypto();

function fillFromPlatform(out: Uint8Array): void {
  for (let off = 0; off < out.length; off += PLATFORM_CHUNK) {
    platform.getRandomValues(out.subarray(off, Math.min(out.length, off + PLATFORM_CHUNK)));
  }
}

/** Fills `out` with cryptographically secure random bytes. */
export function fillRandom(out: Uint8Array): void {
  if (injected !== null) {
    injected(out);
    return;
  }
  const n = out.length;
  if (n > DIRECT_THRESHOLD) {
    fillFromPlatform(out);
    return;
  }
  if (poolPos + n > POOL_SIZE) {
    fillFromPlatform(pool);
    poolPos = 0;
  }
  const end = poolPos + n;
  out.set(pool.subarray(poolPos, end));
  pool.fill(0, poolPos, end);
  poolPos = end;
}

/**
 * Fills `out` with cryptographically secure random bytes straight from the platform CSPRNG, never
 * through the pool: for secret keys (X25519 private keys, Ed25519 seeds, any key material), so no
 * buffer ever holds a key before it is generated. The test source, when set, serves this path too,
 * in call order with {@link fillRandom}.
 */
export function fillRandomSecret(out: Uint8Array): void {
  if (injected !== null) {
    injected(out);
    return;
  }
  fillFromPlatform(out);
}

const word = new Uint8Array(4);

/** A random unsigned 32-bit integer; the source libsodium's WASM draws from. */
export function randomUint32(): number {
  fillRandom(word);
  const v = ((word[0] << 24) | (word[1] << 16) | (word[2] << 8) | word[3]) >>> 0;
  word.fill(0);
  return v;
}

/**
 * Replaces the random source with a deterministic one, for known-answer tests only; `null`
 * restores the platform CSPRNG. Deliberately not exported from the package entry point (the
 * package's `exports` map does not expose this module), so production code cannot reach it by
 * accident.
 * @internal
 */
export function setRandomSourceForTesting(source: RandomSource | null): void {
  injected = source;
  pool.fill(0);
  poolPos = POOL_SIZE;
}
