/**
 * Starting and stopping peer servers for benchmarks (loopback, high ports), and
 * measuring any server process the same way: CPU seconds from /proc/<pid>/stat
 * (including reaped children, since in.tftpd forks per transfer) and peak RSS sampled
 * over the process tree.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';

import { REPO_ROOT as REPO } from './repo.js';

export { REPO };

const PEER_DIR = path.join(REPO, '.cache', 'peers');

export interface PeerServer {
  name: string;
  port: number;
  pid: number;
  /** CPU seconds used so far by the server and every process it forked */
  cpu(): number;
  stop(): Promise<void>;
}

const CPUACCT = '/sys/fs/cgroup/cpuacct';

/**
 * Puts `pid` in its own cgroup-v1 cpuacct group so CPU used by forked children (in.tftpd
 * forks per transfer and does not leave them in cutime) is counted. Null when cgroups
 * are not writable; /proc/<pid>/stat is used then.
 */
function cpuacctGroup(name: string, pid: number): string | null {
  try {
    if (!fs.existsSync(path.join(CPUACCT, 'cgroup.procs'))) return null;
    const dir = path.join(CPUACCT, `pxe-bench-${process.pid}-${name}-${pid}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
    return dir;
  } catch {
    return null;
  }
}

/** A UDP port that is free on 127.0.0.1 right now. */
export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Waits until a TFTP server answers (any reply to an RRQ for a missing file), bounded. */
export async function waitTftpReady(port: number, timeoutMs = 10_000): Promise<void> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const got = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 200);
        s.once('message', () => {
          clearTimeout(t);
          resolve(true);
        });
        s.send(Buffer.from('\x00\x01.bench-probe-missing\x00octet\x00', 'latin1'), port, '127.0.0.1');
      });
      if (got) return;
    }
    throw new Error(`TFTP server on port ${port} did not answer`);
  } finally {
    s.close();
  }
}

function track(name: string, port: number, child: ChildProcess): PeerServer {
  let exited = false;
  child.on('exit', () => (exited = true));
  const pid = child.pid as number;
  const group = cpuacctGroup(name, pid);
  return {
    name,
    port,
    pid,
    cpu() {
      if (group) {
        try {
          return Number(fs.readFileSync(path.join(group, 'cpuacct.usage'), 'utf8').trim()) / 1e9;
        } catch {
          // fall through
        }
      }
      return cpuSeconds(pid);
    },
    async stop() {
      if (!exited) {
        const done = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await done;
        clearTimeout(t);
      }
      if (group) {
        // forked children may still be exiting: retry the rmdir briefly
        for (let i = 0; i < 50; i++) {
          try {
            fs.rmdirSync(group);
            break;
          } catch {
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      }
    },
  };
}

/** `io: 'dgram'` runs the node:dgram fallback (named pxe-dgram) for an A/B of the native socket. */
export async function startPxeTftp(root: string, io: 'native' | 'dgram' = 'native'): Promise<PeerServer> {
  const port = await freeUdpPort();
  const child = spawn(
    process.execPath,
    [
      path.join(REPO, 'dist', 'tftp', 'standalone.js'),
      '--root',
      root,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      // every bench client comes from 127.0.0.1: lift the per-client limit like the peers have none
      '--max-transfers-per-client',
      '1000',
      '--max-transfers',
      '1000',
      '--io',
      io,
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const p = track(io === 'native' ? 'pxe' : 'pxe-dgram', port, child);
  await waitTftpReady(port);
  return p;
}

export async function startTftpdHpa(root: string): Promise<PeerServer | null> {
  if (!fs.existsSync('/usr/sbin/in.tftpd')) return null;
  const port = await freeUdpPort();
  // -L: stay in the foreground (forks one child per transfer), -s: chroot-like root
  const child = spawn('/usr/sbin/in.tftpd', ['-L', '-s', '-a', `127.0.0.1:${port}`, root], { stdio: 'ignore' });
  const p = track('tftpd-hpa', port, child);
  await waitTftpReady(port);
  return p;
}

/** atftpd conflicts with tftpd-hpa as a package, so its binary is unpacked into .cache/peers. */
export function ensureAtftpd(): string | null {
  const bin = path.join(PEER_DIR, 'root', 'usr', 'sbin', 'atftpd');
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(PEER_DIR, { recursive: true });
  const dl = spawnSync('apt-get', ['download', 'atftpd'], { cwd: PEER_DIR, stdio: 'ignore', timeout: 60_000 });
  if (dl.status !== 0) return null;
  const deb = fs.readdirSync(PEER_DIR).find((f) => f.startsWith('atftpd_') && f.endsWith('.deb'));
  if (!deb) return null;
  spawnSync('dpkg', ['-x', path.join(PEER_DIR, deb), path.join(PEER_DIR, 'root')], { stdio: 'ignore', timeout: 60_000 });
  return fs.existsSync(bin) ? bin : null;
}

export async function startAtftpd(root: string): Promise<PeerServer | null> {
  const bin = ensureAtftpd();
  if (!bin) return null;
  const port = await freeUdpPort();
  const child = spawn(
    bin,
    [
      '--daemon',
      '--no-fork',
      '--port',
      String(port),
      '--bind-address',
      '127.0.0.1',
      '--user',
      'root',
      '--group',
      'root',
      '--logfile',
      '/dev/null',
      '-m',
      '200',
      root,
    ],
    { stdio: 'ignore' },
  );
  const p = track('atftpd', port, child);
  await waitTftpReady(port);
  return p;
}

/** Median of a sample (the mean of the two middle values for an even count; NaN if empty). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  if (s.length === 0) return NaN;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/**
 * Percentile-bootstrap confidence interval of median(a) / median(b), a and b sampled
 * independently (boots of two servers). A fixed seed keeps a run's printed interval
 * reproducible from its samples. Used where single runs vary as much as the effect
 * measured: it says whether a ratio below 1.0 is the server or the dice.
 */
export function bootstrapRatioOfMedians(
  a: readonly number[],
  b: readonly number[],
  opts: { resamples?: number; level?: number; seed?: number } = {},
): [number, number] {
  const n = opts.resamples ?? 4000;
  const level = opts.level ?? 0.95;
  // mulberry32: small, seedable, plenty for resampling indices
  let state = (opts.seed ?? 0x9e3779b9) >>> 0;
  const random = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const resample = (xs: readonly number[]): number[] => xs.map(() => xs[Math.floor(random() * xs.length)] as number);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push(median(resample(a)) / median(resample(b)));
  ratios.sort((x, y) => x - y);
  const at = (q: number): number => ratios[Math.min(n - 1, Math.max(0, Math.floor(q * n)))] as number;
  return [at((1 - level) / 2), at(1 - (1 - level) / 2)];
}

const CLK_TCK = 100;

/** CPU seconds of a process including its reaped children (utime+stime+cutime+cstime). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is state (field 3); utime is field 14 -> index 11
    const n = (i: number): number => Number(fields[i] ?? 0);
    return (n(11) + n(12) + n(13) + n(14)) / CLK_TCK;
  } catch {
    return 0;
  }
}

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function children(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Samples the RSS of a process tree every `intervalMs`; stop() returns the peak in MiB. */
export function sampleTreeRss(pid: number, intervalMs = 100): { stop(): number } {
  let peak = 0;
  const sample = (): void => {
    let total = rssKiB(pid);
    for (const c of children(pid)) total += rssKiB(c);
    if (total > peak) peak = total;
  };
  sample();
  const t = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(t);
      sample();
      return peak / 1024;
    },
  };
}
