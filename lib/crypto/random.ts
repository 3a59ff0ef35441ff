/**
 * Random bytes from the platform CSPRNG: pooled for public values (`randomBytes`, nonces), direct
 * for secrets (`randomSecretBytes`); see `lib/entropy.ts`.
 */
import { E2EError } from '../errors';
import { fillRandom, fillRandomSecret } from '../entropy';
import { sodium } from '../sodium';
import { assertBytes } from './bytes';

/** `n` cryptographically secure random bytes (0 ≤ n ≤ 2^24). */
export function randomBytes(n: number): Uint8Array {
  sodium(); // NOT_READY before init, like every primitive
  if (!Number.isInteger(n) || n < 0 || n > 1 << 24) throw new E2EError('INVALID_ARGUMENT', 'invalid random length');
  const out = new Uint8Array(n);
  fillRandom(out);
  return out;
}

/**
 * `n` cryptographically secure random bytes for a secret (a private key, a seed, a symmetric key):
 * drawn from the platform CSPRNG directly into the returned array, never through the pool, so no
 * memory held these bytes before this call (0 ≤ n ≤ 2^24).
 */
export function randomSecretBytes(n: number): Uint8Array {
  sodium();
  if (!Number.isInteger(n) || n < 0 || n > 1 << 24) throw new E2EError('INVALID_ARGUMENT', 'invalid random length');
  const out = new Uint8Array(n);
  fillRandomSecret(out);
  return out;
}

/** Fills `out` in place with cryptographically secure random bytes (no allocation: the hot path's nonces). */
export function fillRandomBytes(out: Uint8Array): void {
  sodium();
  assertBytes(out, 'out');
  fillRandom(out);
}
