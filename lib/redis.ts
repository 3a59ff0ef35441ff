/**
 * `agentmesh-e2e/redis`: the store for many processes or machines, over Redis. You pass it a
 * connected `ioredis` client (the optional peer dependency `ioredis`, `npm install ioredis`), or let
 * {@link connectRedis} load ioredis and connect; a missing ioredis is then a `STORE_ERROR` with the
 * loader's error as `cause` and a hint for this runtime.
 * @example
 * import Redis from 'ioredis';
 * import { RedisStore } from 'agentmesh-e2e/redis';
 * const store = new RedisStore({ client: new Redis(process.env.REDIS_URL!), namespace: 'agents' });
 * @packageDocumentation
 */
import type { Redis, RedisOptions } from 'ioredis';
import { loadBackend } from './store/backend';

export { RedisStore } from './store/redis';
export type { RedisStoreOptions } from './store/redis';
export { backendHint } from './store/backend';
export type { BackendName, RuntimeName } from './store/backend';

/**
 * A new ioredis client for `url`, with ioredis loaded on this call: `STORE_ERROR` (reason
 * `backend_missing`) with a hint if it is not installed. The default `maxRetriesPerRequest: 1`
 * makes a command fail rather than wait forever while Redis is down; `options` override it. The
 * caller closes the client (`client.quit()`).
 * @param url e.g. `redis://127.0.0.1:6379/0`.
 * @param options more ioredis options.
 * @example
 * const client = connectRedis('redis://127.0.0.1:6379/0');
 * const store = new RedisStore({ client, namespace: 'agents' });
 */
export function connectRedis(url: string, options: RedisOptions = {}): Redis {
  const mod = loadBackend<{ default?: typeof Redis } & typeof Redis>('ioredis', 'RedisStore');
  const Ctor = (mod.default ?? mod) as typeof Redis;
  return new Ctor(url, { maxRetriesPerRequest: 1, ...options });
}
