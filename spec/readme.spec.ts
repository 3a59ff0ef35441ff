/**
 * Runs the README's TypeScript examples as written, after type-checking them as a user's strict
 * project would (`strict`, `exactOptionalPropertyTypes`), with `agentmesh-e2e` (and its subpaths)
 * resolved to this checkout's lib/. A type error in an example fails the suite like a failed run.
 */
import { join } from 'path';
import * as ts from 'typescript';
import * as lib from '../lib';
import * as sqlite from '../lib/sqlite';
import * as redis from '../lib/redis';
import { ROOT, readmeBlockCounts, readmeExamples } from './helpers/readme-examples';

const found = readmeExamples();
const fileOf = (name: string): string => join(ROOT, 'spec', `.readme-${name}.ts`);

/** Type errors of every story, each story a module of its own (file name → messages). */
function typeErrors(): Map<string, string[]> {
  const options: ts.CompilerOptions = {
    strict: true,
    exactOptionalPropertyTypes: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: ['node'],
    esModuleInterop: true,
    skipLibCheck: true,
    isolatedModules: true,
    allowImportingTsExtensions: false,
    paths: { 'agentmesh-e2e': ['./lib/index.ts'], 'agentmesh-e2e/*': ['./lib/*'] },
    baseUrl: ROOT,
  };
  const virtual = new Map([...found].map(([name, src]) => [fileOf(name), `${src}\nexport {};\n`]));
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang, ...rest) => {
    const text = virtual.get(f);
    return text !== undefined ? ts.createSourceFile(f, text, lang) : getSourceFile(f, lang, ...rest);
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (f) => virtual.has(f) || fileExists(f);
  const readFile = host.readFile.bind(host);
  host.readFile = (f) => virtual.get(f) ?? readFile(f);
  const program = ts.createProgram([...virtual.keys()], options, host);
  const out = new Map<string, string[]>();
  for (const f of virtual.keys()) {
    const sf = program.getSourceFile(f)!;
    const diags = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
    out.set(
      f,
      diags.map((d) => {
        const line = d.start !== undefined ? sf.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
        return `line ${line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      }),
    );
  }
  return out;
}

async function run(source: string): Promise<string[]> {
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  }).outputText;
  const logged: string[] = [];
  const modules: Record<string, unknown> = { 'agentmesh-e2e': lib, 'agentmesh-e2e/sqlite': sqlite, 'agentmesh-e2e/redis': redis };
  const fakeRequire = (id: string): unknown => modules[id] ?? require(id);
  const fakeConsole = { ...console, log: (...a: unknown[]) => logged.push(a.join(' ')) };
  const body = `return (async () => {\n${js}\n})();`;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const fn = new Function('require', 'exports', 'module', 'console', body) as (...a: unknown[]) => Promise<void>;
  await fn(fakeRequire, {}, { exports: {} }, fakeConsole);
  return logged;
}

describe('README examples', () => {
  test('the README has the example stories this suite expects', () => {
    expect([...found.keys()].sort()).toEqual(['bench', 'bridge', 'failure-safety', 'post-quantum', 'primitives', 'stores', 'tutorial']);
    expect(readmeBlockCounts().get('tutorial')).toBe(6);
  });

  test('every story type-checks under strict and exactOptionalPropertyTypes', () => {
    const errors = typeErrors();
    const report = [...errors].filter(([, e]) => e.length > 0).map(([f, e]) => `${f}:\n  ${e.join('\n  ')}`);
    expect(report).toEqual([]);
  });

  test.each([...found.keys()])('%s runs as written', async (name) => {
    const logged = await run(found.get(name)!);
    if (name === 'tutorial') expect(logged[0]).toMatch(/^Shared secret: [0-9a-f]{16}\.\.\.$/);
    if (name === 'primitives') expect(logged).toEqual(['hello bob', 'tampered message refused']);
  });
});
