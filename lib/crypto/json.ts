/** Decoding of the JSON transport forms: strict, and every failure is `MALFORMED_MESSAGE`. */
import { E2EError, ErrorCode } from '../errors';

/**
 * `input` itself when it is not a string, else its parsed JSON; `MALFORMED_MESSAGE` naming `what`
 * on bad JSON. Text longer than `maxChars` is refused before parsing, with `tooLong` (default
 * `MALFORMED_MESSAGE`): no work is done on input that cannot be valid.
 */
export function parseJsonInput(input: unknown, what: string, maxChars = 1 << 20, tooLong: ErrorCode = 'MALFORMED_MESSAGE'): unknown {
  if (typeof input !== 'string') return input;
  if (input.length > maxChars) throw new E2EError(tooLong, `${what} JSON above ${maxChars} characters`);
  try {
    return JSON.parse(input);
  } catch {
    throw new E2EError('MALFORMED_MESSAGE', `${what} is not valid JSON`);
  }
}
