/** Capability lists: validation and the "all required present" check. */
import { E2EError } from '../errors';
import { MAX_CAPABILITIES, MAX_CAPABILITY_LENGTH } from '../limits';

/** True when `caps` is a list of at most 256 non-empty strings of at most 128 characters. */
export function isCapabilityList(caps: unknown): caps is readonly string[] {
  return (
    Array.isArray(caps) &&
    caps.length <= MAX_CAPABILITIES &&
    caps.every((c) => typeof c === 'string' && c.length > 0 && c.length <= MAX_CAPABILITY_LENGTH)
  );
}

/** Throws `INVALID_ARGUMENT` unless `caps` is a valid capability list; returns a sorted, de-duplicated copy. */
export function normalizeCapabilities(caps: unknown, name = 'capabilities'): string[] {
  if (!isCapabilityList(caps)) {
    throw new E2EError(
      'INVALID_ARGUMENT',
      `${name} must be at most ${MAX_CAPABILITIES} non-empty strings of at most ${MAX_CAPABILITY_LENGTH} characters`,
    );
  }
  return [...new Set(caps)].sort();
}

/** The required capabilities that `granted` lacks (empty when all are present). */
export function missingCapabilities(granted: readonly string[], required: readonly string[]): string[] {
  const have = new Set(granted);
  return required.filter((c) => !have.has(c));
}
