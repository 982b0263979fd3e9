/**
 * The rendered catalog menu (pxelinux.cfg/default from templates/pxelinux-menu.njk,
 * `UI menu.c32`) booted by real firmware for a client that is NOT in hosts.yaml.
 *
 * The UEFI case is the one that used to fail: the root `syslinux.efi` (default
 * `dhcp.bootFiles.efi-x64`) loads `menu.c32`, `libutil.c32` and `libcom32.c32` from its
 * own directory, where `pxe sync --bootloaders-only` puts the BIOS builds. `pxe serve`
 * now gives a client DHCP saw as EFI the `efi64/` copies of root `.c32` modules. The
 * menu's ONTIMEOUT is the synced entry chosen by pxe.yaml `menu.default`, so the VM
 * boots it without a keypress; the entry's kernel + initrd are the e2e Debian kernel
 * and the busybox marker initrd, installed by `pxe sync` from a local mirror.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { ensureAssets, FAIL_FAST, MARKER, startLab, type BootResult, type Lab, type LabProcess } from '../../bench/lab.js';
import { isMac, pxeCli, pxeSync, type LogLine, writeSiteConfig, startPxeServe, explainBoot, E2E_HTTP_PORT } from '../helpers/e2e.js';
import { startLocalMirror, type LocalMirror } from '../helpers/mirror.js';

const MAC_UEFI = '52:54:00:e2:e0:41';
const MAC_BIOS = '52:54:00:e2:e0:42';
const MODULES = ['menu.c32', 'libutil.c32', 'libcom32.c32'];
/** what syslinux 6.04's menu.c32 actually loads over TFTP (libcom32 is not fetched: seen in the log) */
const LOADED = ['menu.c32', 'libutil.c32'];

describe('e2e: rendered catalog menu (pxelinux.cfg/default) for a client not in hosts.yaml', () => {
  let lab: Lab | undefined;
  let mirror: LocalMirror | undefined;
  let server: LabProcess;
  let root: string;

  beforeAll(async () => {
    const cli = pxeCli();
    const assets = await ensureAssets();
    lab = await startLab();
    const site = join(lab.runDir, 'site');
    root = join(site, 'tftproot');
    mkdirSync(join(site, 'distros'), { recursive: true });
    mkdirSync(root, { recursive: true });

    mirror = await startLocalMirror();
    mirror.put('e2e/boot/vmlinuz', readFileSync(assets.vmlinuz));
    mirror.put('e2e/boot/initrd.gz', readFileSync(assets.initrd));
    writeFileSync(
      join(site, 'distros', 'e2e.yaml'),
      toYaml({
        entries: [
          {
            id: 'local',
            label: 'Boot from local disk',
            group: 'Local',
            boot: { method: 'localboot' },
            default: true,
            order: 0,
            trust: 'unverified',
          },
          {
            id: 'e2e-marker',
            label: 'E2E marker kernel',
            group: 'Tools',
            mirror: mirror.url('e2e'),
            versions: [{ version: '1' }],
            architectures: ['x86_64'],
            boot: { method: 'linux', kernel: 'boot/vmlinuz', initrd: 'boot/initrd.gz' },
            append: 'console=ttyS0 panic=-1 quiet cfg=rendered-menu',
            trust: 'unverified',
          },
        ],
      }),
    );
    const cfgFile = writeSiteConfig(site, root, {
      // no hosts.yaml: every client is unknown and gets the main menu
      menu: { default: 'e2e-marker', timeoutSeconds: 1 },
      // this row is syslinux.efi's: sync also installs shim + GRUB, which `auto` would hand out
      dhcp: { efiX64Chain: 'syslinux' },
    });
    // The product's own bootloader layout: BIOS modules at the root, EFI ones in efi64/.
    const bl = await promisify(execFile)(process.execPath, [cli, 'sync', '--config', cfgFile, '--bootloaders-only', '--no-progress'], {
      timeout: 60_000,
    });
    for (const f of ['pxelinux.0', 'syslinux.efi', 'ldlinux.e64', ...MODULES, ...MODULES.map((m) => `efi64/${m}`)]) {
      expect(readFileSync(join(root, f)).length, `${f} after sync --bootloaders-only\n${bl.stdout}`).toBeGreaterThan(0);
    }
    // the root menu.c32 really is the BIOS build (32-bit ELF) and efi64's the x86_64 one
    expect(readFileSync(join(root, 'menu.c32'))[4]).toBe(1); // ELFCLASS32
    expect(readFileSync(join(root, 'efi64', 'menu.c32'))[4]).toBe(2); // ELFCLASS64
    const sync = await pxeSync(cli, cfgFile, 'e2e-marker');
    expect(sync).toMatch(/e2e-marker 1 x86_64: installed/);

    server = await startPxeServe(lab, cli, cfgFile);
  }, 300_000);

  afterAll(async () => {
    await mirror?.stop();
    await lab?.stop();
  });

  const explain = (r: BootResult) => explainBoot(r, server, lab?.runDir);

  /**
   * Files served OK since `from` (an index into the log): TFTP transfers, or HTTP
   * requests under /files/ (BIOS iPXE gets pxelinux.0 over HTTP, dhcp.ipxeHttp, and
   * pxelinux then fetches over HTTP). Both log lines carry `virtual`.
   */
  const served = (from: number, file: string): LogLine[] =>
    server
      .jsonLines()
      .slice(from)
      .filter(
        (l) =>
          (l.msg === 'tftp transfer finished' && l.outcome === 'ok' && l.file === file) ||
          (l.msg === 'http request' && l.status === 200 && l.url === `/files/${file}`),
      );
  const overHttp = (lines: LogLine[]) => lines.length > 0 && lines.every((l) => l.msg === 'http request');
  const offers = (mac: string) =>
    server.jsonLines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('proxyDHCP ') && isMac(l.mac, mac));

  async function bootMenu(firmware: 'bios' | 'uefi', nic: 'native' | 'ipxe', mac: string): Promise<{ r: BootResult; from: number }> {
    const from = server.jsonLines().length;
    const r = await lab!.bootVm({
      firmware,
      nic,
      mac,
      expect: MARKER,
      failFast: [...FAIL_FAST, /X64 Exception/],
      timeoutMs: firmware === 'bios' ? 90_000 : 150_000,
    });
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    // cfg=rendered-menu is only on the catalog entry's kernel line: the menu booted it
    expect(r.match?.[1], explain(r)).toBe('rendered-menu');
    expect(r.match?.[2], explain(r)).toBe(firmware);
    const menu = served(from, 'pxelinux.cfg/default');
    expect(menu, explain(r)).not.toHaveLength(0);
    expect(
      menu.every((l) => l.virtual === true),
      explain(r),
    ).toBe(true);
    expect(served(from, `pxelinux.cfg/01-${mac.replace(/:/g, '-')}`), 'not a per-host config').toHaveLength(0);
    expect(served(from, 'images/e2e-marker/1/x86_64/vmlinuz'), explain(r)).not.toHaveLength(0);
    expect(served(from, 'images/e2e-marker/1/x86_64/initrd.gz'), explain(r)).not.toHaveLength(0);
    return { r, from };
  }

  it("OVMF's own PXE -> root syslinux.efi -> rendered menu with the efi64 COM32 modules -> menu.default entry", async () => {
    const { r, from } = await bootMenu('uefi', 'native', MAC_UEFI);
    expect(
      offers(MAC_UEFI).map((l) => l.file),
      explain(r),
    ).toContain('syslinux.efi');
    expect(
      served(from, 'pxelinux.cfg/default').every((l) => l.msg === 'tftp transfer finished'),
      explain(r),
    ).toBe(true);
    expect(
      offers(MAC_UEFI).every((l) => l.firmware === 'efi-x64'),
      explain(r),
    ).toBe(true);
    // the UI module and its libraries came from efi64/, not the BIOS files at the root
    for (const m of LOADED) {
      const got = served(from, m);
      expect(got, `${m}\n${explain(r)}`).not.toHaveLength(0);
      expect(
        got.every((l) => l.virtual === true),
        `${m} was served from efi64/\n${explain(r)}`,
      ).toBe(true);
    }
  }, 180_000);

  it('SeaBIOS + iPXE -> pxelinux.0 -> the same rendered menu with the root (BIOS) modules', async () => {
    const { r, from } = await bootMenu('bios', 'ipxe', MAC_BIOS);
    expect(
      offers(MAC_BIOS).map((l) => l.file),
      explain(r),
    ).toContain(`http://${lab!.serverAddress}:${E2E_HTTP_PORT}/files/pxelinux.0`);
    expect(overHttp(served(from, 'pxelinux.cfg/default')), explain(r)).toBe(true);
    expect(overHttp(served(from, 'images/e2e-marker/1/x86_64/vmlinuz')), explain(r)).toBe(true);
    for (const m of LOADED) {
      const got = served(from, m);
      expect(got, `${m}\n${explain(r)}`).not.toHaveLength(0);
      expect(
        got.every((l) => l.virtual === false),
        `${m} was the root (BIOS) file\n${explain(r)}`,
      ).toBe(true);
    }
  }, 120_000);
});
