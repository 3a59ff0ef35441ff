/**
 * Runs the README's TypeScript examples as written. Blocks marked `<!-- example: NAME -->` are
 * concatenated per NAME (a story told over several blocks) and run in one async scope, with
 * `agentmesh-e2e` resolved to this checkout's lib/.
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import * as ts from 'typescript';
import * as lib from '../lib';

function examples(): Map<string, string[]> {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const byName = new Map<string, string[]>();
  const re = /<!-- example: ([\w-]+) -->\n```ts\n([\s\S]*?)\n```/g;
  for (let m = re.exec(readme); m !== null; m = re.exec(readme)) {
    byName.set(m[1], [...(byName.get(m[1]) ?? []), m[2]]);
  }
  return byName;
}

async function run(source: string): Promise<string[]> {
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  }).outputText;
  const logged: string[] = [];
  const fakeRequire = (id: string): unknown => (id === 'agentmesh-e2e' ? lib : require(id));
  const fakeConsole = { ...console, log: (...a: unknown[]) => logged.push(a.join(' ')) };
  const body = `return (async () => {\n${js}\n})();`;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const fn = new Function('require', 'exports', 'module', 'console', body) as (...a: unknown[]) => Promise<void>;
  await fn(fakeRequire, {}, { exports: {} }, fakeConsole);
  return logged;
}

const found = examples();

describe('README examples', () => {
  test('the README has the example stories this suite expects', () => {
    expect([...found.keys()].sort()).toEqual(['bench', 'bridge', 'failure-safety', 'primitives', 'stores', 'tutorial']);
    expect(found.get('tutorial')).toHaveLength(6);
  });

  test.each([...found.keys()])('%s runs as written', async (name) => {
    const logged = await run(found.get(name)!.join('\n'));
    if (name === 'tutorial') expect(logged[0]).toMatch(/^Shared secret: [0-9a-f]{16}\.\.\.$/);
    if (name === 'primitives') expect(logged).toEqual(['hello bob', 'tampered message refused']);
  });
});
