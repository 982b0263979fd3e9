/**
 * The dashboard with 10,000 machines in the boot-event log: how long `pxe serve` takes
 * to build the machine list from the log at start, and each page's server time (time to
 * the last byte over loopback, keep-alive) and payload. No peer serves this page, so the
 * figures are absolute; the goal is a page that stays usable (default view: the newest
 * 500 machines, all counted).
 *
 *   node dist-bench/bench/dashboard.js [--machines 10000] [--requests 20]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { median, REPO } from './peers.js';

const { values } = parseArgs({ options: { machines: { type: 'string', default: '10000' }, requests: { type: 'string', default: '20' } } });
const MACHINES = Number(values.machines);
const REQUESTS = Number(values.requests);
const PORT = 28_000 + (process.pid % 1000);

function mac(i: number): string {
  return `52:54:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}

/** One typical boot per machine: DHCP offer, boot file, config miss + hit, kernel, initrd. */
function writeEvents(file: string): number {
  const t0 = Date.now() - MACHINES * 1000;
  const lines: string[] = [];
  for (let i = 0; i < MACHINES; i++) {
    const m = mac(i);
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const at = (k: number): string => new Date(t0 + i * 1000 + k * 50).toISOString();
    lines.push(
      JSON.stringify({
        time: at(0),
        proto: 'dhcp',
        mac: m,
        what: 'offer pxelinux.0 via 10.0.0.1',
        detail: { port: 'dhcp', firmware: 'bios', ipxe: true },
      }),
      JSON.stringify({ time: at(1), proto: 'http', mac: m, ip, what: 'GET /files/pxelinux.0 -> 200' }),
      JSON.stringify({ time: at(2), proto: 'http', mac: m, ip, what: `GET /files/pxelinux.cfg/01-${m.replace(/:/g, '-')} -> 404` }),
      JSON.stringify({ time: at(3), proto: 'http', mac: m, ip, what: 'GET /files/pxelinux.cfg/default -> 200' }),
      JSON.stringify({
        time: at(4),
        proto: 'tftp',
        mac: m,
        ip,
        what: 'fetched images/debian/12/x86_64/linux',
        detail: { bytes: 7_000_000, ms: 900 },
      }),
      JSON.stringify({
        time: at(5),
        proto: 'tftp',
        mac: m,
        ip,
        what: 'fetched images/debian/12/x86_64/initrd.gz',
        detail: { bytes: 40_000_000, ms: 4200 },
      }),
    );
  }
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return lines.length;
}

async function timeGet(url: string): Promise<{ ms: number; bytes: number }> {
  const t = performance.now();
  const res = await fetch(url);
  const body = Buffer.from(await res.arrayBuffer());
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return { ms: performance.now() - t, bytes: body.length };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-bench-dashboard-'));
  const root = path.join(dir, 'tftproot');
  fs.mkdirSync(path.join(dir, 'state'), { recursive: true });
  fs.mkdirSync(root);
  const events = writeEvents(path.join(dir, 'state', 'boot-events.jsonl'));
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      path.join(REPO, 'dist/cli.js'),
      'serve',
      '--listen',
      '127.0.0.1',
      '--no-dhcp',
      '--no-tftp',
      '--http-port',
      String(PORT),
      '--tftp-root',
      root,
      '--log-level',
      'warn',
    ],
    {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  try {
    const base = `http://127.0.0.1:${PORT}`;
    // ready when the machine count on the page reaches every MAC of the log (bounded: 120 s)
    let seeded = 0;
    for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
      const r = await fetch(`${base}/dashboard/machines.json`).catch(() => null);
      if (!r?.ok) continue;
      const j = (await r.json()) as { total: number };
      if (j.total >= MACHINES) {
        seeded = performance.now() - started;
        break;
      }
    }
    if (!seeded) throw new Error('the machine list never reached every MAC of the log');
    const rows: string[] = [];
    for (const [label, p] of [
      ['machines (newest 500)', '/'],
      ['machines (newest 5,000)', '/?limit=5000'],
      ['machine list JSON (500)', '/dashboard/machines.json'],
      ['hosts', '/hosts'],
      ['server', '/server'],
    ] as const) {
      await timeGet(base + p); // first request compiles the code path
      const runs: Array<{ ms: number; bytes: number }> = [];
      for (let i = 0; i < REQUESTS; i++) runs.push(await timeGet(base + p));
      rows.push(
        `| ${label} | ${median(runs.map((r) => r.ms)).toFixed(1)} ms | ${Math.max(...runs.map((r) => r.ms)).toFixed(1)} ms | ${(runs[0]!.bytes / 1024).toFixed(0)} KiB |`,
      );
    }
    process.stdout.write(
      [
        `### Dashboard with ${MACHINES.toLocaleString('en')} machines (${events.toLocaleString('en')} boot events in the log)`,
        '',
        `Start to a complete machine list (process start, log read, list built): ${(seeded / 1000).toFixed(2)} s`,
        '',
        `| page | median server time (${REQUESTS} requests) | slowest | payload |`,
        '|---|---|---|---|',
        ...rows,
        '',
      ].join('\n'),
    );
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
