/**
 * Harness self-check: the same lab and the same QEMU boot as boot.test.ts, but with
 * dnsmasq (proxy mode + its TFTP) as the PXE server. When boot.test.ts fails and this
 * passes, the fault is in `pxe`, not in namespaces, firmware or assets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  dnsmasqProxyArgs,
  ensureAssets,
  FAIL_FAST,
  MARKER,
  startLab,
  writeTftpRoot,
  type Lab,
  type LabProcess,
} from '../../src/bench/lab.js';

const MAC = '52:54:00:e2:e0:01';

describe('e2e harness self-check (dnsmasq as the PXE server)', () => {
  let lab: Lab | undefined;
  let server: LabProcess;
  let tftpRoot: string;

  beforeAll(async () => {
    const assets = await ensureAssets();
    lab = await startLab();
    tftpRoot = writeTftpRoot(mkdtempSync(join(tmpdir(), 'pxe-e2e-tftp-')), assets, [MAC]);
    server = await lab.runServer('dnsmasq', dnsmasqProxyArgs(lab, tftpRoot), { name: 'pxe-dnsmasq', udpPorts: [67, 4011, 69] });
  }, 300_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it('boots SeaBIOS + iPXE -> pxelinux.0 -> per-MAC config -> kernel + initrd', async () => {
    const r = await lab!.bootVm({ firmware: 'bios', mac: MAC, expect: MARKER, failFast: FAIL_FAST, timeoutMs: 90_000 });
    expect(r.reason, r.serialLog.slice(-3000)).toBe('marker');
    expect(r.match?.[1]).toBe('mac');
    expect(r.match?.[2]).toBe('bios');
    expect(r.exitedByItself).toBe(true);
    const log = server.stdout() + server.stderr();
    expect(log).toMatch(/sent \S*pxelinux\.cfg\/01-52-54-00-e2-e0-01 to 10\.77\.0\.1\d\d/);
    // the site server gave the address, not the proxy
    expect(lab!.siteLog()).toMatch(/DHCPACK\(site0\) 10\.77\.0\.1\d\d 52:54:00:e2:e0:01/);
  }, 120_000);
});
