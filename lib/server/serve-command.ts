/**
 * `agentmesh-e2e serve`: parses `--host H --port P [--db FILE | --redis URL]`, starts the server, prints
 * `listening on http://host:port`, and stops cleanly on SIGINT/SIGTERM.
 */
import { E2EError } from '../errors';
import { startMeshServer, MeshServerOptions } from './server';

/** Parsed `serve` arguments. */
export interface ServeArgs {
  /** `--host`: the interface to bind (default `127.0.0.1`). */
  host: string;
  /** `--port`: 0 to 65535, 0 picks a free one (default 8083). */
  port: number;
  /** `--db`: the SQLite file for everything; absent: in memory. */
  db?: string;
  /** `--redis`: the Redis URL to share storage over; excludes `db`. */
  redis?: string;
}

const USAGE = 'usage: agentmesh-e2e serve [--host 127.0.0.1] [--port 8083] [--db relay.sqlite | --redis redis://host:port]';

/** Parses `serve` arguments; `INVALID_ARGUMENT` (with the usage line) on anything unknown or malformed. */
export function parseServeArgs(argv: readonly string[]): ServeArgs {
  const out: ServeArgs = { host: '127.0.0.1', port: 8083 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    const [name, inline] = flag.includes('=') ? [flag.slice(0, flag.indexOf('=')), flag.slice(flag.indexOf('=') + 1)] : [flag, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v.length === 0) throw new E2EError('INVALID_ARGUMENT', `${name} needs a value\n${USAGE}`);
      return v;
    };
    switch (name) {
      case '--host':
        out.host = value();
        break;
      case '--port': {
        const v = value();
        const p = Number(v);
        if (!/^\d+$/.test(v) || p > 65535) throw new E2EError('INVALID_ARGUMENT', `--port must be 0 to 65535\n${USAGE}`);
        out.port = p;
        break;
      }
      case '--db':
        out.db = value();
        break;
      case '--redis':
        out.redis = value();
        break;
      case '--help':
      case '-h':
        throw new E2EError('INVALID_ARGUMENT', USAGE, 'help');
      default:
        throw new E2EError('INVALID_ARGUMENT', `unknown option ${name}\n${USAGE}`);
    }
  }
  if (out.db !== undefined && out.redis !== undefined)
    throw new E2EError('INVALID_ARGUMENT', `--db and --redis exclude each other\n${USAGE}`);
  return out;
}

/**
 * Runs the server until SIGINT/SIGTERM: in memory, on one SQLite file (`--db`), or on Redis (`--redis`, several
 * processes sharing one address). `INVALID_ARGUMENT` for bad arguments, `STORE_ERROR` if storage cannot be opened.
 */
export async function runServe(argv: string[]): Promise<void> {
  const args = parseServeArgs(argv);
  const options: MeshServerOptions = { host: args.host, port: args.port, log: (l) => process.stderr.write(`${l}\n`) };
  if (args.db !== undefined) options.db = args.db;
  if (args.redis !== undefined) options.redis = args.redis;
  const server = await startMeshServer(options);
  process.stdout.write(`listening on ${server.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void server.close().then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
