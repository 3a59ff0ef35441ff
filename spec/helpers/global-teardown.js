/** Jest globalTeardown: stops the redis-server that global-setup.js started (if it did), and removes its folder. */
const { rmSync } = require('fs');

module.exports = async function globalTeardown() {
  const r = globalThis.__agentmeshRedis;
  if (!r) return;
  const exited = new Promise((resolve) => r.child.once('exit', resolve));
  r.child.kill('SIGTERM');
  let timer;
  await Promise.race([
    exited,
    new Promise((resolve) => {
      timer = setTimeout(resolve, 5000);
    }),
  ]);
  clearTimeout(timer);
  rmSync(r.dir, { recursive: true, force: true });
};
