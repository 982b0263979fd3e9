/**
 * Test-side helpers for the QEMU end-to-end tests: reading `pxe serve`'s JSON log
 * lines. The lab itself (namespaces, QEMU, assets) is src/bench/lab.ts, shared with
 * the boot benchmark.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../src/bench/lab.js';

export type LogLine = Record<string, unknown>;

/** All string values of a log line, nested objects included (pino child bindings, `detail`). */
export function stringValues(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) stringValues(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) stringValues(x, out);
  return out;
}

/** A line that mentions the MAC in any field (any case, ':' or '-' separated). */
export function mentionsMac(line: LogLine, mac: string): boolean {
  const want = mac.toLowerCase().replace(/[^0-9a-f]/g, '');
  return stringValues(line).some((s) => s.toLowerCase().replace(/[^0-9a-f]/g, '').includes(want) && /[0-9a-f]{2}[:-][0-9a-f]{2}/i.test(s));
}

export function hasValue(line: LogLine, pred: (s: string) => boolean): boolean {
  return stringValues(line).some(pred);
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
