/**
 * Transfers run in worker_threads (the default) or in the main thread (workers: 0):
 * both with real clients, checked byte for byte, with stats and summaries reported
 * back across the thread boundary.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TftpServer, type TransferSummary } from '../../src/tftp/server.js';
import { atftpGet, quietLogger, rawGet, RawPeer, sha256File, tftpHpaGet, writeRandomFile } from '../helpers/tftp.js';

const MiB = 1024 * 1024;

describe('tftp transfers in worker threads', () => {
  let dir: string;
  let root: string;
  let out: string;
  let sum: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-tftp-workers-${process.pid}-`));
    root = path.join(dir, 'root');
    out = path.join(dir, 'out');
    fs.mkdirSync(root);
    fs.mkdirSync(out);
    writeRandomFile(path.join(root, 'f.bin'), 3 * MiB + 123);
    sum = sha256File(path.join(root, 'f.bin'));
  });

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('20 concurrent real clients over 2 workers: all byte-identical, both workers used, stats and summaries agree', async () => {
    const ended: TransferSummary[] = [];
    const server = new TftpServer({
      root,
      listen: [{ host: '127.0.0.1', port: 0 }],
      workers: 2,
      maxTransfersPerClient: 100,
      logger: quietLogger,
      onTransferEnd: (s) => ended.push(s),
      provider: { virtualFile: async (rel) => (rel === 'virtual.cfg' ? { content: Buffer.from('DEFAULT v\n'), origin: 'test' } : null) },
    });
    await server.start();
    try {
      const port = (server.addresses()[0] as { port: number }).port;
      expect(server.runnerLoads()).toEqual([0, 0]);
      let maxLoads = [0, 0];
      const poll = setInterval(() => {
        const l = server.runnerLoads();
        maxLoads = maxLoads.map((m, i) => Math.max(m, l[i] ?? 0));
      }, 5);
      const jobs = Array.from({ length: 20 }, (_, i) => {
        const o = path.join(out, `c${i}`);
        const opts =
          i % 3 === 0 ? ['blksize 1468'] : i % 3 === 1 ? ['blksize 1468', 'windowsize 16', 'tsize 0'] : ['blksize 512', 'windowsize 4'];
        const p = i % 5 === 4 ? tftpHpaGet(port, 'f.bin', o) : atftpGet(port, 'f.bin', o, opts);
        return p.then((r) => ({ r, o }));
      });
      const results = await Promise.all(jobs);
      clearInterval(poll);
      for (const { r, o } of results) {
        expect(r.code).toBe(0);
        expect(sha256File(o)).toBe(sum);
      }
      // least-loaded placement spread the 20 transfers over both workers
      expect(maxLoads[0]).toBeGreaterThan(0);
      expect(maxLoads[1]).toBeGreaterThan(0);
      // a virtual file (content handed to the worker) and a netascii-free raw client
      const peer = await new RawPeer().bind();
      try {
        const v = await rawGet(peer, port, 'virtual.cfg', [['tsize', '0']]);
        expect(v.error).toBeNull();
        expect(v.data.toString()).toBe('DEFAULT v\n');
        // the final ACK is still on its way (and 'end' comes back by message): the peer
        // stays open until the summary arrives
        for (let i = 0; i < 300 && ended.length < 21; i++) await new Promise((r) => setTimeout(r, 10));
      } finally {
        peer.close();
      }
      expect(ended.length).toBe(21);
      expect(ended.every((e) => e.outcome === 'ok')).toBe(true);
      expect(ended.filter((e) => e.virtual).length).toBe(1);
      const files = ended.filter((e) => e.file === 'f.bin');
      expect(files.every((e) => e.size === 3 * MiB + 123 && e.bytesSent >= e.size && e.durationMs >= 0)).toBe(true);
      expect(files.filter((e) => e.options.windowsize === 16).length).toBeGreaterThan(0);
      expect(server.stats.transfersStarted).toBe(21);
      expect(server.stats.transfersOk).toBe(21);
      expect(server.stats.transfersFailed).toBe(0);
      expect(server.stats.active).toBe(0);
      expect(server.stats.drops.internal).toBe(0);
      expect(server.stats.bytesSent).toBe(ended.reduce((a, e) => a + e.bytesSent, 0));
      expect(server.transfers()).toEqual([]);
      expect(server.runnerLoads()).toEqual([0, 0]);
    } finally {
      await server.close(0);
    }
  }, 120_000);

  it('close() aborts a transfer running in a worker: the client gets an error, the summary says aborted', async () => {
    const ended: TransferSummary[] = [];
    const server = new TftpServer({
      root,
      listen: [{ host: '127.0.0.1', port: 0 }],
      workers: 1,
      logger: quietLogger,
      onTransferEnd: (s) => ended.push(s),
    });
    await server.start();
    const port = (server.addresses()[0] as { port: number }).port;
    // a raw client that acknowledges only the OACK and then stalls: the transfer stays open
    const peer = await new RawPeer().bind();
    try {
      const { encodeRequest, encodeAck } = await import('../../src/tftp/packet.js');
      peer.send(encodeRequest('rrq', 'f.bin', 'octet', [['blksize', '1468']]), port);
      expect(await peer.waitFor((r) => r.length >= 1, 3000)).toBe(true);
      const oack = peer.received[0];
      expect(oack?.packet.op).toBe('oack');
      peer.send(encodeAck(0), oack?.port as number);
      expect(await peer.waitFor((r) => r.some((x) => x.packet.op === 'data'), 3000)).toBe(true);
      expect(server.transfers().map((t) => t.file)).toEqual(['f.bin']);
      expect(server.stats.active).toBe(1);
      await server.close(0);
      expect(await peer.waitFor((r) => r.some((x) => x.packet.op === 'error'), 3000)).toBe(true);
      expect(ended).toHaveLength(1);
      expect(ended[0]).toMatchObject({ file: 'f.bin', outcome: 'aborted', reason: 'server shutting down' });
      expect(server.stats.active).toBe(0);
      expect(server.stats.transfersFailed).toBe(1);
    } finally {
      peer.close();
      await server.close(0);
    }
  }, 30_000);

  it('workers: 0 runs transfers in the main thread with the same results', async () => {
    const ended: TransferSummary[] = [];
    const server = new TftpServer({
      root,
      listen: [{ host: '127.0.0.1', port: 0 }],
      workers: 0,
      logger: quietLogger,
      onTransferEnd: (s) => ended.push(s),
    });
    await server.start();
    try {
      const port = (server.addresses()[0] as { port: number }).port;
      expect(server.runnerLoads()).toEqual([0]);
      const results = await Promise.all(
        [['blksize 1468'], ['blksize 1468', 'windowsize 16']].map((opts, i) => atftpGet(port, 'f.bin', path.join(out, `m${i}`), opts)),
      );
      for (let i = 0; i < results.length; i++) {
        expect(results[i]?.code).toBe(0);
        expect(sha256File(path.join(out, `m${i}`))).toBe(sum);
      }
      expect(ended.map((e) => e.outcome)).toEqual(['ok', 'ok']);
      expect(server.stats.transfersOk).toBe(2);
    } finally {
      await server.close(0);
    }
  }, 60_000);
});
