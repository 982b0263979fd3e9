/**
 * Harness self-check: the same lab and the same QEMU boot as boot.test.ts, but with
 * dnsmasq (proxy mode + its TFTP) as the PXE server. When boot.test.ts fails and this
 * passes, the fault is in `pxe`, not in namespaces, firmware or assets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { dnsmasqProxyArgs, ensureAssets, FAIL_FAST, MARKER, startLab, writeTftpRoot, type Lab, type LabProcess } from '../../bench/lab.js';

const MAC = '52:54:00:e2:e0:01';

describe('e2e harness self-check (dnsmasq as the PXE server)', () => {
  let lab: Lab | undefined;
  let server: LabProcess;
  let tftpRoot: string;

  beforeAll(async () => {
    const assets = await ensureAssets();
    lab = await startLab();
    tftpRoot = writeTftpRoot(join(lab.runDir, 'tftproot'), assets, [MAC]);
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

  it('reports a boot that cannot succeed as a failure without waiting for the timeout', async () => {
    // SeaBIOS has no PXE client of its own: without the iPXE option ROM there is
    // nothing to boot, and the harness must say so (fail-fast), not hang or pass.
    const r = await lab!.bootVm({
      firmware: 'bios',
      nic: 'native',
      mac: '52:54:00:e2:e0:02',
      expect: MARKER,
      failFast: FAIL_FAST,
      timeoutMs: 60_000,
    });
    expect(r.ok).toBe(false);
    expect(r.reason, r.serialLog.slice(-2000)).toBe('fail-fast: No bootable device');
    expect(r.match).toBeNull();
  }, 90_000);
});

describe('e2e lab teardown', () => {
  it('kills what it started and deletes its namespaces', async () => {
    const lab = await startLab();
    const names = Object.values(lab.ns);
    const listed = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    let p: LabProcess;
    try {
      for (const n of names) expect(listed()).toContain(n);
      // a process that binds a UDP port in the pxe namespace and would run forever
      const script = "require('node:dgram').createSocket('udp4').bind(6969, '0.0.0.0')";
      p = await lab.runServer(process.execPath, ['-e', script], { name: 'udp-sleeper', udpPorts: [6969] });
      expect(p.exited()).toBe(false);
    } finally {
      await lab.stop();
    }
    expect(p.exited()).toBe(true);
    for (const n of names) expect(listed()).not.toContain(n);
    expect(() => process.kill(p.pid, 0)).toThrow();
  }, 60_000);
});
