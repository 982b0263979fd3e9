/**
 * Amplification bench: how many bytes does pxe send to a spoofed source that never
 * acknowledges anything, per byte that source sent? (The attacker forges the victim's
 * address, so the victim receives the replies and never ACKs.)
 *
 * - TFTP RRQ with blksize 1468 + windowsize 64 for a big file: the server must answer
 *   with an OACK only (RFC 2347) and send no DATA until the OACK is acknowledged, and
 *   retransmit that OACK at most `maxRetriesBeforeAck` times.
 * - TFTP RRQ without options (RFC 1350): DATA 1 goes out at once (the protocol says
 *   so), retransmitted at most `maxRetriesBeforeAck` times: the classic TFTP factor.
 * - 200 RRQs from one address (different ports): at most `maxTransfersPerClient`
 *   transfers start; the rest get one short "server busy" ERROR.
 * - DHCP DISCOVER storm from one MAC: the per-MAC rate limit bounds the OFFERs.
 *
 * Everything runs inside a fresh network namespace (only its loopback exists), so
 * the DHCP server can bind 67/4011 without touching the machine's interfaces:
 * runAmplificationBench() re-executes this file with `--inside` under
 * `ip netns exec`, and the inner run prints one JSON line with the numbers.
 */
import { runCommand } from '#pxe/proc.js';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '#pxe/app.js';
import { loadConfig } from '#pxe/config.js';
import { decode, encode } from '#pxe/dhcp/codec.js';
import { ProxyDhcpServer } from '#pxe/dhcp/proxy.js';
import { silentLogger } from '#pxe/log.js';
import { encodeAck, encodeRequest } from '#pxe/tftp/packet.js';
import { TftpServer } from '#pxe/tftp/server.js';
import { BENCH_DIST, REPO_ROOT } from './repo.js';

export interface AmplificationCase {
  name: string;
  /** UDP payload bytes the spoofed source sent */
  bytesIn: number;
  /** UDP payload bytes the server sent back to it */
  bytesOut: number;
  packetsOut: number;
  factor: number;
  detail: Record<string, number>;
}

export interface AmplificationResult {
  settings: { blksize: number; windowsize: number; maxRetriesBeforeAck: number; maxTransfersPerClient: number; ratePerMac: number };
  cases: AmplificationCase[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function udp(port = 0, address = '127.0.0.1'): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, address, () => {
      s.off('error', reject);
      resolve();
    });
  });
  return s;
}

/** Receives and counts everything arriving on `sockets`. */
function counter(sockets: dgram.Socket[]): {
  bytes: number;
  packets: number;
  ports: Set<number>;
  data: number;
  errors: number;
  oacks: number;
} {
  const c = { bytes: 0, packets: 0, ports: new Set<number>(), data: 0, errors: 0, oacks: 0 };
  for (const s of sockets) {
    s.on('message', (m, r) => {
      c.bytes += m.length;
      c.packets++;
      c.ports.add(r.port);
      const op = m.length >= 2 ? m.readUInt16BE(0) : 0;
      if (op === 3) c.data++;
      else if (op === 5) c.errors++;
      else if (op === 6) c.oacks++;
    });
  }
  return c;
}

async function waitIdle(server: TftpServer, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (server.stats.active > 0 && Date.now() < deadline) await sleep(25);
  await sleep(50);
}

async function inside(): Promise<AmplificationResult> {
  const dir = mkdtempSync(join(tmpdir(), `pxe-amp-${process.pid}-`));
  const cfg = loadConfig(undefined, dir);
  const maxRetriesBeforeAck = 2;
  const cases: AmplificationCase[] = [];
  const mk = (name: string, bytesIn: number, bytesOut: number, packetsOut: number, detail: Record<string, number>): AmplificationCase => ({
    name,
    bytesIn,
    bytesOut,
    packetsOut,
    factor: Number((bytesOut / Math.max(1, bytesIn)).toPrecision(3)),
    detail,
  });
  try {
    writeFileSync(join(dir, 'big.img'), Buffer.alloc(16 << 20, 0x5a));
    // a short retransmission timeout only makes the bench quicker: the bound is the
    // number of retransmissions, which is the production value
    const tftp = new TftpServer({
      root: dir,
      listen: [{ host: '127.0.0.1', port: 0 }],
      maxBlksize: cfg.tftp.maxBlksize,
      maxWindowsize: cfg.tftp.maxWindowsize,
      defaultTimeoutMs: 150,
      maxRetries: cfg.tftp.maxRetries,
      maxRetriesBeforeAck,
      maxTransfers: cfg.tftp.maxTransfers,
      maxTransfersPerClient: cfg.tftp.maxTransfersPerClient,
      logger: silentLogger,
    });
    await tftp.start();
    const port = tftp.addresses()[0]!.port;
    try {
      // 1. RRQ with options, never acknowledged
      {
        const s = await udp();
        const c = counter([s]);
        const rrq = encodeRequest('rrq', 'big.img', 'octet', [
          ['blksize', '1468'],
          ['windowsize', '64'],
          ['tsize', '0'],
        ]);
        s.send(rrq, port, '127.0.0.1');
        await sleep(50);
        await waitIdle(tftp, 15_000);
        s.close();
        cases.push(
          mk('tftp RRQ blksize=1468 windowsize=64, never ACKed', rrq.length, c.bytes, c.packets, { oacks: c.oacks, data: c.data }),
        );
      }
      // 2. plain RFC 1350 RRQ, never acknowledged
      {
        const s = await udp();
        const c = counter([s]);
        const rrq = encodeRequest('rrq', 'big.img', 'octet', []);
        s.send(rrq, port, '127.0.0.1');
        await sleep(50);
        await waitIdle(tftp, 15_000);
        s.close();
        cases.push(mk('tftp RRQ without options, never ACKed', rrq.length, c.bytes, c.packets, { data: c.data }));
      }
      // 3. the OACK is acknowledged (the peer exists) but no DATA ever is: one window, then capped retransmissions
      {
        const s = await udp();
        const c = counter([s]);
        const rrq = encodeRequest('rrq', 'big.img', 'octet', [
          ['blksize', '1468'],
          ['windowsize', '64'],
        ]);
        let acked = false;
        s.on('message', (m, r) => {
          if (!acked && m.readUInt16BE(0) === 6) {
            acked = true;
            s.send(encodeAck(0), r.port, r.address);
          }
        });
        s.send(rrq, port, '127.0.0.1');
        await sleep(50);
        await waitIdle(tftp, 15_000);
        s.close();
        cases.push(
          mk('tftp OACK acknowledged, DATA never ACKed', rrq.length + 4, c.bytes, c.packets, { data: c.data, windows: c.data / 64 }),
        );
      }
      // 4. many requests from one address: the per-client cap
      {
        const sockets = await Promise.all(Array.from({ length: 200 }, () => udp()));
        const c = counter(sockets);
        const rrq = encodeRequest('rrq', 'big.img', 'octet', []);
        for (const s of sockets) s.send(rrq, port, '127.0.0.1');
        const before = tftp.stats.transfersStarted;
        await sleep(100);
        const started = tftp.stats.transfersStarted - before;
        await waitIdle(tftp, 20_000);
        for (const s of sockets) s.close();
        cases.push(
          mk('tftp 200 RRQs from one address, never ACKed', rrq.length * 200, c.bytes, c.packets, {
            transfersStarted: started,
            busyErrors: c.errors,
            data: c.data,
          }),
        );
      }
    } finally {
      await tftp.close();
    }

    // 5. DISCOVER storm from one MAC (replies unicast to ciaddr:68 so we can count them)
    const app = buildApp(cfg);
    const dhcp = new ProxyDhcpServer({
      booter: app.booter,
      logger: silentLogger,
      dhcpPort: 67,
      pxePort: 4011,
      bindAddress: '0.0.0.0',
      serverAddress: '127.0.0.1',
      ratePerMacPerSecond: cfg.dhcp.ratePerMac,
    });
    await dhcp.start();
    try {
      const fixture = readFileSync(join(REPO_ROOT, 'test/fixtures/dhcp/ipxe-bios-discover.bin'));
      const d = decode(fixture);
      if (!d.ok) throw new Error('fixture does not decode');
      d.packet.ciaddr = '127.0.0.1';
      d.packet.flags = 0;
      const enc = encode(d.packet, { maxSize: 1472 });
      if (!enc.ok) throw new Error('cannot encode discover');
      const discover = Buffer.from(enc.data);
      const client = await udp(68, '127.0.0.1');
      const c = counter([client]);
      const n = 2000;
      const t0 = Date.now();
      for (let i = 0; i < n; i++) {
        discover.writeUInt32BE((i * 2654435761) >>> 0, 4); // new xid each time, same MAC
        client.send(discover, 67, '127.0.0.1');
        if (i % 50 === 49) await sleep(2); // stay under the socket buffers: the limiter, not the kernel, must drop
      }
      await sleep(300);
      const elapsedS = (Date.now() - t0) / 1000;
      client.close();
      cases.push(
        mk('dhcp DISCOVER storm from one MAC', discover.length * n, c.bytes, c.packets, {
          sent: n,
          offers: dhcp.stats.offers,
          rateLimited: dhcp.stats.rateLimited,
          received: dhcp.stats.received,
          elapsedMs: Math.round(elapsedS * 1000),
          // the token bucket allows a burst of `rate` plus `rate` per second
          allowedByLimiter: Math.ceil(cfg.dhcp.ratePerMac * (1 + elapsedS)),
        }),
      );
    } finally {
      await dhcp.close();
    }
    return {
      settings: {
        blksize: 1468,
        windowsize: 64,
        maxRetriesBeforeAck,
        maxTransfersPerClient: cfg.tftp.maxTransfersPerClient,
        ratePerMac: cfg.dhcp.ratePerMac,
      },
      cases,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const runCmd = (cmd: string[], timeoutMs: number) => runCommand(cmd, { timeoutMs });

/** Runs the bench in a throw-away network namespace and prints a table. */
export async function runAmplificationBench(print = true): Promise<AmplificationResult> {
  const ns = `pxe-${process.pid}-amp`;
  const mustRun = async (cmd: string[]) => {
    const r = await runCmd(cmd, 10_000);
    if (r.code !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr.trim()}`);
  };
  await mustRun(['ip', 'netns', 'add', ns]);
  try {
    await mustRun(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const r = await runCmd(['ip', 'netns', 'exec', ns, process.execPath, join(BENCH_DIST, 'amplification.js'), '--inside'], 120_000);
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.code !== 0 || !line.startsWith('{')) throw new Error(`amplification bench failed (${r.code}): ${r.stderr.slice(-2000)}`);
    const res = JSON.parse(line) as AmplificationResult;
    if (print) {
      process.stdout.write(`\namplification (bytes sent / bytes received from a spoofed source that never ACKs)\n`);
      for (const c of res.cases) {
        process.stdout.write(
          `  ${c.name.padEnd(52)} in ${String(c.bytesIn).padStart(7)} B  out ${String(c.bytesOut).padStart(8)} B  factor ${c.factor}  ${JSON.stringify(c.detail)}\n`,
        );
      }
    }
    return res;
  } finally {
    // kill anything left in the namespace (only ours), then delete it
    const pids = await runCmd(['ip', 'netns', 'pids', ns], 3_000);
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await runCmd(['ip', 'netns', 'del', ns], 5_000);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--inside')) {
    inside().then(
      (r) => {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
        process.exit(1);
      },
    );
  } else {
    runAmplificationBench().catch((err: unknown) => {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(1);
    });
  }
}
