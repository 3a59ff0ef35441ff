/**
 * Types for every consumer: a browser TypeScript project (`types: []`, no @types/node, `strict`,
 * `exactOptionalPropertyTypes`, `skipLibCheck: false`) type-checks against our `.d.ts`, resolved
 * through the package's `exports` as a bundler does and as Node's ESM resolution does.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ROOT, ensureBuilt, run } from './helpers';

const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

describe('a browser TypeScript project', () => {
  let dir = '';
  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'agentmesh-types-'));
    cpSync(join(__dirname, 'fixtures', 'browser-ts'), dir, { recursive: true });
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(ROOT, join(dir, 'node_modules', 'agentmesh-e2e'), 'dir');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('type-checks with moduleResolution bundler (ESM types)', () => {
    const r = run(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], dir);
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);
  });

  test.each([
    ['nodenext, an ES module project (ESM types)', 'module'],
    ['nodenext, a CommonJS project (CJS types)', 'commonjs'],
  ])('type-checks with %s', (_name, type) => {
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'fixture', private: true, type }));
    const cfg = {
      extends: './tsconfig.json',
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' },
    };
    writeFileSync(join(dir, 'tsconfig.node.json'), JSON.stringify(cfg));
    const r = run(process.execPath, [tsc, '-p', join(dir, 'tsconfig.node.json')], dir);
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);
  });
});
