/** Decoding of the JSON transport forms: strict, and every failure is `MALFORMED_MESSAGE`. */
import { E2EError } from '../errors';

/** `input` itself when it is not a string, else its parsed JSON; `MALFORMED_MESSAGE` naming `what` on bad JSON. */
export function parseJsonInput(input: unknown, what: string): unknown {
  if (typeof input !== 'string') return input;
  try {
    return JSON.parse(input);
  } catch {
    throw new E2EError('MALFORMED_MESSAGE', `${what} is not valid JSON`);
  }
}
