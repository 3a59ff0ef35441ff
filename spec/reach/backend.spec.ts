/** lib/store/backend.ts: the lazy backend loader's errors and hints, per runtime. */
import { E2EError } from '../../lib/errors';
import { backendError, backendHint, loadBackend, runtimeName } from '../../lib/store/backend';

describe('backend loading', () => {
  test('this is Node, and better-sqlite3 (a devDependency here) loads and works', () => {
    expect(runtimeName()).toBe('node');
    const Driver = loadBackend<new (p: string) => { close(): void }>('better-sqlite3', 'SqliteStore');
    expect(typeof Driver).toBe('function');
    expect(loadBackend('better-sqlite3', 'SqliteStore')).toBe(Driver); // cached
  });

  test('a missing package is backend_missing, with the loader error as cause and an install hint', () => {
    const cause = Object.assign(new Error("Cannot find module 'better-sqlite3'"), { code: 'MODULE_NOT_FOUND' });
    const e = backendError('better-sqlite3', 'SqliteStore', cause, 'node');
    expect(e).toBeInstanceOf(E2EError);
    expect(e).toMatchObject({ code: 'STORE_ERROR', reason: 'backend_missing' });
    expect(e.cause).toBe(cause);
    expect(e.message).toBe(
      'SqliteStore needs the optional peer dependency better-sqlite3, which is not installed.\n' +
        `Hint: ${backendHint('better-sqlite3', 'node', true)}.`,
    );
    expect(e.message.split('\n')).toHaveLength(2);
  });

  test('an installed package that fails to load is backend_unloadable', () => {
    const cause = Object.assign(new Error('was compiled against a different Node.js version'), { code: 'ERR_DLOPEN_FAILED' });
    const e = backendError('better-sqlite3', 'SqliteStore', cause, 'node');
    expect(e).toMatchObject({ code: 'STORE_ERROR', reason: 'backend_unloadable', cause });
    expect(e.message).toContain('npm rebuild better-sqlite3');
  });

  test.each([
    ['better-sqlite3', 'node', /npm install better-sqlite3/],
    ['better-sqlite3', 'bun', /bun:sqlite.*under Bun use RedisStore or InMemoryStore/],
    ['better-sqlite3', 'deno', /node:sqlite.*under Deno use RedisStore or InMemoryStore/],
    ['better-sqlite3', 'browser', /in a browser use InMemoryStore/],
    ['ioredis', 'node', /npm install ioredis/],
    ['ioredis', 'bun', /bun add ioredis/],
    ['ioredis', 'deno', /deno add npm:ioredis/],
    ['ioredis', 'browser', /browsers do not have/],
  ] as const)('%s under %s: the hint says what works', (name, runtime, re) => {
    const hint = backendHint(name, runtime);
    expect(hint).toMatch(re);
    expect(hint).not.toContain('\n');
  });
});
