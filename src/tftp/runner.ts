/**
 * Runs transfers that the server (main thread) has already accepted: request parsing,
 * path resolution, the virtual-file provider, limits and the foreign-TID catcher stay
 * in the main thread; a runner gets an open fd (or the content of a virtual/netascii
 * file), the negotiated options and the peer, and drives the transfer on its own
 * connected socket.
 *
 * Why a separate unit: the per-block cost of a transfer is dominated by Node's dgram
 * machinery (recv callback, rinfo object, SendWrap), so one event loop saturates one
 * core. tftpd-hpa forks a process per transfer and atftpd runs a thread per transfer;
 * spreading transfers over worker_threads (one runner per worker, see worker.ts) is
 * the equivalent. The same runner also runs in the main thread when workers are off.
 *
 * The messages are plain data (structured-clone safe) so they cross a MessagePort.
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { ChunkCache, FileSource, MemorySource, type BlockSource } from './source.js';
import { nativeNowMs, NativeUdpSocket, type UdpIo } from '../native/udp.js';
import { buildWindow, Transfer, type TransferLink, type TransferOutcome } from './transfer.js';

export interface RunnerStart {
  t: 'start';
  id: number;
  /** an fd opened (and owned from now on) by the runner, or in-memory content */
  file: { fd: number; size: number; dev: string; ino: string; mtimeNs: string } | { content: Uint8Array };
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  busyPollUs: number;
  maxRetries: number;
  maxRetriesBeforeAck: number;
  oack: Uint8Array | null;
  bindHost: string;
  family: 'udp4' | 'udp6';
  /** port already bound (SO_REUSEADDR) by the main thread's foreign-TID catcher */
  localPort: number;
  clientAddress: string;
  clientPort: number;
}

export type ToRunner = RunnerStart | { t: 'abort'; id: number; reason: string };

export interface RunnerEnd {
  t: 'end';
  id: number;
  bytesSent: number;
  retransmits: number;
  /** windows that waited for a chunk read */
  stalls: number;
  /** ACKs caught by busy-polling / polls that timed out (native link only) */
  busyPolls: { hits: number; misses: number };
  durationMs: number;
  outcome: TransferOutcome;
}

export type FromRunner =
  | { t: 'counts'; malformed: number; stray: number; internal: number }
  | { t: 'log'; level: 'debug' | 'error'; msg: string; err: string; client?: string }
  | RunnerEnd;

export interface RunnerOptions {
  chunkBytes: number;
  cacheBytes: number;
  /** already resolved by the server (resolveUdpIo) */
  io: UdpIo;
}

/** A transfer's connected socket: native when the addon is built, node:dgram otherwise. */
interface ConnectedSocket extends TransferLink {
  close(): void;
}

/** ACKs are 4 bytes and ERRORs short: anything longer than this is malformed anyway. */
const TRANSFER_MAX_DATAGRAM = 2048;

async function openNative(m: RunnerStart): Promise<ConnectedSocket> {
  const sock = new NativeUdpSocket({
    family: m.family,
    reuseAddr: true,
    ipv6Only: m.family === 'udp6',
    maxDatagram: TRANSFER_MAX_DATAGRAM,
  });
  try {
    // same port as the catcher: Linux delivers the peer's datagrams to this socket
    // once it is connected (better match), everything else to the catcher
    sock.bind(m.localPort, m.bindHost);
    sock.connect(m.clientPort, m.clientAddress);
  } catch (err) {
    sock.close();
    throw err;
  }
  // the native socket cannot stop delivering: unlisten() swaps the handler for a no-op
  // until the runner closes the socket
  let handler: (buf: Buffer, length: number) => void = () => undefined;
  return {
    listen(onMessage) {
      handler = onMessage;
      sock.start((buf, length) => handler(buf, length));
    },
    unlisten() {
      handler = () => undefined;
    },
    send(buf) {
      sock.send(buf);
    },
    sendWindow(w) {
      sock.sendFileWindow(w.ring, w.stride, w.slots, w.firstBlock, w.count, w.blksize, w.fileSize, w.chunkSize, w.firstChunk, w.chunks);
    },
    autoAdvance(state, w, windowsize) {
      if (w) sock.autoAdvance(state, w.ring, w.stride, w.slots, windowsize, w.blksize, w.fileSize, w.chunkSize, w.firstChunk, w.chunks);
      else sock.autoAdvance(null);
    },
    nowMs: nativeNowMs,
    close() {
      sock.close();
    },
  };
}

async function openDgram(m: RunnerStart, onError: (err: Error) => void): Promise<ConnectedSocket> {
  const socket = dgram.createSocket({ type: m.family, reuseAddr: true, ipv6Only: m.family === 'udp6' });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(m.localPort, m.bindHost, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(m.clientPort, m.clientAddress, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    socket.close();
    throw err;
  }
  // connected UDP sockets report ICMP errors (ECONNREFUSED) as socket errors: the
  // transfer's timer handles a vanished peer, so these are only logged
  socket.on('error', onError);
  let handler: ((msg: Buffer) => void) | undefined;
  return {
    listen(onMessage) {
      handler = (msg) => onMessage(msg, msg.length);
      socket.on('message', handler);
    },
    unlisten() {
      if (handler) socket.off('message', handler);
      handler = undefined;
    },
    send(buf) {
      socket.send(buf);
    },
    sendWindow(w) {
      const lastLength = buildWindow(w);
      for (let b = w.firstBlock; b < w.firstBlock + w.count; b++) {
        const at = (b % w.slots) * w.stride;
        socket.send(w.ring.subarray(at, at + (b === w.firstBlock + w.count - 1 ? lastLength : w.stride)));
      }
    },
    close() {
      socket.close();
    },
  };
}

interface Running {
  transfer: Transfer | undefined;
  /** abort requested while the socket was still being set up */
  abortReason: string | undefined;
}

export class TransferRunner {
  private readonly cache: ChunkCache;
  private readonly running = new Map<number, Running>();
  private counts = { malformed: 0, stray: 0, internal: 0 };
  private flushScheduled = false;

  private readonly io: UdpIo;

  constructor(
    private readonly post: (m: FromRunner) => void,
    opts: RunnerOptions,
  ) {
    this.cache = new ChunkCache(opts.chunkBytes, opts.cacheBytes);
    this.io = opts.io;
  }

  handle(m: ToRunner): void {
    if (m.t === 'start') {
      this.start(m).catch((err: unknown) => this.internalError(err, m.clientAddress));
      return;
    }
    const r = this.running.get(m.id);
    if (!r) return;
    if (r.transfer) r.transfer.abort(m.reason);
    else r.abortReason = m.reason;
  }

  /** Counters are batched per tick: a flood of junk must not become a flood of messages. */
  private bump(kind: 'malformed' | 'stray' | 'internal'): void {
    this.counts[kind]++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const c = this.counts;
    if (c.malformed + c.stray + c.internal === 0) return;
    this.counts = { malformed: 0, stray: 0, internal: 0 };
    this.post({ t: 'counts', ...c });
  }

  private internalError(err: unknown, client?: string): void {
    this.bump('internal');
    this.post({
      t: 'log',
      level: 'error',
      msg: 'tftp transfer handler error',
      err: err instanceof Error ? (err.stack ?? err.message) : String(err),
      client,
    });
  }

  private async start(m: RunnerStart): Promise<void> {
    const started = performance.now();
    const source: BlockSource =
      'content' in m.file
        ? new MemorySource(Buffer.from(m.file.content.buffer, m.file.content.byteOffset, m.file.content.byteLength))
        : new FileSource(this.cache, m.file.fd, m.file.size, m.file);
    const entry: Running = { transfer: undefined, abortReason: undefined };
    this.running.set(m.id, entry);
    const onSocketError = (err: Error): void => {
      this.post({ t: 'log', level: 'debug', msg: 'tftp transfer socket error', err: err.message, client: m.clientAddress });
    };
    let socket: ConnectedSocket;
    try {
      socket = this.io === 'native' ? await openNative(m) : await openDgram(m, onSocketError);
    } catch (err) {
      this.running.delete(m.id);
      source.close();
      this.internalError(err, m.clientAddress);
      this.flush();
      this.post({
        t: 'end',
        id: m.id,
        bytesSent: 0,
        retransmits: 0,
        stalls: 0,
        busyPolls: { hits: 0, misses: 0 },
        durationMs: performance.now() - started,
        outcome: { kind: 'error', code: 0, reason: `socket: ${(err as Error).message}` },
      });
      return;
    }
    const transfer = new Transfer({
      socket,
      source,
      blksize: m.blksize,
      windowsize: m.windowsize,
      timeoutMs: m.timeoutMs,
      busyPollUs: m.busyPollUs,
      maxRetries: m.maxRetries,
      maxRetriesBeforeAck: m.maxRetriesBeforeAck,
      oack: m.oack ? Buffer.from(m.oack.buffer, m.oack.byteOffset, m.oack.byteLength) : null,
      onMalformed: () => this.bump('malformed'),
      onStray: () => this.bump('stray'),
      onInternalError: (err) => this.internalError(err, m.clientAddress),
      onEnd: (t, outcome) => {
        this.running.delete(m.id);
        // close after the current tick so a final ERROR queued by abort() goes out first
        setImmediate(() => socket.close());
        this.flush();
        this.post({
          t: 'end',
          id: m.id,
          bytesSent: t.bytesSent,
          retransmits: t.retransmits,
          stalls: t.stalls,
          busyPolls: t.busyPolls,
          durationMs: performance.now() - t.startedAt,
          outcome,
        });
      },
    });
    entry.transfer = transfer;
    if (entry.abortReason !== undefined) {
      transfer.abort(entry.abortReason);
      return;
    }
    transfer.start();
  }
}
