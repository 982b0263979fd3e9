/**
 * `pxe which` through the real CLI binary: the lookup sequence pxelinux will walk
 * for a MAC, an IP and a UUID, and which file would be served and why (a rendered
 * per-host config, a static file, or the default).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const CLI = resolve('dist/cli.js');
const DISTROS = resolve('distros');
let dir: string;
let cfgFile: string;

/** What `pxe which --json` prints, as far as these tests read it. */
interface WhichStep {
  path: string;
  kind: string;
  result: string;
  detail?: string;
}
interface WhichJson {
  steps: WhichStep[];
  served: WhichStep;
  dhcp: Array<{ firmware: string; ipxe: boolean }>;
}

async function which(...args: string[]): Promise<{ stdout: string; json: WhichJson }> {
  const { stdout } = await run('node', [CLI, 'which', ...args, '--config', cfgFile], { timeout: 20_000 });
  const { stdout: js } = await run('node', [CLI, 'which', ...args, '--config', cfgFile, '--json'], { timeout: 20_000 });
  return { stdout, json: JSON.parse(js) as WhichJson };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pxe-which-'));
  const root = join(dir, 'tftproot');
  mkdirSync(join(root, 'pxelinux.cfg'), { recursive: true });
  writeFileSync(join(root, 'pxelinux.cfg', 'default'), 'DEFAULT local\n');
  writeFileSync(join(root, 'pxelinux.cfg', '0A4D00'), 'DEFAULT by-subnet\n');
  writeFileSync(join(root, 'pxelinux.cfg', 'b8945908-d6a6-41a9-611d-74a6ab80b83d'), 'DEFAULT by-uuid\n');
  // Debian 12 x86_64 "synced": the served link exists, so the host's config renders.
  mkdirSync(join(root, 'images', 'debian', '12', 'x86_64'), { recursive: true });
  writeFileSync(
    join(dir, 'hosts.yaml'),
    [
      'hosts:',
      '  "52:54:00:12:34:56":',
      '    hostname: web1',
      '    entry: debian',
      '    version: "12"',
      '    disk: /dev/vda',
      '  "52:54:00:00:00:02":',
      '    hostname: db1',
      '    entry: debian',
      '    version: "13"',
      '',
    ].join('\n'),
  );
  cfgFile = join(dir, 'pxe.yaml');
  writeFileSync(cfgFile, `serverAddress: 10.77.0.10\ncatalogDir: ${DISTROS}\nhostsFile: hosts.yaml\nstateDir: state\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pxe which', () => {
  it('renders the per-MAC config for a host in the hosts file', async () => {
    const { stdout, json } = await which('52-54-00-12-34-56');
    expect(json.steps.map((s: { path: string }) => s.path)).toEqual(['pxelinux.cfg/01-52-54-00-12-34-56', 'pxelinux.cfg/default']);
    expect(json.served).toMatchObject({ path: 'pxelinux.cfg/01-52-54-00-12-34-56', kind: 'mac', result: 'virtual' });
    expect(json.served.detail).toMatch(/web1/);
    expect(stdout).toMatch(/=> pxelinux\.cfg\/01-52-54-00-12-34-56\s+virtual/);
    expect(stdout).toMatch(/x86 BIOS \(93=0\)\s+pxelinux\.0/);
    expect(stdout).toMatch(/x64 UEFI \(93=7\/9\)\s+syslinux\.efi/);
    // iPXE on BIOS gets pxelinux.0 over HTTP (dhcp.ipxeHttp), iPXE on UEFI keeps syslinux.efi
    expect(stdout).toMatch(/x86 BIOS \(93=0\) \+ iPXE\s+http:\/\/10\.77\.0\.10:8080\/files\/pxelinux\.0/);
    expect(stdout).toMatch(/x64 UEFI \(93=7\/9\) \+ iPXE\s+syslinux\.efi/);
    expect(json.dhcp.find((d: { firmware: string; ipxe: boolean }) => d.firmware === 'bios' && d.ipxe)).toMatchObject({
      action: 'boot',
      bootFile: 'http://10.77.0.10:8080/files/pxelinux.0',
    });
  });

  it('walks the hex IP shortened digit by digit and stops at the first static file', async () => {
    const { json, stdout } = await which('52:54:00:ab:cd:ef', '--ip', '10.77.0.111');
    expect(json.steps.map((s: { path: string }) => s.path)).toEqual([
      'pxelinux.cfg/01-52-54-00-ab-cd-ef',
      'pxelinux.cfg/0A4D006F',
      'pxelinux.cfg/0A4D006',
      'pxelinux.cfg/0A4D00',
      'pxelinux.cfg/0A4D0',
      'pxelinux.cfg/0A4D',
      'pxelinux.cfg/0A4',
      'pxelinux.cfg/0A',
      'pxelinux.cfg/0',
      'pxelinux.cfg/default',
    ]);
    expect(json.steps[0].result).toBe('missing');
    expect(json.served).toMatchObject({ path: 'pxelinux.cfg/0A4D00', kind: 'ip', result: 'file' });
    expect(stdout).toMatch(/served: pxelinux\.cfg\/0A4D00 \(ip;/);
  });

  it('puts the UUID first when given', async () => {
    const { json } = await which('52:54:00:ab:cd:ef', '--uuid', 'B8945908-D6A6-41A9-611D-74A6AB80B83D', '--ip', '192.0.2.91');
    expect(json.steps[0]).toMatchObject({ path: 'pxelinux.cfg/b8945908-d6a6-41a9-611d-74a6ab80b83d', kind: 'uuid', result: 'file' });
    expect(json.served.kind).toBe('uuid');
  });

  it('falls back to default, and skips a host whose entry is not synced', async () => {
    const { json } = await which('52:54:00:00:00:02');
    expect(json.steps[0].result).toBe('missing');
    expect(json.served).toMatchObject({ path: 'pxelinux.cfg/default', kind: 'default', result: 'file' });
  });

  it('rejects a malformed MAC with one line and exit code 2', async () => {
    const err = await run('node', [CLI, 'which', 'not-a-mac', '--config', cfgFile]).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr.trim()).toBe('pxe: not a MAC address: not-a-mac');
  });
});
