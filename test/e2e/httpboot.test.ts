/**
 * UEFI HTTP boot behind a pure proxy: OVMF's own network stack (no option ROM), its
 * "UEFI HTTPv4" boot option, and no change to the site DHCP server.
 *
 * OVMF's HTTP boot sends DISCOVER with option 60 "HTTPClient:Arch:00016" and 93 = 16.
 * With `dhcp.httpClient` the proxy answers it with option 60 "HTTPClient" and the URI
 * in `file` (UEFI 2.x §24.7; edk2 HttpBootDxe takes the URI from such a proxy offer
 * next to the site server's address-only offer). The URI here is iPXE's snponly.efi,
 * which `pxe sync --bootloaders-only` provisions from Debian's ipxe package; iPXE then
 * asks DHCP again (option 77 "iPXE"), gets the boot.ipxe URL, and, as a client not in
 * hosts.yaml, the rendered iPXE menu (templates/ipxe-menu.njk), whose `menu.default`
 * entry it boots after the 1 s timeout. One boot proves HTTP boot from a proxy offer,
 * the provisioned iPXE loader, and the iPXE menu for unknown iPXE clients; nothing of
 * it uses TFTP.
 *
 * OVMF's boot order tries PXEv4 and PXEv6 before HTTPv4, and each waits through its
 * DHCP retries when nothing offers PXE (~200 s in all, measured). The fw_cfg knobs
 * opt/org.tianocore/IPv4PXESupport and IPv6PXESupport = n turn PXE off in the firmware,
 * as a site that boots over HTTP only would set it; `bootFiles.efi-x64` is null too.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { ensureAssets, FAIL_FAST, MARKER, startLab, type BootResult, type Lab, type LabProcess } from '../../bench/lab.js';
import { E2E_HTTP_PORT, explainBoot, isMac, pxeCli, pxeSync, startPxeServe, writeSiteConfig, type LogLine } from '../helpers/e2e.js';
import { startLocalMirror, type LocalMirror } from '../helpers/mirror.js';

const MAC = '52:54:00:e2:40:01';

describe('e2e: UEFI HTTP boot (OVMF HTTPv4) from a proxy offer -> iPXE snponly.efi -> rendered iPXE menu', () => {
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
            append: 'console=ttyS0 panic=-1 loglevel=1 cfg=ipxe-menu',
            trust: 'unverified',
          },
        ],
      }),
    );
    const base = `http://${lab.serverAddress}:${E2E_HTTP_PORT}`;
    const cfgFile = writeSiteConfig(site, root, {
      menu: { default: 'e2e-marker', timeoutSeconds: 1 },
      dhcp: {
        httpClient: true,
        bootFiles: { 'efi-x64': null, 'efi-x64-http': `${base}/files/ipxe/snponly.efi`, ipxe: `${base}/boot.ipxe?mac=\${net0/mac}` },
      },
    });
    const bl = await promisify(execFile)(process.execPath, [cli, 'sync', '--config', cfgFile, '--bootloaders-only', '--no-progress'], {
      timeout: 60_000,
    });
    expect(readFileSync(join(root, 'ipxe', 'snponly.efi')).equals(readFileSync('/usr/lib/ipxe/snponly.efi')), bl.stdout).toBe(true);
    expect(await pxeSync(cli, cfgFile, 'e2e-marker')).toMatch(/e2e-marker 1 x86_64: installed/);
    server = await startPxeServe(lab, cli, cfgFile);
  }, 300_000);

  afterAll(async () => {
    await mirror?.stop();
    await lab?.stop();
  });

  const explain = (r: BootResult) => explainBoot(r, server, lab?.runDir, 4000);
  const http = (from: number): LogLine[] =>
    server
      .jsonLines()
      .slice(from)
      .filter((l) => l.msg === 'http request');

  it('OVMF HTTPv4 takes the URI from the proxy offer; iPXE from it boots the menu default, no TFTP at all', async () => {
    const from = server.jsonLines().length;
    const r = await lab!.bootVm({
      firmware: 'uefi',
      nic: 'native',
      mac: MAC,
      expect: MARKER,
      failFast: FAIL_FAST,
      timeoutMs: 150_000,
      extraArgs: ['-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=n', '-fw_cfg', 'name=opt/org.tianocore/IPv6PXESupport,string=n'],
      phases: { pxe4: /Start PXE over IPv4/, http4: /Start HTTP Boot over IPv4/, ipxe: /iPXE initialising|iPXE \d/ },
    });
    console.log(`HTTP boot ${MAC}: marker after ${r.markerMs} ms, phases ${JSON.stringify(r.phaseMs)}`);
    expect(r.reason, explain(r)).toBe('marker');
    expect(r.exitedByItself, explain(r)).toBe(true);
    expect(r.match?.[1], explain(r)).toBe('ipxe-menu');
    expect(r.match?.[2], explain(r)).toBe('uefi');
    const lines = server.jsonLines().slice(from);
    // the proxy's HTTPClient answer, then the iPXE one
    const replies = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('proxyDHCP ') && isMac(l.mac, MAC));
    expect(
      replies.some((l) => String(l.file).endsWith('/files/ipxe/snponly.efi')),
      explain(r),
    ).toBe(true);
    const urls = http(from).map((l) => String(l.url));
    expect(urls[0], explain(r)).toBe('/files/ipxe/snponly.efi');
    expect(
      urls.some((u) => u.startsWith('/boot.ipxe')),
      explain(r),
    ).toBe(true);
    expect(urls, explain(r)).toEqual(
      expect.arrayContaining(['/files/images/e2e-marker/1/x86_64/vmlinuz', '/files/images/e2e-marker/1/x86_64/initrd.gz']),
    );
    expect(
      lines.filter((l) => l.msg === 'tftp transfer finished'),
      explain(r),
    ).toHaveLength(0);
    // the menu (not a host script) was rendered: the client is not in hosts.yaml
    expect(r.serialLog, explain(r)).toMatch(/E2E marker kernel/);
  }, 300_000);
});
