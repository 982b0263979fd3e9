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
} from '../../bench/lab.js';
import { isMac, pxeCli, type LogLine, explainBoot } from '../helpers/e2e.js';

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
    server = await lab.runServer('node', pxeServeArgs(lab, tftpRoot), {
      name: 'pxe-serve',
      udpPorts: PXE_UDP_PORTS,
      readyTimeoutMs: 30_000,
    });
  }, 300_000);

  afterAll(async () => {
    await lab?.stop();
  });

  const explain = (r: BootResult): string => explainBoot(r, server, lab?.runDir);

  /**
   * proxyDHCP replies (OFFER on 67, ACK on 4011) to this MAC, from `pxe serve`'s log:
   * {"msg":"proxyDHCP OFFER","mac":"52:54:00:…","file":"pxelinux.0",…}
   */
  function proxyReplies(mac: string): LogLine[] {
    return server.jsonLines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('proxyDHCP ') && isMac(l.mac, mac));
  }
  const offeredFiles = (mac: string): string[] => [...new Set(proxyReplies(mac).map((l) => String(l.file)))];

  /**
   * Completed TFTP transfers of one path (TFTP does not know MACs; the per-MAC file
   * names its MAC): {"msg":"tftp transfer finished","file":"pxelinux.cfg/01-…","outcome":"ok",…}
   */
  function tftpServed(path: string): LogLine[] {
    return server
      .jsonLines()
      .filter(
        (l) =>
          l.msg === 'tftp transfer finished' &&
          l.outcome === 'ok' &&
          typeof l.file === 'string' &&
          (l.file === path || l.file.endsWith(`/${path}`)),
      );
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
    expect(offeredFiles(MAC_BIOS_HOST), explain(r)).toEqual(['pxelinux.0']);
    expect(tftpServed(`pxelinux.cfg/${pxelinuxMacFile(MAC_BIOS_HOST)}`), 'TFTP served the per-MAC config\n' + explain(r)).not.toHaveLength(
      0,
    );
    expect(lab!.siteLog()).toMatch(new RegExp(`DHCPACK\\(site0\\) 10\\.77\\.0\\.1\\d\\d ${MAC_BIOS_HOST}`));
  }, 120_000);

  it('(2) SeaBIOS + iPXE ROM: a MAC without its own config falls back to pxelinux.cfg/default', async () => {
    const before = tftpServed('pxelinux.cfg/default').length;
    const r = await boot('bios', 'ipxe', MAC_BIOS_OTHER);
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[1]).toBe('default');
    expect(r.match?.[2]).toBe('bios');
    expect(offeredFiles(MAC_BIOS_OTHER), explain(r)).toEqual(['pxelinux.0']);
    expect(tftpServed('pxelinux.cfg/default').length, 'TFTP served pxelinux.cfg/default\n' + explain(r)).toBeGreaterThan(before);
    expect(tftpServed(`pxelinux.cfg/${pxelinuxMacFile(MAC_BIOS_OTHER)}`)).toHaveLength(0);
  }, 120_000);

  it('(3) OVMF UEFI + iPXE EFI ROM: syslinux.efi with the per-MAC config', async () => {
    const r = await boot('uefi', 'ipxe', MAC_UEFI_IPXE);
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[1]).toBe('mac');
    expect(r.match?.[2]).toBe('uefi');
    // only the EFI NBP, never the BIOS one
    expect(offeredFiles(MAC_UEFI_IPXE), explain(r)).toEqual(['syslinux.efi']);
    expect(
      proxyReplies(MAC_UEFI_IPXE).every((l) => l.firmware === 'efi-x64' && l.ipxe === true),
      explain(r),
    ).toBe(true);
    expect(tftpServed('ldlinux.e64').length, explain(r)).toBeGreaterThan(0);
    expect(tftpServed(`pxelinux.cfg/${pxelinuxMacFile(MAC_UEFI_IPXE)}`), 'TFTP served the per-MAC config\n' + explain(r)).not.toHaveLength(
      0,
    );
  }, 180_000);

  it("(4) OVMF's own PXE client (no iPXE ROM): syslinux.efi, default config", async () => {
    const r = await boot('uefi', 'native', MAC_UEFI_NATIVE);
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[1]).toBe('default');
    expect(r.match?.[2]).toBe('uefi');
    // iPXE prints its banner on the serial console; OVMF's PXE does not.
    expect(r.serialLog).not.toMatch(/iPXE/);
    expect(offeredFiles(MAC_UEFI_NATIVE), explain(r)).toEqual(['syslinux.efi']);
    expect(
      proxyReplies(MAC_UEFI_NATIVE).every((l) => l.firmware === 'efi-x64' && l.ipxe === false),
      explain(r),
    ).toBe(true);
    expect(tftpServed('pxelinux.cfg/default').length, explain(r)).toBeGreaterThan(0);
  }, 180_000);
});
