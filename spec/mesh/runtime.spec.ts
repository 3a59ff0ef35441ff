/** The client on the runtime's own WebSocket (a child process with Node's global WebSocket), not the ws package. */
import { execFile } from 'child_process';
import { join } from 'path';
import { ready } from '../../lib/sodium';
import { startMeshServer } from '../../lib/server';

test('two agents talk over the global WebSocket (what browsers, Deno, Bun and Node >= 22 provide)', async () => {
  await ready();
  const server = await startMeshServer({ port: 0 });
  try {
    const root = join(__dirname, '..', '..');
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--experimental-websocket', '--no-warnings', '--import', 'tsx', join(__dirname, 'fixtures', 'global-websocket.ts'), server.url],
        { cwd: root, timeout: 30_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)),
      );
    });
    expect(JSON.parse(out.trim().split('\n').pop() as string)).toEqual({ globalWebSocket: 'function', text: 'over the global WebSocket' });
  } finally {
    await server.close();
  }
}, 40_000);
