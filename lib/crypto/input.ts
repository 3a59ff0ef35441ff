/**
 * Reading untrusted arguments: objects whose getters or Proxy traps throw, and `instanceof` checks
 * that a Proxy can make throw. Every public entry point reads its object arguments through these,
 * once, so a hostile argument gives a typed error and cannot change between a check and a use.
 */
import { E2EError, ErrorCode } from '../errors';

/**
 * The named properties of `obj`, each read exactly once. Throws `code` (default
 * `INVALID_ARGUMENT`) naming `what` when `obj` is not an object or a read throws.
 */
export function readFields<K extends string>(
  obj: unknown,
  keys: readonly K[],
  what: string,
  code: ErrorCode = 'INVALID_ARGUMENT',
): Record<K, unknown> {
  if (typeof obj !== 'object' || obj === null) throw new E2EError(code, `${what} must be an object`);
  const out = {} as Record<K, unknown>;
  try {
    for (const k of keys) out[k] = (obj as Record<string, unknown>)[k];
  } catch {
    throw new E2EError(code, `${what} could not be read`);
  }
  return out;
}

/** Like {@link readFields} for an optional options object: `undefined` (and `null`) read as `{}`. */
export function readOptions<K extends string>(obj: unknown, keys: readonly K[], what: string): Partial<Record<K, unknown>> {
  if (obj === undefined || obj === null) return {};
  return readFields(obj, keys, what);
}

/**
 * {@link readOptions} that also refuses an own key outside `keys` (`INVALID_ARGUMENT`): where a
 * misspelt option would silently weaken a call (a classic session for `requirePostQuantum`).
 */
export function readExactOptions<K extends string>(obj: unknown, keys: readonly K[], what: string): Partial<Record<K, unknown>> {
  if (obj !== undefined && obj !== null) {
    const names = typed(() => Object.keys(obj), 'INVALID_ARGUMENT', what);
    const unknown = names.find((k) => !(keys as readonly string[]).includes(k));
    if (unknown !== undefined) throw new E2EError('INVALID_ARGUMENT', `${what}: unknown option ${JSON.stringify(unknown.slice(0, 64))}`);
  }
  return readOptions(obj, keys, what);
}

/** `value instanceof ctor`, but `false` where a Proxy's `getPrototypeOf` trap throws. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- a class with a private constructor is still a Function
export function isInstance<T>(value: unknown, ctor: Function & { prototype: T }): value is T {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return value instanceof ctor;
  } catch {
    return false;
  }
}

/** Runs `f`, turning any non-`E2EError` it throws (a hostile getter, a Proxy trap) into `code`. */
export function typed<T>(f: () => T, code: ErrorCode, what: string): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof E2EError) throw e;
    throw new E2EError(code, `${what} could not be read`);
  }
}
