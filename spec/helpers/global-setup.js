/**
 * Jest globalSetup: when REDIS_URL is unset and `redis-server` is on PATH, starts one on a free
 * loopback port for this run (no persistence, its own temp folder) and sets REDIS_URL, so `npm test`
 * runs the Redis store tests too. Says loudly when they will be skipped. Stopped by global-teardown.js.
 */
const { spawn, spawnSync } = require('child_process');
const { mkdtempSync } = require('fs');
const net = require('net');
const { tmpdir } = require('os');
const { join } = require('path');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(500, () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
  });
}

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

module.exports = async function globalSetup() {
  if (process.env.REDIS_URL) {
    process.stdout.write(`\n[redis] using REDIS_URL=${process.env.REDIS_URL}\n`);
    return;
  }
  if (!onPath('redis-server')) {
    const msg =
      '[redis] SKIPPING the Redis store tests: REDIS_URL is unset and no redis-server is on PATH ' +
      '(apt-get install redis-server, or set REDIS_URL). CI installs it and never skips them.';
    if (process.env.CI) throw new Error(msg.replace('SKIPPING', 'CI must run'));
    process.stdout.write(`\n${'!'.repeat(100)}\n${msg}\n${'!'.repeat(100)}\n`);
    return;
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', join(dir, 'redis.log')],
    { stdio: 'ignore', detached: false },
  );
  for (let i = 0; i < 100 && !(await ping(port)); i++) await new Promise((r) => setTimeout(r, 50));
  if (!(await ping(port))) {
    child.kill('SIGKILL');
    throw new Error(`[redis] redis-server on 127.0.0.1:${port} did not answer (log: ${join(dir, 'redis.log')})`);
  }
  child.unref();
  process.env.REDIS_URL = `redis://127.0.0.1:${port}/0`;
  globalThis.__agentmeshRedis = { child, dir };
  process.stdout.write(`\n[redis] started redis-server for this run on 127.0.0.1:${port} (pid ${child.pid})\n`);
};
