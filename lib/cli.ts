#!/usr/bin/env node
/**
 * The `agentmesh-e2e` command: `keygen` (a new identity, its secret sealed to a file),
 * `fingerprint <did|public key>`, `inspect <envelope|establishment|bundle>` and `serve` (the relay +
 * registry server). Results go to stdout,
 * errors to stderr as `agentmesh-e2e: <CODE>: <message>` with the exit codes of {@link ExitCode}.
 * No command ever prints a secret.
 */
import { existsSync, readFileSync, writeFileSync } from 'fs';
import { dirname, join } from 'path';
import { parseArgs } from 'util';
import { ready } from './sodium';
import { randomBytes } from './crypto';
import { AgentIdentity } from './trust';
import { CliError, ExitCode, decodeBytes, ioError, toCliError, usage } from './cli/io';
import { SealingSecret, sealIdentity } from './cli/identity-file';
import { INSPECT_KINDS, InspectKind, fingerprintOf, inspect } from './cli/inspect';

export { ExitCode, CliError } from './cli/io';
export { sealIdentity, openIdentity, parseIdentityFile, IDENTITY_FILE_TYPE } from './cli/identity-file';
export type { IdentityFileJSON, IdentityProtection, SealingSecret } from './cli/identity-file';
export { inspect, fingerprintOf, INSPECT_KINDS } from './cli/inspect';
export type { InspectKind } from './cli/inspect';

/** The help text of `agentmesh-e2e --help`. */
export const HELP = `Usage: agentmesh-e2e <command> [options]

Commands:
  keygen --out FILE (--passphrase-env VAR | --passphrase-file FILE | --key-file FILE) [--did DID] [--force] [--json]
      A new Ed25519 identity: prints its DID, fingerprint and public key; writes FILE (mode 0600)
      with the secret key sealed (XChaCha20-Poly1305) under a key from the passphrase (Argon2id)
      or from the 32-byte key file (created, mode 0600, if it does not exist).
  fingerprint <did | public key | identity file> [--key KEY] [--json]
      The DID and fingerprint of an Ed25519 public key (hex or base64), or what a DID tells.
  inspect <input | - | @FILE> [--as envelope|establishment|bundle]
      Decodes a binary envelope or establishment (hex or base64) or the JSON of an envelope,
      establishment or bundle to JSON. '-' reads stdin, @FILE reads a file.
  serve [--host 127.0.0.1] [--port 8083] [--db relay.sqlite | --redis redis://…]
      The relay (/ws, AGT's frames) and registry (/v1/…) on one port; prints 'listening on URL'.
      Messages are kept until their recipient acknowledges them (SQLite file, or Redis shared by
      several server processes). Stops on SIGINT/SIGTERM.

Options:
  -h, --help      this text          -v, --version   the package version

Exit status: 0 ok, 1 input refused (E2EError code on stderr), 2 usage, 3 file not readable or writable.
Secrets are never printed, and never accepted as arguments (use an environment variable or a file).
`;

/** Streams and environment of one run (the real process by default; tests pass their own). */
export interface CliIo {
  /** Writes results. */
  stdout: (text: string) => void;
  /** Writes errors, one line each. */
  stderr: (text: string) => void;
  /** Where `--passphrase-env NAME` looks. */
  env: Record<string, string | undefined>;
  /** Reads all of standard input (`inspect -`). */
  stdin: () => string;
}

const defaultIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
  stdin: () => readFileSync(0, 'utf8'),
};

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw ioError(path, e);
  }
}

function version(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'agentmesh-e2e') return pkg.version ?? 'unknown';
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}

function parse(args: string[], options: Record<string, { type: 'string' | 'boolean'; short?: string }>) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    // Duck-typed: an error from Node's own realm is not always an instance of this realm's Error.
    const message = (e as { message?: unknown } | null)?.message;
    throw usage(typeof message === 'string' ? message.split('\n')[0]! : 'bad arguments');
  }
}

function keyFile(path: string): Uint8Array {
  if (!existsSync(path)) {
    const key = randomBytes(32);
    try {
      writeFileSync(path, key, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      throw ioError(path, e);
    }
    return key;
  }
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw ioError(path, e);
  }
  if (raw.length === 32) return Uint8Array.from(raw);
  const text = raw.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return decodeBytes(text);
  throw new CliError('INVALID_KEY', `${path}: a key file holds 32 bytes (raw, or 64 hex digits)`, ExitCode.INVALID_INPUT);
}

function sealingSecret(v: Record<string, string | boolean | undefined>, io: CliIo): SealingSecret {
  const given = ['passphrase-env', 'passphrase-file', 'key-file'].filter((k) => v[k] !== undefined);
  if (given.length !== 1) throw usage('keygen needs exactly one of --passphrase-env, --passphrase-file, --key-file');
  if (typeof v['passphrase-env'] === 'string') {
    const name = v['passphrase-env'];
    const passphrase = io.env[name];
    if (passphrase === undefined || passphrase === '') throw usage(`environment variable ${name} is not set`);
    return { passphrase };
  }
  if (typeof v['passphrase-file'] === 'string') {
    const passphrase = readText(v['passphrase-file']).replace(/\r?\n$/, '');
    if (passphrase === '') throw usage(`${v['passphrase-file']} is empty`);
    return { passphrase };
  }
  return { key: keyFile(v['key-file'] as string) };
}

function keygen(args: string[], io: CliIo): void {
  const { values: v, positionals } = parse(args, {
    out: { type: 'string', short: 'o' },
    'passphrase-env': { type: 'string' },
    'passphrase-file': { type: 'string' },
    'key-file': { type: 'string' },
    did: { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (positionals.length > 0) throw usage(`keygen takes no argument (got ${positionals[0]})`);
  if (typeof v.out !== 'string') throw usage('keygen needs --out FILE');
  if (existsSync(v.out) && v.force !== true) throw new CliError('IO', `${v.out} exists (use --force to replace it)`, ExitCode.IO);
  const secret = sealingSecret(v, io);
  const identity = AgentIdentity.generate(typeof v.did === 'string' ? { did: v.did } : {});
  let file;
  try {
    file = sealIdentity(identity, secret);
  } finally {
    identity.wipe();
    if ('key' in secret) secret.key.fill(0);
  }
  try {
    writeFileSync(v.out, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: v.force === true ? 'w' : 'wx' });
  } catch (e) {
    throw ioError(v.out, e);
  }
  const how = file.protection.kdf === 'key-file' ? `key file ${String(v['key-file'])}` : 'passphrase (Argon2id)';
  if (v.json === true) {
    io.stdout(
      `${JSON.stringify({ did: file.did, fingerprint: file.fingerprint, publicKey: file.publicKey, file: v.out, sealedWith: file.protection.kdf })}\n`,
    );
  } else {
    io.stdout(
      `did:         ${file.did}\nfingerprint: ${file.fingerprint}\npublic key:  ${file.publicKey}\nsealed to:   ${v.out} (${how})\n`,
    );
  }
}

function fingerprint(args: string[], io: CliIo): void {
  const { values: v, positionals } = parse(args, { key: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length !== 1) throw usage('fingerprint takes one argument: a DID, a public key or an identity file');
  let input = positionals[0]!;
  let key = typeof v.key === 'string' ? v.key : undefined;
  if (!input.startsWith('did:') && existsSync(input)) {
    const text = readText(input);
    const o = JSON.parse(text) as { did?: unknown; publicKey?: unknown };
    if (typeof o.did !== 'string' || typeof o.publicKey !== 'string') {
      throw new CliError('MALFORMED_MESSAGE', `${input} is not an identity file`, ExitCode.INVALID_INPUT);
    }
    input = o.publicKey;
    key = undefined;
    const r = { ...fingerprintOf(input), did: o.did };
    return print(r, v.json === true, io);
  }
  print(fingerprintOf(input, key), v.json === true, io);
}

function print(r: Record<string, unknown>, json: boolean, io: CliIo): void {
  if (json) {
    io.stdout(`${JSON.stringify(r)}\n`);
    return;
  }
  const width = Math.max(...Object.keys(r).map((k) => k.length)) + 1;
  io.stdout(
    Object.entries(r)
      .map(([k, val]) => `${`${k}:`.padEnd(width)} ${String(val)}`)
      .join('\n') + '\n',
  );
}

function inspectCommand(args: string[], io: CliIo): void {
  const { values: v, positionals } = parse(args, { as: { type: 'string' } });
  if (positionals.length !== 1) throw usage('inspect takes one argument: the input, - for stdin, or @FILE');
  if (v.as !== undefined && !INSPECT_KINDS.includes(v.as as InspectKind)) throw usage(`--as must be one of ${INSPECT_KINDS.join(', ')}`);
  const arg = positionals[0]!;
  const text = arg === '-' ? io.stdin() : arg.startsWith('@') ? readText(arg.slice(1)) : arg;
  io.stdout(`${JSON.stringify(inspect(text, v.as as InspectKind | undefined), null, 2)}\n`);
}

/**
 * Runs the command line `argv` (without `node` and the script) and returns its exit status.
 * @example
 * process.exitCode = await main(process.argv.slice(2));
 */
export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      io.stdout(HELP);
      return command === undefined ? ExitCode.USAGE : ExitCode.OK;
    }
    if (command === '-v' || command === '--version') {
      io.stdout(`${version()}\n`);
      return ExitCode.OK;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout(HELP);
      return ExitCode.OK;
    }
    await ready();
    switch (command) {
      case 'keygen':
        keygen(rest, io);
        break;
      case 'fingerprint':
        fingerprint(rest, io);
        break;
      case 'inspect':
        inspectCommand(rest, io);
        break;
      case 'serve': {
        // Loaded only for this command: the server (and ws, better-sqlite3, ioredis) stays off the others' path.
        const { runServe } = await import('./server');
        await runServe(rest);
        break;
      }
      default:
        throw usage(`unknown command ${command} (try --help)`);
    }
    return ExitCode.OK;
  } catch (e) {
    const err = toCliError(e);
    io.stderr(`agentmesh-e2e: ${err.code}: ${err.message}\n`);
    return err.exitCode;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
