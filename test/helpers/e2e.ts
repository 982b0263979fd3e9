/**
 * Test-side helpers for the QEMU end-to-end tests: reading `pxe serve`'s JSON log
 * lines. The lab itself (namespaces, QEMU, assets) is src/bench/lab.ts, shared with
 * the boot benchmark.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { REPO_ROOT } from '../../src/bench/lab.js';

export type LogLine = Record<string, unknown>;

/** `v` is the MAC `mac` (any case, ':' or '-' separated). */
export function isMac(v: unknown, mac: string): boolean {
  const norm = (x: string) => x.toLowerCase().replace(/[^0-9a-f]/g, '');
  return typeof v === 'string' && norm(v) === norm(mac) && norm(v).length === 12;
}

/** Compact dump of the last log lines for assertion messages. */
export function tail(lines: LogLine[], n = 40): string {
  return lines
    .slice(-n)
    .map((l) => JSON.stringify(l))
    .join('\n');
}

/** dist/cli.js, or a clear error telling how to build it (npm test builds first). */
export function pxeCli(): string {
  const cli = join(REPO_ROOT, 'dist', 'cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} missing: run "npm run build" (npm test does it)`);
  return cli;
}

/**
 * `pxe sync --only <id>` in the root namespace (test mirrors listen on 127.0.0.1 there);
 * returns stdout, throws with stdout + stderr so a failure says why.
 */
export async function pxeSync(cli: string, cfgFile: string, only: string): Promise<string> {
  try {
    const r = await promisify(execFile)(process.execPath, [cli, 'sync', '--config', cfgFile, '--only', only, '--no-progress'], { timeout: 180_000 });
    return r.stdout;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`pxe sync --only ${only} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}
