/**
 * HTTP /files/ benchmark: `pxe serve` (HTTP, with TFTP and the proxyDHCP also running
 * on 127.0.0.1 high ports, so its event loop is shared as in production, one access-log
 * line per request to a file) against nginx (Debian's, `sendfile on`, 2 workers, access
 * log to a file) serving the same directory on loopback, with concurrent `curl`
 * processes as clients.
 *
 *   node dist-bench/bench/http.js [--rounds 5] [--rows 50x64,200x40,1x64] [--with-stream]
 *
 * Per row both servers are started fresh (peak RSS is the row's own), the file is read
 * once through each (page cache warm), then `rounds` rounds, the server order reversed
 * every other round. A round: all clients spawned at once, aggregate MB/s = bytes / wall
 * time from the first spawn to the last exit. Every client's status and byte count are
 * checked, and one client in 25 writes its body to disk where it is compared (SHA-256)
 * after the round, untimed. Server CPU is the process tree's (nginx: master and
 * workers) user+system time over the round, divided by the bytes served.
 *
 * --with-stream adds pxe on its pure-Node stream path (PXE_HTTP_SENDFILE=0): the A/B of
 * the native sendfile(2) (src/native/sendfile.c). It is not a peer: the ratio is always
 * pxe (as shipped) / nginx.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSeconds, median, REPO, sampleTreeRss } from './peers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** one client in VERIFY_EVERY saves its body, compared byte for byte after the round */
const VERIFY_EVERY = 25;

interface HttpServer {
  name: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

interface Row {
  label: string;
  file: string;
  size: number;
  clients: number;
  /** sequential downloads per client (one curl, one keep-alive connection) */
  repeat: number;
}

interface Measure {
  mbps: number[];
  cpuPerGiB: number[];
  rssMiB: number;
  /** RSS after the warm-up request, before the first round: what the clients add is the difference */
  idleRssMiB: number;
  failures: number;
}

async function freeTcpPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Waits (bounded) until GET url answers at all. */
async function waitHttp(url: string, child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}) before answering ${url}`);
    const r = spawnSync('curl', ['-s', '-o', '/dev/null', '--max-time', '2', url], { timeout: 5000 });
    if (r.status === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url}: no answer within ${timeoutMs} ms`);
}

function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const done = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(t);
  };
}

/** `pxe serve` from dist/ on 127.0.0.1; `stream`: the pure-Node path (no sendfile). */
async function startPxe(root: string, work: string, stream = false): Promise<HttpServer> {
  const name = stream ? 'pxe-stream' : 'pxe';
  const site = path.join(work, name);
  fs.mkdirSync(site, { recursive: true });
  fs.writeFileSync(
    path.join(site, 'pxe.yaml'),
    [
      `tftp: { root: ${root} }`,
      `catalogDir: ${path.join(REPO, 'distros')}`,
      `templatesDir: ${path.join(REPO, 'templates')}`,
      `stateDir: ${path.join(site, 'state')}`,
      '',
    ].join('\n'),
  );
  const port = await freeTcpPort();
  const log = fs.openSync(path.join(site, 'access.log'), 'w');
  const child = spawn(
    process.execPath,
    [
      path.join(REPO, 'dist', 'cli.js'),
      'serve',
      '--config',
      path.join(site, 'pxe.yaml'),
      '--listen',
      '127.0.0.1',
      '--http-port',
      String(port),
      '--tftp-port',
      '0',
      '--dhcp-port',
      '0',
      '--pxe-port',
      '0',
    ],
    { cwd: site, stdio: ['ignore', log, 'inherit'], env: { ...process.env, ...(stream ? { PXE_HTTP_SENDFILE: '0' } : {}) } },
  );
  fs.closeSync(log);
  const stop = stopper(child);
  // pxe loads its catalog and templates first: ~15-30 s at load 25 on the 2-vCPU host
  await waitHttp(`http://127.0.0.1:${port}/healthz`, child, 90_000).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return { name, port, pid: child.pid as number, stop };
}

async function startNginx(root: string, work: string): Promise<HttpServer | null> {
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((b) => fs.existsSync(b));
  if (!bin) return null;
  const prefix = path.join(work, 'nginx');
  fs.mkdirSync(prefix, { recursive: true });
  const port = await freeTcpPort();
  // Debian's defaults where they matter (sendfile on, tcp_nopush on), 2 workers like
  // the 2 cores; temp paths and logs inside the bench directory.
  const conf = `daemon off;
worker_processes 2;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log;
events { worker_connections 1024; }
http {
  sendfile on;
  tcp_nopush on;
  types { application/octet-stream bin; }
  default_type application/octet-stream;
  access_log ${prefix}/access.log;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  server {
    listen 127.0.0.1:${port};
    location /files/ { alias ${root}/; }
  }
}
`;
  fs.writeFileSync(path.join(prefix, 'nginx.conf'), conf);
  const child = spawn(bin, ['-p', prefix, '-c', path.join(prefix, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const stop = stopper(child);
  // a 404 for the directory is an answer: waitHttp only needs curl to get one
  await waitHttp(`http://127.0.0.1:${port}/files/`, child, 30_000).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return { name: 'nginx', port, pid: child.pid as number, stop };
}

function children(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** CPU seconds of a server and its direct children (nginx's workers). */
const treeCpu = (pid: number): number => cpuSeconds(pid) + children(pid).reduce((a, c) => a + cpuSeconds(c), 0);

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function writeRandomFile(file: string, size: number): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'w');
  for (let written = 0; written < size;) {
    const b = randomBytes(Math.min(4 * MiB, size - written));
    h.update(b);
    fs.writeSync(fd, b);
    written += b.length;
  }
  fs.closeSync(fd);
  return h.digest('hex');
}

/** One curl process: `repeat` sequential GETs; resolves with one "code bytes" per transfer. */
function curl(url: string, outs: string[], timeoutS: number): Promise<{ code: number; lines: string[] }> {
  return new Promise((resolve) => {
    const args = ['-s', '--max-time', String(timeoutS), '-w', '%{http_code} %{size_download}\\n'];
    for (const o of outs) args.push('-o', o, url);
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? 1, lines: out.trim().split('\n') }));
    child.on('error', () => resolve({ code: 1, lines: [] }));
  });
}

async function round(
  server: HttpServer,
  row: Row,
  outDir: string,
  sum: string,
): Promise<{ mbps: number; cpu: number; failures: number; rss: number }> {
  const url = `http://127.0.0.1:${server.port}/files/${row.file}`;
  const saved: string[] = [];
  const plans = Array.from({ length: row.clients }, (_, i) =>
    Array.from({ length: row.repeat }, (_, k) => {
      if (i % VERIFY_EVERY !== 0 || k !== 0) return '/dev/null';
      const f = path.join(outDir, `${server.name}-${i}`);
      saved.push(f);
      return f;
    }),
  );
  // bounded: a client slower than 8 MB/s on loopback counts as failed
  const timeoutS = Math.ceil(30 + (row.size * row.repeat * Math.max(1, row.clients / 2)) / 8e6);
  const cpu0 = treeCpu(server.pid);
  const rss = sampleTreeRss(server.pid, 50);
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(plans.map((outs) => curl(url, outs, timeoutS)));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const peak = rss.stop();
  const cpu = treeCpu(server.pid) - cpu0;
  let failures = 0;
  for (const r of results) {
    const ok = r.lines.filter((l) => l === `200 ${row.size}`).length;
    failures += row.repeat - (r.code === 0 ? ok : 0);
  }
  for (const f of saved) {
    if (!fs.existsSync(f) || sha256File(f) !== sum) failures++;
    fs.rmSync(f, { force: true });
  }
  const bytes = row.size * row.clients * row.repeat;
  return { mbps: bytes / 1e6 / secs, cpu: cpu / (bytes / GiB), failures, rss: peak };
}

export interface HttpBenchResult {
  table: string;
  rows: Array<{ label: string; results: Record<string, Measure>; ratio: number; cpuRatio: number }>;
}

export async function runHttpBench(
  opts: { rounds?: number; rows?: string[]; withStream?: boolean; log?: (s: string) => void } = {},
): Promise<HttpBenchResult> {
  const rounds = Math.max(1, opts.rounds ?? 5);
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-bench-http-${process.pid}-`));
  const root = path.join(work, 'root');
  const outDir = path.join(work, 'out');
  fs.mkdirSync(root);
  fs.mkdirSync(outDir);
  // nginx's workers run as nobody unless told otherwise: the tree must be readable
  for (const d of [work, root]) fs.chmodSync(d, 0o755);
  const sums: Record<string, string> = {
    'f64.bin': writeRandomFile(path.join(root, 'f64.bin'), 64 * MiB),
    'f40.bin': writeRandomFile(path.join(root, 'f40.bin'), 40 * MiB),
  };
  const allRows: Row[] = [
    { label: '50 clients × 64 MiB (aggregate)', file: 'f64.bin', size: 64 * MiB, clients: 50, repeat: 1 },
    { label: '200 clients × 40 MiB (aggregate)', file: 'f40.bin', size: 40 * MiB, clients: 200, repeat: 1 },
    { label: '1 client × 64 MiB, 8 GETs on one connection', file: 'f64.bin', size: 64 * MiB, clients: 1, repeat: 8 },
  ];
  const key = (r: Row) => `${r.clients}x${r.size / MiB}`;
  const rows = opts.rows ? allRows.filter((r) => opts.rows!.includes(key(r))) : allRows;
  const result: HttpBenchResult = { table: '', rows: [] };
  const names = ['pxe', 'nginx', ...(opts.withStream ? ['pxe-stream'] : [])];
  try {
    for (const row of rows) {
      const servers: HttpServer[] = [];
      try {
        servers.push(await startPxe(root, work));
        const nginx = await startNginx(root, work);
        if (!nginx) throw new Error('nginx not installed (scripts/install-deps.sh installs nginx-light)');
        servers.push(nginx);
        if (opts.withStream) servers.push(await startPxe(root, work, true));
        // page cache warm and every server's first request served before timing
        for (const s of servers)
          spawnSync('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${s.port}/files/${row.file}`], { timeout: 60_000 });
        const acc: Record<string, Measure> = {};
        for (const s of servers) acc[s.name] = { mbps: [], cpuPerGiB: [], rssMiB: 0, idleRssMiB: sampleTreeRss(s.pid).stop(), failures: 0 };
        for (let r = 0; r < rounds; r++) {
          for (const s of r % 2 ? [...servers].reverse() : servers) {
            const one = await round(s, row, outDir, sums[row.file] as string);
            const m = acc[s.name] as Measure;
            m.mbps.push(one.mbps);
            m.cpuPerGiB.push(one.cpu);
            m.rssMiB = Math.max(m.rssMiB, one.rss);
            m.failures += one.failures;
            log(
              `  ${row.label} round ${r + 1}/${rounds} ${s.name}: ${one.mbps.toFixed(0)} MB/s, cpu ${one.cpu.toFixed(2)} s/GiB, rss ${one.rss.toFixed(0)} MiB, load ${os.loadavg()[0]!.toFixed(1)}${one.failures ? `, ${one.failures} FAILED` : ''}`,
            );
          }
        }
        const p = acc['pxe'] as Measure;
        const n = acc['nginx'] as Measure;
        result.rows.push({
          label: row.label,
          results: acc,
          ratio: median(p.mbps) / median(n.mbps),
          cpuRatio: median(p.cpuPerGiB) / median(n.cpuPerGiB),
        });
      } finally {
        for (const s of servers) await s.stop();
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const lines: string[] = [];
  const has = (r: HttpBenchResult['rows'][number], n: string) => r.results[n] !== undefined;
  lines.push(
    `| row | ${names.map((n) => `${n} MB/s`).join(' | ')} | pxe / nginx | ${names.map((n) => `${n} CPU s/GiB`).join(' | ')} | CPU pxe / nginx | ${names.map((n) => `${n} RSS MiB idle → peak`).join(' | ')} | failures |`,
  );
  lines.push(
    `|---|${names.map(() => '---:').join('|')}|---:|${names.map(() => '---:').join('|')}|---:|${names.map(() => '---:').join('|')}|---:|`,
  );
  for (const r of result.rows) {
    const col = (f: (m: Measure) => string) => names.map((n) => (has(r, n) ? f(r.results[n] as Measure) : '–')).join(' | ');
    const failures = Object.values(r.results).reduce((a, m) => a + m.failures, 0);
    lines.push(
      `| ${r.label} | ${col((m) => median(m.mbps).toFixed(0))} | ${r.ratio.toFixed(2)} | ${col((m) => median(m.cpuPerGiB).toFixed(2))} | ${r.cpuRatio.toFixed(2)} | ${col((m) => `${m.idleRssMiB.toFixed(0)} → ${m.rssMiB.toFixed(0)}`)} | ${failures} |`,
    );
  }
  lines.push(
    '',
    `Medians of ${rounds} rounds per server, order reversed every other round; load average at the end ${os.loadavg()[0]!.toFixed(1)}.`,
  );
  result.table = lines.join('\n');
  return result;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '5' }, rows: { type: 'string' }, 'with-stream': { type: 'boolean', default: false } },
  });
  const r = await runHttpBench({
    rounds: Number(values.rounds),
    withStream: values['with-stream'],
    ...(values.rows ? { rows: values.rows.split(',') } : {}),
  });
  process.stdout.write('\n## HTTP /files/\n\n' + r.table + '\n');
  if (r.rows.some((row) => Object.values(row.results).some((m) => m.failures > 0))) process.exitCode = 1;
}
