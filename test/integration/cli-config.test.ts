/**
 * One configuration, found the same way by every command: --config, then
 * $PXE_CONFIG, then ./pxe.yaml, then /etc/pxe/pxe.yaml, else the embedded defaults.
 * Paths in a file are relative to the file, so a command run from another
 * directory sees the daemon's state; every command names the file it used on stderr.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findConfigFile, loadConfig } from '../../src/config.js';
import { runCommand } from '../../src/proc.js';

const CLI = resolve(__dirname, '../../dist/cli.js');
let dir = '';
let site = '';
let elsewhere = '';
const MAC = '52:54:00:aa:bb:01';

function pxe(args: string[], opts: { cwd: string; env?: Record<string, string> }) {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'PXE_CONFIG') env[k] = v;
  return runCommand(['node', CLI, ...args], { timeoutMs: 30_000, cwd: opts.cwd, env: { ...env, ...(opts.env ?? {}) } });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), `pxe-cliconfig-${process.pid}-`));
  site = join(dir, 'etc-like');
  elsewhere = join(dir, 'somewhere', 'else');
  mkdirSync(join(site, 'state'), { recursive: true });
  mkdirSync(elsewhere, { recursive: true });
  writeFileSync(join(site, 'pxe.yaml'), 'tftp: { root: ./tftproot }\nstateDir: ./state\nhostsFile: ./hosts.yaml\n');
  writeFileSync(
    join(site, 'state', 'boot-events.jsonl'),
    `${JSON.stringify({ time: '2026-12-01T10:00:00.000Z', proto: 'dhcp', mac: MAC, what: 'DISCOVER -> offered pxelinux.0' })}\n`,
  );
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('config lookup order', () => {
  it('--config, then $PXE_CONFIG, then ./pxe.yaml, then the system file, else defaults', () => {
    const cwd = join(dir, 'lookup');
    mkdirSync(cwd, { recursive: true });
    const system = join(dir, 'system-pxe.yaml');
    const env = { PXE_CONFIG: 'from-env.yaml' };
    expect(findConfigFile(undefined, { cwd, env: {}, systemFile: system })).toEqual({
      path: undefined,
      why: `no --config, $PXE_CONFIG, ./pxe.yaml or ${system}`,
    });
    writeFileSync(system, 'stateDir: ./sys-state\n');
    expect(findConfigFile(undefined, { cwd, env: {}, systemFile: system })).toEqual({ path: system, why: system });
    writeFileSync(join(cwd, 'pxe.yaml'), '{}\n');
    expect(findConfigFile(undefined, { cwd, env: {}, systemFile: system })).toEqual({ path: join(cwd, 'pxe.yaml'), why: './pxe.yaml' });
    expect(findConfigFile(undefined, { cwd, env, systemFile: system })).toEqual({ path: join(cwd, 'from-env.yaml'), why: '$PXE_CONFIG' });
    expect(findConfigFile('x.yaml', { cwd, env, systemFile: system })).toEqual({ path: join(cwd, 'x.yaml'), why: '--config' });
    rmSync(join(cwd, 'pxe.yaml'));
    // the system file's relative paths are relative to it
    expect(loadConfig(undefined, cwd, { env: {}, systemFile: system }).stateDir).toBe(join(dir, 'sys-state'));
  });
});

describe('every command, from another directory', () => {
  it('pxe events with $PXE_CONFIG reads the state next to that file, and says which file it used', async () => {
    const r = await pxe(['events'], { cwd: elsewhere, env: { PXE_CONFIG: join(site, 'pxe.yaml') } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('DISCOVER -> offered pxelinux.0');
    expect(r.stderr.trim()).toBe(`pxe: config: ${join(site, 'pxe.yaml')} ($PXE_CONFIG)`);
  });

  it('--config wins over $PXE_CONFIG; ./pxe.yaml is used when neither is given', async () => {
    const other = join(dir, 'other.yaml');
    writeFileSync(other, 'stateDir: ./other-state\n');
    const r = await pxe(['events', '--config', join(site, 'pxe.yaml')], { cwd: elsewhere, env: { PXE_CONFIG: other } });
    expect(r.stdout).toContain('DISCOVER');
    expect(r.stderr).toContain('(--config)');
    const local = await pxe(['events'], { cwd: site });
    expect(local.stdout).toContain('DISCOVER');
    expect(local.stderr.trim()).toBe(`pxe: config: ${join(site, 'pxe.yaml')} (./pxe.yaml)`);
  });

  it('with no file anywhere, the defaults are announced with the state directory they imply', async () => {
    const r = await pxe(['list', '--only', 'debian'], { cwd: elsewhere });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /^pxe: config: embedded defaults \(no --config, \$PXE_CONFIG, \.\/pxe\.yaml or \/etc\/pxe\/pxe\.yaml\); state \S+\/somewhere\/else\/state, tftproot \S+\/somewhere\/else\/tftproot$/m,
    );
  });

  it('a $PXE_CONFIG that does not exist is an error naming it, not a fall back to defaults', async () => {
    const r = await pxe(['list'], { cwd: elsewhere, env: { PXE_CONFIG: join(dir, 'nope.yaml') } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(join(dir, 'nope.yaml'));
    expect(r.stdout).toBe('');
  });
});
