#!/usr/bin/env node
/**
 * `npm run build`: the dual package. `tsc` twice from the same sources, into `dist/cjs` (CommonJS)
 * and `dist/esm` (ES modules), each with its `.d.ts`, source maps carrying their sources, and a
 * `package.json` saying the format of its folder. In the ESM output every relative import gets its
 * file extension (Node's ESM resolver needs it; tsc keeps specifiers as written), and the one file
 * that differs by format, `store/node-require.js`, is replaced by its ESM form.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

rmSync(dist, { recursive: true, force: true });
for (const project of ['tsconfig.build.json', 'tsconfig.esm.json']) {
  execFileSync(process.execPath, [tsc, '-p', join(root, project)], { stdio: 'inherit', cwd: root });
}

writeFileSync(join(dist, 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
writeFileSync(join(dist, 'esm', 'package.json'), '{ "type": "module" }\n');

/** Every file under `dir`. */
function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** `./x` → `./x.js` or `./x/index.js` (`.d.ts` likewise), whichever exists next to `file`. */
function withExtension(file, spec) {
  if (/\.(m|c)?js$/.test(spec)) return spec;
  const base = join(dirname(file), spec);
  const dts = file.endsWith('.d.ts');
  const ext = dts ? '.d.ts' : '.js';
  if (existsSync(base + ext)) return `${spec}.js`;
  if (existsSync(join(base, `index${ext}`))) return `${spec}/index.js`;
  throw new Error(`build: cannot resolve ${spec} from ${file}`);
}

const relative = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]*|\.{1,2})\2/g;
for (const file of walk(join(dist, 'esm'))) {
  if (!file.endsWith('.js') && !file.endsWith('.d.ts')) continue;
  const text = readFileSync(file, 'utf8');
  const out = text.replace(relative, (_m, lead, q, spec) => `${lead}${q}${withExtension(file, spec)}${q}`);
  if (out !== text) writeFileSync(file, out);
}

// The ESM form of lib/store/node-require.ts (see its comment); loaded only by the SQLite/Redis entries.
writeFileSync(
  join(dist, 'esm', 'store', 'node-require.js'),
  `import { createRequire } from 'node:module';
const req = createRequire(import.meta.url);
/** This module's \`require\` (ESM build: from createRequire). */
export function nodeRequire() {
  return req;
}
`,
);
rmSync(join(dist, 'esm', 'store', 'node-require.js.map'), { force: true });

chmodSync(join(dist, 'cjs', 'cli.js'), 0o755);
console.log('build: dist/cjs and dist/esm written');
