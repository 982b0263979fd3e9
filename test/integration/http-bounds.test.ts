/**
 * HTTP bounded like UDP (issue 17): a real `pxe serve` under a 4,096-descriptor limit
 * (prlimit), in a network namespace. 2,400 downloads of a 16 MiB file from three
 * addresses that send their request and never read (a python client with a 4 KiB
 * receive buffer) are held open; meanwhile another client gets pxelinux.0
 * byte-identical over TFTP (tftp-hpa) and HTTP (curl), and /healthz answers. The
 * server's descriptors and RSS are read from /proc while the stalled sockets are held.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServeChild } from '../../bench/fuzz/child.js';
import { NetnsLab, waitFor } from '../helpers/netns.js';

const lab = new NetnsLab('httpb');
let ns = '';
let dir = '';
let server: ServeChild | undefined;
const PXELINUX = Buffer.alloc(42_430);
for (let i = 0; i < PXELINUX.length; i++) PXELINUX[i] = (i * 131 + 7) & 0xff;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const STALLERS = `
import socket, sys, time
n, port, addrs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(',')
held = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((addrs[i % len(addrs)], 0))
    try:
        s.connect(('127.0.0.1', port))
        s.sendall(b'GET /files/big.bin HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')
    except OSError:
        pass
    held.append(s)
print('held', len(held), flush=True)
time.sleep(600)
`;

/** descriptors and RSS (kB) of the pxe serve process (the node child of ip netns exec / prlimit) */
function serverUsage(): { fds: number; rssKb: number } {
  const pid = server!.pid!;
  // ip netns exec and prlimit exec in place: the pid is node's
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { fds: readdirSync(`/proc/${pid}/fd`).length, rssKb: rss };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `pxe-httpb-${process.pid}-`));
  mkdirSync(join(dir, 'tftproot'));
  writeFileSync(join(dir, 'tftproot', 'pxelinux.0'), PXELINUX);
  writeFileSync(join(dir, 'tftproot', 'big.bin'), Buffer.alloc(16 * 1024 * 1024, 7));
  writeFileSync(join(dir, 'stallers.py'), STALLERS);
  writeFileSync(join(dir, 'pxe.yaml'), ['tftp: { root: ./tftproot }', 'stateDir: ./state', 'logLevel: warn', ''].join('\n'));
  ns = await lab.netns('srv');
  server = new ServeChild({
    netns: ns,
    cwd: dir,
    prefix: ['prlimit', '--nofile=4096:4096', '--'],
    args: [
      '--config',
      join(dir, 'pxe.yaml'),
      '--listen',
      '127.0.0.1',
      '--server-address',
      '127.0.0.1',
      '--tftp-port',
      '69',
      '--http-port',
      '8080',
      '--no-dhcp',
      '--log-level',
      'info',
    ],
  });
  await server.ready(60_000);
});

afterAll(async () => {
  await server?.stop();
  await lab.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('HTTP connection bounds', () => {
  it('2,400 stalled downloads under a 4,096-descriptor limit: TFTP and HTTP still serve pxelinux.0 byte-identical, /healthz answers', async () => {
    expect(readFileSync(`/proc/${server!.pid}/limits`, 'utf8')).toMatch(/Max open files\s+4096\s+4096/);
    const base = serverUsage();
    const stallers = lab.spawn(ns, ['python3', join(dir, 'stallers.py'), '2400', '8080', '127.0.0.2,127.0.0.3,127.0.0.4']);
    let out = '';
    stallers.stdout?.on('data', (d: Buffer) => void (out += d.toString()));
    await waitFor(() => out.includes('held 2400'), 120_000, 'the 2,400 stalled connections');
    // let the server take in what it accepts and start streaming into the full buffers
    await new Promise((r) => setTimeout(r, 2_000));
    const held = serverUsage();

    const t0 = Date.now();
    const tftpOut = join(dir, 'tftp.bin');
    const t = await lab.exec(ns, ['tftp', '-m', 'binary', '127.0.0.1', '69', '-c', 'get', 'pxelinux.0', tftpOut], 30_000);
    expect(t.code, t.stderr).toBe(0);
    expect(sha(readFileSync(tftpOut))).toBe(sha(PXELINUX));
    const tftpMs = Date.now() - t0;
    const httpOut = join(dir, 'http.bin');
    const t1 = Date.now();
    const h = await lab.exec(ns, ['curl', '-sf', '--max-time', '20', '-o', httpOut, 'http://127.0.0.1:8080/files/pxelinux.0'], 30_000);
    expect(h.code, h.stderr).toBe(0);
    expect(sha(readFileSync(httpOut))).toBe(sha(PXELINUX));
    const httpMs = Date.now() - t1;
    const hz = await lab.exec(ns, ['curl', '-sf', '--max-time', '20', 'http://127.0.0.1:8080/healthz'], 30_000);
    expect(hz.code, hz.stderr).toBe(0);
    expect(JSON.parse(hz.stdout)).toMatchObject({ status: 'ok', tftp: 'up' });

    // the stalled clients are still holding their sockets
    expect(stallers.exitCode).toBeNull();
    // the server held at most the per-client cap per address, and refused (and logged) the rest
    expect(held.fds - base.fds).toBeLessThanOrEqual(3 * 64 * 3 + 16);
    expect(held.fds).toBeLessThan(4096 / 2);
    expect(server!.lines.some((l) => l.msg === 'http connection refused: over the connection cap')).toBe(true);
    const refusedLines = server!.lines.filter((l) => l.msg === 'http connection refused: over the connection cap').length;
    expect(refusedLines).toBeLessThanOrEqual(3); // once per 10 s, not per connection
    console.log(JSON.stringify({ base, held, tftpMs, httpMs }));
    await lab.stop(stallers);
  }, 240_000);
});
