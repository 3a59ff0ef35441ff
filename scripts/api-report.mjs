/**
 * The API report: one `api/<entry>.api.md` per package entry (the root and each subpath), made by
 * api-extractor from the built declarations (`npm run build` first). `npm run api` rewrites the
 * reports; `npm run api -- --check` (run by `npm test`) fails when the surface differs from the
 * checked-in report, so every change to the public API shows up as a diff in review.
 */
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');

/** Each entry of package.json's `exports`, by report name and its built declaration file. */
const ENTRIES = [
  ['agentmesh-e2e', 'dist/cjs/index.d.ts'],
  ['agentmesh-e2e-sqlite', 'dist/cjs/sqlite.d.ts'],
  ['agentmesh-e2e-redis', 'dist/cjs/redis.d.ts'],
  ['agentmesh-e2e-mesh', 'dist/cjs/mesh/index.d.ts'],
  ['agentmesh-e2e-server', 'dist/cjs/server/index.d.ts'],
];

let failed = false;
for (const [name, entry] of ENTRIES) {
  const mainEntryPointFilePath = join(root, entry);
  if (!existsSync(mainEntryPointFilePath)) {
    console.error(`api: ${entry} is missing; run npm run build first`);
    process.exit(1);
  }
  const config = ExtractorConfig.prepare({
    configObject: {
      projectFolder: root,
      mainEntryPointFilePath,
      compiler: { tsconfigFilePath: join(root, 'tsconfig.build.json') },
      apiReport: {
        enabled: true,
        reportFileName: `${name}.api.md`,
        reportFolder: join(root, 'api'),
        reportTempFolder: join(root, 'node_modules/.cache/api-extractor'),
      },
      docModel: { enabled: false },
      dtsRollup: { enabled: false },
      tsdocMetadata: { enabled: false },
      messages: {
        // The report is what we want; declarations re-exported from dependencies are not ours to document.
        extractorMessageReporting: {
          default: { logLevel: 'warning', addToApiReportFile: true },
          // Release tags (@public/@beta) are not a distinction this package makes; links are typedoc's to check.
          'ae-missing-release-tag': { logLevel: 'none', addToApiReportFile: false },
          'ae-unresolved-link': { logLevel: 'none', addToApiReportFile: false },
        },
        tsdocMessageReporting: { default: { logLevel: 'none' } },
        compilerMessageReporting: { default: { logLevel: 'warning' } },
      },
    },
    configObjectFullPath: join(root, 'api', `${name}.json`),
    packageJsonFullPath: join(root, 'package.json'),
  });
  const result = Extractor.invoke(config, {
    localBuild: !check,
    showVerboseMessages: false,
    messageCallback: (m) => {
      // Warnings land in the report file itself; printing them too only adds noise.
      if (m.category === 'Extractor' || m.category === 'TSDoc') m.handled = true;
    },
  });
  if (check && result.apiReportChanged) {
    console.error(`api: the public surface of ${name} changed; run npm run api and commit api/${name}.api.md`);
    failed = true;
  } else if (!result.succeeded && !result.apiReportChanged) {
    console.error(`api: api-extractor failed for ${name} (${result.errorCount} errors)`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
