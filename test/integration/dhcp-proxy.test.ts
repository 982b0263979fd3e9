/**
 * The proxyDHCP in a network namespace, clients in another, joined by a veth:
 *   pxe-<pid>-dhcp-srv  s0 10.66.0.1/24   runs dist/dhcp/standalone.js (real PolicyBooter)
 *   pxe-<pid>-dhcp-cli  c0 10.66.0.2/24   runs udhcpc, tcpdump and dist-bench/bench/fuzz/probe.js
 * Needs root, iproute2, busybox (udhcpc) and tcpdump.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, encode, makeRequest, type DhcpPacket } from '../../src/dhcp/codec.js';
import * as o from '../../src/dhcp/options.js';
import { NetnsLab, run, waitFor } from '../helpers/netns.js';

const ROOT = join(import.meta.dirname, '../..');
const STANDALONE = join(ROOT, 'dist/dhcp/standalone.js');
const PROBE = join(ROOT, 'dist-bench/bench/fuzz/probe.js');
const SRV_IP = '10.66.0.1';
const CLI_IP = '10.66.0.2';

const lab = new NetnsLab('dhcp');
let srv = '';
let cli = '';
let proxy: ChildProcess;
const proxyLines: Array<Record<string, unknown>> = [];

function collectJsonLines(p: ChildProcess, into: Array<Record<string, unknown>>): void {
  let buf = '';
  p.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        into.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        into.push({ raw: line });
      }
    }
  });
}

function pxeDiscover(mac: string, xid: number, arch = 0, extra: Array<[number, Buffer]> = []): DhcpPacket {
  const p = makeRequest({ xid, chaddr: Buffer.from(mac.replaceAll(':', ''), 'hex'), flags: 0x8000 });
  p.options.set(53, Buffer.from([1]));
  p.options.set(93, Buffer.from([0, arch]));
  p.options.set(94, Buffer.from([1, 2, 1]));
  p.options.set(60, Buffer.from(`PXEClient:Arch:${String(arch).padStart(5, '0')}:UNDI:002001`));
  for (const [k, v] of extra) p.options.set(k, v);
  return p;
}

function hex(p: DhcpPacket): string {
  const r = encode(p);
  if (!r.ok) throw new Error(r.detail);
  return r.data.toString('hex');
}

interface Reply {
  from: string;
  port: number;
  packet: DhcpPacket;
}

/** Send datagrams from a client namespace and collect replies (bounded by waitMs / expect). */
async function probe(args: string[], waitMs = 2_000, ns = cli): Promise<Reply[]> {
  const r = await lab.exec(ns, ['node', PROBE, '--wait-ms', String(waitMs), ...args], waitMs + 10_000);
  if (r.code !== 0) throw new Error(`probe failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const j = JSON.parse(l) as { from: string; port: number; hex: string };
      const d = decode(Buffer.from(j.hex, 'hex'));
      if (!d.ok) throw new Error(`undecodable reply: ${d.detail}`);
      return { from: j.from, port: j.port, packet: d.packet };
    });
}

async function proxyStats(): Promise<Record<string, number>> {
  const before = proxyLines.length;
  proxy.kill('SIGUSR1');
  const line = await waitFor(() => proxyLines.slice(before).find((l) => l.msg === 'stats'), 5_000, 'stats line');
  return (line?.stats ?? {}) as Record<string, number>;
}

/** tcpdump in the client namespace; resolves once it is capturing. */
async function startCapture(filter: string): Promise<{ proc: ChildProcess; lines: () => string[] }> {
  const out: string[] = [];
  const proc = lab.spawn(cli, ['tcpdump', '-l', '-n', '-i', 'c0', filter]);
  let ready = false;
  proc.stdout?.on('data', (d: Buffer) => out.push(...d.toString().split('\n').filter(Boolean)));
  proc.stderr?.on('data', (d: Buffer) => {
    if (d.toString().includes('listening on')) ready = true;
  });
  await waitFor(() => ready, 10_000, 'tcpdump to start');
  return { proc, lines: () => out };
}

/** dist/ and dist-bench/ are newer than every source the two entry points load (skip a 30 s tsc on a busy host). */
function distIsFresh(): boolean {
  const newestSrc = ['src/dhcp', 'src/boot', 'src/config.ts', 'src/log.ts', 'bench/fuzz']
    .map((p) => join(ROOT, p))
    .flatMap((p) => (statSync(p).isDirectory() ? readdirSync(p).map((f) => join(p, f)) : [p]))
    .reduce((m, f) => Math.max(m, statSync(f).mtimeMs), 0);
  return [STANDALONE, PROBE].every((f) => existsSync(f) && statSync(f).mtimeMs >= newestSrc);
}

beforeAll(async () => {
  // The proxy runs as a separate process inside the namespace (Node cannot setns()),
  // so it needs the compiled entry points. tsc may report errors in other people's
  // files; what matters is that our outputs exist.
  if (!distIsFresh()) {
    await run(['npx', 'tsc', '-p', join(ROOT, 'tsconfig.json')], 180_000);
    await run(['npx', 'tsc', '-p', join(ROOT, 'bench/tsconfig.json')], 180_000);
  }
  expect(existsSync(STANDALONE) && existsSync(PROBE)).toBe(true);

  srv = await lab.netns('srv');
  cli = await lab.netns('cli');
  await lab.veth(srv, 's0', `${SRV_IP}/24`, cli, 'c0', `${CLI_IP}/24`);
  // The client needs a route for 255.255.255.255 to send its broadcast DISCOVER.
  // The server namespace deliberately has none at first (ENETUNREACH fallback test).
  await run(['ip', '-n', cli, 'route', 'add', 'default', 'dev', 'c0']);
  proxy = lab.spawn(srv, ['node', STANDALONE, '--rate', '20', '--log-level', 'debug', '--ipxe', 'http://10.66.0.1/boot.ipxe'], {
    cwd: ROOT,
  });
  collectJsonLines(proxy, proxyLines);
  await lab.waitForUdpPort(srv, 67);
  await lab.waitForUdpPort(srv, 4011);
});

afterAll(async () => {
  await lab.cleanup();
});

describe('proxyDHCP in network namespaces', () => {
  it('without a route for 255.255.255.255: the OFFER is broadcast out of the arrival interface (IP_PKTINFO), no fallback needed', async () => {
    const cap = await startCapture('udp and src host 10.66.0.1 and src port 67');
    const req = pxeDiscover('52:54:00:00:00:01', 0x1001);
    const replies = await probe(['--port', '68', '--to', '255.255.255.255:67', '--hex', hex(req), '--expect', '1']);
    await waitFor(() => cap.lines().length >= 1, 5_000, 'tcpdump to see the offer');
    await lab.stop(cap.proc);
    expect(replies).toHaveLength(1);
    expect(replies[0]?.packet.xid).toBe(0x1001);
    expect(cap.lines()[0]).toContain('10.66.0.1.67 > 255.255.255.255.68');
    expect((await proxyStats()).sendErrors).toBe(0);
    expect(proxyLines.find((l) => String(l.msg).includes('no route for 255.255.255.255'))).toBeUndefined();
  });

  it('a crafted PXE DISCOVER gets a complete OFFER broadcast to 255.255.255.255:68', async () => {
    await run(['ip', '-n', srv, 'route', 'add', 'default', 'dev', 's0']);
    const cap = await startCapture('udp and src host 10.66.0.1 and src port 67');
    const uuid = Buffer.from('00b8945908d6a641a9611d74a6ab80b83d', 'hex');
    const req = pxeDiscover('52:54:00:00:00:02', 0xcafe0002, 0, [[97, uuid]]);
    const replies = await probe(['--port', '68', '--to', '255.255.255.255:67', '--hex', hex(req), '--expect', '1']);
    await waitFor(() => cap.lines().length >= 1, 5_000, 'tcpdump to see the offer');
    await lab.stop(cap.proc);
    expect(cap.lines()[0]).toContain('10.66.0.1.67 > 255.255.255.255.68');

    expect(replies).toHaveLength(1);
    const r = replies[0];
    if (!r) throw new Error('no reply');
    expect(r.from).toBe(SRV_IP);
    expect(r.port).toBe(67);
    const p = r.packet;
    expect(p.op).toBe(2);
    expect(p.xid).toBe(0xcafe0002);
    expect(p.chaddr.toString('hex')).toBe('525400000002');
    expect(p.yiaddr).toBe('0.0.0.0');
    expect(p.ciaddr).toBe('0.0.0.0');
    expect(p.siaddr).toBe(SRV_IP);
    expect(p.file).toBe('pxelinux.0');
    expect(o.messageType(p)).toBe(2);
    expect(o.serverId(p)).toBe(SRV_IP);
    expect(o.vendorClass(p)).toBe('PXEClient');
    expect(p.options.get(97)).toEqual(uuid);
    expect(p.options.get(43)?.toString('hex')).toBe('060108ff');
  });

  it('the real iPXE EFI DISCOVER capture gets the booter iPXE script URL, without 4011', async () => {
    const { readFileSync } = await import('node:fs');
    const raw = readFileSync(join(ROOT, 'test/fixtures/dhcp/ipxe-efi-discover.bin'));
    const replies = await probe(['--port', '68', '--to', '255.255.255.255:67', '--hex', raw.toString('hex'), '--expect', '1']);
    const p = replies[0]?.packet;
    expect(p?.file).toBe('http://10.66.0.1/boot.ipxe');
    expect(p?.siaddr).toBe(SRV_IP);
    expect(o.pxeDiscoveryControl(p ?? { options: new Map() })).toBe(8);
  });

  it('a non-PXE client (busybox udhcpc) gets zero replies from the proxy', async () => {
    const statsBefore = await proxyStats();
    const cap = await startCapture('udp and (port 67 or port 68)');
    const u = await lab.exec(cli, ['busybox', 'udhcpc', '-i', 'c0', '-n', '-q', '-t', '3', '-T', '1', '-s', '/bin/true'], 20_000);
    expect(u.code).not.toBe(0); // no lease: nobody answered
    await new Promise((r) => setTimeout(r, 500));
    await lab.stop(cap.proc);
    const lines = cap.lines();
    const discovers = lines.filter((l) => l.includes('.68 > 255.255.255.255.67'));
    const fromProxy = lines.filter((l) => l.includes(`${SRV_IP}.67 >`));
    expect(discovers.length).toBeGreaterThanOrEqual(3);
    expect(fromProxy).toEqual([]);
    const statsAfter = await proxyStats();
    expect((statsAfter.ignored ?? 0) - (statsBefore.ignored ?? 0)).toBeGreaterThanOrEqual(3);
    expect(statsAfter.offers).toBe(statsBefore.offers);
  });

  it('a relayed DISCOVER (giaddr set) is answered unicast to giaddr:67', async () => {
    const req = pxeDiscover('52:54:00:00:00:03', 0x3003, 7);
    req.giaddr = CLI_IP;
    req.hops = 1;
    const replies = await probe(['--port', '67', '--to', `${SRV_IP}:67`, '--hex', hex(req), '--expect', '1']);
    expect(replies).toHaveLength(1);
    const p = replies[0]?.packet;
    expect(replies[0]?.from).toBe(SRV_IP);
    expect(p?.giaddr).toBe(CLI_IP);
    expect(p?.xid).toBe(0x3003);
    expect(p?.file).toBe('syslinux.efi');
    // UEFI: no option 43 in the offer (EDK2 then asks on 4011)
    expect(p?.options.has(43)).toBe(false);
  });

  it('a 4011 REQUEST is answered to the sender address and port', async () => {
    const req = pxeDiscover('52:54:00:00:00:04', 0x4004, 7, [[53, Buffer.from([3])]]);
    req.ciaddr = CLI_IP;
    const replies = await probe(['--port', '40999', '--to', `${SRV_IP}:4011`, '--hex', hex(req), '--expect', '1']);
    expect(replies).toHaveLength(1);
    const r = replies[0];
    expect(r?.from).toBe(SRV_IP);
    expect(r?.port).toBe(4011);
    const p = r?.packet;
    expect(p && o.messageType(p)).toBe(5);
    expect(p?.ciaddr).toBe(CLI_IP);
    expect(p?.yiaddr).toBe('0.0.0.0');
    expect(p?.siaddr).toBe(SRV_IP);
    expect(p?.file).toBe('syslinux.efi');
    expect(p?.options.get(43)?.toString('hex')).toBe('470480000000ff');
  });

  it("multi-homed: a client on a second interface is offered that interface's address, and the broadcast leaves there", async () => {
    // a second segment 10.68.0.0/24 on s1; the client's own address is in neither of
    // our subnets (so neither ciaddr nor the source can tell), only the arrival
    // interface can; the server's default route points at the other segment (s0)
    const cli2 = await lab.netns('cli2');
    await lab.veth(srv, 's1', '10.68.0.1/24', cli2, 'c1', '10.99.0.2/24');
    await run(['ip', '-n', cli2, 'route', 'add', 'default', 'dev', 'c1']);
    const req = pxeDiscover('52:54:00:00:00:07', 0x7007);
    const got = await probe(['--port', '68', '--to', '255.255.255.255:67', '--hex', hex(req), '--expect', '1'], 2_000, cli2);
    expect(got).toHaveLength(1);
    const p = got[0]?.packet as DhcpPacket;
    expect(got[0]?.from).toBe('10.68.0.1');
    expect(p.siaddr).toBe('10.68.0.1');
    expect(o.serverId(p)).toBe('10.68.0.1');
    expect(p.xid).toBe(0x7007);
    // and the first segment still gets its own address
    const first = await probe([
      '--port',
      '68',
      '--to',
      '255.255.255.255:67',
      '--hex',
      hex(pxeDiscover('52:54:00:00:00:08', 0x8008)),
      '--expect',
      '1',
    ]);
    expect(first[0]?.packet.siaddr).toBe(SRV_IP);
    expect(o.serverId(first[0]?.packet as DhcpPacket)).toBe(SRV_IP);
  });

  it('the node:dgram fallback (--io dgram) answers byte for byte like the native socket; without a route it falls back to the directed broadcast', async () => {
    const listening = proxyLines.find((l) => l.msg === 'proxyDHCP listening');
    expect(listening?.io).toBe('native');
    const lines: Array<Record<string, unknown>> = [];
    const fallback = lab.spawn(
      srv,
      [
        'node',
        STANDALONE,
        '--io',
        'dgram',
        '--dhcp-port',
        '1067',
        '--pxe-port',
        '14011',
        '--ipxe',
        'http://10.66.0.1/boot.ipxe',
        '--server-address',
        SRV_IP,
      ],
      { cwd: ROOT },
    );
    collectJsonLines(fallback, lines);
    try {
      const up = await waitFor(() => lines.find((l) => l.msg === 'proxyDHCP listening'), 15_000, 'the dgram proxy');
      expect(up.io).toBe('node:dgram (configured)');
      // dgram cannot pin the interface: with no route for 255.255.255.255 the kernel
      // says ENETUNREACH and the proxy uses the directed broadcast, with one error line
      await run(['ip', '-n', srv, 'route', 'del', 'default', 'dev', 's0']);
      try {
        const noRoute = await probe([
          '--port',
          '68',
          '--to',
          `${SRV_IP}:1067`,
          '--hex',
          hex(pxeDiscover('52:54:00:00:00:09', 0x9009)),
          '--expect',
          '1',
        ]);
        expect(noRoute[0]?.packet.xid).toBe(0x9009);
        const errLine = await waitFor(
          () => lines.find((l) => String(l.msg).includes('no route for 255.255.255.255')),
          5_000,
          'the no-route error line',
        );
        expect(errLine?.level).toBe(50);
        expect(errLine?.fallback).toEqual(['10.66.0.255']);
      } finally {
        await run(['ip', '-n', srv, 'route', 'add', 'default', 'dev', 's0']);
      }
      const discover = hex(pxeDiscover('52:54:00:00:00:05', 0x5005, 0, [[97, Buffer.alloc(17, 1)]]));
      const viaNative = await probe(['--port', '68', '--to', `${SRV_IP}:67`, '--hex', discover, '--expect', '1']);
      const viaDgram = await probe(['--port', '68', '--to', `${SRV_IP}:1067`, '--hex', discover, '--expect', '1']);
      expect(viaDgram).toHaveLength(1);
      expect(viaDgram[0]?.packet.file).toBe('pxelinux.0');
      expect(hex(viaDgram[0]?.packet as DhcpPacket)).toBe(hex(viaNative[0]?.packet as DhcpPacket));
      const request = pxeDiscover('52:54:00:00:00:06', 0x6006, 7, [[53, Buffer.from([3])]]);
      request.ciaddr = CLI_IP;
      const ack = await probe(['--port', '40998', '--to', `${SRV_IP}:14011`, '--hex', hex(request), '--expect', '1']);
      expect(ack[0]?.port).toBe(14011);
      expect(ack[0]?.packet && o.messageType(ack[0].packet)).toBe(5);
    } finally {
      await lab.stop(fallback);
    }
  });

  it('survives 100k mutated datagrams, counts the drops, still answers a valid client', async () => {
    const before = await proxyStats();
    const r67 = lab.exec(
      cli,
      [
        'node',
        PROBE,
        '--port',
        '0',
        '--to',
        `${SRV_IP}:67`,
        '--fuzz-dir',
        join(ROOT, 'test/fixtures/dhcp'),
        '--count',
        '80000',
        '--rate',
        '8000',
        '--seed',
        '7',
      ],
      60_000,
    );
    const r4011 = lab.exec(
      cli,
      [
        'node',
        PROBE,
        '--port',
        '0',
        '--to',
        `${SRV_IP}:4011`,
        '--fuzz-dir',
        join(ROOT, 'test/fixtures/dhcp'),
        '--count',
        '20000',
        '--rate',
        '2000',
        '--seed',
        '8',
      ],
      60_000,
    );
    const [a, b] = await Promise.all([r67, r4011]);
    const sent = [a, b].map((x) => (JSON.parse(x.stdout.trim().split('\n').pop() ?? '{}') as { sent: number }).sent);
    expect(sent).toEqual([80_000, 20_000]);

    expect(proxy.exitCode).toBeNull();
    const after = await proxyStats();
    const d = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0);
    // Some datagrams may be lost in socket buffers under load; most must arrive.
    expect(d('received')).toBeGreaterThan(50_000);
    expect(d('malformed')).toBeGreaterThan(10_000);
    expect(d('internalErrors')).toBe(0);
    process.stdout.write(`fuzz: ${JSON.stringify(Object.fromEntries(Object.keys(after).map((k) => [k, d(k)])))}\n`);

    const req = pxeDiscover('52:54:00:00:00:05', 0x5005);
    const replies = await probe(['--port', '68', '--to', '255.255.255.255:67', '--hex', hex(req), '--expect', '1'], 5_000);
    expect(replies.find((x) => x.packet.xid === 0x5005)?.packet.file).toBe('pxelinux.0');
  }, 120_000);
});
