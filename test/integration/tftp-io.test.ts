/**
 * Both datagram back-ends of the TFTP transfers give the same bytes to real clients:
 * the native socket (default; also everything in tftp-clients.test.ts) and the
 * node:dgram fallback (a build without the addon, or PXE_UDP=dgram). Covers lock-step,
 * windows (one sendmmsg per window natively), a window larger than one sendmmsg batch
 * (256) and block-number rollover, in worker threads and in the main thread.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TftpServer, type TransferSummary } from '../../src/tftp/server.js';
import { atftpGet, curlGet, quietLogger, sha256File, tftpHpaGet, writeRandomFile } from '../helpers/tftp.js';

const MiB = 1024 * 1024;

describe.each([
  { io: 'native' as const, workers: 1 },
  { io: 'dgram' as const, workers: 1 },
  { io: 'native' as const, workers: 0 },
])('tftp transfers over $io sockets (workers: $workers)', ({ io, workers }) => {
  let dir: string;
  let server: TftpServer;
  let port: number;
  const sums = new Map<string, string>();
  const ended: TransferSummary[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-tftp-io-${process.pid}-`));
    const root = path.join(dir, 'root');
    fs.mkdirSync(root);
    fs.mkdirSync(path.join(dir, 'out'));
    for (const [name, size] of [
      ['small.bin', 100_003],
      ['mid.bin', 12 * MiB + 5],
      ['rollover.bin', 33 * MiB + 1], // > 65535 blocks of 512
    ] as const) {
      writeRandomFile(path.join(root, name), size);
      sums.set(name, sha256File(path.join(root, name)));
    }
    server = new TftpServer({
      root,
      listen: [{ host: '127.0.0.1', port: 0 }],
      logger: quietLogger,
      workers,
      io,
      maxWindowsize: 512,
      onTransferEnd: (s) => ended.push(s),
    });
    await server.start();
    expect(server.io).toBe(io);
    port = (server.addresses()[0] as { port: number }).port;
  }, 60_000);

  afterAll(async () => {
    await server?.close(1000);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const out = (name: string): string => path.join(dir, 'out', name);

  it('tftp-hpa, curl --tftp-blksize 1468 (lock-step) and atftp windowsize 16 and 300', async () => {
    const runs = [
      ['hpa', tftpHpaGet(port, 'small.bin', out('hpa'))],
      ['curl', curlGet(port, 'mid.bin', out('curl'), ['--tftp-blksize', '1468'])],
      ['ws16', atftpGet(port, 'mid.bin', out('ws16'), ['blksize 1468', 'windowsize 16'])],
      ['ws300', atftpGet(port, 'mid.bin', out('ws300'), ['blksize 1468', 'windowsize 300'])],
    ] as const;
    for (const [name, p] of runs) {
      const r = await p;
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
    }
    expect(sha256File(out('hpa'))).toBe(sums.get('small.bin'));
    for (const n of ['curl', 'ws16', 'ws300']) expect(sha256File(out(n)), n).toBe(sums.get('mid.bin'));
  }, 120_000);

  it('block numbers roll over (33 MiB at blksize 512, atftp windowsize 32)', async () => {
    const r = await atftpGet(port, 'rollover.bin', out('roll'), ['blksize 512', 'windowsize 32']);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256File(out('roll'))).toBe(sums.get('rollover.bin'));
  }, 120_000);

  it('a lone lock-step transfer busy-polls for its ACKs on the native socket (atftp answers within the budget on loopback)', async () => {
    const r = await atftpGet(port, 'mid.bin', out('lone'), ['blksize 1468']);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256File(out('lone'))).toBe(sums.get('mid.bin'));
    const deadline = Date.now() + 3000;
    while (ended.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const lone = ended[5] as TransferSummary;
    expect(lone.options.blksize).toBe(1468);
    if (io === 'native') {
      // ~8.6k windows: a hit per window while atftp keeps up, 16-1024 windows skipped after a miss
      expect(lone.busyPolls.hits).toBeGreaterThan(0);
    } else expect(lone.busyPolls).toEqual({ hits: 0, misses: 0 });
  }, 60_000);

  it('every transfer ended ok, with the windowsize it negotiated', async () => {
    const deadline = Date.now() + 3000;
    while (ended.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(ended.map((e) => e.outcome)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    expect(ended.map((e) => e.options.windowsize).sort((a, b) => a - b)).toEqual([1, 1, 1, 16, 32, 300]);
  });
});
