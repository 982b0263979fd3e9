/**
 * Faults and restarts of a real `pxe serve` child on loopback, with tftp-hpa/curl:
 * SIGHUP reloads config + hosts + catalog while a big transfer stays in flight, an
 * invalid reload keeps the old policy, SIGTERM drains transfers and exits 0 while
 * refusing new work, and startup failures print one clear line (no stack trace).
 */
import { runCommand } from '../../src/proc.js';
import dgram from 'node:dgram';
import { connect } from 'node:net';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, REPO_ROOT, ServeChild } from '../../bench/fuzz/child.js';
import { NetnsLab } from '../helpers/netns.js';
import { run, sha256File, writeRandomFile } from '../helpers/tftp.js';

const MAC = '52:54:00:aa:bb:01';
const HOSTCFG = `pxelinux.cfg/01-${MAC.replace(/:/g, '-')}`;

let dir = '';
const children: ServeChild[] = [];

function hostsYaml(hostname: string): string {
  return `hosts:\n  "${MAC}": { hostname: ${hostname}, entry: local }\n`;
}

function pxeYaml(extra = ''): string {
  return [
    'tftp: { root: ./tftproot }',
    `catalogDir: ${join(REPO_ROOT, 'distros')}`,
    `templatesDir: ${join(REPO_ROOT, 'templates')}`,
    'hostsFile: ./hosts.yaml',
    'stateDir: ./state',
    extra,
    '',
  ].join('\n');
}

async function startServe(site: string, opts: { dhcp?: boolean } = {}): Promise<{ child: ServeChild; tftpPort: number; httpPort: number }> {
  // the proxyDHCP, when wanted, on ephemeral ports of 127.0.0.1 (never a real interface)
  const dhcp = opts.dhcp ? ['--dhcp-port', '0', '--pxe-port', '0'] : ['--no-dhcp'];
  const child = new ServeChild({
    cwd: site,
    args: ['--config', join(site, 'pxe.yaml'), '--listen', '127.0.0.1', ...dhcp, '--tftp-port', '0', '--http-port', '0'],
  });
  children.push(child);
  await child.ready();
  const t = child.lines.find((l) => l.msg === 'tftp server listening') as { listen: Array<{ port: number }> } | undefined;
  const h = child.lines.find((l) => l.msg === 'http server listening') as { addresses: string[] } | undefined;
  const tftpPort = t?.listen[0]?.port ?? 0;
  const httpPort = Number(h?.addresses[0]?.split(':').pop());
  expect(tftpPort).toBeGreaterThan(0);
  expect(httpPort).toBeGreaterThan(0);
  return { child, tftpPort, httpPort };
}

function makeSite(name: string, bigBytes: number): string {
  const site = join(dir, name);
  mkdirSync(join(site, 'tftproot'), { recursive: true });
  writeRandomFile(join(site, 'tftproot', 'big.bin'), bigBytes);
  writeFileSync(join(site, 'tftproot', 'small.txt'), 'small file\n');
  writeFileSync(join(site, 'pxe.yaml'), pxeYaml());
  writeFileSync(join(site, 'hosts.yaml'), hostsYaml('web1'));
  return site;
}

async function metric(httpPort: number, name: string): Promise<number> {
  const r = await run('curl', ['-s', '--max-time', '5', `http://127.0.0.1:${httpPort}/metrics`], 10_000);
  const line = r.stdout.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

/** Waits (bounded) until the server reports a transfer in flight. */
async function waitActive(httpPort: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await metric(httpPort, 'pxe_tftp_active')) >= 1) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('no transfer became active');
}

const tftpGet = (port: number, file: string, out: string) =>
  run('tftp', ['-m', 'binary', '127.0.0.1', String(port), '-c', 'get', file, out], 120_000);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), `pxe-ops-${process.pid}-`));
});

afterEach(async () => {
  for (const c of children.splice(0)) await c.stop();
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Voluntary context switches of a thread so far: each one is the thread going to sleep (a wake-up follows). */
function voluntarySwitches(pid: number, tid = pid): number {
  const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

describe('idle', () => {
  it('an idle pxe serve, proxyDHCP included, wakes its main thread fewer than 40 times a second (the default metrics sampled the event loop every 10 ms: 100+)', async () => {
    // Why it matters: every wake-up of an idle daemon takes CPU from whatever else runs
    // on the host; on the 2-vCPU bench machine, QEMU booting through it (docs/benchmarks.md).
    const { child, httpPort } = await startServe(makeSite('idle', 1024), { dhcp: true });
    expect(child.lines.some((l) => l.msg === 'proxyDHCP listening')).toBe(true);
    const pid = child.proc.pid as number;
    // the event-loop lag metrics still work (sampled every 100 ms now)
    await new Promise((r) => setTimeout(r, 1500));
    expect(await metric(httpPort, 'pxe_nodejs_eventloop_lag_p99_seconds')).toBeGreaterThan(0);
    const s0 = voluntarySwitches(pid);
    await new Promise((r) => setTimeout(r, 4000));
    const perSecond = (voluntarySwitches(pid) - s0) / 4;
    // Timers left: the 100 ms lag sampler (10 a second), the proxy's 50 ms housekeeping
    // tick (20) and pino/libuv housekeeping: 30-32 measured. With the 10 ms sampler this
    // was 100-230. The proxy's tick stays on purpose: slowed to 2 s while idle (tried),
    // the first boot storm after the pause had a wire p99 of 0.84 and 2.20 ms against
    // 0.51 ms with the tick (bench/dhcp.ts, 7 rounds each).
    expect(perSecond).toBeGreaterThan(0);
    expect(perSecond).toBeLessThan(40);
  });
});

describe('HTTP /files/: what pxelinux.0 loaded over HTTP by iPXE asks for', () => {
  it('serves the per-host config and the menu rendered on demand, byte-identical to TFTP; misses are 404 at info; escapes 403', async () => {
    const site = makeSite('files', 4096);
    const { child, tftpPort, httpPort } = await startServe(site);
    const curl = (path: string, out: string) =>
      run(
        'curl',
        ['-s', '--path-as-is', '--max-time', '5', '-o', out, '-w', '%{http_code}', `http://127.0.0.1:${httpPort}/files/${path}`],
        10_000,
      );

    for (const [path, expected] of [
      [HOSTCFG, 'generated by pxe for web1'],
      ['pxelinux.cfg/default', 'generated by pxe from templates/pxelinux-menu.njk'],
    ] as const) {
      const viaHttp = join(site, 'http.cfg');
      const viaTftp = join(site, 'tftp.cfg');
      expect((await curl(path, viaHttp)).stdout, path).toBe('200');
      expect((await tftpGet(tftpPort, path, viaTftp)).code, path).toBe(0);
      expect(readFileSync(viaHttp, 'utf8'), path).toContain(expected);
      expect(readFileSync(viaHttp, 'utf8'), path).toBe(readFileSync(viaTftp, 'utf8'));
    }
    // a static file
    expect((await curl('big.bin', join(site, 'big.http'))).stdout).toBe('200');
    expect(sha256File(join(site, 'big.http'))).toBe(sha256File(join(site, 'tftproot', 'big.bin')));
    // the log says which was rendered, as TFTP's "transfer finished" does
    const logged = async (url: string) => (await child.waitLine((l) => l.msg === 'http request' && l.url === url, 10_000))?.virtual;
    expect(await logged(`/files/${HOSTCFG}`), child.stdout.slice(-3000)).toBe(true);
    expect(await logged('/files/big.bin'), child.stdout.slice(-3000)).toBe(false);

    // a client that hangs up mid-file (fastify runs no onResponse then) is still logged, as incomplete
    writeRandomFile(join(site, 'tftproot', 'huge.bin'), 32 << 20);
    await new Promise<void>((resolve, reject) => {
      const sock = connect(httpPort, '127.0.0.1', () => sock.write('GET /files/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n'));
      sock.once('data', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', reject);
    });
    const cut = await child.waitLine((l) => l.msg === 'http request' && l.url === '/files/huge.bin', 10_000);
    // bytes: what reached the socket before the hang-up, not the Content-Length
    expect(cut, child.stdout.slice(-3000)).toMatchObject({ status: 200, virtual: false, complete: false });
    expect(Number(cut?.bytes)).toBeGreaterThan(0);
    expect(Number(cut?.bytes)).toBeLessThan(32 << 20);

    // pxelinux's probes before its own file (uuid, hex IP): 404, logged at info like TFTP's misses
    const mark = child.lines.length;
    expect((await curl('pxelinux.cfg/7F000001', '/dev/null')).stdout).toBe('404');
    const miss = await child.waitLine((l) => l.msg === 'http request refused' && l.url === '/files/pxelinux.cfg/7F000001', 5_000, mark);
    expect(miss?.level).toBe(30);
    expect(miss?.status).toBe(404);
    // out of the root: refused, and logged as a warning
    expect((await curl('../pxe.yaml', '/dev/null')).stdout).toBe('403');
    expect((await curl('pxelinux.cfg/../../pxe.yaml', '/dev/null')).stdout).toBe('403');
    const escape = await child.waitLine((l) => l.msg === 'http request refused' && l.status === 403, 5_000, mark);
    expect(escape?.level).toBe(40);
  });
});

describe('SIGHUP', () => {
  it('reloads hosts/config while a big transfer completes byte-identical; a bad config is rejected and the old one stays', async () => {
    const site = makeSite('hup', 24 << 20);
    const { child, tftpPort, httpPort } = await startServe(site);

    const first = join(site, 'host-1.cfg');
    expect((await tftpGet(tftpPort, HOSTCFG, first)).code).toBe(0);
    expect(readFileSync(first, 'utf8')).toContain('generated by pxe for web1');

    // a 24 MiB lock-step transfer (blksize 512) is in flight across the reload
    const bigOut = join(site, 'big.out');
    const big = tftpGet(tftpPort, 'big.bin', bigOut);
    await waitActive(httpPort);

    writeFileSync(join(site, 'hosts.yaml'), hostsYaml('web2'));
    const mark = child.lines.length;
    child.signal('SIGHUP');
    const reloaded = await child.waitLine((l) => l.msg === 'reloaded configuration, catalog and hosts', 15_000, mark);
    expect(reloaded, child.stdout.slice(-2000)).toBeDefined();
    const second = join(site, 'host-2.cfg');
    expect((await tftpGet(tftpPort, HOSTCFG, second)).code).toBe(0);
    expect(readFileSync(second, 'utf8')).toContain('generated by pxe for web2');

    const r = await big;
    expect(r.code, r.stderr).toBe(0);
    expect(sha256File(bigOut)).toBe(sha256File(join(site, 'tftproot', 'big.bin')));
    // the big transfer really spanned the reload: it finished after the reload line
    const done = await child.waitLine((l) => l.msg === 'tftp transfer finished' && l.file === 'big.bin', 5_000);
    expect(done?.outcome).toBe('ok');
    expect(child.lines.indexOf(done!)).toBeGreaterThan(child.lines.indexOf(reloaded!));

    // invalid new config: rejected with the reason (file:line), old policy stays
    writeFileSync(join(site, 'pxe.yaml'), pxeYaml('tftp: { maxBlksize: lots }'));
    writeFileSync(join(site, 'hosts.yaml'), hostsYaml('web3'));
    const mark2 = child.lines.length;
    child.signal('SIGHUP');
    const rejected = await child.waitLine((l) => l.msg === 'reload rejected; the previous configuration stays in force', 15_000, mark2);
    expect(rejected).toBeDefined();
    expect(String(rejected!.reason)).toMatch(/pxe\.yaml/);
    const third = join(site, 'host-3.cfg');
    expect((await tftpGet(tftpPort, HOSTCFG, third)).code).toBe(0);
    expect(readFileSync(third, 'utf8')).toContain('generated by pxe for web2');
    expect(child.running).toBe(true);

    // an invalid hosts file is rejected the same way
    writeFileSync(join(site, 'pxe.yaml'), pxeYaml());
    writeFileSync(join(site, 'hosts.yaml'), `hosts:\n  "${MAC}": { hostname: "bad host!", entry: local }\n`);
    const mark3 = child.lines.length;
    child.signal('SIGHUP');
    const rejected2 = await child.waitLine((l) => l.msg === 'reload rejected; the previous configuration stays in force', 15_000, mark3);
    expect(rejected2).toBeDefined();
    expect(String(rejected2!.reason)).toMatch(/hosts\.yaml/);
    const fourth = join(site, 'host-4.cfg');
    expect((await tftpGet(tftpPort, HOSTCFG, fourth)).code).toBe(0);
    expect(readFileSync(fourth, 'utf8')).toContain('generated by pxe for web2');
  });
});

describe('SIGTERM', () => {
  it('refuses new requests, lets the transfer in flight finish byte-identical, exits 0', async () => {
    const site = makeSite('term', 16 << 20);
    const { child, tftpPort, httpPort } = await startServe(site);
    const bigOut = join(site, 'big.out');
    const big = tftpGet(tftpPort, 'big.bin', bigOut);
    await waitActive(httpPort);
    child.signal('SIGTERM');
    await child.waitLine((l) => String(l.msg).startsWith('stopping'), 5_000);

    // new work after SIGTERM gets no service (the listening sockets are closed)
    const late = await run(
      'curl',
      ['-s', '--max-time', '3', '-o', join(site, 'late.txt'), `tftp://127.0.0.1:${tftpPort}/small.txt`],
      10_000,
    );
    expect(late.code).not.toBe(0);
    const lateHttp = await run('curl', ['-s', '--max-time', '3', `http://127.0.0.1:${httpPort}/healthz`], 10_000);
    expect(lateHttp.stdout).not.toContain('"status":"ok"');

    const r = await big;
    expect(r.code, r.stderr).toBe(0);
    expect(sha256File(bigOut)).toBe(sha256File(join(site, 'tftproot', 'big.bin')));
    expect(await child.waitExit(20_000)).toBe(true);
    expect(child.exitCode).toBe(0);
    const done = await child.waitLine((l) => l.msg === 'tftp transfer finished' && l.file === 'big.bin', 5_000);
    expect(done?.outcome).toBe('ok');
  });
});

describe('startup errors: one line on stderr, non-zero exit, no stack trace', () => {
  const lab = new NetnsLab('opserr');
  afterAll(() => lab.cleanup());

  async function serveOnce(
    args: string[],
    prefix: string[] = [],
    ns?: string,
  ): Promise<{ code: number | null; stderr: string; stdout: string }> {
    const cmd = [...(ns ? ['ip', 'netns', 'exec', ns] : []), ...prefix, process.execPath, CLI, 'serve', ...args];
    return runCommand(cmd, { timeoutMs: 20_000, cwd: dir });
  }

  const oneClearLine = (stderr: string) => {
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(lines[0]).toMatch(/^pxe: /);
    return lines[0]!;
  };

  it('a port already in use', async () => {
    const root = join(dir, 'busy-root');
    mkdirSync(root, { recursive: true });
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((r) => blocker.bind(0, '127.0.0.1', () => r()));
    try {
      const port = blocker.address().port;
      const r = await serveOnce(['--listen', '127.0.0.1', '--no-dhcp', '--no-http', '--tftp-root', root, '--tftp-port', String(port)]);
      expect(r.code).not.toBe(0);
      expect(oneClearLine(r.stderr)).toMatch(new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
    } finally {
      blocker.close();
    }
  });

  it('a missing tftproot', async () => {
    const r = await serveOnce([
      '--listen',
      '127.0.0.1',
      '--no-dhcp',
      '--no-http',
      '--tftp-root',
      join(dir, 'does-not-exist'),
      '--tftp-port',
      '0',
    ]);
    expect(r.code).not.toBe(0);
    expect(oneClearLine(r.stderr)).toMatch(/TFTP root .*does-not-exist does not exist/);
  });

  it('no permission to bind (nobody, no capabilities, fresh namespace)', async () => {
    const ns = await lab.netns('perm');
    const root = join(dir, 'perm-root');
    mkdirSync(root, { recursive: true });
    chmodSync(dir, 0o755);
    // a state directory nobody can write to, so the start gets as far as binding
    const state = join(dir, 'perm-state');
    mkdirSync(state, { recursive: true });
    chmodSync(state, 0o777);
    const cfg = join(dir, 'perm.yaml');
    writeFileSync(cfg, `stateDir: ${state}\n`);
    chmodSync(cfg, 0o644);
    const r = await serveOnce(
      ['--config', cfg, '--listen', '127.0.0.1', '--no-dhcp', '--no-http', '--tftp-root', root, '--tftp-port', '69'],
      ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all'],
      ns,
    );
    expect(r.code).not.toBe(0);
    expect(oneClearLine(r.stderr)).toMatch(/no permission to bind port 69 on 127\.0\.0\.1 .*CAP_NET_BIND_SERVICE/);
  });
});
