/**
 * The package as published: publint (strict) and arethetypeswrong find nothing on the packed
 * tarball, and the root entry's module graph reaches no `node:` module, no Node built-in and no
 * package but libsodium's and tweetnacl-util.
 */
import { existsSync, readFileSync, rmSync } from 'fs';
import { builtinModules } from 'module';
import { dirname, join, resolve } from 'path';
import { ROOT, ensureBuilt, expectOk, packTarball, run } from './helpers';

const bin = (name: string): string => join(ROOT, 'node_modules', '.bin', name);

describe('the packed package', () => {
  let tarball = '';
  beforeAll(() => {
    tarball = packTarball();
  });
  afterAll(() => rmSync(dirname(tarball), { recursive: true, force: true }));

  test('publint --strict finds nothing', () => {
    const out = expectOk(run(bin('publint'), ['--strict', tarball], ROOT), 'publint');
    expect(out).toContain('All good!');
  });

  test('arethetypeswrong finds nothing, for node10, node16 (CJS and ESM) and bundlers', () => {
    const out = expectOk(run(bin('attw'), [tarball, '--format', 'json'], ROOT), 'attw');
    const report = JSON.parse(out) as { analysis: { problems: unknown[] } };
    expect(report.analysis.problems).toEqual([]);
  });
});

/** The static imports of a built ESM file. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)].map(
    (m) => m[1] ?? m[2]!,
  );
}

describe('the root entry (dist/esm/index.js)', () => {
  beforeAll(() => ensureBuilt());

  test('reaches no node: module, no Node built-in and no backend package', () => {
    const external = new Set<string>();
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const spec of importsOf(file)) {
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
        else external.add(spec);
      }
    };
    visit(join(ROOT, 'dist', 'esm', 'index.js'));
    expect(seen.size).toBeGreaterThan(40);
    expect([...external].sort()).toEqual(['libsodium-wrappers-sumo', 'tweetnacl-util']);
    for (const f of seen) expect(existsSync(f)).toBe(true);
    for (const spec of external) expect(builtinModules.includes(spec)).toBe(false);
    expect([...seen].some((f) => /store[/\\](sqlite|redis|backend|node-require)\.js$/.test(f))).toBe(false);
  });
});
