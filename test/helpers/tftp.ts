/** Helpers for TFTP integration tests: real client processes, test files, a raw UDP peer. */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import { pino } from 'pino';
import { decodePacket, encodeAck, encodeRequest, type Packet } from '../../src/tftp/packet.js';

export const quietLogger = pino({ level: process.env.TFTP_TEST_LOG ?? 'silent' });

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with a hard timeout (the child is killed by pid when it expires). */
export function run(cmd: string, args: string[], timeoutMs = 60_000, cwd?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Writes `size` bytes of random content (4 MiB random blocks, each stamped with its index so none repeat). */
export function writeRandomFile(file: string, size: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    const block = randomBytes(4 << 20);
    let written = 0;
    let i = 0;
    while (written < size) {
      block.writeUInt32BE(i++, 0);
      const n = Math.min(block.length, size - written);
      fs.writeSync(fd, block, 0, n);
      written += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

export const tftpHpaGet = (port: number, file: string, out: string, mode: 'binary' | 'ascii' = 'binary'): Promise<RunResult> =>
  run('tftp', ['-m', mode, '127.0.0.1', String(port), '-c', 'get', file, out], 120_000);

export const atftpGet = (port: number, file: string, out: string, options: string[] = []): Promise<RunResult> =>
  run('atftp', [...options.flatMap((o) => ['--option', o]), '-g', '-r', file, '-l', out, '127.0.0.1', String(port)], 120_000);

export const curlGet = (port: number, file: string, out: string, extra: string[] = []): Promise<RunResult> =>
  run('curl', ['-s', '-S', ...extra, '-o', out, `tftp://127.0.0.1:${port}/${file}`], 120_000);

/** A UDP peer under the test's control, to send exact datagrams and record replies. */
export class RawPeer {
  readonly socket = dgram.createSocket('udp4');
  readonly received: Array<{ packet: Packet | null; raw: Buffer; port: number; at: number }> = [];
  private waiters: Array<() => void> = [];

  async bind(): Promise<this> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    this.socket.on('message', (raw, rinfo) => {
      const d = decodePacket(raw);
      this.received.push({ packet: d.ok ? d.packet : null, raw, port: rinfo.port, at: Date.now() });
      for (const w of this.waiters.splice(0)) w();
    });
    return this;
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(buf: Buffer, port: number): void {
    this.socket.send(buf, port, '127.0.0.1');
  }

  /** Waits (bounded) until `pred` holds for the received list. */
  async waitFor(pred: (r: RawPeer['received']) => boolean, timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.received)) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        // poll too: some predicates look at state other than received datagrams
        const t = setTimeout(resolve, Math.min(left, 20));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Minimal lock-step RRQ client on a RawPeer. `onBlock` runs after each DATA is
 * received and before it is acknowledged (tests inject traffic there).
 */
export async function rawGet(
  peer: RawPeer,
  serverPort: number,
  file: string,
  options: Array<[string, string]> = [],
  onBlock?: (block: number, transferPort: number) => void | Promise<void>,
): Promise<{ data: Buffer; oack: Map<string, string> | null; error: { code: number; message: string } | null }> {
  peer.received.length = 0;
  peer.send(encodeRequest('rrq', file, 'octet', options), serverPort);
  const parts: Buffer[] = [];
  let oack: Map<string, string> | null = null;
  let blksize = 512;
  let expected = 1;
  let idx = 0;
  let tid = -1;
  const rrq = encodeRequest('rrq', file, 'octet', options);
  for (let guard = 0; guard < 1_000_000; guard++) {
    let ok = await peer.waitFor((r) => r.length > idx, tid < 0 ? 1000 : 5000);
    // like real clients, retransmit the request when nothing came back (it may have
    // been dropped by a full socket buffer)
    for (let retry = 0; !ok && tid < 0 && retry < 4; retry++) {
      peer.send(rrq, serverPort);
      ok = await peer.waitFor((r) => r.length > idx, 1000);
    }
    if (!ok)
      throw new Error(
        `rawGet: timeout waiting for block ${expected}; got ${JSON.stringify(peer.received.slice(0, 5).map((m) => m.packet))}`,
      );
    const msg = peer.received[idx++];
    if (!msg) continue;
    if (tid < 0) tid = msg.port;
    if (msg.port !== tid) continue;
    const p = msg.packet;
    if (!p) continue;
    if (p.op === 'error') return { data: Buffer.concat(parts), oack, error: { code: p.code, message: p.message } };
    if (p.op === 'oack') {
      oack = p.options;
      blksize = Number(p.options.get('blksize') ?? 512);
      peer.send(encodeAck(0), tid);
      continue;
    }
    if (p.op === 'data') {
      if (p.block === (expected & 0xffff)) {
        parts.push(Buffer.from(p.data));
        if (onBlock) await onBlock(expected, tid);
        peer.send(encodeAck(expected), tid);
        expected++;
        if (p.data.length < blksize) return { data: Buffer.concat(parts), oack, error: null };
      }
    }
  }
  throw new Error('rawGet: too many packets');
}
