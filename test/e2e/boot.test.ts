/**
 * Real-firmware end-to-end boots through `pxe serve` (proxyDHCP + TFTP), in network
 * namespaces, with QEMU under TCG. Each case passes only when the initrd's /init prints
 * the marker on the serial console (proving kernel + initrd + which config file + which
 * firmware) and QEMU then exits by itself (poweroff -f, -no-reboot).
 *
 * Firmware matrix proven here: docs/firmware-matrix.md.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import {
  ensureAssets,
  FAIL_FAST,
  MARKER,
  pxeServeArgs,
  pxelinuxMacFile,
  PXE_UDP_PORTS,
  startLab,
  writeTftpRoot,
  type BootResult,
  type Lab,
  type LabProcess,
} from '../../src/bench/lab.js';
import { hasValue, mentionsMac, pxeCli, tail, type LogLine } from '../helpers/e2e.js';

const MAC_BIOS_HOST = '52:54:00:e2:e0:11'; // has pxelinux.cfg/01-<mac>
const MAC_BIOS_OTHER = '52:54:00:e2:e0:12'; // falls back to pxelinux.cfg/default
const MAC_UEFI_IPXE = '52:54:00:e2:e0:13'; // has pxelinux.cfg/01-<mac>
const MAC_UEFI_NATIVE = '52:54:00:e2:e0:14'; // falls back to pxelinux.cfg/default

describe('e2e: PXE boot through pxe serve (QEMU, real firmware)', () => {
  let lab: Lab | undefined;
  let server: LabProcess;

  beforeAll(async () => {
    pxeCli(); // fails early with "run npm run build" when dist/ is missing
    const assets = await ensureAssets();
    lab = await startLab();
    const tftpRoot = writeTftpRoot(join(lab.runDir, 'tftproot'), assets, [MAC_BIOS_HOST, MAC_UEFI_IPXE]);
    server = await lab.runServer('node', pxeServeArgs(lab, tftpRoot), { name: 'pxe-serve', udpPorts: PXE_UDP_PORTS, readyTimeoutMs: 30_000 });
  }, 300_000);

  afterAll(async () => {
    await lab?.stop();
  });

  function explain(r: BootResult): string {
    return `boot ended: ${r.reason} after ${r.durationMs} ms (run dir ${lab?.runDir}; E2E_KEEP=1 keeps it)\n--- serial (tail) ---\n${r.serialLog.slice(-2500)}\n--- pxe serve log (tail) ---\n${tail(server.jsonLines())}\n${server.stderr().slice(-1500)}`;
  }

  /** log lines for this MAC that name `file` (proxy offer or TFTP transfer) */
  function linesFor(mac: string, pred: (s: string) => boolean): LogLine[] {
    return server.jsonLines().filter((l) => hasValue(l, pred) && mentionsMac(l, mac));
  }

  /** Log lines about one file being served over TFTP (the lines need not name the MAC: TFTP does not know it). */
  function tftpServed(path: string): LogLine[] {
    return server
      .jsonLines()
      .filter((l) => hasValue(l, (s) => s === path || s.endsWith(`/${path}`)) && Number(l.level ?? 30) < 40 && !hasValue(l, (s) => /not found|refused|error/i.test(s)));
  }

  async function boot(firmware: 'bios' | 'uefi', nic: 'ipxe' | 'native', mac: string): Promise<BootResult> {
    return lab!.bootVm({
      firmware,
      nic,
      mac,
      expect: MARKER,
      failFast: FAIL_FAST,
      // TCG: BIOS boots take ~15 s, OVMF ~25 s on an idle 2-core host; the bound leaves room for a loaded one.
      timeoutMs: firmware === 'bios' ? 90_000 : 150_000,
    });
  }

  it('(1) SeaBIOS + iPXE ROM: per-MAC pxelinux.cfg/01-<mac> is used', async () => {
    const r = await boot('bios', 'ipxe', MAC_BIOS_HOST);
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[1]).toBe('mac');
    expect(r.match?.[2]).toBe('bios');
    expect(linesFor(MAC_BIOS_HOST, (s) => s === 'pxelinux.0'), 'proxy offered pxelinux.0\n' + explain(r)).not.toHaveLength(0);
    expect(tftpServed(`pxelinux.cfg/${pxelinuxMacFile(MAC_BIOS_HOST)}`), 'TFTP served the per-MAC config\n' + explain(r)).not.toHaveLength(0);
    expect(lab!.siteLog()).toMatch(new RegExp(`DHCPACK\\(site0\\) 10\\.77\\.0\\.1\\d\\d ${MAC_BIOS_HOST}`));
  }, 120_000);

  it('(2) SeaBIOS + iPXE ROM: a MAC without its own config falls back to pxelinux.cfg/default', async () => {
    const before = tftpServed('pxelinux.cfg/default').length;
    const r = await boot('bios', 'ipxe', MAC_BIOS_OTHER);
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[1]).toBe('default');
    expect(r.match?.[2]).toBe('bios');
    expect(linesFor(MAC_BIOS_OTHER, (s) => s === 'pxelinux.0'), 'proxy offered pxelinux.0\n' + explain(r)).not.toHaveLength(0);
    expect(tftpServed('pxelinux.cfg/default').length, 'TFTP served pxelinux.cfg/default\n' + explain(r)).toBeGreaterThan(before);
    expect(tftpServed(`pxelinux.cfg/${pxelinuxMacFile(MAC_BIOS_OTHER)}`)).toHaveLength(0);
  }, 120_000);

  it('(3) OVMF UEFI + iPXE EFI ROM: syslinux.efi with the per-MAC config', async () => {
    const r = await boot('uefi', 'ipxe', MAC_UEFI_IPXE);
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[1]).toBe('mac');
    expect(r.match?.[2]).toBe('uefi');
    expect(linesFor(MAC_UEFI_IPXE, (s) => s === 'syslinux.efi'), 'proxy offered syslinux.efi\n' + explain(r)).not.toHaveLength(0);
    expect(linesFor(MAC_UEFI_IPXE, (s) => s === 'pxelinux.0'), 'a UEFI client must never be offered the BIOS NBP').toHaveLength(0);
    expect(tftpServed('ldlinux.e64').length, explain(r)).toBeGreaterThan(0);
    expect(tftpServed(`pxelinux.cfg/${pxelinuxMacFile(MAC_UEFI_IPXE)}`), 'TFTP served the per-MAC config\n' + explain(r)).not.toHaveLength(0);
  }, 180_000);

  it("(4) OVMF's own PXE client (no iPXE ROM): syslinux.efi, default config", async () => {
    const r = await boot('uefi', 'native', MAC_UEFI_NATIVE);
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[1]).toBe('default');
    expect(r.match?.[2]).toBe('uefi');
    // iPXE prints its banner on the serial console; OVMF's PXE does not.
    expect(r.serialLog).not.toMatch(/iPXE/);
    expect(linesFor(MAC_UEFI_NATIVE, (s) => s === 'syslinux.efi'), 'proxy offered syslinux.efi\n' + explain(r)).not.toHaveLength(0);
  }, 180_000);
});
