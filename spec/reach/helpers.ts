/**
 * Shared by the spec/reach suites: the built package, the packed tarball, a scratch consumer project
 * and the runtimes to run it in. A runtime that is truly absent makes its tests skip with a loud
 * message, except under CI (CI=true), where .ci/run installs every runtime and an absent one fails.
 */
import { execFileSync, spawnSync, SpawnSyncReturns } from 'child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ROOT } from '../helpers/readme-examples';

export { ROOT };

/** True under CI, where no runtime may be missing. */
export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

/** Builds dist/ unless it is there and newer than every file of lib/. */
export function ensureBuilt(): void {
  const stamp = join(ROOT, 'dist', 'esm', 'index.js');
  const newest = (dir: string): number =>
    Math.max(
      ...readdirSync(dir).map((n) => {
        const p = join(dir, n);
        const s = statSync(p);
        return s.isDirectory() ? newest(p) : s.mtimeMs;
      }),
    );
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= newest(join(ROOT, 'lib'))) return;
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: 'pipe' });
}

/** `npm pack` of the built package (scripts not run: dist/ is built already) into a new folder. */
export function packTarball(): string {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-pack-'));
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' });
  return join(dir, out.trim().split('\n').pop()!);
}

/** The path of a runtime binary from node_modules/.bin or PATH, or null. */
export function findBinary(name: string, fallbacks: string[] = []): string | null {
  const local = join(ROOT, 'node_modules', '.bin', name);
  if (existsSync(local)) return local;
  for (const p of fallbacks) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/**
 * `describe` when `binary` is present; otherwise a skipped `describe` and a loud warning, or under
 * CI a failing test (CI must run every runtime).
 */
export function describeWith(what: string, binary: string | null, hint: string, fn: (bin: string) => void): void {
  if (binary !== null) {
    describe(what, () => fn(binary));
    return;
  }
  if (IN_CI) {
    describe(what, () => {
      test('is available (CI runs every runtime)', () => {
        throw new Error(`${what}: not found under CI. ${hint}`);
      });
    });
    return;
  }
  console.warn(`${'!'.repeat(80)}\n[reach] SKIPPING ${what}: not found. ${hint}\n${'!'.repeat(80)}`);
  describe.skip(what, () => fn(''));
}

/** Runs a command, returning its result (never throws on a non-zero exit). */
export function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeout = 120_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, ...env } });
}

/** Fails with the command's output when it did not exit 0. */
export function expectOk(r: SpawnSyncReturns<string>, what: string): string {
  if (r.error || r.status !== 0) {
    throw new Error(`${what} failed (status ${r.status}${r.error ? `, ${r.error.message}` : ''}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

/** Every package directory under a node_modules tree (scoped ones included). */
export function installedPackages(nodeModules: string): string[] {
  const out: string[] = [];
  const visit = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      if (name.startsWith('.')) continue;
      const p = join(dir, name);
      if (name.startsWith('@')) {
        visit(p);
        continue;
      }
      if (existsSync(join(p, 'package.json'))) {
        out.push(p);
        visit(join(p, 'node_modules'));
      }
    }
  };
  visit(nodeModules);
  return out;
}

/** The version field of a package.json. */
export function versionOf(dir: string): string {
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}
