/**
 * The one way the specs assert a typed error: it is an `E2EError`, its `code` is exactly the one
 * expected and, when a reason is given, so is its `reason` (`null`: it must have none).
 */
import { E2EError, ErrorCode } from '../../lib/errors';

function check(thrown: unknown, code: ErrorCode, reason?: string | null): E2EError {
  expect(thrown).toBeInstanceOf(E2EError);
  const err = thrown as E2EError;
  if (reason === undefined) expect(err.code).toBe(code);
  else expect({ code: err.code, reason: err.reason }).toEqual({ code, reason: reason ?? undefined });
  return err;
}

/** Runs `f` and asserts it throws an `E2EError` with exactly `code` (and `reason`); returns the error. */
export function expectE2EError(f: () => unknown, code: ErrorCode, reason?: string | null): E2EError {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  return check(thrown, code, reason);
}

/**
 * Awaits `f()` (sync or async) or the promise `f`, and asserts it fails with an `E2EError` with
 * exactly `code` (and `reason`); returns the error.
 */
export async function expectE2EErrorAsync(
  f: (() => unknown) | Promise<unknown>,
  code: ErrorCode,
  reason?: string | null,
): Promise<E2EError> {
  let thrown: unknown;
  try {
    await (typeof f === 'function' ? f() : f);
  } catch (e) {
    thrown = e;
  }
  return check(thrown, code, reason);
}

/** The `E2EError` `f` throws, for specs that look at more than its code (fails when `f` returns). */
export function thrownE2EError(f: () => unknown): E2EError {
  let thrown: unknown = null;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(E2EError);
  return thrown as E2EError;
}

/** The `E2EError` promise `p` rejects with (fails when it resolves or rejects with something else). */
export async function rejectionOf(p: Promise<unknown>): Promise<E2EError> {
  let thrown: unknown = null;
  try {
    await p;
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(E2EError);
  return thrown as E2EError;
}
