/**
 * `npm run bench`: runs every benchmark module present, one at a time, each in its own
 * process (so one bench's sockets, namespaces or memory cannot skew the next).
 *
 *   node dist-bench/bench/index.js            all benches
 *   node dist-bench/bench/index.js tftp dhcp  only these
 *
 * To add a bench, add a line to BENCHES; its module must run itself when executed
 * directly and print its results (markdown) on stdout.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const BENCHES: Array<{ name: string; module: string; args?: string[] }> = [
  // with the node:dgram fallback as an extra column: the A/B of src/native/udp.c
  { name: 'tftp', module: 'tftp.js', args: ['--with-dgram'] },
  // Several rounds/runs: single storms and single QEMU boots vary by more than the gaps
  // measured. 9 storm rounds (~80 s): a storm's p99 is its 10th-slowest reply, and one
  // disturbance from elsewhere on the 2-vCPU host sets it for either server.
  { name: 'dhcp', module: 'dhcp.js', args: ['--rounds', '9'] },
  // 5 rounds per row and server against nginx (~4 min: 200 curl processes × 40 MiB is
  // the longest row)
  { name: 'http', module: 'http.js', args: ['--rounds', '5'] },
  { name: 'sync', module: 'sync.js' },
  // 12 boots per server (36 boots, ~10 min; two passes over the 6 orders): after the
  // kernel is entered a TCG boot varies by +-1.5 s on its own, more than the whole
  // difference the server makes
  { name: 'boot', module: 'boot.js', args: ['12'] },
  { name: 'amplification', module: 'amplification.js' },
  // the web dashboard with 10,000 machines in the boot-event log (~20 s)
  { name: 'dashboard', module: 'dashboard.js' },
];

const wanted = process.argv.slice(2);
let failed = 0;
for (const b of BENCHES) {
  if (wanted.length > 0 && !wanted.includes(b.name)) continue;
  const file = path.join(HERE, b.module);
  if (!fs.existsSync(file)) continue;
  process.stderr.write(`\n=== bench ${b.name} ===\n`);
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [file, ...(b.args ?? [])], { stdio: 'inherit' });
    child.on('close', (c) => resolve(c ?? 1));
    child.on('error', () => resolve(1));
  });
  if (code !== 0) {
    failed++;
    process.stderr.write(`bench ${b.name} failed (exit ${code})\n`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
