/**
 * scripts/examples/: each program type-checks as a user's strict project would
 * (`exactOptionalPropertyTypes` too) with `agentmesh-e2e` mapped to lib/ by tsconfig paths, and
 * runs (tsx) to exit 0 printing what it should.
 */
import { spawnSync } from 'child_process';
import { readdirSync } from 'fs';
import { join } from 'path';
import * as ts from 'typescript';

const root = join(__dirname, '..');
const dir = join(root, 'scripts', 'examples');
const examples = readdirSync(dir)
  .filter((f) => f.endsWith('.ts'))
  .sort();
/** The two-file mesh example (one agent per file): type-checked here, run by spec/mesh/demo-mesh.spec.ts (the demo runs both). */
const meshExamples = readdirSync(join(dir, 'mesh'))
  .filter((f) => f.endsWith('.ts'))
  .sort()
  .map((f) => join('mesh', f));

const expected: Record<string, RegExp[]> = {
  'json-wire.ts': [
    /^bundle: \{"identity_key":"[\w-]{43}","identity_key_ed":"[\w-]{43}","signed_pre_key":\{"key_id":0,/m,
    /^establishment: \{"ik":"[\w+/=]{44}","ek":"[\w+/=]{44}","otk":0,"spk":0\}$/m,
    /^message: \{"header":\{"dh":/m,
    /^bob read: hello over JSON$/m,
  ],
  'secure-channel.ts': [/^bob read: hello bob$/m, /^alice read: hello alice$/m, /^envelope of 11 plaintext bytes: 83 bytes on the wire$/m],
  'sqlite-restart.ts': [/^bob published 100 one-time pre-keys$/m, /^bob read: before the restart$/m, /^alice read: after the restart$/m],
  'trust-transport.ts': [
    /^bob read: over my own transport$/m,
    /^mallory → bob: TRUST_REJECTED \(peer_refused\)$/m,
    /^alice → bob \(gone\): TRUST_REJECTED \(transport_failed\)$/m,
  ],
};

describe('scripts/examples', () => {
  test('every example is listed here, and imports the package by name, never ../lib', () => {
    expect(examples).toEqual(Object.keys(expected).sort());
    expect(meshExamples).toEqual([join('mesh', 'alice.ts'), join('mesh', 'bob.ts')]);
    for (const f of [...examples, ...meshExamples]) {
      const src = ts.sys.readFile(join(dir, f))!;
      expect(src).toMatch(/from 'agentmesh-e2e'/);
      expect(src).not.toMatch(/from '\.\.?\//);
    }
  });

  test('they type-check under strict and exactOptionalPropertyTypes', () => {
    const options: ts.CompilerOptions = {
      strict: true,
      exactOptionalPropertyTypes: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      types: ['node'],
      esModuleInterop: true,
      skipLibCheck: true,
      lib: ['lib.es2022.d.ts'],
      baseUrl: root,
      paths: { 'agentmesh-e2e': ['./lib/index.ts'], 'agentmesh-e2e/*': ['./lib/*'] },
    };
    const files = [...examples, ...meshExamples].map((f) => join(dir, f));
    const program = ts.createProgram(files, options);
    const diags = files.flatMap((f) => {
      const sf = program.getSourceFile(f)!;
      return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)].map(
        (d) => `${f}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`,
      );
    });
    expect(diags).toEqual([]);
  });

  test.each(examples)('%s runs: exit 0, no error output, the expected lines', (f) => {
    const r = spawnSync(process.execPath, [require.resolve('tsx/cli'), join('scripts', 'examples', f)], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const re of expected[f]!) expect(r.stdout).toMatch(re);
  });
});
