/**
 * The README's portable stories as programs for other runtimes: imports hoisted (read with the
 * TypeScript parser), the rest of the story the body of `async function main()`, which runs and
 * then prints `STORY OK <name>`. The code is the README's, statement for statement.
 */
import * as ts from 'typescript';

/** A story split into its import declarations and the statements after them. */
export function splitStory(source: string): { imports: string[]; body: string } {
  const sf = ts.createSourceFile('story.ts', source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const imports: string[] = [];
  const body: string[] = [];
  for (const s of sf.statements) (ts.isImportDeclaration(s) ? imports : body).push(s.getFullText(sf));
  return { imports: imports.map((i) => i.trim()), body: body.join('') };
}

/**
 * The story as a TypeScript module running in `main()`. `replaceImport` maps a module specifier
 * to the import line to use instead (e.g. the browser harness's assert for `node:assert/strict`).
 */
export function storyProgram(name: string, source: string, replaceImport: Record<string, string> = {}): string {
  const { imports, body } = splitStory(source);
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const i of imports) {
    const spec = /from\s+'([^']+)'/.exec(i)?.[1] ?? '';
    const line = replaceImport[spec] ?? i;
    if (!seen.has(line)) lines.push(line);
    seen.add(line);
  }
  return `${lines.join('\n')}\n\nexport async function main(): Promise<void> {\n${body}\n}\n\nexport const storyName = ${JSON.stringify(name)};\n`;
}

/** `storyProgram` plus a call of `main()` that prints `STORY OK <name>` or exits 1 with the error. */
export function runnableStory(name: string, source: string): string {
  return `${storyProgram(name, source)}
main().then(() => console.log('STORY OK ${name}'), (e: unknown) => {
  console.error('STORY FAILED ${name}', e);
  (globalThis as { process?: { exit(code: number): void } }).process?.exit(1);
});
`;
}

/** TypeScript → JavaScript (`esm` or `cjs`), as a user's build would emit it. */
export function toJs(source: string, format: 'esm' | 'cjs'): string {
  return ts.transpileModule(source, {
    compilerOptions: {
      module: format === 'esm' ? ts.ModuleKind.ESNext : ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
    },
  }).outputText;
}

/**
 * The page's stand-in for `node:assert/strict` (browsers have none): the five calls the README
 * uses, with strict semantics. Part of the test harness, not of the library.
 */
export const BROWSER_ASSERT = `
type Expected = { code?: string; reason?: string };
function fail(message: string): never { throw new Error('assertion failed: ' + message); }
function deepEq(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) return a.length === b.length && a.every((x, i) => x === b[i]);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => deepEq((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
function matches(e: unknown, want?: Expected): void {
  const got = e as Expected;
  if (want?.code !== undefined && got?.code !== want.code) fail('expected code ' + want.code + ', got ' + String(got?.code));
  if (want?.reason !== undefined && got?.reason !== want.reason) fail('expected reason ' + want.reason + ', got ' + String(got?.reason));
}
const assert = {
  ok(v: unknown, m?: string): asserts v { if (!v) fail(m ?? 'ok'); },
  equal(a: unknown, b: unknown): void { if (!Object.is(a, b)) fail(String(a) + ' !== ' + String(b)); },
  deepEqual(a: unknown, b: unknown): void { if (!deepEq(a, b)) fail('not deep-equal'); },
  throws(fn: () => unknown, want?: Expected): void {
    try { fn(); } catch (e) { matches(e, want); return; }
    fail('did not throw');
  },
  async rejects(p: Promise<unknown>, want?: Expected): Promise<void> {
    try { await p; } catch (e) { matches(e, want); return; }
    fail('did not reject');
  },
};
export default assert;
`;
