/**
 * `pxe doctor` in a namespace lab: a switch (bridge) with the pxe host, the site DHCP
 * server (dnsmasq, addresses only) and, for the bad case, a second proxyDHCP (dnsmasq in
 * proxy mode, as a forgotten PXE server on the segment would be). The doctor runs through
 * the real CLI inside the pxe host's namespace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { NetnsLab, waitFor } from '../helpers/netns.js';

const CLI = resolve('dist/cli.js');

interface Finding {
  severity: 'ok' | 'info' | 'warn' | 'error';
  check: string;
  message: string;
  fix?: string;
}

describe('pxe doctor (namespace lab, dnsmasq as site DHCP and as a rogue proxyDHCP)', () => {
  const lab = new NetnsLab('doctor');
  let pxe: string;
  let site: string;
  let rogue: string;
  let dir: string;
  let siteDhcp: ChildProcess | undefined;

  const dnsmasq = (ns: string, iface: string, name: string, extra: string[]): ChildProcess =>
    lab.spawn(ns, [
      'dnsmasq',
      '--no-daemon',
      '--conf-file=/dev/null',
      '--port=0',
      `--interface=${iface}`,
      '--bind-interfaces',
      '--user=root',
      '--group=root',
      `--pid-file=${join(dir, `${name}.pid`)}`,
      `--dhcp-leasefile=${join(dir, `${name}.leases`)}`,
      '--log-dhcp',
      '--log-facility=-',
      ...extra,
    ]);

  const startSite = async (withDns: boolean): Promise<void> => {
    if (siteDhcp) await lab.stop(siteDhcp);
    siteDhcp = dnsmasq(site, 's0', 'site', [
      '--dhcp-range=10.71.0.100,10.71.0.150,255.255.255.0,1h',
      '--dhcp-option=3,10.71.0.1',
      ...(withDns ? ['--dhcp-option=6,10.71.0.1'] : []),
    ]);
    await lab.waitForUdpPort(site, 67);
  };

  const doctor = async (): Promise<{ code: number | null; findings: Finding[]; text: string }> => {
    const cfg = join(dir, 'pxe.yaml');
    const r = await lab.exec(pxe, [process.execPath, CLI, 'doctor', '--config', cfg, '--json'], 30_000);
    const t = await lab.exec(pxe, [process.execPath, CLI, 'doctor', '--config', cfg], 30_000);
    expect(t.code, `${t.stderr}\n${r.stdout}`).toBe(r.code);
    const parsed = JSON.parse(r.stdout) as { findings: Finding[] };
    return { code: r.code, findings: parsed.findings, text: t.stdout };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pxe-doctor-'));
    const root = join(dir, 'tftproot');
    mkdirSync(root);
    writeFileSync(join(root, 'pxelinux.0'), Buffer.alloc(1024, 1));
    writeFileSync(
      join(dir, 'pxe.yaml'),
      [
        'tftp:',
        '  root: ./tftproot',
        'dhcp:',
        '  bootFiles:',
        '    efi-x64: null',
        `stateDir: ./state`,
        `hostsFile: ./hosts.yaml`,
        '',
      ].join('\n'),
    );
    const sw = await lab.netns('sw');
    pxe = await lab.netns('pxe');
    site = await lab.netns('site');
    rogue = await lab.netns('rogue');
    await lab.bridge(sw, 'br0');
    for (const [ns, ifc, port, addr] of [
      [pxe, 'p0', 'swp', '10.71.0.2/24'],
      [site, 's0', 'sws', '10.71.0.1/24'],
      [rogue, 'r0', 'swr', '10.71.0.3/24'],
    ] as const) {
      await lab.veth(ns, ifc, addr, sw, port);
      await lab.attach(sw, port, 'br0');
    }
  });

  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports a healthy lab clean: the site DHCP with router and name server, its own proxyDHCP, its ports held by pxe serve', async () => {
    await startSite(true);
    const serve = lab.spawn(pxe, [process.execPath, CLI, 'serve', '--config', join(dir, 'pxe.yaml'), '--log-level', 'warn']);
    let log = '';
    serve.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    serve.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    try {
      await lab.waitForUdpPort(pxe, 4011, 40_000).catch(async (e: Error) => {
        throw new Error(`${e.message}; pxe serve said: ${log}; ss: ${(await lab.exec(pxe, ['ss', '-Hunlp'])).stdout}`);
      });
      await lab.waitForUdpPort(pxe, 69);
      await waitFor(async () => (await lab.exec(pxe, ['ss', '-Htln', 'sport = :8080'])).stdout.trim().length > 0, 10_000, 'HTTP 8080');
      const { code, findings, text } = await doctor();
      const bad = findings.filter((f) => f.severity === 'error' || f.severity === 'warn');
      expect(bad, text).toEqual([]);
      expect(code).toBe(0);
      expect(text).toContain('no problems found');
      const msgs = findings.map((f) => f.message);
      expect(msgs).toContainEqual(
        expect.stringMatching(
          /DHCP server 10\.71\.0\.1 offers addresses \(10\.71\.0\.1\d\d\), router 10\.71\.0\.1, name server 10\.71\.0\.1/,
        ),
      );
      expect(msgs).toContainEqual(
        expect.stringMatching(/this host's proxyDHCP \(10\.71\.0\.2\) answers PXE clients: .*boot file "pxelinux\.0"/),
      );
      for (const p of ['UDP 67', 'UDP 4011', 'UDP 69', 'TCP 8080'])
        expect(msgs).toContainEqual(expect.stringMatching(new RegExp(`^${p} is held by pxe serve`)));
      expect(msgs).toContainEqual(expect.stringMatching(/^bios: pxelinux\.0 is present/));
    } finally {
      await lab.stop(serve);
    }
  });

  it('names a second proxyDHCP, flags a site DHCP without a name server and port 69 taken by another program, and exits 1', async () => {
    await startSite(false);
    dnsmasq(rogue, 'r0', 'rogue', ['--dhcp-range=10.71.0.0,proxy', '--pxe-service=x86PC,Rogue boot,rogue']);
    await lab.waitForUdpPort(rogue, 67);
    const tftpd = lab.spawn(pxe, ['in.tftpd', '--listen', '--foreground', '--address', '0.0.0.0:69', '--secure', dir]);
    try {
      await lab.waitForUdpPort(pxe, 69);
      const { code, findings, text } = await doctor();
      expect(code, text).toBe(1);
      const find = (sev: Finding['severity'], re: RegExp): Finding | undefined =>
        findings.find((f) => f.severity === sev && re.test(f.message));
      const second = find('error', /another proxyDHCP\/PXE server at 10\.71\.0\.3/);
      expect(second, text).toBeDefined();
      expect(second?.message).toContain('"Rogue boot"');
      expect(find('warn', /DHCP server 10\.71\.0\.1 gives no name server \(option 6\)/), JSON.stringify(findings)).toBeDefined();
      const port = find('error', /^UDP 69 is taken by in\.tftpd \(pid \d+\)/);
      expect(port, text).toBeDefined();
      expect(port?.fix).toContain('tftp.port');
      // the site server still offers addresses, and gives a router
      expect(find('warn', /no router/)).toBeUndefined();
      expect(find('error', /no DHCP server offered an address/)).toBeUndefined();
    } finally {
      await lab.stop(tftpd);
    }
  });
});
