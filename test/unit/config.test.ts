import { configError } from '../helpers/errors.js';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { efiX64BootFile } from '../../src/boot/chain.js';

const dir = mkdtempSync(join(tmpdir(), 'pxe-config-'));
function write(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('pxe.yaml', () => {
  it('runs on embedded defaults when there is no file', () => {
    const c = loadConfig(undefined, dir);
    expect(c.source).toBe('(embedded defaults)');
    expect(c.tftp.root).toBe(join(dir, 'tftproot'));
    expect(c.tftp.port).toBe(69);
    expect(c.tftp.maxBlksize).toBe(1468);
    expect(c.dhcp.port).toBe(67);
    expect(c.dhcp.pxePort).toBe(4011);
    expect(c.dhcp.bootFiles.bios).toBe('pxelinux.0');
    // unset: dhcp.efiX64Chain decides (auto: shim + GRUB once `pxe sync` installed them)
    expect(c.dhcp.bootFiles['efi-x64']).toBeUndefined();
    expect(c.dhcp.efiX64Chain).toBe('auto');
    expect(efiX64BootFile(c)).toBe('syslinux.efi');
    expect(c.http.port).toBe(8080);
  });

  it('x64 UEFI chain: auto follows what tftproot holds; shim-grub/syslinux force it; an explicit bootFiles.efi-x64 wins', () => {
    const site = mkdtempSync(join(tmpdir(), 'pxe-chain-'));
    const cfg = (yaml: string) => loadConfig(write('chain.yaml', `tftp:\n  root: ${join(site, 'root')}\n${yaml}`));
    expect(efiX64BootFile(cfg(''))).toBe('syslinux.efi');
    mkdirSync(join(site, 'root'));
    writeFileSync(join(site, 'root', 'shimx64.efi'), 'shim');
    expect(efiX64BootFile(cfg('')), 'shim without grubx64.efi beside it is no chain').toBe('syslinux.efi');
    writeFileSync(join(site, 'root', 'grubx64.efi'), 'grub');
    expect(efiX64BootFile(cfg(''))).toBe('shimx64.efi');
    expect(efiX64BootFile(cfg('dhcp:\n  efiX64Chain: syslinux\n'))).toBe('syslinux.efi');
    expect(efiX64BootFile(cfg('dhcp:\n  efiX64Chain: shim-grub\n'))).toBe('shimx64.efi');
    expect(efiX64BootFile(cfg('dhcp:\n  bootFiles:\n    efi-x64: efi64/syslinux.efi\n'))).toBe('efi64/syslinux.efi');
    expect(efiX64BootFile(cfg('dhcp:\n  bootFiles:\n    efi-x64: null\n'))).toBeNull();
    expect(() => cfg('dhcp:\n  efiX64Chain: grub\n')).toThrow(/efiX64Chain/);
  });

  it('resolves paths relative to the file and keeps given values', () => {
    const f = write(
      'ok.yaml',
      'tftp:\n  root: srv/tftp\n  port: 1069\nallow: [10.0.0.0/8, "fd00::/8"]\nmirrors:\n  debian-12: http://127.0.0.1:9/debian\n',
    );
    const c = loadConfig(f);
    expect(c.tftp.root).toBe(join(dir, 'srv/tftp'));
    expect(c.tftp.port).toBe(1069);
    expect(c.tftp.maxBlksize).toBe(1468);
    expect(c.allow).toEqual(['10.0.0.0/8', 'fd00::/8']);
    expect(c.mirrors['debian-12']).toBe('http://127.0.0.1:9/debian');
  });

  it('names file, line and field for a wrong type', () => {
    const f = write('type.yaml', 'tftp:\n  port: 69\n  maxBlksize: big\n');
    const e = configError(() => loadConfig(f));
    expect(e.file).toBe(f);
    expect(e.line).toBe(3);
    expect(e.field).toBe('tftp.maxBlksize');
    expect(e.message).toContain(`${f}:3:`);
  });

  it('points at an unknown key itself', () => {
    const f = write('unknown.yaml', 'http:\n  port: 80\n  prot: 81\n');
    const e = configError(() => loadConfig(f));
    expect(e.line).toBe(3);
    expect(e.field).toBe('http.prot');
  });

  it('rejects bad CIDRs, addresses and ports with their position', () => {
    expect(configError(() => loadConfig(write('c.yaml', 'allow:\n  - 10.0.0.0/8\n  - 10.0.0.0/33\n'))).line).toBe(3);
    expect(configError(() => loadConfig(write('a.yaml', 'serverAddress: 10.0.0\n'))).field).toBe('serverAddress');
    expect(configError(() => loadConfig(write('p.yaml', 'dhcp:\n  port: 70000\n'))).field).toBe('dhcp.port');
  });

  it('reports YAML syntax errors with a line', () => {
    const e = configError(() => loadConfig(write('syntax.yaml', 'tftp:\n  port: [69\n')));
    expect(e.line).toBeGreaterThanOrEqual(2);
    expect(e.message).toMatch(/YAML syntax/);
  });

  it('reports a missing explicit file', () => {
    const e = configError(() => loadConfig(join(dir, 'nope.yaml')));
    expect(e.message).toMatch(/cannot read/);
  });
});
