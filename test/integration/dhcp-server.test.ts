/**
 * ProxyDhcpServer in-process on loopback only: ephemeral ports, and every reply is
 * unicast (4011 replies go to the sender; port-67 replies to ciaddr when the client
 * has an address and no broadcast flag), so nothing is broadcast on real interfaces.
 * Covers the policy hooks the namespace test does not: allow list, per-MAC rate
 * limit, booter "ignore", boot events, counters.
 */
import dgram from 'node:dgram';
import os from 'node:os';
import { constants, performance, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, encode, makeRequest, type DhcpPacket } from '../../src/dhcp/codec.js';
import * as o from '../../src/dhcp/options.js';
import { ProxyDhcpServer, type BootEvent } from '../../src/dhcp/proxy.js';
import { silentLogger } from '../../src/log.js';
import type { DhcpClient } from '../../src/boot/types.js';

const events: BootEvent[] = [];
const asked: DhcpClient[] = [];
let server: ProxyDhcpServer;
let client: dgram.Socket;
const inbox: Array<{ port: number; packet: DhcpPacket }> = [];

function request(mac: string, xid: number, mt: number, arch = 7): Buffer {
  const p = makeRequest({ xid, chaddr: Buffer.from(mac.replaceAll(':', ''), 'hex'), ciaddr: '127.0.0.1' });
  p.options.set(53, Buffer.from([mt]));
  p.options.set(60, Buffer.from(`PXEClient:Arch:0000${arch}:UNDI:003000`));
  p.options.set(93, Buffer.from([0, arch]));
  const e = encode(p);
  if (!e.ok) throw new Error(e.detail);
  return e.data;
}

async function exchange(buf: Buffer, port: number, xid: number, waitMs = 700): Promise<DhcpPacket | undefined> {
  client.send(buf, port, '127.0.0.1');
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    const i = inbox.findIndex((m) => m.packet.xid === xid);
    if (i >= 0) return inbox.splice(i, 1)[0]?.packet;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

beforeAll(async () => {
  client = dgram.createSocket('udp4');
  client.on('message', (msg, rinfo) => {
    const d = decode(msg);
    if (d.ok) inbox.push({ port: rinfo.port, packet: d.packet });
  });
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  server = new ProxyDhcpServer({
    booter: {
      dhcpBoot: (c) => {
        asked.push(c);
        return c.mac === '52:54:00:00:00:99'
          ? { action: 'ignore', reason: 'test: not this one' }
          : { action: 'boot', bootFile: `file-${c.firmware}`, nextServer: '127.0.0.5', reason: 'test' };
      },
    },
    logger: silentLogger,
    bindAddress: '127.0.0.1',
    dhcpPort: 0,
    pxePort: 0,
    serverAddress: '127.0.0.1',
    clientPort: client.address().port,
    allow: (_addr, mac) => mac !== '52:54:00:00:00:66',
    ratePerMacPerSecond: 2,
    onEvent: (ev) => events.push(ev),
  });
  await server.start();
});

afterAll(async () => {
  await server?.close();
  client?.close();
});

describe('ProxyDhcpServer (loopback)', () => {
  it('ACKs a 4011 REQUEST back to the sender port and asks the booter with the right client', async () => {
    const p = await exchange(request('52:54:00:00:00:01', 101, 3), server.ports.pxe ?? 0, 101);
    expect(p && o.messageType(p)).toBe(5);
    expect(p?.file).toBe('file-efi-x64');
    expect(p?.siaddr).toBe('127.0.0.5');
    expect(p && o.serverId(p)).toBe('127.0.0.1');
    expect(asked.at(-1)).toMatchObject({
      mac: '52:54:00:00:00:01',
      firmware: 'efi-x64',
      arch: 7,
      sourceAddress: '127.0.0.1',
      serverAddress: '127.0.0.1',
    });
    expect(events.at(-1)).toMatchObject({ mac: '52:54:00:00:00:01', reply: 'ack', bootFile: 'file-efi-x64', port: 'pxe' });
  });

  it('OFFERs on the DHCP port, unicast to ciaddr when the broadcast flag is clear', async () => {
    const p = await exchange(request('52:54:00:00:00:02', 102, 1, 0), server.ports.dhcp ?? 0, 102);
    expect(p && o.messageType(p)).toBe(2);
    expect(p?.file).toBe('file-bios');
    expect(p?.options.get(43)?.toString('hex')).toBe('060108ff');
  });

  it('denied clients get nothing and are counted', async () => {
    const before = server.stats.denied;
    expect(await exchange(request('52:54:00:00:00:66', 103, 3), server.ports.pxe ?? 0, 103, 400)).toBeUndefined();
    expect(server.stats.denied).toBe(before + 1);
  });

  it('booter "ignore" sends nothing and logs the reason as an event', async () => {
    const before = server.stats.booterIgnored;
    expect(await exchange(request('52:54:00:00:00:99', 104, 3), server.ports.pxe ?? 0, 104, 400)).toBeUndefined();
    expect(server.stats.booterIgnored).toBe(before + 1);
    expect(events.at(-1)).toMatchObject({ mac: '52:54:00:00:00:99', reply: 'none', reason: 'test: not this one' });
  });

  it('rate limit per MAC: a burst of 6 gets at most 2-3 answers, others are counted', async () => {
    const before = { rl: server.stats.rateLimited, acks: server.stats.acks };
    for (let i = 0; i < 6; i++) client.send(request('52:54:00:00:00:07', 200 + i, 3), server.ports.pxe ?? 0, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 400));
    const answered = server.stats.acks - before.acks;
    expect(answered).toBeGreaterThanOrEqual(2);
    expect(answered).toBeLessThanOrEqual(3);
    expect(server.stats.rateLimited - before.rl).toBe(6 - answered);
  });

  it('malformed datagrams and BOOTREPLYs are dropped and counted, the server keeps answering', async () => {
    const before = { m: server.stats.malformed, i: server.stats.ignored };
    const reply = Buffer.from(request('52:54:00:00:00:08', 300, 2));
    reply[0] = 2;
    for (const junk of [Buffer.alloc(0), Buffer.alloc(10), Buffer.alloc(300, 0xff), reply]) {
      client.send(junk, server.ports.dhcp ?? 0, '127.0.0.1');
    }
    const p = await exchange(request('52:54:00:00:00:09', 301, 3), server.ports.pxe ?? 0, 301);
    expect(p?.xid).toBe(301);
    expect(server.stats.malformed - before.m).toBe(3);
    expect(server.stats.ignored - before.i).toBe(1);
    expect(server.stats.internalErrors).toBe(0);
  });

  it('start() fails cleanly when the port is taken', async () => {
    const other = new ProxyDhcpServer({
      booter: { dhcpBoot: () => ({ action: 'ignore', reason: '' }) },
      logger: silentLogger,
      bindAddress: '127.0.0.1',
      dhcpPort: server.ports.dhcp ?? 0,
      pxePort: null,
    });
    await expect(other.start()).rejects.toThrow(/cannot bind 127\.0\.0\.1:\d+ \(dhcp\)/);
  });
});

describe('ProxyDhcpServer idle housekeeping', () => {
  it('re-reads the interface list and scavenges the young generation between bursts, never in the middle of one', async () => {
    const reads: number[] = [];
    const fakeLo: os.NetworkInterfaceInfo = {
      address: '127.0.0.1',
      netmask: '255.0.0.0',
      family: 'IPv4',
      mac: '00:00:00:00:00:00',
      internal: false,
      cidr: '127.0.0.1/8',
    };
    const srv = new ProxyDhcpServer({
      booter: { dhcpBoot: () => ({ action: 'boot', bootFile: 'pxelinux.0', nextServer: '127.0.0.1', reason: 'test' }) },
      logger: silentLogger,
      bindAddress: '127.0.0.1',
      dhcpPort: 0,
      pxePort: 0,
      clientPort: client.address().port,
      // no serverAddress: derived from the interface list per request
      networkInterfaces: () => {
        reads.push(Date.now());
        return { lo: [fakeLo] };
      },
    });
    const minorGcs: number[] = [];
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        if ((e.detail as { kind?: number } | undefined)?.kind === constants.NODE_PERFORMANCE_GC_MINOR)
          minorGcs.push(performance.timeOrigin + e.startTime);
    });
    obs.observe({ entryTypes: ['gc'] });
    try {
      await srv.start();
      const port = srv.ports.pxe ?? 0;
      // a 2.6 s burst (longer than the 2 s refresh period): a request every 5 ms
      const burstStart = Date.now();
      let xid = 5000;
      const sent: number[] = [];
      while (Date.now() - burstStart < 2_600) {
        client.send(request('52:54:00:00:01:01', xid++, 3), port, '127.0.0.1');
        sent.push(Date.now());
        await new Promise((r) => setTimeout(r, 5));
      }
      const burstEnd = sent[sent.length - 1] ?? Date.now();
      // garbage left in the young generation by the burst: fill it to 40-100 % (V8 may
      // scavenge by itself on the way; then keep filling), bounded
      const youngFill = (): number => {
        const y = v8.getHeapSpaceStatistics().find((sp) => sp.space_name === 'new_space');
        return y ? y.space_used_size / y.space_size : 1;
      };
      let junk: number[][] = [];
      for (let round = 0; round < 10_000 && youngFill() < 0.4; round++) for (let i = 0; i < 500; i++) junk.push([i, i, i, i]);
      junk = [];
      expect(youngFill()).toBeGreaterThan(0.25);
      const junkDone = Date.now();
      // the list is re-read once quiet and at least 2 s old (a stall of this loop may
      // have let the proxy refresh it during the burst)
      const due = Math.max(burstEnd, Math.max(...reads.filter((t) => t <= burstEnd)) + 2_000);
      await new Promise((r) => setTimeout(r, due - Date.now() + 400));
      expect(srv.stats.acks).toBeGreaterThan(200);
      // during the burst, a read may only follow a real pause in the requests (this
      // test's own loop can stall on a loaded machine), never a request 5 ms earlier
      const readsAfterBusyMoments = reads.filter(
        (t) => t > burstStart + 100 && t <= burstEnd && t - Math.max(...sent.filter((x) => x <= t)) < 40,
      );
      expect(readsAfterBusyMoments, 'interface reads while requests kept coming').toEqual([]);
      expect(
        reads.filter((t) => t > burstEnd && t <= due + 400).length,
        `an interface read once it went quiet (reads ${JSON.stringify(reads.map((t) => t - burstStart))}, end ${burstEnd - burstStart}, due ${due - burstStart}, now ${Date.now() - burstStart})`,
      ).toBeGreaterThan(0);
      expect(minorGcs.filter((t) => t > junkDone && t <= junkDone + 400).length, 'a scavenge once it went quiet').toBeGreaterThan(0);
      expect(junk).toEqual([]);
    } finally {
      obs.disconnect();
      await srv.close();
    }
  }, 20_000);
});
