/** Runs `scripts/demo-mesh.ts` (what `npm run demo:mesh` runs) and checks the story its output tells. */
import { execFile } from 'child_process';
import { join } from 'path';

test('demo:mesh: answer, relay view without plaintext, server kill -9 with nothing lost, untrusted agent refused', async () => {
  const root = join(__dirname, '..', '..');
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(root, 'scripts', 'demo-mesh.ts')],
      { cwd: root, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
  const lines = out.split('\n');
  const at = (re: RegExp): number => {
    const i = lines.findIndex((l) => re.test(l));
    if (i < 0) throw new Error(`missing line ${re}\n${out}`);
    return i;
  };
  const order = [
    /^server: listening on http:\/\/127\.0\.0\.1:\d+$/,
    /^bob: ready did:mesh:[0-9a-f]{32}$/,
    /^alice: ready did:mesh:[0-9a-f]{32}$/,
    /^bob: received "hello bob"$/,
    /^alice: got "ack: hello bob"$/,
    /^alice: sent "transfer approved: invoice 42" \([0-9a-f]{8}\)$/,
    /^relay's view: \{"type":"message",.*"header":\{"dh":"[A-Za-z0-9+/=]{44}","pn":\d+,"n":\d+\},"ciphertext":"/,
    /^relay's view holds the plaintext: no$/,
    /^server: killed \(SIGKILL\)$/,
    /^bob: received "transfer approved: invoice 42"$/,
    /^alice: got "ack: transfer approved: invoice 42"$/,
    /^mallory: refused: TRUST_REJECTED peer_refused$/,
    /^== done: /,
  ].map(at);
  expect([...order].sort((a, b) => a - b)).toEqual(order);
  expect(at(/^bob: refused did:mesh:[0-9a-f]{8}… \(trust_score_too_low\)$/)).toBeGreaterThan(order[10] as number);
  expect(lines.filter((l) => /^bob: received /.test(l))).toHaveLength(2);
  expect(out).not.toMatch(/failed|timed out/);
}, 90_000);
