/**
 * Test-side helpers for the QEMU end-to-end tests: reading `pxe serve`'s JSON log
 * lines. The lab itself (namespaces, QEMU, assets) is bench/lab.ts, shared with
 * the boot benchmark.
 */
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { PXE_UDP_PORTS, REPO_ROOT, type BootResult, type Lab, type LabProcess } from '../../bench/lab.js';

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
    const r = await promisify(execFile)(process.execPath, [cli, 'sync', '--config', cfgFile, '--only', only, '--no-progress'], {
      timeout: 180_000,
    });
    return r.stdout;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`pxe sync --only ${only} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`, { cause: err });
  }
}

/** The HTTP port `pxe serve` listens on in the e2e lab (inside the pxe namespace). */
export const E2E_HTTP_PORT = 8080;

/**
 * Writes the pxe.yaml every catalog-driven e2e test uses (tftproot, HTTP port, state,
 * the test's own distros/ and hosts.yaml under `site`, the repo's templates), plus
 * `extra` keys; returns its path.
 */
export function writeSiteConfig(site: string, tftpRoot: string, extra: Record<string, unknown> = {}): string {
  const cfgFile = join(site, 'pxe.yaml');
  writeFileSync(
    cfgFile,
    toYaml({
      tftp: { root: tftpRoot },
      http: { port: E2E_HTTP_PORT },
      stateDir: join(site, 'state'),
      catalogDir: join(site, 'distros'),
      templatesDir: join(REPO_ROOT, 'templates'),
      hostsFile: join(site, 'hosts.yaml'),
      ...extra,
    }),
  );
  return cfgFile;
}

/** `pxe serve --config cfgFile` in the lab's pxe namespace, ready once DHCP/TFTP/HTTP are bound. */
export function startPxeServe(lab: Lab, cli: string, cfgFile: string): Promise<LabProcess> {
  return lab.runServer('node', [cli, 'serve', '--config', cfgFile, '--server-address', lab.serverAddress], {
    name: 'pxe-serve',
    udpPorts: PXE_UDP_PORTS,
    tcpPorts: [E2E_HTTP_PORT],
    readyTimeoutMs: 30_000,
  });
}

/** Assertion message for a boot: why it ended, the serial console and the server log tails. */
export function explainBoot(r: BootResult, server: LabProcess, runDir?: string, serialChars = 2500): string {
  return `boot ended: ${r.reason} after ${r.durationMs} ms${runDir ? ` (run dir ${runDir}; E2E_KEEP=1 keeps it)` : ''}\n--- serial (tail) ---\n${r.serialLog.slice(-serialChars)}\n--- pxe serve log (tail) ---\n${tail(server.jsonLines())}\n${server.stderr().slice(-1500)}`;
}
