/**
 * The README's TypeScript examples: blocks marked `<!-- example: NAME -->` are concatenated per
 * NAME (a story told over several blocks). Used by spec/readme.spec.ts (type-check and run against
 * lib/) and by spec/reach/ (run against the packed package in Node, Bun, Deno and a browser).
 */
import { readFileSync } from 'fs';
import { join } from 'path';

/** The repository root. */
export const ROOT = join(__dirname, '..', '..');

/** Every example story of the README, by name, each the concatenation of its blocks. */
export function readmeExamples(): Map<string, string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const blocks = new Map<string, string[]>();
  const re = /<!-- example: ([\w-]+) -->\n```ts\n([\s\S]*?)\n```/g;
  for (let m = re.exec(readme); m !== null; m = re.exec(readme)) {
    blocks.set(m[1]!, [...(blocks.get(m[1]!) ?? []), m[2]!]);
  }
  return new Map([...blocks].map(([name, parts]) => [name, parts.join('\n')]));
}

/** The number of blocks each story has. */
export function readmeBlockCounts(): Map<string, number> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const counts = new Map<string, number>();
  for (const m of readme.matchAll(/<!-- example: ([\w-]+) -->\n```ts\n/g)) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
  return counts;
}

/** The stories that use only the root entry and no Node built-in: these run in every runtime. */
export const PORTABLE_STORIES = ['tutorial', 'bridge', 'failure-safety', 'post-quantum', 'primitives', 'bench'] as const;
