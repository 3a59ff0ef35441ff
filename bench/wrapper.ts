/**
 * The libsodium.js wrapper for the bench's naive reference and "through the wrapper" floor rows,
 * plus a switch between the stock randomness of libsodium.js (4 bytes per call from Node) and the
 * pool our init layer installs. Bench code only: the library itself never reaches libsodium but
 * through `lib/sodium.ts`.
 */
import sodiumWrapper = require('libsodium-wrappers-sumo');
import { RawSodium, ready } from '../lib/sodium';

/** The libsodium.js wrapper API. */
export type Wrapper = typeof sodiumWrapper;

let stockRandom: (() => number) | null = null;
let pooledRandom: (() => number) | null = null;

function rawModule(): RawSodium {
  return (sodiumWrapper as unknown as { libsodium: RawSodium }).libsodium;
}

/**
 * Loads the wrapper, remembers its stock random source, then runs our `ready()` (which points
 * libsodium.js at the pool; on the backend `AGENTMESH_BACKEND` names, else auto). Call once, before anything else touches the library.
 */
export async function initWrapper(): Promise<Wrapper> {
  await sodiumWrapper.ready;
  if (stockRandom === null) stockRandom = rawModule().getRandomValue;
  const fixed = process.env.AGENTMESH_BACKEND;
  if (fixed !== undefined && fixed !== '' && fixed !== 'wasm' && fixed !== 'native')
    throw new Error('AGENTMESH_BACKEND must be wasm or native');
  await ready(fixed === 'wasm' || fixed === 'native' ? { backend: fixed } : undefined);
  pooledRandom = rawModule().getRandomValue;
  return sodiumWrapper;
}

/** The loaded wrapper (after {@link initWrapper}). */
export function wrapper(): Wrapper {
  if (pooledRandom === null) throw new Error('initWrapper() first');
  return sodiumWrapper;
}

/**
 * Chooses libsodium.js's random source: `'stock'` (as shipped: `crypto.randomBytes(4)` per 4
 * bytes) or `'pooled'` (our init layer's pool). Always switch back to `'pooled'` when done.
 */
export function useRandom(source: 'stock' | 'pooled'): void {
  if (stockRandom === null || pooledRandom === null) throw new Error('initWrapper() first');
  rawModule().getRandomValue = source === 'stock' ? stockRandom : pooledRandom;
}
