#!/usr/bin/env node
/**
 * `npm run fuzz`: a bounded mutation fuzzer against a real `pxe serve` child process.
 *
 *   node dist-bench/bench/fuzz/index.js [--count N] [--seed S] [--only dhcp|tftp] [--rate R]
 *
 * DHCP: the server runs in a fresh network namespace (it binds 67 and 4011, which
 * must never touch the machine's interfaces); the DHCP engineer's sender
 * (bench/fuzz/probe.ts, mutations from bench/fuzz/mutate.ts seeded with the real iPXE/OVMF
 * captures in test/fixtures/dhcp/) runs in a second namespace joined by a veth pair,
 * N datagrams to 67 and N to 4011. TFTP: the server listens on 127.0.0.1; N mutated
 * datagrams go to the listening port and to the ports of live transfers (from the
 * transfer's own peer, which the connected socket delivers to the transfer state
 * machine, and from foreign ports, which hit the RFC 1350 sec. 4 "unknown TID" path).
 *
 * Passes when the server never crashed (still running, nothing on stderr), and a
 * valid client is served afterwards: a proxyDHCP OFFER on 67, an ACK on 4011, and a
 * byte-identical file to tftp-hpa. Prints counts and rates; exit 1 on failure.
 */
import { runCommand } from '#pxe/proc.js';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decode, encode } from '#pxe/dhcp/codec.js';
import { prng } from './mutate.js';
import { encodeAck, encodeError, encodeRequest } from '#pxe/tftp/packet.js';
import { REPO_ROOT, ServeChild } from './child.js';
import { BENCH_DIST } from '../repo.js';

export interface FuzzTargetReport {
  target: string;
  sent: number;
  ms: number;
  ratePerSecond: number;
  /** what the server counted (from /metrics), to show the datagrams arrived */
  serverCounters: Record<string, number>;
  crashed: boolean;
  servedAfterwards: boolean;
  detail: Record<string, number | string>;
}

export interface FuzzOptions {
  count: number;
  seed: number;
  only?: 'dhcp' | 'tftp';
  /** DHCP datagrams per second (the probe paces itself) */
  rate: number;
  log?: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const exec = (cmd: string[], timeoutMs: number) => runCommand(cmd, { timeoutMs });

async function must(cmd: string[]): Promise<void> {
  const r = await exec(cmd, 10_000);
  if (r.code !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr.trim()}`);
}

function parseMetrics(text: string, prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const sp = line.lastIndexOf(' ');
    out[line.slice(prefix.length, sp)] = Number(line.slice(sp + 1));
  }
  return out;
}

/** Did the server crash? It must still run and have written nothing to stderr. */
const crashed = (c: ServeChild) => !c.running || c.stderr.trim().length > 0;

/**
 * Readiness without info-level logs (a fuzz run at info level would log a line per
 * refused request): poll until the child holds its sockets (bounded).
 */
async function waitSockets(
  c: ServeChild,
  ns: string | undefined,
  udpCount: number,
  timeoutMs = 20_000,
): Promise<{ udp: number[]; tcp: number[] }> {
  const deadline = Date.now() + timeoutMs;
  const pre = ns ? ['ip', 'netns', 'exec', ns] : [];
  const mine = (out: string) =>
    out
      .split('\n')
      .filter((l) => l.includes(`pid=${c.pid},`))
      .map((l) => Number((l.trim().split(/\s+/)[3] ?? '').split(':').pop()));
  for (;;) {
    const u = mine((await exec([...pre, 'ss', '-Hulnp'], 5_000)).stdout);
    const t = mine((await exec([...pre, 'ss', '-Htlnp'], 5_000)).stdout);
    if (u.length >= udpCount && t.length >= 1) return { udp: u, tcp: t };
    if (!c.running || Date.now() > deadline) throw new Error(`pxe serve did not start: ${c.stderr.slice(-2000)}`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------- DHCP

async function fuzzDhcp(o: FuzzOptions): Promise<FuzzTargetReport[]> {
  const tag = `pxe-${process.pid}-fuzz`;
  const srv = `${tag}-srv`;
  const cli = `${tag}-cli`;
  const created: string[] = [];
  let server: ServeChild | undefined;
  const probe = join(BENCH_DIST, 'fuzz/probe.js');
  const fixtures = join(REPO_ROOT, 'test/fixtures/dhcp');
  try {
    for (const ns of [srv, cli]) {
      await must(['ip', 'netns', 'add', ns]);
      created.push(ns);
      await must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await must(['ip', 'link', 'add', 'fz0', 'netns', srv, 'type', 'veth', 'peer', 'name', 'fz1', 'netns', cli]);
    await must(['ip', '-n', srv, 'addr', 'add', '10.199.0.1/24', 'dev', 'fz0']);
    await must(['ip', '-n', cli, 'addr', 'add', '10.199.0.2/24', 'dev', 'fz1']);
    await must(['ip', '-n', srv, 'link', 'set', 'fz0', 'up']);
    await must(['ip', '-n', cli, 'link', 'set', 'fz1', 'up']);
    const site = mkdtempSync(join(tmpdir(), `pxe-fuzz-dhcp-${process.pid}-`));
    server = new ServeChild({
      netns: srv,
      cwd: site,
      args: [
        '--listen',
        '0.0.0.0',
        '--server-address',
        '10.199.0.1',
        '--no-tftp',
        '--tftp-root',
        site,
        '--dhcp-port',
        '67',
        '--pxe-port',
        '4011',
        '--http-port',
        '8080',
        '--log-level',
        'error',
      ],
    });
    await waitSockets(server, srv, 2);
    const scrape = async () =>
      parseMetrics(
        (await exec(['ip', 'netns', 'exec', srv, 'curl', '-s', '--max-time', '10', 'http://127.0.0.1:8080/metrics'], 15_000)).stdout,
        'pxe_dhcp_',
      );

    const reports: FuzzTargetReport[] = [];
    for (const [port, seedOff] of [
      [67, 0],
      [4011, 1],
    ] as const) {
      const before = await scrape();
      const r = await exec(
        [
          'ip',
          'netns',
          'exec',
          cli,
          process.execPath,
          probe,
          '--port',
          '0',
          '--to',
          `10.199.0.1:${port}`,
          '--fuzz-dir',
          fixtures,
          '--count',
          String(o.count),
          '--rate',
          String(o.rate),
          '--seed',
          String(o.seed + seedOff),
        ],
        Math.ceil((o.count / o.rate) * 1000) * 3 + 30_000,
      );
      const line = r.stdout.trim().split('\n').pop() ?? '';
      if (r.code !== 0 || !line.startsWith('{')) throw new Error(`dhcp fuzz sender failed: ${r.stderr.slice(-1000)}`);
      const res = JSON.parse(line) as { sent: number; ms: number; kinds: Record<string, number> };
      await sleep(500);
      const after = await scrape();
      const delta = Object.fromEntries(Object.keys(after).map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)]));
      const served = await validDhcpClient(cli, port, probe, fixtures);
      reports.push({
        target: `dhcp :${port}`,
        sent: res.sent,
        ms: res.ms,
        ratePerSecond: Math.round((res.sent / Math.max(1, res.ms)) * 1000),
        serverCounters: delta,
        crashed: crashed(server),
        servedAfterwards: served,
        detail: res.kinds,
      });
      o.log?.(
        `dhcp :${port}: sent ${res.sent} in ${res.ms} ms; server ${JSON.stringify(delta)}; crashed ${crashed(server)}; valid client served ${served}`,
      );
    }
    rmSync(site, { recursive: true, force: true });
    return reports;
  } finally {
    await server?.stop();
    for (const ns of created.reverse()) {
      const pids = await exec(['ip', 'netns', 'pids', ns], 3_000);
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await exec(['ip', 'netns', 'del', ns], 5_000);
    }
  }
}

/** A real capture with a fresh MAC, answered unicast (ciaddr set): OFFER on 67, ACK on 4011. */
async function validDhcpClient(cli: string, port: 67 | 4011, probe: string, fixtures: string): Promise<boolean> {
  const d = decode(readFileSync(join(fixtures, port === 67 ? 'ipxe-bios-discover.bin' : 'ovmf-pxe-request-4011.bin')));
  if (!d.ok) return false;
  d.packet.ciaddr = '10.199.0.2';
  d.packet.flags = 0;
  d.packet.chaddr = Buffer.from([2, 0x99, 0, 0, port === 67 ? 1 : 2, (Date.now() & 0xff) >>> 0]);
  const e = encode(d.packet, { maxSize: 1472 });
  if (!e.ok) return false;
  const r = await exec(
    [
      'ip',
      'netns',
      'exec',
      cli,
      process.execPath,
      probe,
      '--port',
      port === 67 ? '68' : '0',
      '--bind',
      '10.199.0.2',
      '--to',
      `10.199.0.1:${port}`,
      '--hex',
      e.data.toString('hex'),
      '--expect',
      '1',
      '--wait-ms',
      '5000',
    ],
    15_000,
  );
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const reply = decode(Buffer.from((JSON.parse(line) as { hex: string }).hex, 'hex'));
    if (reply.ok && reply.packet.op === 2 && reply.packet.xid === d.packet.xid && reply.packet.file.length > 0) return true;
  }
  return false;
}

// ---------------------------------------------------------------- TFTP

/** Generic byte-level mutations of a TFTP datagram (the DHCP ones know DHCP offsets). */
function mutateTftp(base: Buffer, rnd: () => number): Buffer {
  const int = (n: number) => Math.floor(rnd() * n);
  let b = Buffer.from(base);
  switch (int(8)) {
    case 0:
      for (let k = 1 + int(6); k > 0 && b.length > 0; k--) {
        const i = int(b.length);
        b[i] = (b[i] ?? 0) ^ (1 << int(8));
      }
      break;
    case 1:
      b = b.subarray(0, int(b.length + 1));
      break;
    case 2:
      b.writeUInt16BE(int(10), 0); // any opcode, valid or not
      break;
    case 3:
      for (let k = 1 + int(8); k > 0; k--) b[int(b.length)] = int(256);
      break;
    case 4:
      b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + int(600) }, () => int(256)))]);
      break;
    case 5: {
      // drop or add NUL terminators (strings and option lists)
      const i = int(b.length);
      b[i] = b[i] === 0 ? 0x41 : 0;
      break;
    }
    case 6:
      if (b.length >= 4) b.writeUInt16BE(int(65536), 2); // block numbers / error codes
      break;
    default:
      b = Buffer.from(Array.from({ length: int(64) }, () => int(256)));
  }
  return b;
}

async function udp(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.on('error', () => undefined);
  s.on('message', () => undefined); // drain replies (errors, DATA) without keeping them
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return s;
}

async function fuzzTftp(o: FuzzOptions): Promise<FuzzTargetReport[]> {
  const site = mkdtempSync(join(tmpdir(), `pxe-fuzz-tftp-${process.pid}-`));
  const file = Buffer.alloc(2 << 20);
  for (let i = 0; i < file.length; i += 4) file.writeUInt32BE((i * 2654435761) >>> 0, i);
  writeFileSync(join(site, 'f.bin'), file);
  writeFileSync(join(site, 'menu.txt'), 'DEFAULT local\r\nLABEL local\r\n  LOCALBOOT 0\r\n');
  const server = new ServeChild({
    cwd: site,
    args: ['--listen', '127.0.0.1', '--no-dhcp', '--tftp-root', site, '--tftp-port', '0', '--http-port', '0', '--log-level', 'error'],
  });
  const sockets: dgram.Socket[] = [];
  try {
    const socks = await waitSockets(server, undefined, 1);
    const port = socks.udp[0];
    const httpPort = socks.tcp[0];
    if (!port || !httpPort) throw new Error('cannot find the TFTP/HTTP ports of the child');
    const scrape = async () =>
      parseMetrics((await exec(['curl', '-s', '--max-time', '10', `http://127.0.0.1:${httpPort}/metrics`], 15_000)).stdout, 'pxe_tftp_');

    const rnd = prng(o.seed);
    const seeds: Buffer[] = [
      encodeRequest('rrq', 'f.bin', 'octet'),
      encodeRequest('rrq', 'f.bin', 'octet', [
        ['blksize', '1468'],
        ['windowsize', '64'],
        ['tsize', '0'],
        ['timeout', '1'],
      ]),
      encodeRequest('rrq', 'menu.txt', 'netascii', [['blksize', '8']]),
      encodeRequest('rrq', '../../etc/passwd', 'octet'),
      encodeRequest('wrq', 'x', 'octet'),
      encodeAck(1),
      encodeError(0, 'x'),
      Buffer.concat([Buffer.from([0, 3, 0, 1]), Buffer.alloc(512)]),
      Buffer.from([0, 6, ...Buffer.from('blksize\u00001468\u0000')]),
    ];
    const transferSeeds: Buffer[] = [encodeAck(0), encodeAck(1), encodeAck(65535), encodeError(0, 'stop'), Buffer.from([0, 3, 0, 1, 1])];

    // live transfers: a peer socket that started one (and the port it got)
    let live: { peer: dgram.Socket; port: number } | undefined;
    const startTransfer = async (): Promise<void> => {
      const peer = await udp();
      sockets.push(peer);
      const got = new Promise<number | undefined>((resolve) => {
        const t = setTimeout(() => resolve(undefined), 2000);
        peer.once('message', (_m, r) => {
          clearTimeout(t);
          resolve(r.port);
        });
      });
      peer.send(
        encodeRequest('rrq', 'f.bin', 'octet', [
          ['blksize', '512'],
          ['timeout', '2'],
        ]),
        port,
        '127.0.0.1',
      );
      const p = await got;
      live = p ? { peer, port: p } : undefined;
    };
    const pool = await Promise.all(Array.from({ length: 8 }, () => udp()));
    sockets.push(...pool);

    const before = await scrape();
    const t0 = Date.now();
    let sent = 0;
    let toListener = 0;
    let toTransferPeer = 0;
    let toTransferForeign = 0;
    let transfers = 0;
    while (sent < o.count) {
      if (sent % 5000 === 0) {
        await startTransfer();
        if (live) transfers++;
      }
      for (let i = 0; i < 200 && sent < o.count; i++, sent++) {
        const r = rnd();
        if (r < 0.7 || !live) {
          pool[sent % pool.length]!.send(mutateTftp(seeds[Math.floor(rnd() * seeds.length)]!, rnd), port, '127.0.0.1');
          toListener++;
        } else if (r < 0.85) {
          live.peer.send(mutateTftp(transferSeeds[Math.floor(rnd() * transferSeeds.length)]!, rnd), live.port, '127.0.0.1');
          toTransferPeer++;
        } else {
          pool[sent % pool.length]!.send(mutateTftp(transferSeeds[Math.floor(rnd() * transferSeeds.length)]!, rnd), live.port, '127.0.0.1');
          toTransferForeign++;
        }
      }
      // yield so the kernel buffers drain (and the loop stays bounded in memory)
      await new Promise((r) => setImmediate(r));
    }
    const ms = Date.now() - t0;
    await sleep(500);
    const after = await scrape();
    const delta = Object.fromEntries(Object.keys(after).map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)]));

    // a valid client afterwards: tftp-hpa fetches the file byte-identical
    const out = join(site, 'fetched.bin');
    let served = false;
    for (let attempt = 0; attempt < 3 && !served; attempt++) {
      const g = await exec(['tftp', '-m', 'binary', '127.0.0.1', String(port), '-c', 'get', 'f.bin', out], 60_000);
      served = g.code === 0 && sha(readFileSync(out)) === sha(file);
      if (!served) await sleep(3000); // per-client slots held by fuzzed transfers time out first
    }
    const report: FuzzTargetReport = {
      target: 'tftp (listening port + live transfer ports)',
      sent,
      ms,
      ratePerSecond: Math.round((sent / Math.max(1, ms)) * 1000),
      serverCounters: delta,
      crashed: crashed(server),
      servedAfterwards: served,
      detail: { toListener, toTransferPeer, toTransferForeign, transfersTargeted: transfers },
    };
    o.log?.(
      `tftp: sent ${sent} in ${ms} ms; server ${JSON.stringify(delta)}; crashed ${report.crashed}; tftp-hpa served afterwards ${served}`,
    );
    return [report];
  } finally {
    for (const s of sockets) {
      try {
        s.close();
      } catch {
        /* closed */
      }
    }
    await server.stop();
    if (server.stderr.trim()) o.log?.(`server stderr: ${server.stderr.slice(0, 2000)}`);
    rmSync(site, { recursive: true, force: true });
  }
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzTargetReport[]> {
  const out: FuzzTargetReport[] = [];
  if (o.only !== 'tftp') out.push(...(await fuzzDhcp(o)));
  if (o.only !== 'dhcp') out.push(...(await fuzzTftp(o)));
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '1000000' },
      seed: { type: 'string', default: '1' },
      only: { type: 'string' },
      rate: { type: 'string', default: '20000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run fuzz -- [--count N (default 1000000 per target)] [--seed S] [--only dhcp|tftp] [--rate datagrams/s]\n' +
        'Mutation-fuzzes a real `pxe serve` child: DHCP 67/4011 inside a network namespace, TFTP on loopback.\n',
    );
    process.exit(0);
  }
  const only = values.only === 'dhcp' || values.only === 'tftp' ? values.only : undefined;
  runFuzz({
    count: Number(values.count),
    seed: Number(values.seed),
    rate: Number(values.rate),
    ...(only ? { only } : {}),
    log: (l) => process.stdout.write(`${l}\n`),
  }).then(
    (reports) => {
      process.stdout.write('\n');
      for (const r of reports) {
        process.stdout.write(
          `${r.target.padEnd(44)} ${String(r.sent).padStart(8)} datagrams  ${String(r.ratePerSecond).padStart(7)}/s  crashed: ${r.crashed ? 'YES' : 'no'}  valid client served afterwards: ${r.servedAfterwards ? 'yes' : 'NO'}\n`,
        );
      }
      const ok = reports.every((r) => !r.crashed && r.servedAfterwards);
      process.stdout.write(ok ? 'fuzz: ok\n' : 'fuzz: FAILED\n');
      process.exit(ok ? 0 : 1);
    },
    (err: unknown) => {
      process.stderr.write(`fuzz: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
