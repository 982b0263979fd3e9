/**
 * U-Boot boards (Debian's u-boot-qemu, qemu_arm64, on qemu-system-aarch64 -M virt with an
 * e1000 NIC: with virtio-net this U-Boot reads its MAC as 52:52:52:52:52:52) booting
 * through `pxe serve` with no key pressed.
 *
 * U-Boot drops every DHCP reply without an address, so no proxy offer reaches it: the
 * site DHCP server (dnsmasq) runs with exactly what `pxe dhcp-config --format dnsmasq`
 * prints (next-server + boot.scr.uimg for vendor class U-Boot / option 93 = 22). Its
 * distro boot (bootcmd_dhcp) then fetches boot.scr.uimg, which pxe renders (`pxe get;
 * pxe boot`), and `pxe get` walks 01-<mac>, the hex IP, default-arm. The kernel is
 * Debian's arm64 Image and the busybox-static:arm64 marker initrd, installed by `pxe
 * sync` from a local mirror as an aarch64 catalog entry.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { ensureAssets, FAIL_FAST, LAB_NET, MARKER, startLab, type BootResult, type Lab, type LabProcess } from '../../bench/lab.js';
import { explainBoot, pxeCli, pxeSync, startPxeServe, writeSiteConfig, type LogLine } from '../helpers/e2e.js';
import { startLocalMirror, type LocalMirror } from '../helpers/mirror.js';

const MAC_LISTED = '52:54:00:e2:0b:01';
const MAC_UNLISTED = '52:54:00:e2:0b:02';
const ARM_FILES = ['images/e2e-arm/1/aarch64/initrd.gz', 'images/e2e-arm/1/aarch64/vmlinuz'];

describe('e2e: U-Boot (qemu_arm64) boots rendered pxelinux configs; the site DHCP server says next-server', () => {
  let lab: Lab | undefined;
  let mirror: LocalMirror | undefined;
  let server: LabProcess;
  let tmp: string | undefined;

  beforeAll(async () => {
    const cli = pxeCli();
    const assets = await ensureAssets({ arm64: true });
    mirror = await startLocalMirror();
    mirror.put('e2e/arm64/vmlinuz', readFileSync(assets.arm64!.vmlinuz));
    mirror.put('e2e/arm64/initrd.gz', readFileSync(assets.arm64!.initrd));

    // The site DHCP server's extra configuration is pxe's own output, not a hand-written rule.
    tmp = mkdtempSync(join(tmpdir(), 'pxe-uboot-e2e-'));
    const pre = join(tmp, 'pxe.yaml');
    writeFileSync(pre, `serverAddress: ${LAB_NET.server}\n`);
    const { stdout: dnsmasqConf } = await promisify(execFile)(
      process.execPath,
      [cli, 'dhcp-config', '--format', 'dnsmasq', '--config', pre],
      { timeout: 30_000 },
    );
    expect(dnsmasqConf).toContain(`dhcp-boot=tag:uboot,boot.scr.uimg,,${LAB_NET.server}`);
    const siteDhcpArgs = dnsmasqConf
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => `--${l}`);

    lab = await startLab({ siteDhcpArgs });
    const site = join(lab.runDir, 'site');
    const root = join(site, 'tftproot');
    mkdirSync(join(site, 'distros'), { recursive: true });
    mkdirSync(root, { recursive: true });
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
            id: 'e2e-arm',
            label: 'E2E arm64 marker kernel',
            group: 'Tools',
            mirror: mirror.url('e2e'),
            versions: [{ version: '1' }],
            architectures: ['aarch64'],
            boot: { method: 'linux', kernel: 'arm64/vmlinuz', initrd: 'arm64/initrd.gz' },
            append: 'console=ttyAMA0 panic=-1 loglevel=1 cfg=uboot-menu',
            trust: 'unverified',
          },
        ],
      }),
    );
    // cfg= is read last-wins by the initrd: the host's own append names its config
    writeFileSync(
      join(site, 'hosts.yaml'),
      toYaml({ hosts: { [MAC_LISTED]: { hostname: 'board1', entry: 'e2e-arm', arch: 'aarch64', append: 'cfg=uboot-host' } } }),
    );
    const cfgFile = writeSiteConfig(site, root, { menu: { default: 'e2e-arm', timeoutSeconds: 1 } });
    expect(await pxeSync(cli, cfgFile, 'e2e-arm')).toMatch(/e2e-arm 1 aarch64: installed/);
    server = await startPxeServe(lab, cli, cfgFile);
  }, 600_000);

  afterAll(async () => {
    await mirror?.stop();
    await lab?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const explain = (r: BootResult) =>
    `${explainBoot(r, server, lab?.runDir, 4000)}\n--- site dhcp (tail) ---\n${lab?.siteLog().slice(-2500)}`;
  const tftp = (from: number): LogLine[] =>
    server
      .jsonLines()
      .slice(from)
      .filter((l) => l.msg === 'tftp transfer finished' || l.msg === 'tftp request refused');
  const ok = (lines: LogLine[]) => lines.filter((l) => l.msg === 'tftp transfer finished' && l.outcome === 'ok').map((l) => String(l.file));

  async function boot(mac: string): Promise<{ r: BootResult; files: LogLine[] }> {
    const from = server.jsonLines().length;
    const r = await lab!.bootVm({
      firmware: 'uboot',
      model: 'e1000',
      mac,
      memoryMb: 1024,
      expect: MARKER,
      failFast: [...FAIL_FAST, /^=> $/m],
      timeoutMs: 240_000,
      phases: { script: /## Executing script at/, kernelLoaded: /Starting kernel/ },
    });
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[2], explain(r)).toBe('uboot');
    const files = tftp(from);
    // U-Boot's own order: its boot script, then the config, then initrd BEFORE kernel
    const got = ok(files);
    expect(got[0], explain(r)).toBe('boot.scr.uimg');
    expect(got.slice(-2), explain(r)).toEqual(ARM_FILES);
    // the site server, not the proxy, gave U-Boot its next-server and file
    expect(lab!.siteLog(), explain(r)).toMatch(new RegExp(`tags: [^\\n]*uboot[\\s\\S]*DHCPACK\\(site0\\) [0-9.]+ ${mac}`));
    console.log(`U-Boot ${mac}: marker after ${r.markerMs} ms, phases ${JSON.stringify(r.phaseMs)}`);
    return { r, files };
  }

  it('a listed board (arch: aarch64) boots its rendered 01-<mac> (uboot-host.njk)', async () => {
    const { r, files } = await boot(MAC_LISTED);
    expect(r.match?.[1], explain(r)).toBe('uboot-host');
    const cfg = files.find((l) => l.file === `pxelinux.cfg/01-${MAC_LISTED.replace(/:/g, '-')}`);
    expect(cfg?.outcome, explain(r)).toBe('ok');
    expect(cfg?.virtual, explain(r)).toBe(true);
  }, 300_000);

  it('an unlisted board misses 01-<mac> and the hex IP, gets the rendered default-arm and boots the menu default', async () => {
    const { r, files } = await boot(MAC_UNLISTED);
    expect(r.match?.[1], explain(r)).toBe('uboot-menu');
    const asked = files.map((l) => String(l.file));
    const first = asked.indexOf(`pxelinux.cfg/01-${MAC_UNLISTED.replace(/:/g, '-')}`);
    const dflt = asked.indexOf('pxelinux.cfg/default-arm');
    expect(first, explain(r)).toBeGreaterThan(0);
    expect(dflt, explain(r)).toBeGreaterThan(first);
    // between them: the upper-case hex IP, shortened digit by digit (0A4D00xx ... 0)
    expect(asked.slice(first + 1, dflt), explain(r)).toEqual(expect.arrayContaining(['pxelinux.cfg/0A4D00', 'pxelinux.cfg/0']));
    expect(files[dflt]?.virtual, explain(r)).toBe(true);
    // U-Boot stops at default-arm: the x86 menu (pxelinux.cfg/default) is never asked for
    expect(asked, explain(r)).not.toContain('pxelinux.cfg/default');
    // the menu waited its 1 s timeout and took DEFAULT without a key
    expect(r.serialLog, explain(r)).toMatch(/E2E arm64 marker kernel/);
  }, 300_000);
});
