/**
 * The real Debian 12 installer (debian-installer-12-netboot-amd64) PXE-boots through
 * `pxe serve` (proxyDHCP + TFTP for pxelinux, the kernel and the 40 MB initrd) and
 * starts an automated install: the test passes when the installer, having configured
 * its network from the site DHCP server, requests its preseed URL from pxe's HTTP
 * server. That proves the whole chain a real unattended install depends on, up to the
 * point where the answers file takes over.
 *
 * d-i asks for a name server before fetching the preseed unless DHCP gave one: the
 * lab's site server sends option 6.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ensureAssets,
  FAIL_FAST,
  pxeServeArgs,
  pxelinuxMacFile,
  PXE_UDP_PORTS,
  startLab,
  writeTftpRoot,
  type Lab,
  type LabProcess,
} from '../../src/bench/lab.js';
import { pxeCli, tail } from '../helpers/e2e.js';

const MAC = '52:54:00:e2:e0:d1';
const HTTP_PORT = 8080;

describe('e2e: Debian 12 installer through pxe serve', () => {
  let lab: Lab | undefined;
  let server: LabProcess;
  let preseedPath: string;

  beforeAll(async () => {
    pxeCli();
    const assets = await ensureAssets({ installer: true });
    lab = await startLab();
    const root = writeTftpRoot(join(lab.runDir, 'tftproot'), assets);
    mkdirSync(join(root, 'd-i'), { recursive: true });
    copyFileSync(assets.installer!.linux, join(root, 'd-i', 'linux'));
    copyFileSync(assets.installer!.initrd, join(root, 'd-i', 'initrd.gz'));
    preseedPath = `/unattended/${MAC}/preseed.cfg`;
    const url = `http://${lab.serverAddress}:${HTTP_PORT}${preseedPath}`;
    // Same kernel arguments as the catalog's debian entry (distros/debian.yaml `automation`).
    writeFileSync(
      join(root, 'pxelinux.cfg', pxelinuxMacFile(MAC)),
      [
        'DEFAULT install',
        'PROMPT 0',
        'TIMEOUT 0',
        'LABEL install',
        '  KERNEL d-i/linux',
        `  APPEND initrd=d-i/initrd.gz auto=true priority=critical url=${url} netcfg/get_hostname=e2e netcfg/choose_interface=auto console=ttyS0 --- quiet`,
        '',
      ].join('\n'),
    );
    server = await lab.runServer('node', pxeServeArgs(lab, root, { http: true, httpPort: HTTP_PORT }), {
      name: 'pxe-serve',
      udpPorts: PXE_UDP_PORTS,
      tcpPorts: [HTTP_PORT],
      readyTimeoutMs: 30_000,
    });
  }, 600_000);

  afterAll(async () => {
    await lab?.stop();
  });

  const preseedRequests = () =>
    server.jsonLines().filter((l) => typeof l.url === 'string' && l.url.startsWith(preseedPath));

  it('boots d-i over PXE and d-i requests its preseed URL over HTTP', async () => {
    const r = await lab!.bootVm({
      firmware: 'bios',
      mac: MAC,
      memoryMb: 1024, // the 40 MB initrd unpacks into RAM; 512 MB is not enough for d-i
      expect: () => preseedRequests().length > 0,
      failFast: FAIL_FAST,
      // ~70 s on an idle host, 124 s measured with other work on the 2 cores (TCG).
      timeoutMs: 180_000,
      requireSelfExit: false, // the installer goes on; the lab kills QEMU
    });
    const why = `boot ended: ${r.reason} after ${r.durationMs} ms\n--- serial (tail) ---\n${r.serialLog.slice(-3000)}\n--- pxe serve log (tail) ---\n${tail(server.jsonLines())}`;
    expect(r.reason, why).toBe('marker');
    const req = preseedRequests()[0]!;
    expect(req.method).toBe('GET');
    // the request came from the installer's DHCP address on the lab LAN (site range)
    expect(String(req.client)).toMatch(/^10\.77\.0\.1\d\d$/);
    expect(lab!.siteLog()).toMatch(new RegExp(`DHCPACK\\(site0\\) 10\\.77\\.0\\.1\\d\\d ${MAC}`));
  }, 240_000);
});
