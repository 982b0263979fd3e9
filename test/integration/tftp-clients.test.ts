/**
 * Real TFTP clients (tftp-hpa, atftp, curl) against the in-process server on loopback.
 * Every transfer is checked byte for byte (sha256).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TftpServer, type TransferSummary } from '../../src/tftp/server.js';
import { waitFor } from '../helpers/netns.js';
import { atftpGet, curlGet, quietLogger, run, sha256File, tftpHpaGet, writeRandomFile } from '../helpers/tftp.js';

const MiB = 1024 * 1024;

/**
 * Transfers run in worker threads: a summary (and the stats) come back by message, a
 * moment after the client saw its last block: wait for them, bounded.
 */
const until = <T>(get: () => T | undefined, what: string): Promise<T> => waitFor(get, 3000, what, 10);

describe('tftp server with real clients', () => {
  let dir: string;
  let root: string;
  let out: string;
  let server: TftpServer;
  let port: number;
  const sums = new Map<string, string>();
  const ended: TransferSummary[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-tftp-clients-${process.pid}-`));
    root = path.join(dir, 'root');
    out = path.join(dir, 'out');
    fs.mkdirSync(root);
    fs.mkdirSync(out);
    const files: Array<[string, number]> = [
      ['small.bin', 70_001],
      ['exact512.bin', 512 * 4],
      ['empty.bin', 0],
      ['rollover.bin', 40 * MiB + 777], // > 65535 blocks at 512: block numbers wrap
      ['big64.bin', 64 * MiB],
      ['big200.bin', 200 * MiB],
    ];
    for (const [name, size] of files) {
      writeRandomFile(path.join(root, name), size);
      sums.set(name, sha256File(path.join(root, name)));
    }
    fs.writeFileSync(path.join(root, 'text.txt'), 'line one\nline two\r\nbare CR\rend\n');
    server = new TftpServer({ root, listen: [{ host: '127.0.0.1', port: 0 }], logger: quietLogger, onTransferEnd: (s) => ended.push(s) });
    await server.start();
    port = (server.addresses()[0] as { port: number }).port;
  }, 120_000);

  afterAll(async () => {
    await server?.close(0);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const expectSame = (name: string, file: string): void => {
    expect(fs.existsSync(file)).toBe(true);
    expect(sha256File(file)).toBe(sums.get(name));
    fs.rmSync(file);
  };

  it.each(['small.bin', 'exact512.bin', 'empty.bin'])('tftp-hpa binary get %s', async (name) => {
    const o = path.join(out, `hpa-${name}`);
    const r = await tftpHpaGet(port, name, o);
    expect(r.code).toBe(0);
    expectSame(name, o);
  });

  it.each([[[]], [['blksize 1468', 'tsize 0']], [['blksize 1468', 'tsize 0', 'windowsize 16']], [['blksize 8', 'windowsize 3']]])(
    'atftp get small files with options %j',
    async (opts) => {
      for (const name of ['small.bin', 'exact512.bin', 'empty.bin']) {
        const o = path.join(out, `atftp-${name}`);
        const r = await atftpGet(port, name, o, opts);
        expect(r.code).toBe(0);
        expectSame(name, o);
      }
    },
  );

  it.each([[[]], [['--tftp-blksize', '1468']]])('curl get small files %j', async (extra) => {
    // not empty.bin: curl 7.88 fails every empty TFTP download with "(71) getpeername()
    // failed" against tftpd-hpa and atftpd too (a curl bug, not a protocol matter)
    for (const name of ['small.bin', 'exact512.bin']) {
      const o = path.join(out, `curl-${name}`);
      const r = await curlGet(port, name, o, extra);
      expect(r.code).toBe(0);
      expectSame(name, o);
    }
  });

  it('64 MiB through tftp-hpa, atftp (lock-step, windowsize 16) and curl --tftp-blksize 1468', async () => {
    const o = path.join(out, 'big64');
    expect((await tftpHpaGet(port, 'big64.bin', o)).code).toBe(0);
    expectSame('big64.bin', o);
    expect((await atftpGet(port, 'big64.bin', o, ['blksize 1468', 'tsize 0'])).code).toBe(0);
    expectSame('big64.bin', o);
    expect((await atftpGet(port, 'big64.bin', o, ['blksize 1468', 'tsize 0', 'windowsize 16'])).code).toBe(0);
    expectSame('big64.bin', o);
    expect((await curlGet(port, 'big64.bin', o, ['--tftp-blksize', '1468'])).code).toBe(0);
    expectSame('big64.bin', o);
  }, 180_000);

  it('block numbers roll over to 0 past 65535 for tftp-hpa, curl and atftp (40 MiB at 512)', async () => {
    const o = path.join(out, 'rollover');
    expect((await tftpHpaGet(port, 'rollover.bin', o)).code).toBe(0);
    expectSame('rollover.bin', o);
    expect((await curlGet(port, 'rollover.bin', o)).code).toBe(0);
    expectSame('rollover.bin', o);
    expect((await atftpGet(port, 'rollover.bin', o, ['blksize 512', 'windowsize 8'])).code).toBe(0);
    expectSame('rollover.bin', o);
  }, 180_000);

  it('200 MiB at blksize 512 (409601 blocks, six rollovers) through atftp', async () => {
    const o = path.join(out, 'big200');
    const r = await atftpGet(port, 'big200.bin', o, ['blksize 512', 'tsize 0', 'windowsize 32']);
    expect(r.code).toBe(0);
    expectSame('big200.bin', o);
    const s = await until(() => ended.filter((e) => e.file === 'big200.bin').at(-1), 'the big200.bin summary');
    expect(s).toMatchObject({ outcome: 'ok', size: 200 * MiB, options: { blksize: 512, windowsize: 32, tsize: 200 * MiB } });
  }, 180_000);

  it('netascii through tftp-hpa -m ascii converts back to the original text', async () => {
    const o = path.join(out, 'text.txt');
    const r = await tftpHpaGet(port, 'text.txt', o, 'ascii');
    expect(r.code).toBe(0);
    // tftp-hpa converts CR LF -> LF and CR NUL -> CR on receipt, so the original comes back
    expect(fs.readFileSync(o, 'latin1')).toBe('line one\nline two\r\nbare CR\rend\n');
    const s = await until(() => ended.filter((e) => e.file === 'text.txt').at(-1), 'the text.txt summary');
    expect(s).toMatchObject({ outcome: 'ok', mode: 'netascii' });
    // 3 LF + 2 CR each add one byte on the wire (tsize is the converted size)
    expect(s?.size).toBe(Buffer.byteLength('line one\nline two\r\nbare CR\rend\n') + 5);
  });

  it('IPv6: listening on ::1 next to 127.0.0.1, tftp-hpa -6 and curl fetch over IPv6', async () => {
    const v6 = new TftpServer({
      root,
      listen: [
        { host: '127.0.0.1', port: 0 },
        { host: '::1', port: 0 },
      ],
      logger: quietLogger,
    });
    await v6.start();
    try {
      const addrs = v6.addresses();
      expect(addrs.map((a) => a.host)).toEqual(['127.0.0.1', '::1']);
      const p6 = (addrs[1] as { port: number }).port;
      const o = path.join(out, 'v6');
      expect((await run('tftp', ['-6', '-m', 'binary', '::1', String(p6), '-c', 'get', 'small.bin', o], 30_000)).code).toBe(0);
      expectSame('small.bin', o);
      expect((await run('curl', ['-s', '-S', '-g', '-o', o, `tftp://[::1]:${p6}/small.bin`], 30_000)).code).toBe(0);
      expectSame('small.bin', o);
      await until(() => (v6.stats.transfersOk >= 2 ? true : undefined), 'two IPv6 transfers counted');
      expect(v6.stats.transfersOk).toBe(2);
    } finally {
      await v6.close(0);
    }
  });

  it('every transfer above was logged with outcome ok and the stats agree', async () => {
    await until(() => (server.stats.active === 0 ? true : undefined), 'no active transfer');
    expect(ended.length).toBeGreaterThan(20);
    expect(ended.every((e) => e.outcome === 'ok')).toBe(true);
    expect(server.stats.transfersOk).toBe(ended.length);
    expect(server.stats.transfersFailed).toBe(0);
    expect(server.stats.drops.internal).toBe(0);
    expect(server.stats.active).toBe(0);
  });
});
