/** `agentmesh-e2e serve` arguments and start-up failures (the running command is exercised by restart.spec.ts). */
import { ready } from '../../lib/sodium';
import { E2EError } from '../../lib/errors';
import { parseServeArgs, startMeshServer } from '../../lib/server';
import { expectE2EErrorAsync } from '../helpers/expect-error';

beforeAll(() => ready());

describe('parseServeArgs', () => {
  it('defaults and every flag, with = or a separate value', () => {
    expect(parseServeArgs([])).toEqual({ host: '127.0.0.1', port: 8083 });
    expect(parseServeArgs(['--host', '127.0.0.1', '--port', '9000', '--db', 'relay.sqlite'])).toEqual({
      host: '127.0.0.1',
      port: 9000,
      db: 'relay.sqlite',
    });
    expect(parseServeArgs(['--port=0', '--redis=redis://127.0.0.1:6379'])).toEqual({
      host: '127.0.0.1',
      port: 0,
      redis: 'redis://127.0.0.1:6379',
    });
  });

  it.each([
    [['--port', 'x'], /--port must be 0 to 65535/],
    [['--port', '70000'], /--port must be 0 to 65535/],
    [['--db'], /--db needs a value/],
    [['--db', 'a', '--redis', 'redis://x'], /exclude each other/],
    [['--verbose'], /unknown option --verbose/],
  ])('%j → INVALID_ARGUMENT with the usage line', (argv, message) => {
    let err: unknown;
    try {
      parseServeArgs(argv as string[]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(E2EError);
    expect((err as E2EError).code).toBe('INVALID_ARGUMENT');
    expect((err as E2EError).message).toMatch(message);
    expect((err as E2EError).message).toMatch(/usage: agentmesh-e2e serve/);
  });
});

describe('startMeshServer failures', () => {
  it('a taken port → INVALID_STATE listen_failed; a bad port → INVALID_ARGUMENT; db with redis → INVALID_ARGUMENT', async () => {
    const s = await startMeshServer({ port: 0 });
    try {
      await expectE2EErrorAsync(startMeshServer({ port: s.port }), 'INVALID_STATE', 'listen_failed');
    } finally {
      await s.close();
    }
    await expectE2EErrorAsync(startMeshServer({ port: -1 }), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(startMeshServer({ port: 0, db: 'x.sqlite', redis: 'redis://127.0.0.1:1' }), 'INVALID_ARGUMENT');
  });
});
