/**
 * Loads the optional backend package of a store (`better-sqlite3`, `ioredis`) on first use, never
 * at import: the root entry and the in-memory stores need no native module and no Node built-in.
 * A backend that is missing or does not load becomes a `STORE_ERROR` whose `cause` is the loader's
 * error and whose message ends with one line saying what to install, or what works in this runtime.
 */
import { E2EError } from '../errors';
import { nodeRequire } from './node-require';
import { StoreErrorReason } from './reasons';

/** The optional peer dependencies that a store may load. */
export type BackendName = 'better-sqlite3' | 'ioredis' | 'ws';

/** The JavaScript runtime this code runs in, as far as the backend hints care. */
export type RuntimeName = 'node' | 'bun' | 'deno' | 'browser' | 'unknown';

const loaded = new Map<BackendName, unknown>();

/**
 * Checks that a loaded backend works. better-sqlite3 loads its native binding only when a database
 * is opened, so a binding that cannot load (another Node ABI, Bun) would otherwise surface later as
 * a bare `ERR_DLOPEN_FAILED`; an in-memory database is opened and closed once instead.
 */
const PROBES: Partial<Record<BackendName, (mod: unknown) => void>> = {
  'better-sqlite3': (mod) => {
    const Driver = ((mod as { default?: unknown }).default ?? mod) as new (path: string) => { close(): void };
    new Driver(':memory:').close();
  },
};

/** Which runtime this is: Bun and Deno set their own globals; Node has `process.versions.node`. */
export function runtimeName(): RuntimeName {
  const g = globalThis as { Bun?: unknown; Deno?: unknown; process?: { versions?: { node?: string } }; window?: unknown };
  if (g.Bun !== undefined) return 'bun';
  if (g.Deno !== undefined) return 'deno';
  if (typeof g.process?.versions?.node === 'string') return 'node';
  if (g.window !== undefined) return 'browser';
  return 'unknown';
}

/**
 * The one-line hint for a backend that did not load: what to install, or under Bun, Deno and
 * browsers what works there instead.
 * @param name the backend package.
 * @param runtime where the code runs (default: detected).
 * @param missing true when the package is not installed, false when it is installed but failed to load.
 * @returns one line, no trailing period.
 */
export function backendHint(name: BackendName, runtime: RuntimeName = runtimeName(), missing = true): string {
  if (name === 'ws') {
    if (runtime === 'bun') return "install it with `bun add ws` (the relay server runs on Node; Bun's own Bun.serve is not supported)";
    if (runtime === 'deno') return 'install it with `deno add npm:ws` (or npm install ws)';
    return 'install it with `npm install ws` (a pure-JavaScript WebSocket server, no native code)';
  }
  if (name === 'ioredis') {
    if (runtime === 'browser') return 'Redis needs a TCP socket, which browsers do not have: use InMemoryStore there';
    if (runtime === 'deno')
      return 'install it with `deno add npm:ioredis` (or npm install ioredis), then pass new Redis(url) to RedisStore';
    if (runtime === 'bun') return 'install it with `bun add ioredis`, then pass new Redis(url) to RedisStore';
    return 'install it with `npm install ioredis`, then pass new Redis(url) to RedisStore';
  }
  switch (runtime) {
    case 'bun':
      return 'better-sqlite3 does not run under Bun (Bun points to its own bun:sqlite, for which this library has no store yet): under Bun use RedisStore or InMemoryStore';
    case 'deno':
      return 'better-sqlite3 does not run under Deno (a V8/nan addon; Deno loads only Node-API addons, and points to node:sqlite, for which this library has no store yet): under Deno use RedisStore or InMemoryStore';
    case 'browser':
    case 'unknown':
      return 'SQLite needs Node (or Deno) and a native module: in a browser use InMemoryStore';
    default:
      return missing
        ? 'install it with `npm install better-sqlite3` (a native module: a prebuilt binary is downloaded for common platforms, otherwise it compiles with Python and a C++ compiler)'
        : 'its native binding did not load for this Node version or platform: run `npm rebuild better-sqlite3` (or reinstall it)';
  }
}

function isNotFound(e: unknown, name: string): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message : '';
  return (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && message.includes(name);
}

/**
 * The `STORE_ERROR` for a backend that did not load: reason `backend_missing` (not installed) or
 * `backend_unloadable` (installed but failed, e.g. a native binding built for another Node), the
 * loader's error as `cause`, and the hint as the message's last line.
 */
export function backendError(name: BackendName, store: string, cause: unknown, runtime: RuntimeName = runtimeName()): E2EError {
  const missing = isNotFound(cause, name);
  const what = missing ? 'is not installed' : 'failed to load';
  return new E2EError(
    'STORE_ERROR',
    `${store} needs the optional peer dependency ${name}, which ${what}.\nHint: ${backendHint(name, runtime, missing)}.`,
    missing ? StoreErrorReason.BACKEND_MISSING : StoreErrorReason.BACKEND_UNLOADABLE,
    { cause },
  );
}

/**
 * The backend package `name`, loaded on the first call (cached after). `STORE_ERROR` (see
 * {@link backendError}) if it is missing or fails to load.
 * @param name the package to load.
 * @param store the store that needs it, named in the error.
 */
export function loadBackend<T>(name: BackendName, store: string): T {
  if (loaded.has(name)) return loaded.get(name) as T;
  let mod: unknown;
  try {
    const req = nodeRequire();
    if (req === null) throw new Error(`no require() in this runtime to load ${name}`);
    mod = req(name);
    PROBES[name]?.(mod);
  } catch (e) {
    throw backendError(name, store, e);
  }
  loaded.set(name, mod);
  return mod as T;
}
