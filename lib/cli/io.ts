/**
 * The CLI's input decoding and its typed failures. A usage mistake exits 2, a file that cannot be
 * read or written 3, and input the library refuses (an `E2EError`) 1.
 */
import { E2EError, isE2EError } from '../errors';
import { fromBase64, fromBase64Url, fromHex } from '../crypto';

/** Exit codes of the `agentmesh-e2e` command. */
export const ExitCode = {
  /** Success. */
  OK: 0,
  /** The input was refused by the library (`E2EError`: malformed, wrong key, wrong passphrase…). */
  INVALID_INPUT: 1,
  /** Unknown command or option, a missing or extra argument. */
  USAGE: 2,
  /** A file could not be read or written (or exists and `--force` was not given). */
  IO: 3,
} as const;

/** A failure the CLI reports on stderr as `agentmesh-e2e: <code>: <message>`, then exits with `exitCode`. */
export class CliError extends Error {
  /** The process exit status. */
  readonly exitCode: number;
  /** A stable code: `USAGE`, `IO`, or the `E2EError` code. */
  readonly code: string;

  /** A failure with a stable `code`, a one-line `message` and the process exit status. */
  constructor(code: string, message: string, exitCode: number) {
    super(message);
    this.name = 'CliError';
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** A usage error (exit 2). */
export function usage(message: string): CliError {
  return new CliError('USAGE', message, ExitCode.USAGE);
}

/** An I/O error (exit 3), naming the file but never quoting its contents. */
export function ioError(path: string, e: unknown): CliError {
  const code = (e as { code?: unknown } | null)?.code;
  return new CliError('IO', `${path}: ${typeof code === 'string' ? code : 'cannot be accessed'}`, ExitCode.IO);
}

/** Any thrown value as a {@link CliError}: an `E2EError` keeps its code (and reason) and exits 1. */
export function toCliError(e: unknown): CliError {
  if (e instanceof CliError) return e;
  if (isE2EError(e)) return new CliError(e.code, e.reason ? `${e.message} (${e.reason})` : e.message, ExitCode.INVALID_INPUT);
  return new CliError('INTERNAL', e instanceof Error ? e.message : String(e), ExitCode.INVALID_INPUT);
}

/**
 * Bytes written as hex, standard base64 or unpadded base64url (whichever parses; hex first, as a
 * 64-digit hex key is also valid base64). `MALFORMED_MESSAGE` when none does.
 */
export function decodeBytes(text: string): Uint8Array {
  const s = text.trim();
  if (/^(?:[0-9a-fA-F]{2})+$/.test(s)) return fromHex(s.toLowerCase());
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(s) && s.length % 4 === 0) return fromBase64(s);
  if (/^[A-Za-z0-9_-]+$/.test(s)) return fromBase64Url(s);
  throw new E2EError('MALFORMED_MESSAGE', 'input is neither JSON, hex nor base64');
}
