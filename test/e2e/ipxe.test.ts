/**
 * iPXE clients booted by an iPXE script over HTTP instead of pxelinux: pxe.yaml
 * `dhcp.bootFiles.ipxe` gives iPXE (option 77 "iPXE") the URL of `/boot.ipxe`, the
 * script is rendered per host from hosts.yaml (templates/ipxe-host.njk), and kernel +
 * initrd come over HTTP from `/files/` after `pxe sync` installed them from a local
 * mirror (an unverified catalog entry made for this test).
 *
 * Both ROM flavours: the BIOS iPXE and the 2019 EFI iPXE, which needs `initrd=<name>` on
 * the kernel line or the kernel finds no initramfs ("VFS: Unable to mount root fs").
 *
 * Last, the default for BIOS iPXE without a script (dhcp.ipxeHttp): pxelinux.0 as an
 * HTTP URL, after which pxelinux fetches everything through iPXE over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { ensureAssets, FAIL_FAST, MARKER, startLab, type BootResult, type Lab, type LabProcess } from '../../bench/lab.js';
import { isMac, pxeCli, pxeSync, type LogLine, writeSiteConfig, startPxeServe, explainBoot, E2E_HTTP_PORT } from '../helpers/e2e.js';
import { startLocalMirror, type LocalMirror } from '../helpers/mirror.js';
import { launchChromium } from '../helpers/browser.js';

const MAC_BIOS = '52:54:00:e2:e0:31';
const MAC_UEFI = '52:54:00:e2:e0:32';

describe('e2e: iPXE script over HTTP (bootFiles.ipxe, rendered per host, files over HTTP)', () => {
  let lab: Lab | undefined;
  let mirror: LocalMirror | undefined;
  let server: LabProcess;

  beforeAll(async () => {
    const cli = pxeCli();
    const assets = await ensureAssets();
    lab = await startLab();
    const site = join(lab.runDir, 'site');
    const root = join(site, 'tftproot');
    mkdirSync(join(site, 'distros'), { recursive: true });
    mkdirSync(root, { recursive: true });
    // pxelinux is never used here; an iPXE client that got it would not print cfg=ipxe-script.
    copyFileSync(assets.pxelinux, join(root, 'pxelinux.0'));
    copyFileSync(assets.ldlinuxC32, join(root, 'ldlinux.c32'));

    mirror = await startLocalMirror();
    mirror.put('e2e/boot/vmlinuz', readFileSync(assets.vmlinuz));
    mirror.put('e2e/boot/initrd.gz', readFileSync(assets.initrd));
    writeFileSync(
      join(site, 'distros', 'e2e.yaml'),
      toYaml({
        entries: [
          {
            id: 'e2e-marker',
            label: 'E2E marker kernel',
            group: 'Tools',
            mirror: mirror.url('e2e'),
            versions: [{ version: '1' }],
            architectures: ['x86_64'],
            boot: { method: 'linux', kernel: 'boot/vmlinuz', initrd: 'boot/initrd.gz' },
            append: 'console=ttyS0 panic=-1 quiet cfg=ipxe-script',
            trust: 'unverified',
          },
        ],
      }),
    );
    const host = (hostname: string) => ({ hostname, entry: 'e2e-marker', version: '1' });
    writeFileSync(join(site, 'hosts.yaml'), toYaml({ hosts: { [MAC_BIOS]: host('e2e-bios'), [MAC_UEFI]: host('e2e-uefi') } }));
    const cfgFile = writeSiteConfig(site, root, {
      // iPXE expands ${net0/mac} in the DHCP filename (autoboot's expand_settings),
      // so the script request names its MAC.
      dhcp: { bootFiles: { ipxe: `http://${lab.serverAddress}:${E2E_HTTP_PORT}/boot.ipxe?mac=\${net0/mac}` } },
    });
    // sync runs in the root namespace, where the mirror listens on 127.0.0.1
    const sync = await pxeSync(cli, cfgFile, 'e2e-marker');
    expect(sync).toMatch(/e2e-marker 1 x86_64: installed/);

    server = await startPxeServe(lab, cli, cfgFile);
  }, 300_000);

  afterAll(async () => {
    await mirror?.stop();
    await lab?.stop();
  });

  const explain = (r: BootResult) => explainBoot(r, server);

  const http = (pred: (url: string) => boolean): LogLine[] =>
    server.jsonLines().filter((l) => typeof l.url === 'string' && pred(l.url) && l.status === 200);

  async function bootAndCheck(firmware: 'bios' | 'uefi', mac: string): Promise<void> {
    const r = await lab!.bootVm({ firmware, mac, expect: MARKER, failFast: FAIL_FAST, timeoutMs: firmware === 'bios' ? 90_000 : 150_000 });
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[1]).toBe('ipxe-script');
    expect(r.match?.[2]).toBe(firmware);
    // the proxy handed iPXE the script URL, not an NBP
    const offers = server.jsonLines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('proxyDHCP ') && isMac(l.mac, mac));
    expect(offers.length, explain(r)).toBeGreaterThan(0);
    expect(
      offers.every((l) => String(l.file).startsWith(`http://${lab!.serverAddress}:${E2E_HTTP_PORT}/boot.ipxe`)),
      explain(r),
    ).toBe(true);
    // the script was requested for this MAC, then kernel and initrd over HTTP
    const script = http((u) => {
      const m = /^\/boot\.ipxe\?mac=([^&]+)$/.exec(u);
      return m !== null && isMac(decodeURIComponent(m[1]!), mac);
    });
    expect(script, explain(r)).not.toHaveLength(0);
    expect(http((u) => u.startsWith('/files/') && u.endsWith('/vmlinuz')).length, explain(r)).toBeGreaterThan(0);
    expect(http((u) => u.startsWith('/files/') && u.endsWith('/initrd.gz')).length, explain(r)).toBeGreaterThan(0);
  }

  it('SeaBIOS + iPXE ROM boots the rendered host script', async () => {
    await bootAndCheck('bios', MAC_BIOS);
  }, 120_000);

  it('OVMF + iPXE EFI ROM boots the rendered host script (initrd= quirk)', async () => {
    await bootAndCheck('uefi', MAC_UEFI);
  }, 180_000);

  it('SeaBIOS + iPXE ROM with the defaults (no bootFiles.ipxe): pxelinux.0 over HTTP, then its per-host config, kernel and initrd over HTTP too, nothing over TFTP', async () => {
    // the same site without the script URL: dhcp.ipxeHttp (on by default) applies
    await server.stop();
    const site = join(lab!.runDir, 'site');
    const cfgFile = writeSiteConfig(site, join(site, 'tftproot'));
    server = await startPxeServe(lab!, pxeCli(), cfgFile);

    // The dashboard is open (Chromium inside the server's namespace) before the machine
    // boots: its row appears and its timeline fills to "kernel loaded" live, no reload.
    const browser = await launchChromium(lab!.ns.pxe);
    const page = await browser.newPage();
    await page.goto(`http://${lab!.serverAddress}:${E2E_HTTP_PORT}/`);
    const row = page.locator(`#m-${MAC_BIOS.replace(/:/g, '')}`);
    const live = row.locator('.stage', { hasText: 'kernel loaded' }).waitFor({ timeout: 90_000 });
    const r = await lab!.bootVm({ firmware: 'bios', mac: MAC_BIOS, expect: MARKER, failFast: FAIL_FAST, timeoutMs: 90_000 });
    try {
      await live;
      await row.locator('summary').click();
      // pxelinux.0 and ldlinux.c32 come before any request names the MAC: they are
      // in the log under the client's IP only, so the timeline starts at the config
      const steps = (await row.locator('ol.tl li').allTextContents()).join('\n');
      expect(steps, steps).toMatch(/DHCP offer http:\/\/10\.77\.0\.10:8080\/files\/pxelinux\.0/);
      expect(steps, steps).toMatch(/HTTP pxelinux\.cfg\/01-52-54-00-e2-e0-31/);
      expect(steps, steps).toMatch(/HTTP images\/e2e-marker\/1\/x86_64\/vmlinuz/);
      expect(steps, steps).toMatch(/HTTP images\/e2e-marker\/1\/x86_64\/initrd\.gz/);
      expect(await row.textContent()).toContain('e2e-marker');
      mkdirSync('test-artifacts', { recursive: true });
      await page.screenshot({ path: join('test-artifacts', 'dashboard-boot.png'), fullPage: true });
    } finally {
      await browser.close();
    }
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[2]).toBe('bios');
    // pxelinux ran (the config it read is the host's, rendered from pxelinux-host.njk)
    expect(r.serialLog, explain(r)).toMatch(/PXELINUX \d/);
    const offers = server.jsonLines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('proxyDHCP ') && isMac(l.mac, MAC_BIOS));
    expect(offers.length, explain(r)).toBeGreaterThan(0);
    expect(
      offers.every((l) => l.file === `http://${lab!.serverAddress}:${E2E_HTTP_PORT}/files/pxelinux.0`),
      explain(r),
    ).toBe(true);
    const hostCfg = `/files/pxelinux.cfg/01-${MAC_BIOS.replace(/:/g, '-')}`;
    for (const url of ['/files/pxelinux.0', '/files/ldlinux.c32', hostCfg]) {
      expect(
        http((u) => u === url),
        `${url} over HTTP\n${explain(r)}`,
      ).not.toHaveLength(0);
    }
    expect(http((u) => u.startsWith('/files/') && u.endsWith('/vmlinuz')).length, explain(r)).toBeGreaterThan(0);
    expect(http((u) => u.startsWith('/files/') && u.endsWith('/initrd.gz')).length, explain(r)).toBeGreaterThan(0);
    // TFTP carried nothing for this boot
    expect(
      server.jsonLines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('tftp transfer')),
      explain(r),
    ).toHaveLength(0);
  }, 120_000);
});
