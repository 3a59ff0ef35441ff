/**
 * `agentmesh-e2e/sqlite`: the embedded default store, over one SQLite file. Needs the optional peer
 * dependency `better-sqlite3` (`npm install better-sqlite3`), loaded when the first store is created;
 * if it is missing or does not load, `new SqliteStore(path)` throws `STORE_ERROR` with the loader's
 * error as `cause` and a hint for this runtime.
 * @example
 * import { SqliteStore } from 'agentmesh-e2e/sqlite';
 * const store = new SqliteStore('/var/lib/agent/e2e.sqlite');
 * @packageDocumentation
 */
export { SqliteStore, SQLITE_SCHEMA_VERSION } from './store/sqlite';
export type { SqliteStoreOptions } from './store/sqlite';
export { backendHint } from './store/backend';
export type { BackendName, RuntimeName } from './store/backend';
