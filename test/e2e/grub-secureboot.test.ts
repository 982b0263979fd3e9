/**
 * Secure Boot through pxe: OVMF with Microsoft's keys enrolled and Secure Boot on loads
 * the Microsoft-signed shim that `pxe sync` provisioned (shim-signed), shim loads the
 * Debian-signed network GRUB beside it (grubx64.efi), GRUB reads the config pxe renders
 * and boots the Debian-signed kernel + the marker initrd synced from a local mirror.
 *
 * The site DHCP server is configured from `pxe dhcp-config --next-server-only`: GRUB
 * 2.06 takes its TFTP server from the site server's ACK (siaddr), never from the
 * proxy's offer (docs/firmware-matrix.md).
 *
 * One boot per case: a listed host without `arch:` (its file is found by GRUB's own
 * $net_default_mac and $grub_cpu, so no IP -> MAC mapping is involved), an unlisted MAC
 * (the menu's default, an entry inside a submenu), and a kernel without its signature
 * (GRUB refuses it through shim).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify as toYaml } from 'yaml';
import {
  ensureAssets,
  FAIL_FAST,
  LAB_NET,
  MARKER_SB as MARKER,
  startLab,
  type BootResult,
  type Lab,
  type LabProcess,
} from '../../bench/lab.js';
import { explainBoot, isMac, pxeCli, startPxeServe, writeSiteConfig, type LogLine } from '../helpers/e2e.js';
import { startLocalMirror, type LocalMirror } from '../helpers/mirror.js';

const run = promisify(execFile);
/** milestones on the serial console, timed for the firmware matrix */
const PHASES = {
  shim: /NBP filename is shimx64\.efi/,
  grub: /Welcome to GRUB/,
  kernel: /EFI stub: UEFI Secure Boot is enabled|Booting `/,
  marker: /PXE-E2E-OK/,
};
const MAC_HOST = '52:54:00:5b:00:01';
const MAC_UNLISTED = '52:54:00:5b:00:02';
const MAC_UNSIGNED = '52:54:00:5b:00:03';

/** The kernel with its Authenticode signature cut off: the PE security directory (data directory 4) zeroed. */
function stripSignature(pe: Buffer): Buffer {
  const out = Buffer.from(pe);
  const opt = out.readUInt32LE(0x3c) + 24; // "PE\0\0" + COFF header
  if (out.readUInt16LE(opt) !== 0x20b) throw new Error('not a PE32+ image');
  const security = opt + 112 + 4 * 8;
  const certOffset = out.readUInt32LE(security);
  if (certOffset === 0) throw new Error('the kernel carries no signature to strip');
  out.fill(0, security, security + 8);
  return out.subarray(0, certOffset);
}

describe('e2e: Secure Boot (OVMF, Microsoft keys): shim -> signed GRUB -> signed kernel, provisioned by pxe sync', () => {
  let lab: Lab | undefined;
  let mirror: LocalMirror | undefined;
  let server: LabProcess;
  let syncOut = '';

  beforeAll(async () => {
    const cli = pxeCli();
    const assets = await ensureAssets();
    // What the site DHCP server must say, as pxe prints it.
    const site = await run(
      process.execPath,
      [cli, 'dhcp-config', '--format', 'dnsmasq', '--next-server-only', '--server-address', LAB_NET.server],
      { timeout: 20_000 },
    );
    lab = await startLab({ siteConfig: site.stdout });
    const dir = join(lab.runDir, 'site');
    const root = join(dir, 'tftproot');
    mkdirSync(join(dir, 'distros'), { recursive: true });
    mkdirSync(root, { recursive: true });

    mirror = await startLocalMirror();
    mirror.put('e2e/boot/vmlinuz', readFileSync(assets.vmlinuz));
    mirror.put('e2e/boot/vmlinuz-unsigned', stripSignature(readFileSync(assets.vmlinuz)));
    mirror.put('e2e/boot/initrd.gz', readFileSync(assets.initrd));
    const entry = (id: string, kernel: string, cfg: string) => ({
      id,
      label: `E2E ${id}`,
      group: 'Tools',
      mirror: mirror!.url('e2e'),
      versions: [{ version: '1' }],
      architectures: ['x86_64'],
      boot: { method: 'linux', kernel, initrd: 'boot/initrd.gz' },
      // the marker's sb= reads the kernel's "secureboot: Secure boot enabled" from its ring buffer
      append: `console=ttyS0 panic=-1 loglevel=1 cfg=${cfg}`,
      trust: 'unverified',
    });
    writeFileSync(
      join(dir, 'distros', 'e2e.yaml'),
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
          entry('e2e-menu', 'boot/vmlinuz', 'grub-menu'),
          entry('e2e-host', 'boot/vmlinuz', 'grub-host'),
          entry('e2e-unsigned', 'boot/vmlinuz-unsigned', 'unsigned'),
        ],
      }),
    );
    writeFileSync(
      join(dir, 'hosts.yaml'),
      toYaml({
        hosts: {
          [MAC_HOST]: { hostname: 'sb-host', entry: 'e2e-host' },
          [MAC_UNSIGNED]: { hostname: 'sb-unsigned', entry: 'e2e-unsigned' },
        },
      }),
    );
    // no bootFiles.efi-x64: dhcp.efiX64Chain `auto` picks shim once sync installed it
    const cfgFile = writeSiteConfig(dir, root, { menu: { default: 'e2e-menu', timeoutSeconds: 1 } });
    // a full sync: the bootloaders (shim + GRUB from the Debian packages) and every entry
    syncOut = (await run(process.execPath, [cli, 'sync', '--config', cfgFile, '--no-progress'], { timeout: 180_000 })).stdout;
    expect(syncOut).toMatch(/bootloader shimx64\.efi: installed \(\/usr\/lib\/shim\/shimx64\.efi\.signed\)/);
    expect(syncOut).toMatch(/bootloader grubx64\.efi: installed \(\/usr\/lib\/grub\/x86_64-efi-signed\/grubnetx64\.efi\.signed\)/);
    expect(readFileSync(join(root, 'shimx64.efi')).equals(readFileSync('/usr/lib/shim/shimx64.efi.signed'))).toBe(true);

    server = await startPxeServe(lab, cli, cfgFile);
  }, 300_000);

  afterAll(async () => {
    await mirror?.stop();
    await lab?.stop();
  });

  const explain = (r: BootResult) => `${explainBoot(r, server, lab?.runDir, 4000)}\n--- sync ---\n${syncOut}`;
  const served = (from: number, file: string): LogLine[] =>
    server
      .jsonLines()
      .slice(from)
      .filter((l) => l.msg === 'tftp transfer finished' && l.outcome === 'ok' && l.file === file);
  const offers = (mac: string) =>
    server.jsonLines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('proxyDHCP ') && isMac(l.mac, mac));

  async function secureBoot(mac: string, expectRe: RegExp, failFast: RegExp[]): Promise<{ r: BootResult; from: number }> {
    const from = server.jsonLines().length;
    const r = await lab!.bootVm({
      firmware: 'uefi',
      secureBoot: true,
      nic: 'native',
      mac,
      expect: expectRe,
      failFast,
      timeoutMs: 150_000,
      requireSelfExit: expectRe === MARKER,
      phases: PHASES,
    });
    console.info(
      `secure boot ${mac}: ${Object.entries(r.phaseMs)
        .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
        .join(', ')}, end ${(r.durationMs / 1000).toFixed(1)} s`,
    );
    expect(r.reason, explain(r)).toBe('marker');
    // the firmware got shim from the proxy, shim loaded GRUB beside it
    expect(
      offers(mac).map((l) => l.file),
      explain(r),
    ).toContain('shimx64.efi');
    expect(served(from, 'shimx64.efi'), explain(r)).not.toHaveLength(0);
    expect(served(from, 'grubx64.efi'), explain(r)).not.toHaveLength(0);
    return { r, from };
  }

  it('listed host without arch: grub/grub.cfg sends GRUB to grub/client/x86_64/<its MAC>.cfg; the kernel runs with Secure Boot enabled', async () => {
    const { r, from } = await secureBoot(MAC_HOST, MARKER, [...FAIL_FAST, /bad shim signature/]);
    expect(r.match?.[1], explain(r)).toBe('grub-host');
    expect(r.match?.[2], explain(r)).toBe('uefi');
    expect(r.match?.[3], explain(r)).toBe('on');
    expect(served(from, 'grub/grub.cfg'), explain(r)).not.toHaveLength(0);
    const hostCfg = served(from, `grub/client/x86_64/${MAC_HOST}.cfg`);
    expect(hostCfg, explain(r)).not.toHaveLength(0);
    expect(
      hostCfg.every((l) => l.virtual === true),
      explain(r),
    ).toBe(true);
    expect(served(from, 'images/e2e-host/1/x86_64/vmlinuz'), explain(r)).not.toHaveLength(0);
  }, 180_000);

  it("unlisted MAC: the x86_64 menu's default (an entry inside a submenu) boots, Secure Boot enabled", async () => {
    const { r, from } = await secureBoot(MAC_UNLISTED, MARKER, [...FAIL_FAST, /bad shim signature/]);
    expect(r.match?.[1], explain(r)).toBe('grub-menu');
    expect(r.match?.[3], explain(r)).toBe('on');
    // the menu came as this client's file (GRUB named its MAC and CPU), rendered for x86_64
    const menu = served(from, `grub/client/x86_64/${MAC_UNLISTED}.cfg`);
    expect(menu, explain(r)).not.toHaveLength(0);
    expect(
      menu.every((l) => l.virtual === true),
      explain(r),
    ).toBe(true);
    expect(served(from, 'images/e2e-menu/1/x86_64/vmlinuz'), explain(r)).not.toHaveLength(0);
  }, 180_000);

  it('a kernel without its signature is refused by GRUB (through shim) and never runs', async () => {
    const { r, from } = await secureBoot(MAC_UNSIGNED, /bad shim signature/, [...FAIL_FAST, MARKER]);
    expect(served(from, 'images/e2e-unsigned/1/x86_64/vmlinuz-unsigned'), explain(r)).not.toHaveLength(0);
    expect(r.serialLog, explain(r)).not.toMatch(/PXE-E2E-OK/);
  }, 180_000);
});
