/**
 * Where the repository is, for the benchmarks, the fuzzer and the lab: they run as
 * TypeScript under vitest (bench/*.ts) and compiled (dist-bench/bench/*.js), at two
 * different depths, so the root is the nearest directory up holding package.json.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
/** the product's entry points, built by `npm run build` */
export const DIST = join(REPO_ROOT, 'dist');
/** this folder compiled by `npm run build` (bench/tsconfig.json), for what runs in a child process */
export const BENCH_DIST = join(REPO_ROOT, 'dist-bench', 'bench');
