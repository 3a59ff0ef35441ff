/** Assertions on typed errors. */
import { E2EError, ErrorCode } from '../../lib/errors';

/** Runs `f` and asserts it throws an `E2EError` with exactly `code`; returns the error. */
export function expectE2EError(f: () => unknown, code: ErrorCode): E2EError {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(E2EError);
  expect((thrown as E2EError).code).toBe(code);
  return thrown as E2EError;
}
