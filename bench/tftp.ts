/**
 * TFTP throughput benchmark: pxe's server (as a separate process, dist/tftp/standalone.js)
 * against tftpd-hpa and atftpd on loopback high ports, same machine, same run, with the
 * atftp client. Every row takes runs+2 samples per server, interleaved across servers
 * (the order reversed every other run). Prints a markdown table of median MB/s, pxe / best peer, server CPU
 * seconds and peak RSS of the server process tree.
 *
 *   node dist-bench/bench/tftp.js [--runs 3] [--quick] [--with-dgram]
 *
 * --with-dgram adds a column for pxe on its node:dgram fallback (same build, `--io
 * dgram`): the A/B of the native datagram socket (src/native/udp.c). It is not a peer:
 * the ratio is always pxe (native) / best C server.
 *
 * dnsmasq is not included: its TFTP server only listens on port 69, which the
 * machine's other users may need.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sampleTreeRss, startAtftpd, startPxeTftp, startTftpdHpa, type PeerServer } from './peers.js';

const MiB = 1024 * 1024;

interface Row {
  label: string;
  file: string;
  size: number;
  clients: number;
  options: string[];
  /** only servers supporting the options are compared */
  windowed: boolean;
}

interface Measure {
  mbps: number[];
  cpu: number[];
  rssMiB: number;
  failures: number;
}

function atftp(port: number, file: string, out: string, options: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('atftp', [...options.flatMap((o) => ['--option', o]), '-g', '-r', file, '-l', out, '127.0.0.1', String(port)], {
      stdio: 'ignore',
    });
    const t = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve(code ?? 1);
    });
    child.on('error', () => resolve(1));
  });
}

function sha256(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(4 * MiB);
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
  }
  fs.closeSync(fd);
  return h.digest('hex');
}

function writeRandomFile(file: string, size: number): void {
  const fd = fs.openSync(file, 'w');
  const block = randomBytes(4 * MiB);
  for (let written = 0, i = 0; written < size; i++) {
    block.writeUInt32BE(i, 0);
    const n = Math.min(block.length, size - written);
    fs.writeSync(fd, block, 0, n);
    written += n;
  }
  fs.closeSync(fd);
}

async function measure(server: PeerServer, row: Row, runs: number, outDir: string, verify: string | undefined): Promise<Measure> {
  const m: Measure = { mbps: [], cpu: [], rssMiB: 0, failures: 0 };
  for (let run = 0; run < runs; run++) {
    // the first single-client run writes a real file and is checked byte for byte
    const check = verify !== undefined && run === 0 && row.clients === 1;
    const outs = Array.from({ length: row.clients }, (_, i) => (check ? path.join(outDir, `${server.name}-${i}`) : '/dev/null'));
    const cpu0 = server.cpu();
    const rss = sampleTreeRss(server.pid);
    const t0 = process.hrtime.bigint();
    const codes = await Promise.all(outs.map((o) => atftp(server.port, row.file, o, row.options)));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    // in.tftpd's forked children may still be exiting
    await new Promise((r) => setTimeout(r, 100));
    m.cpu.push(server.cpu() - cpu0);
    m.rssMiB = Math.max(m.rssMiB, rss.stop());
    const bad = codes.filter((c) => c !== 0).length;
    m.failures += bad;
    if (check) {
      for (const o of outs) {
        if (sha256(o) !== verify) m.failures++;
        fs.rmSync(o, { force: true });
      }
    }
    m.mbps.push((row.size * row.clients) / MiB / secs);
  }
  return m;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

export interface TftpBenchResult {
  table: string;
  rows: Array<{ label: string; results: Record<string, Measure>; ratio: number | undefined }>;
  rss50: number | undefined;
}

export async function runTftpBench(
  opts: { runs?: number; quick?: boolean; withDgram?: boolean; rows?: RegExp; skipRss?: boolean; log?: (s: string) => void } = {},
): Promise<TftpBenchResult> {
  const runs = opts.runs ?? 3;
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-bench-tftp-${process.pid}-`));
  const root = path.join(dir, 'root');
  const outDir = path.join(dir, 'out');
  fs.mkdirSync(root);
  fs.mkdirSync(outDir);
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(root, 0o755);
  const servers: PeerServer[] = [];
  try {
    const big = opts.quick ? 16 * MiB : 200 * MiB;
    writeRandomFile(path.join(root, 'f64'), 64 * MiB);
    writeRandomFile(path.join(root, 'fbig'), big);
    const sums: Record<string, string> = { f64: sha256(path.join(root, 'f64')), fbig: sha256(path.join(root, 'fbig')) };
    const bigLabel = `${big / MiB} MiB`;
    const allRows: Row[] = [
      {
        label: '64 MiB, blksize 1468 lock-step',
        file: 'f64',
        size: 64 * MiB,
        clients: 1,
        options: ['blksize 1468', 'tsize 0'],
        windowed: false,
      },
      {
        label: '64 MiB, blksize 1468, windowsize 16',
        file: 'f64',
        size: 64 * MiB,
        clients: 1,
        options: ['blksize 1468', 'tsize 0', 'windowsize 16'],
        windowed: true,
      },
      {
        label: '64 MiB, blksize 1468, windowsize 64',
        file: 'f64',
        size: 64 * MiB,
        clients: 1,
        options: ['blksize 1468', 'tsize 0', 'windowsize 64'],
        windowed: true,
      },
      {
        label: `${bigLabel}, blksize 1468 lock-step`,
        file: 'fbig',
        size: big,
        clients: 1,
        options: ['blksize 1468', 'tsize 0'],
        windowed: false,
      },
      {
        label: `${bigLabel}, blksize 1468, windowsize 16`,
        file: 'fbig',
        size: big,
        clients: 1,
        options: ['blksize 1468', 'tsize 0', 'windowsize 16'],
        windowed: true,
      },
      {
        label: `${bigLabel}, blksize 1468, windowsize 64`,
        file: 'fbig',
        size: big,
        clients: 1,
        options: ['blksize 1468', 'tsize 0', 'windowsize 64'],
        windowed: true,
      },
      {
        label: '20 clients × 64 MiB, 1468 lock-step (aggregate)',
        file: 'f64',
        size: 64 * MiB,
        clients: opts.quick ? 4 : 20,
        options: ['blksize 1468'],
        windowed: false,
      },
      {
        label: '20 clients × 64 MiB, 1468, windowsize 16 (aggregate)',
        file: 'f64',
        size: 64 * MiB,
        clients: opts.quick ? 4 : 20,
        options: ['blksize 1468', 'windowsize 16'],
        windowed: true,
      },
    ];
    // --rows: a subset for a focused A/B (the full bench runs them all)
    const rows = opts.rows ? allRows.filter((r) => opts.rows?.test(r.label)) : allRows;
    const pxe = await startPxeTftp(root);
    servers.push(pxe);
    if (opts.withDgram) servers.push(await startPxeTftp(root, 'dgram'));
    const hpa = await startTftpdHpa(root);
    if (hpa) servers.push(hpa);
    const at = await startAtftpd(root);
    if (at) servers.push(at);
    log(`tftp bench: servers ${servers.map((s) => `${s.name}:${s.port}`).join(', ')}; ${runs + 2} runs per cell`);

    const names = servers.map((s) => s.name);
    const result: TftpBenchResult = { table: '', rows: [], rss50: undefined };
    for (const row of rows) {
      const results: Record<string, Measure> = {};
      const inRow = servers.filter((s) => !(row.windowed && s.name === 'tftpd-hpa')); // tftpd-hpa has no RFC 7440
      // runs are interleaved (pxe, peer, peer, then peer, peer, pxe, ...) so a load swing
      // on this shared machine hits every server alike instead of one server's whole
      // cell, and no server always goes first. The concurrent rows are as noisy as the
      // single ones (2 vCPUs shared by 20 clients and the server): as many samples.
      const rowRuns = runs + 2;
      for (let run = 0; run < rowRuns; run++) {
        for (const s of run % 2 ? [...inRow].reverse() : inRow) {
          const one = await measure(s, row, 1, outDir, run === 0 ? sums[row.file] : undefined);
          const acc = results[s.name] ?? { mbps: [], cpu: [], rssMiB: 0, failures: 0 };
          acc.mbps.push(...one.mbps);
          acc.cpu.push(...one.cpu);
          acc.rssMiB = Math.max(acc.rssMiB, one.rssMiB);
          acc.failures += one.failures;
          results[s.name] = acc;
        }
      }
      for (const s of inRow) {
        const r = results[s.name] as Measure;
        log(
          `  ${row.label} | ${s.name}: ${r.mbps.map((x) => x.toFixed(1)).join(' / ')} MB/s, cpu ${median(r.cpu).toFixed(2)} s, rss ${r.rssMiB.toFixed(0)} MiB${r.failures ? `, ${r.failures} FAILED` : ''}`,
        );
      }
      const pxeR = results['pxe'];
      const peers = Object.entries(results).filter(([n]) => n !== 'pxe' && n !== 'pxe-dgram');
      const best = Math.max(0, ...peers.map(([, r]) => median(r.mbps)));
      result.rows.push({ label: row.label, results, ratio: pxeR && best > 0 ? median(pxeR.mbps) / best : undefined });
    }

    // memory with 50 concurrent clients on one 64 MiB file (shared chunk cache)
    if (!opts.skipRss) {
      const row: Row = {
        label: '50 clients × 64 MiB, windowsize 16',
        file: 'f64',
        size: 64 * MiB,
        clients: opts.quick ? 8 : 50,
        options: ['blksize 1468', 'windowsize 16'],
        windowed: true,
      };
      const r = await measure(pxe, row, 1, outDir, undefined);
      result.rss50 = r.rssMiB;
      log(
        `  ${row.label} | pxe: ${r.mbps[0]?.toFixed(1)} MB/s aggregate, peak RSS ${r.rssMiB.toFixed(0)} MiB${r.failures ? `, ${r.failures} FAILED` : ''}`,
      );
    }

    const cell = (r: Measure | undefined): string =>
      r ? `${median(r.mbps).toFixed(1)}${r.failures ? ` (${r.failures} failed)` : ''}` : '–';
    const lines: string[] = [];
    lines.push(
      `| row | ${names.map((n) => `${n} MB/s`).join(' | ')} | pxe / best peer | ${names.map((n) => `${n} CPU s`).join(' | ')} | ${names.map((n) => `${n} RSS MiB`).join(' | ')} |`,
    );
    lines.push(`|---|${names.map(() => '---:').join('|')}|---:|${names.map(() => '---:').join('|')}|${names.map(() => '---:').join('|')}|`);
    for (const r of result.rows) {
      lines.push(
        `| ${r.label} | ${names.map((n) => cell(r.results[n])).join(' | ')} | ${r.ratio !== undefined ? r.ratio.toFixed(2) : '–'} | ${names
          .map((n) => (r.results[n] ? median(r.results[n].cpu).toFixed(2) : '–'))
          .join(' | ')} | ${names.map((n) => (r.results[n] ? r.results[n].rssMiB.toFixed(0) : '–')).join(' | ')} |`,
      );
    }
    if (opts.withDgram) {
      lines.push('');
      lines.push(
        `pxe native / pxe node:dgram (MB/s medians; CPU s medians): ${result.rows
          .map((r) => {
            const a = r.results['pxe'];
            const b = r.results['pxe-dgram'];
            return a && b
              ? `${r.label}: ${(median(a.mbps) / median(b.mbps)).toFixed(2)} (CPU ${median(a.cpu).toFixed(2)} vs ${median(b.cpu).toFixed(2)})`
              : '';
          })
          .filter(Boolean)
          .join('; ')}`,
      );
    }
    lines.push('');
    if (result.rss50 !== undefined)
      lines.push(
        `pxe peak RSS with ${opts.quick ? 8 : 50} concurrent clients fetching the same 64 MiB file (windowsize 16): ${result.rss50?.toFixed(0)} MiB (target < 200 MiB)`,
      );
    result.table = lines.join('\n');
    return result;
  } finally {
    for (const s of servers) await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      quick: { type: 'boolean', default: false },
      'with-dgram': { type: 'boolean', default: false },
      rows: { type: 'string' },
      'skip-rss': { type: 'boolean', default: false },
    },
  });
  const r = await runTftpBench({
    runs: Number(values.runs),
    quick: values.quick,
    withDgram: values['with-dgram'],
    rows: values.rows ? new RegExp(values.rows) : undefined,
    skipRss: values['skip-rss'],
  });
  process.stdout.write('\n## TFTP\n\n' + r.table + '\n');
}
