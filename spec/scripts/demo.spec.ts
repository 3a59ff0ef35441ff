/** `npm run demo` (`tsx scripts/demo.ts`) runs in CI: exit status, what the agents read, what the relay saw. */
import { spawnSync } from 'child_process';
import { join } from 'path';

const root = join(__dirname, '..', '..');

describe('npm run demo', () => {
  const run = spawnSync(process.execPath, [require.resolve('tsx/cli'), join('scripts', 'demo.ts')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const lines = run.stdout.split('\n');

  test('exits 0 with no error output', () => {
    expect(run.error).toBeUndefined();
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  test('each agent reads the messages, the out-of-order ones included', () => {
    const read = lines.filter((l) => / reads from /.test(l)).map((l) => l.trim());
    expect(read).toEqual([
      'bob reads from alice: "transfer $1000 to account X"',
      'alice reads from bob: "action approved"',
      'alice reads from bob: "receipt #4411 attached"',
      'bob reads from alice: "msg-3"',
      'bob reads from alice: "msg-1"',
      'bob reads from alice: "msg-2"',
      'alice reads from bob: "all three arrived"',
    ]);
  });

  test('the relay sees only hex ciphertext and handshake ids, never a plaintext', () => {
    const relay = lines.filter((l) => l.includes('[relay]'));
    expect(relay.length).toBe(14); // 3 handshake + 1 establishment + 7 messages + 3 handshake with mallory
    for (const l of relay) {
      expect(l).toMatch(
        /^ {2}\[relay\] +\w+ → \w+ +(\d+ bytes {2}[0-9a-f]+(…[0-9a-f]+)?|handshake (challenge|reply|answer) +challenge_[0-9a-f]{16} {2}\(\d+ chars JSON\))$/,
      );
      expect(l).not.toMatch(/transfer|approved|receipt|msg-|arrived/);
    }
  });

  test('the low-score agent is refused both ways', () => {
    expect(run.stdout).toContain('alice → mallory: refused, TRUST_REJECTED (trust_score_too_low)');
    expect(run.stdout).toContain('mallory → bob: refused, TRUST_REJECTED (peer_refused)');
    expect(run.stdout).toContain('alice channel closed: true, bob channel closed: true');
  });
});
