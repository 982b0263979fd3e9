/**
 * Refusals, hostile traffic, amplification bound, virtual files, file replacement and
 * shutdown, against the in-process server on loopback (real clients where one exists,
 * a raw UDP peer where exact datagrams matter).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FileClient, VirtualFile, VirtualFileProvider } from '../../src/boot/types.js';
import { encodeAck, encodeRequest, Opcode } from '../../src/tftp/packet.js';
import { TftpServer, type TransferSummary } from '../../src/tftp/server.js';
import { atftpGet, curlGet, quietLogger, RawPeer, rawGet, sha256File, tftpHpaGet, writeRandomFile } from '../helpers/tftp.js';

const MiB = 1024 * 1024;
const raw = (...parts: Array<number[] | string>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

class TestProvider implements VirtualFileProvider {
  calls: Array<{ relPath: string; client: FileClient }> = [];
  async virtualFile(relPath: string, client: FileClient): Promise<VirtualFile | null> {
    this.calls.push({ relPath, client });
    if (relPath === 'provider-throws') throw new Error('template exploded');
    if (relPath === 'pxelinux.cfg/01-aa-bb-cc-dd-ee-ff') {
      return { content: Buffer.from(`DEFAULT local\nLABEL local\n  LOCALBOOT 0\n# for ${client.address}\n`), origin: 'test' };
    }
    return null;
  }
}

describe('tftp server refusals and hostile traffic', () => {
  let dir: string;
  let root: string;
  let out: string;
  let server: TftpServer;
  let port: number;
  /** a second server with a long retransmit timeout, where tests must see no retransmission */
  let patient: TftpServer;
  let patientPort: number;
  const provider = new TestProvider();
  const ended: TransferSummary[] = [];
  const peers: RawPeer[] = [];
  const newPeer = async (): Promise<RawPeer> => {
    const p = await new RawPeer().bind();
    peers.push(p);
    return p;
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-tftp-sec-${process.pid}-`));
    root = path.join(dir, 'root');
    out = path.join(dir, 'out');
    fs.mkdirSync(path.join(root, 'pxelinux.cfg'), { recursive: true });
    fs.mkdirSync(out);
    fs.mkdirSync(path.join(root, 'etc'));
    fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'inside-the-root\n');
    fs.writeFileSync(path.join(dir, 'outside.txt'), 'outside\n');
    fs.symlinkSync(path.join(dir, 'outside.txt'), path.join(root, 'link-out'));
    fs.writeFileSync(path.join(root, 'pxelinux.cfg', 'default'), 'DEFAULT disk\n');
    writeRandomFile(path.join(root, 'small.bin'), 50_000);
    writeRandomFile(path.join(root, 'big.bin'), 32 * MiB);
    server = new TftpServer({
      root,
      listen: [{ host: '127.0.0.1', port: 0 }],
      logger: quietLogger,
      provider,
      defaultTimeoutMs: 300,
      maxRetries: 3,
      maxRetriesBeforeAck: 2,
      onTransferEnd: (s) => ended.push(s),
    });
    await server.start();
    port = (server.addresses()[0] as { port: number }).port;
    patient = new TftpServer({ root, listen: [{ host: '127.0.0.1', port: 0 }], logger: quietLogger, defaultTimeoutMs: 20_000 });
    await patient.start();
    patientPort = (patient.addresses()[0] as { port: number }).port;
  }, 60_000);

  afterAll(async () => {
    for (const p of peers) p.close();
    await server?.close(0);
    await patient?.close(0);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    for (const p of peers.splice(0)) p.close();
  });

  const errorReply = async (request: Buffer): Promise<{ code: number; message: string } | null> => {
    const peer = await newPeer();
    peer.send(request, port);
    await peer.waitFor((r) => r.length > 0, 3000);
    const p = peer.received[0]?.packet;
    return p && p.op === 'error' ? { code: p.code, message: p.message } : null;
  };

  it.each([
    ['../etc/passwd', 2],
    ['..\\..\\etc\\passwd', 2],
    ['/../x', 2],
    ['x'.repeat(300), 2],
    ['link-out', 2],
    ['no-such-file', 1],
    ['pxelinux.cfg', 2],
  ])('RRQ %j is refused with error %i', async (name, code) => {
    expect(await errorReply(encodeRequest('rrq', name, 'octet'))).toMatchObject({ code });
  });

  it('an absolute /etc/passwd resolves inside the root', async () => {
    const peer = await newPeer();
    const r = await rawGet(peer, port, '/etc/passwd');
    expect(r.error).toBeNull();
    expect(r.data.toString()).toBe('inside-the-root\n');
  });

  it('a NUL inside the name cannot smuggle a second path (error 4, nothing served)', async () => {
    // "small.bin\0../../etc/passwd\0octet\0": the second string is taken as the mode
    expect(await errorReply(raw([0, 1], 'small.bin\0../../outside.txt\0octet\0'))).toMatchObject({ code: 4 });
  });

  it('real clients see the refusals: tftp-hpa and curl get errors, nothing is written outside', async () => {
    const o = path.join(out, 'esc');
    const r1 = await tftpHpaGet(port, '../outside.txt', o);
    expect(r1.stdout + r1.stderr).toMatch(/Access violation|access violation|Error code 2/i);
    const r2 = await curlGet(port, 'no-such-file', o);
    expect(r2.code).not.toBe(0);
    const r3 = await atftpGet(port, 'link-out', o);
    expect(r3.code).not.toBe(0);
    expect(fs.existsSync(o) ? fs.readFileSync(o, 'utf8') : '').not.toContain('outside');
  });

  it('WRQ (tftp-hpa put) is refused with error 2 and nothing is written', async () => {
    const src = path.join(out, 'upload.txt');
    fs.writeFileSync(src, 'upload\n');
    const r = await (
      await import('../helpers/tftp.js')
    ).run('tftp', ['-m', 'binary', '127.0.0.1', String(port), '-c', 'put', src, 'uploaded.txt'], 20_000);
    expect(r.stdout + r.stderr).toMatch(/Error code 2/i);
    expect(fs.existsSync(path.join(root, 'uploaded.txt'))).toBe(false);
    expect(await errorReply(encodeRequest('wrq', 'x.txt', 'octet'))).toMatchObject({ code: 2 });
  });

  it('unknown opcode on the listening port gets error 4', async () => {
    expect(await errorReply(raw([0, 9], 'junk\0'))).toMatchObject({ code: 4 });
    expect(await errorReply(encodeAck(1))).toMatchObject({ code: 4 });
  });

  it('absurd option values are refused with error 8', async () => {
    for (const [k, v] of [
      ['blksize', '0'],
      ['blksize', '999999'],
      ['windowsize', '0'],
      ['tsize', 'lots'],
    ]) {
      expect(await errorReply(encodeRequest('rrq', 'small.bin', 'octet', [[k as string, v as string]]))).toMatchObject({ code: 8 });
    }
  });

  it('virtual files: provider content is served with its tsize; null falls through to disk', async () => {
    const peer = await newPeer();
    const r = await rawGet(peer, port, '/pxelinux.cfg/01-aa-bb-cc-dd-ee-ff', [
      ['tsize', '0'],
      ['blksize', '1468'],
    ]);
    expect(r.error).toBeNull();
    const expected = 'DEFAULT local\nLABEL local\n  LOCALBOOT 0\n# for 127.0.0.1\n';
    expect(r.data.toString()).toBe(expected);
    expect(r.oack?.get('tsize')).toBe(String(expected.length));
    expect(provider.calls.at(-1)).toEqual({ relPath: 'pxelinux.cfg/01-aa-bb-cc-dd-ee-ff', client: { address: '127.0.0.1' } });
    // real client, and the disk fallback
    const o = path.join(out, 'default');
    expect((await atftpGet(port, 'pxelinux.cfg/default', o, ['tsize 0'])).code).toBe(0);
    expect(fs.readFileSync(o, 'utf8')).toBe('DEFAULT disk\n');
    expect(provider.calls.at(-1)?.relPath).toBe('pxelinux.cfg/default');
  });

  it('a provider that throws: the client gets error 0, the server keeps serving', async () => {
    const internalBefore = server.stats.drops.internal;
    expect(await errorReply(encodeRequest('rrq', 'provider-throws', 'octet'))).toMatchObject({ code: 0 });
    expect(server.stats.drops.internal).toBe(internalBefore + 1);
    const peer = await newPeer();
    const r = await rawGet(peer, port, 'pxelinux.cfg/default');
    expect(r.data.toString()).toBe('DEFAULT disk\n');
  });

  it('a foreign TID gets error 5 mid-transfer and the transfer still completes byte-identical', async () => {
    const o = path.join(out, 'big-foreign');
    const foreign = await newPeer();
    const transfer = atftpGet(port, 'big.bin', o, ['blksize 512']);
    let target: number | undefined;
    for (let i = 0; i < 2000 && target === undefined; i++) {
      target = server.transfers().find((t) => t.file === 'big.bin')?.localPort;
      if (target === undefined) await new Promise((r) => setTimeout(r, 2));
    }
    expect(target).toBeDefined();
    const before = server.stats.drops.foreignTid;
    foreign.send(encodeAck(1), target as number);
    foreign.send(raw([0, 5, 0, 0], 'spoofed abort\0'), target as number); // an ERROR must not kill it
    foreign.send(Buffer.alloc(0), target as number);
    expect(await foreign.waitFor((r) => r.length >= 1, 3000)).toBe(true);
    const reply = foreign.received[0];
    expect(reply?.packet).toMatchObject({ op: 'error', code: 5 });
    expect(reply?.port).toBe(target);
    const r = await transfer;
    expect(r.code).toBe(0);
    expect(sha256File(o)).toBe(sha256File(path.join(root, 'big.bin')));
    expect(server.stats.drops.foreignTid - before).toBeGreaterThanOrEqual(2);
    // only one error 5 (the spoofed ERROR and the empty datagram are not answered)
    await new Promise((r) => setTimeout(r, 100));
    expect(foreign.received.length).toBe(1);
  }, 60_000);

  it('a burst of malformed datagrams to the listening port and a live transfer port is counted and harmless', async () => {
    const garbage: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from([1]),
      Buffer.from([0, 0]),
      Buffer.from([0, 99, 1, 2, 3]),
      Buffer.from([0xff, 0xff]),
      raw([0, 1], 'unterminated'),
      raw([0, 1], 'small.bin\0octet'),
      raw([0, 1], 'small.bin\0octet\0blksize\0'),
      raw([0, 1], 'small.bin\0octet\0blksize\x000\0'),
      raw([0, 1], 'small.bin\0octet\0blksize\x00999999\0'),
      raw([0, 1], 'small.bin\0octet\0windowsize\x000\0'),
      raw([0, 1], 'small.bin\0octet\0tsize\0abc\0'),
      raw([0, 1], 'small.bin\0octet\0', 'opt\0val\0'.repeat(100)),
      raw([0, 4, 0]),
      raw([0, 3]),
    ];
    const malformedBefore = server.stats.drops.malformed;
    const internalBefore = server.stats.drops.internal;
    const attacker = await newPeer();
    for (let round = 0; round < 20; round++) {
      for (const g of garbage) attacker.send(g, port);
      // pace the rounds so the kernel socket buffer does not drop them before we count them
      await new Promise((r) => setTimeout(r, 5));
    }

    // the same garbage from the client's own address:port into its live transfer
    const client = await newPeer();
    let injected = false;
    const r = await rawGet(client, port, 'small.bin', [['blksize', '1024']], (block, tid) => {
      if (block === 10 && !injected) {
        injected = true;
        for (const g of garbage) client.send(g, tid);
        client.send(raw([0, 3, 0, 1], 'bogus data'), tid);
      }
    });
    expect(injected).toBe(true);
    expect(r.error).toBeNull();
    expect(r.data.equals(fs.readFileSync(path.join(root, 'small.bin')))).toBe(true);

    // and afterwards a real client still works
    const o = path.join(out, 'after-burst');
    expect((await tftpHpaGet(port, 'small.bin', o)).code).toBe(0);
    expect(sha256File(o)).toBe(sha256File(path.join(root, 'small.bin')));
    expect(server.stats.drops.malformed - malformedBefore).toBeGreaterThanOrEqual(20 * 10);
    expect(server.stats.drops.internal).toBe(internalBefore);
  }, 60_000);

  it('amplification bound: an RRQ that is never acknowledged gets only OACK retransmissions, no DATA', async () => {
    const peer = await newPeer();
    const endedBefore = ended.length;
    peer.send(
      encodeRequest('rrq', 'big.bin', 'octet', [
        ['windowsize', '64'],
        ['blksize', '1468'],
        ['tsize', '0'],
      ]),
      port,
    );
    // the server gives up after 1 + maxRetriesBeforeAck sends, 300 ms apart. Summaries
    // come back from the worker by message, so an earlier test's may still arrive here:
    // wait for this transfer's own (the one that timed out).
    const mine = (): TransferSummary | undefined => ended.slice(endedBefore).find((e) => e.file === 'big.bin' && e.outcome === 'timeout');
    const done = await peer.waitFor(() => mine() !== undefined, 5000);
    expect(done).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    const ops = peer.received.map((m) => m.raw.readUInt16BE(0));
    expect(ops.length).toBeGreaterThanOrEqual(1);
    expect(ops.length).toBeLessThanOrEqual(3);
    expect(ops.every((op) => op === Opcode.OACK)).toBe(true);
    expect(peer.received.reduce((n, m) => n + m.raw.length, 0)).toBeLessThan(200);
    expect(mine()).toMatchObject({ file: 'big.bin', outcome: 'timeout', bytesSent: 0 });
  });

  it('amplification bound without options: DATA 1 only, bounded retransmissions', async () => {
    const peer = await newPeer();
    const endedBefore = ended.length;
    peer.send(encodeRequest('rrq', 'big.bin', 'octet'), port);
    expect(await peer.waitFor(() => ended.slice(endedBefore).some((e) => e.file === 'big.bin' && e.outcome === 'timeout'), 5000)).toBe(
      true,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(peer.received.length).toBeGreaterThanOrEqual(1);
    expect(peer.received.length).toBeLessThanOrEqual(3);
    expect(peer.received.every((m) => m.packet?.op === 'data' && m.packet.block === 1)).toBe(true);
  });

  it('a peer that ACKs the OACK then vanishes gets at most (1 + maxRetries) windows', async () => {
    const peer = await newPeer();
    const endedBefore = ended.length;
    peer.send(encodeRequest('rrq', 'big.bin', 'octet', [['windowsize', '8']]), port);
    expect(await peer.waitFor((r) => r.length > 0, 3000)).toBe(true);
    peer.send(encodeAck(0), peer.received[0]?.port as number);
    expect(await peer.waitFor(() => ended.slice(endedBefore).some((e) => e.file === 'big.bin' && e.outcome === 'timeout'), 5000)).toBe(
      true,
    );
    await new Promise((r) => setTimeout(r, 200));
    const data = peer.received.filter((m) => m.packet?.op === 'data');
    expect(data.length).toBeLessThanOrEqual(8 * (1 + 3));
    expect(data.every((m) => m.packet?.op === 'data' && m.packet.block >= 1 && m.packet.block <= 8)).toBe(true);
  });

  it('duplicate ACKs do not double the sending (no Sorcerer’s Apprentice)', async () => {
    const peer = await newPeer();
    peer.send(encodeRequest('rrq', 'small.bin', 'octet'), patientPort);
    expect(await peer.waitFor((r) => r.length > 0, 3000)).toBe(true);
    const tid = peer.received[0]?.port as number;
    peer.send(encodeAck(1), tid);
    peer.send(encodeAck(1), tid);
    peer.send(encodeAck(1), tid);
    await peer.waitFor((r) => r.length >= 2, 3000);
    await new Promise((r) => setTimeout(r, 200)); // a doubled send would have arrived by now (no retransmit: 20 s timeout)
    const blocks = peer.received.map((m) => (m.packet?.op === 'data' ? m.packet.block : -1));
    expect(blocks).toEqual([1, 2]);
    peer.send(raw([0, 5, 0, 0], 'bye\0'), tid);
  });

  it('windowed: an ACK for an earlier block rewinds to the block after it (RFC 7440 sec. 4)', async () => {
    const peer = await newPeer();
    peer.send(encodeRequest('rrq', 'small.bin', 'octet', [['windowsize', '4']]), patientPort);
    expect(await peer.waitFor((r) => r.length > 0, 3000)).toBe(true);
    const tid = peer.received[0]?.port as number;
    peer.received.length = 0;
    peer.send(encodeAck(0), tid);
    expect(await peer.waitFor((r) => r.length >= 4, 3000)).toBe(true);
    peer.received.length = 0;
    peer.send(encodeAck(2), tid); // "lost" block 3
    expect(await peer.waitFor((r) => r.length >= 4, 3000)).toBe(true);
    expect(peer.received.map((m) => (m.packet?.op === 'data' ? m.packet.block : -1))).toEqual([3, 4, 5, 6]);
    peer.send(raw([0, 5, 0, 0], 'bye\0'), tid);
  });

  it('a file renamed over mid-transfer: the transfer keeps the old version, new requests get the new one', async () => {
    const name = 'replace.bin';
    writeRandomFile(path.join(root, name), 24 * MiB);
    const oldSum = sha256File(path.join(root, name));
    const o1 = path.join(out, 'replace-old');
    const transfer = curlGet(port, name, o1);
    let seen = false;
    for (let i = 0; i < 2000 && !seen; i++) {
      seen = server.transfers().some((t) => t.file === name);
      if (!seen) await new Promise((r) => setTimeout(r, 2));
    }
    expect(seen).toBe(true);
    const tmp = path.join(root, name + '.new');
    writeRandomFile(tmp, 3 * MiB + 5);
    const newSum = sha256File(tmp);
    fs.renameSync(tmp, path.join(root, name));
    expect((await transfer).code).toBe(0);
    expect(sha256File(o1)).toBe(oldSum);
    const o2 = path.join(out, 'replace-new');
    expect((await tftpHpaGet(port, name, o2)).code).toBe(0);
    expect(sha256File(o2)).toBe(newSum);
  }, 60_000);

  it('per-client transfer limit: the excess request gets error 0 and is counted', async () => {
    const limited = new TftpServer({
      root,
      listen: [{ host: '127.0.0.1', port: 0 }],
      logger: quietLogger,
      maxTransfersPerClient: 1,
      defaultTimeoutMs: 20_000,
    });
    await limited.start();
    try {
      const lport = (limited.addresses()[0] as { port: number }).port;
      const first = await newPeer();
      first.send(encodeRequest('rrq', 'small.bin', 'octet'), lport); // never ACKed: stays active
      expect(await first.waitFor((r) => r.length > 0, 3000)).toBe(true);
      const second = await newPeer();
      second.send(encodeRequest('rrq', 'small.bin', 'octet'), lport);
      expect(await second.waitFor((r) => r.length > 0, 3000)).toBe(true);
      expect(second.received[0]?.packet).toMatchObject({ op: 'error', code: 0 });
      expect(limited.stats.drops.limits).toBe(1);
      // a retransmitted RRQ from the first client is not a second transfer
      first.send(encodeRequest('rrq', 'small.bin', 'octet'), lport);
      await first.waitFor((r) => limited.stats.drops.duplicateRequest > 0 && r.length > 0, 3000);
      expect(limited.stats.drops.duplicateRequest).toBe(1);
      expect(limited.stats.transfersStarted).toBe(1);
    } finally {
      await limited.close(0);
    }
  });

  it('allow() returning false: nothing at all is sent, the drop is counted', async () => {
    const denied = new TftpServer({ root, listen: [{ host: '127.0.0.1', port: 0 }], logger: quietLogger, allow: () => false });
    await denied.start();
    try {
      const dport = (denied.addresses()[0] as { port: number }).port;
      const peer = await newPeer();
      peer.send(encodeRequest('rrq', 'small.bin', 'octet'), dport);
      peer.send(raw([0, 9]), dport);
      peer.send(Buffer.alloc(0), dport);
      const got = await peer.waitFor((r) => r.length > 0, 500);
      expect(got).toBe(false);
      expect(denied.stats.drops.denied).toBe(3);
      expect(denied.stats.requests).toBe(0);
    } finally {
      await denied.close(0);
    }
  });

  it('close(grace) lets a transfer finish within the grace period and aborts a stalled one with an error', async () => {
    const s2 = new TftpServer({ root, listen: [{ host: '127.0.0.1', port: 0 }], logger: quietLogger, defaultTimeoutMs: 5000 });
    const ends: TransferSummary[] = [];
    const s3 = new TftpServer({
      root,
      listen: [{ host: '127.0.0.1', port: 0 }],
      logger: quietLogger,
      defaultTimeoutMs: 5000,
      onTransferEnd: (e) => ends.push(e),
    });
    await s2.start();
    await s3.start();
    try {
      // stalled: the peer never ACKs DATA 1
      const p3 = (s3.addresses()[0] as { port: number }).port;
      const peer = await newPeer();
      peer.send(encodeRequest('rrq', 'small.bin', 'octet'), p3);
      expect(await peer.waitFor((r) => r.length >= 1, 3000)).toBe(true);
      await s3.close(100);
      expect(await peer.waitFor((r) => r.some((m) => m.packet?.op === 'error'), 3000)).toBe(true);
      expect(ends.at(-1)).toMatchObject({ outcome: 'aborted' });
      // in-flight transfer completes during the grace period
      const p2 = (s2.addresses()[0] as { port: number }).port;
      const o = path.join(out, 'grace');
      const t = curlGet(p2, 'big.bin', o, ['--tftp-blksize', '1468']);
      for (let i = 0; i < 2000 && s2.transfers().length === 0; i++) await new Promise((r) => setTimeout(r, 2));
      await s2.close(30_000);
      expect((await t).code).toBe(0);
      expect(sha256File(o)).toBe(sha256File(path.join(root, 'big.bin')));
      expect(s2.stats.transfersOk).toBe(1);
    } finally {
      await s2.close(0);
      await s3.close(0);
    }
  }, 60_000);
});
