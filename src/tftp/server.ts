/**
 * TFTP server (read-only): RFC 1350, 2347, 2348, 2349, 7440.
 *
 * The listening sockets only parse requests; every transfer gets its own ephemeral
 * port (RFC 1350 sec. 4, the transfer ID) as a *connected* UDP socket, plus an
 * unconnected sibling bound to the same port (SO_REUSEADDR) whose only job is to answer
 * datagrams from foreign TIDs with error 5 (RFC 1350 sec. 4) without disturbing the
 * transfer: Linux delivers the peer's datagrams to the connected socket (better match)
 * and everything else to the sibling.
 *
 * Threads: the listeners, request parsing, path resolution, the virtual-file provider,
 * limits and the foreign-TID sibling live in the main thread; the transfer itself (the
 * connected socket, bound to the sibling's port) runs in a worker thread (runner.ts,
 * worker.ts), because Node's per-datagram cost makes one event loop the ceiling when
 * many clients boot at once. Summaries and counters come back by message.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { FileClient, VirtualFileProvider } from '../boot/types.js';
import {
  decodePacket,
  DEFAULT_DECODE_LIMITS,
  encodeError,
  encodeOack,
  ErrorCode,
  negotiateOptions,
  oackEntries,
  toNetascii,
  type RequestPacket,
  type TransferMode,
} from './packet.js';
import { DEFAULT_MAX_NAME_BYTES, normalizeRequestPath, openInRoot } from './paths.js';
import { resolveUdpIo, type UdpIo } from '../native/udp.js';
import { TransferRunner, type FromRunner, type RunnerEnd, type RunnerOptions, type RunnerStart, type ToRunner } from './runner.js';

export interface TftpListen {
  host: string;
  port: number;
}

export interface TransferSummary {
  client: string;
  port: number;
  file: string;
  mode: TransferMode;
  virtual: boolean;
  options: { blksize: number; windowsize: number; timeoutMs: number; tsize: number | undefined };
  /** size of the file as served (after netascii conversion) */
  size: number;
  /** payload bytes put on the wire, retransmissions included */
  bytesSent: number;
  retransmits: number;
  /** ACKs the native socket caught by busy-polling, and polls that timed out (TftpServerOptions.busyPollUs) */
  busyPolls: { hits: number; misses: number };
  durationMs: number;
  outcome: 'ok' | 'error' | 'timeout' | 'aborted';
  errorCode?: number;
  reason?: string;
}

export interface TftpServerOptions {
  root: string;
  listen: TftpListen[];
  /** default 1468: DATA fits a 1500-byte Ethernet MTU (1500 - 20 IP - 8 UDP - 4 TFTP) */
  maxBlksize?: number;
  /** default 64 */
  maxWindowsize?: number;
  /** retransmission timeout when the client did not negotiate one (default 1000 ms) */
  defaultTimeoutMs?: number;
  /**
   * busy-poll budget (microseconds) after each window the native socket sent by itself,
   * while one transfer is running (default 50; 0 = off). See udp.c "Busy-poll".
   */
  busyPollUs?: number;
  /** retransmissions of one window before giving up (default 5) */
  maxRetries?: number;
  /** retransmissions before the client acknowledged anything (default 2; amplification bound) */
  maxRetriesBeforeAck?: number;
  maxTransfers?: number;
  maxTransfersPerClient?: number;
  /** longest accepted file name in bytes (default 255) */
  maxNameBytes?: number;
  /** largest file served in netascii mode (converted in memory; default 32 MiB) */
  maxNetasciiBytes?: number;
  /** bytes of chunk cache kept when no transfer references it (default 16 MiB; the page cache does the rest) */
  cacheBytes?: number;
  /** read size (default 256 KiB) */
  chunkBytes?: number;
  /**
   * worker_threads that run transfers (default os.availableParallelism()); 0 runs them
   * in the main thread. Each worker has its own chunk cache (cacheBytes / workers).
   */
  workers?: number;
  /** datagram I/O of the transfers: native (default when built) or node:dgram */
  io?: UdpIo;
  provider?: VirtualFileProvider;
  /** when it returns false for a source address, nothing at all is sent back */
  allow?: (address: string) => boolean;
  logger: Logger;
  onTransferEnd?: (summary: TransferSummary) => void;
}

export interface TftpStats {
  requests: number;
  transfersStarted: number;
  transfersOk: number;
  transfersFailed: number;
  /** payload bytes sent, retransmissions included */
  bytesSent: number;
  errorsSent: number;
  active: number;
  drops: {
    malformed: number;
    foreignTid: number;
    denied: number;
    limits: number;
    duplicateRequest: number;
    stray: number;
    internal: number;
  };
}

interface Listener {
  socket: dgram.Socket;
  host: string;
  family: 'udp4' | 'udp6';
}

interface Active {
  id: number;
  exec: Executor;
  catcher: dgram.Socket;
  localPort: number;
  summary: Omit<TransferSummary, 'bytesSent' | 'retransmits' | 'busyPolls' | 'durationMs' | 'outcome'>;
}

/** Where transfers run: a worker thread, or a runner in this thread (workers: 0). */
interface Executor {
  post(m: ToRunner): void;
  /** transfers handed to it and not ended yet (least-loaded placement) */
  load: number;
  stop(): Promise<void>;
}

/**
 * The worker entry. Under vitest the sources are .ts files that Node cannot load in a
 * worker by itself, so the worker first registers tsx (a devDependency) and then
 * imports worker.ts; the built dist/ never takes that branch.
 */
function spawnWorker(data: RunnerOptions): Worker {
  if (import.meta.url.endsWith('.ts')) {
    const ts = new URL('./worker.ts', import.meta.url).href;
    return new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(ts)}); })`, {
      eval: true,
      workerData: data,
      trackUnmanagedFds: false,
    });
  }
  // trackUnmanagedFds off: the worker closes fds the main thread opened (by design)
  return new Worker(new URL('./worker.js', import.meta.url), { workerData: data, trackUnmanagedFds: false });
}

function familyOf(host: string): 'udp4' | 'udp6' {
  return net.isIPv6(host) ? 'udp6' : 'udp4';
}

export class TftpServer {
  readonly stats: TftpStats = {
    requests: 0,
    transfersStarted: 0,
    transfersOk: 0,
    transfersFailed: 0,
    bytesSent: 0,
    errorsSent: 0,
    active: 0,
    drops: { malformed: 0, foreignTid: 0, denied: 0, limits: 0, duplicateRequest: 0, stray: 0, internal: 0 },
  };

  private readonly opt: Required<Omit<TftpServerOptions, 'provider' | 'allow' | 'onTransferEnd' | 'io'>> &
    Pick<TftpServerOptions, 'provider' | 'allow' | 'onTransferEnd' | 'io'>;
  private readonly log: Logger;
  /** datagram I/O of the transfers (the listeners are low-rate and stay on dgram) */
  readonly io: UdpIo;
  private listeners: Listener[] = [];
  private executors: Executor[] = [];
  private nextId = 1;
  private readonly byId = new Map<number, string>();
  private realRoot = '';
  /** keyed by "address|port": also catches a client's retransmitted RRQ while we prepare */
  private readonly active = new Map<string, Active | 'preparing'>();
  private readonly perClient = new Map<string, number>();
  private closing = false;
  private drainWaiters: Array<() => void> = [];

  constructor(options: TftpServerOptions) {
    this.opt = {
      maxBlksize: 1468,
      maxWindowsize: 64,
      defaultTimeoutMs: 1000,
      maxRetries: 5,
      maxRetriesBeforeAck: 2,
      busyPollUs: 50,
      maxTransfers: 512,
      maxTransfersPerClient: 16,
      maxNameBytes: DEFAULT_MAX_NAME_BYTES,
      maxNetasciiBytes: 32 * 1024 * 1024,
      cacheBytes: 16 * 1024 * 1024,
      chunkBytes: 256 * 1024,
      workers: os.availableParallelism(),
      // an explicit `undefined` must not override a default
      ...(Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as TftpServerOptions),
    };
    this.opt.maxBlksize = Math.max(8, Math.min(65464, this.opt.maxBlksize));
    this.opt.maxWindowsize = Math.max(1, Math.min(65535, this.opt.maxWindowsize));
    this.opt.workers = Math.max(0, Math.min(64, Math.floor(this.opt.workers)));
    this.opt.busyPollUs = Math.max(0, Math.min(1000, this.opt.busyPollUs));
    this.log = options.logger;
    this.io = resolveUdpIo(options.io);
  }

  private startExecutors(): void {
    const n = this.opt.workers;
    if (n === 0) {
      const exec: Executor = {
        load: 0,
        post: (m) => runner.handle(m),
        stop: async () => undefined,
      };
      const runner = new TransferRunner((m) => this.onRunnerMessage(exec, m), {
        chunkBytes: this.opt.chunkBytes,
        cacheBytes: this.opt.cacheBytes,
        io: this.io,
      });
      this.executors = [exec];
      return;
    }
    for (let i = 0; i < n; i++) this.executors.push(this.spawnExecutor(Math.floor(this.opt.cacheBytes / n)));
  }

  private spawnExecutor(cacheBytes: number): Executor {
    const worker = spawnWorker({ chunkBytes: this.opt.chunkBytes, cacheBytes, io: this.io });
    // the listeners keep the process alive while serving; an idle worker must not
    worker.unref();
    let stopped = false;
    const exec: Executor = {
      load: 0,
      post: (m) => worker.postMessage(m),
      stop: async () => {
        stopped = true;
        await worker.terminate();
      },
    };
    worker.on('message', (m: FromRunner) => this.onRunnerMessage(exec, m));
    worker.on('error', (err) => this.log.error({ err }, 'tftp worker failed'));
    worker.on('exit', (code) => {
      if (stopped) return;
      // a dead worker takes its transfers with it: end them (the clients time out) and
      // replace the worker so new requests still have somewhere to run
      this.log.error({ code }, 'tftp worker exited; replacing it');
      for (const [id, key] of [...this.byId]) {
        const a = this.active.get(key);
        if (a !== undefined && a !== 'preparing' && a.exec === exec) {
          this.onRunnerEnd({
            t: 'end',
            id,
            bytesSent: 0,
            retransmits: 0,
            stalls: 0,
            busyPolls: { hits: 0, misses: 0 },
            durationMs: 0,
            outcome: { kind: 'error', code: 0, reason: 'worker exited' },
          });
        }
      }
      const i = this.executors.indexOf(exec);
      if (i >= 0 && !this.closing) this.executors[i] = this.spawnExecutor(cacheBytes);
    });
    return exec;
  }

  private onRunnerMessage(exec: Executor, m: FromRunner): void {
    try {
      switch (m.t) {
        case 'counts':
          this.stats.drops.malformed += m.malformed;
          this.stats.drops.stray += m.stray;
          this.stats.drops.internal += m.internal;
          return;
        case 'log':
          if (m.level === 'error') this.log.error({ err: m.err, client: m.client }, m.msg);
          else this.log.debug({ err: m.err, client: m.client }, m.msg);
          return;
        case 'end':
          exec.load = Math.max(0, exec.load - 1);
          this.onRunnerEnd(m);
          return;
      }
    } catch (err) {
      this.stats.drops.internal++;
      this.log.error({ err }, 'tftp runner message error');
    }
  }

  /** Bound addresses (useful when listening on port 0). */
  addresses(): Array<{ host: string; port: number }> {
    return this.listeners.map((l) => {
      const a = l.socket.address();
      return { host: a.address, port: a.port };
    });
  }

  /** In-flight transfers (for status pages and tests). */
  transfers(): Array<{ client: string; port: number; file: string; localPort: number }> {
    const out: Array<{ client: string; port: number; file: string; localPort: number }> = [];
    for (const a of this.active.values()) {
      if (a === 'preparing') continue;
      out.push({ client: a.summary.client, port: a.summary.port, file: a.summary.file, localPort: a.localPort });
    }
    return out;
  }

  /** Transfers currently placed on each runner (one entry per worker; one entry when workers is 0). */
  runnerLoads(): number[] {
    return this.executors.map((e) => e.load);
  }

  async start(): Promise<void> {
    this.realRoot = await fsp.realpath(this.opt.root);
    this.startExecutors();
    for (const l of this.opt.listen) {
      const family = familyOf(l.host);
      // ipv6Only: '::' and '0.0.0.0' are listened on separately, so v4 clients are not
      // seen as ::ffff: mapped addresses (allowlists and logs stay simple)
      const socket = dgram.createSocket({ type: family, ipv6Only: family === 'udp6' });
      const listener: Listener = { socket, host: l.host, family };
      socket.on('message', (msg, rinfo) => this.onRequestDatagram(listener, msg, rinfo));
      socket.on('error', (err) => this.log.warn({ err, host: l.host }, 'tftp listener error'));
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(l.port, l.host, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      this.listeners.push(listener);
    }
    this.log.info({ listen: this.addresses(), root: this.realRoot, workers: this.opt.workers, io: this.io }, 'tftp server listening');
  }

  /** Stops accepting requests, lets transfers finish for up to `graceMs`, then aborts the rest. */
  async close(graceMs = 0): Promise<void> {
    this.closing = true;
    await Promise.all(this.listeners.map((l) => new Promise<void>((r) => l.socket.close(() => r()))));
    this.listeners = [];
    if (this.active.size > 0 && graceMs > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        this.drainWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    for (const a of this.active.values()) if (a !== 'preparing') a.exec.post({ t: 'abort', id: a.id, reason: 'server shutting down' });
    // requests still opening their file see `closing` and stop by themselves
    const deadline = performance.now() + 2000;
    while (this.active.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const execs = this.executors.splice(0);
    await Promise.all(execs.map((e) => e.stop()));
  }

  private sendError(listener: Listener, rinfo: dgram.RemoteInfo, code: number, message: string): void {
    if (this.listeners.indexOf(listener) < 0) return; // closed meanwhile (shutdown)
    this.stats.errorsSent++;
    listener.socket.send(encodeError(code, message), rinfo.port, rinfo.address);
  }

  private onRequestDatagram(listener: Listener, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    try {
      if (this.opt.allow && !this.opt.allow(rinfo.address)) {
        this.stats.drops.denied++;
        return;
      }
      if (this.closing) return;
      const r = decodePacket(msg, DEFAULT_DECODE_LIMITS);
      if (!r.ok) {
        this.stats.drops.malformed++;
        this.log.debug({ client: rinfo.address, port: rinfo.port, kind: r.error.kind, detail: r.error.detail }, 'tftp malformed request');
        // empty and 1-byte datagrams carry nothing to answer; the rest get error 4
        // (RFC 1350: illegal TFTP operation), or 8 for a request with too many options
        if (r.error.kind === 'empty' || r.error.kind === 'short') return;
        this.sendError(
          listener,
          rinfo,
          r.error.kind === 'too-many-options' ? ErrorCode.OPTION_REFUSED : ErrorCode.ILLEGAL_OPERATION,
          'illegal TFTP operation',
        );
        return;
      }
      const p = r.packet;
      if (p.op === 'wrq') {
        this.stats.requests++;
        this.log.info({ client: rinfo.address, port: rinfo.port, file: p.filename.slice(0, 255) }, 'tftp write refused');
        this.sendError(listener, rinfo, ErrorCode.ACCESS_VIOLATION, 'server is read-only');
        return;
      }
      if (p.op !== 'rrq') {
        // DATA/ACK/ERROR/OACK on the listening port belong to no transfer
        this.stats.drops.stray++;
        if (p.op !== 'error') this.sendError(listener, rinfo, ErrorCode.ILLEGAL_OPERATION, 'illegal TFTP operation');
        return;
      }
      this.stats.requests++;
      const key = rinfo.address + '|' + rinfo.port;
      if (this.active.has(key)) {
        // the client retransmitted its RRQ: the transfer already answers it
        this.stats.drops.duplicateRequest++;
        return;
      }
      const perClient = this.perClient.get(rinfo.address) ?? 0;
      if (this.active.size >= this.opt.maxTransfers || perClient >= this.opt.maxTransfersPerClient) {
        this.stats.drops.limits++;
        this.sendError(listener, rinfo, ErrorCode.NOT_DEFINED, 'server busy');
        return;
      }
      this.active.set(key, 'preparing');
      this.perClient.set(rinfo.address, perClient + 1);
      this.prepare(listener, rinfo, key, p).catch((err: unknown) => {
        // e.g. a provider that threw, or no ephemeral port left: tell the client
        // instead of letting it retry into silence
        this.stats.drops.internal++;
        this.log.error({ err, client: rinfo.address, file: p.filename.slice(0, 255) }, 'tftp request failed internally');
        if (this.active.get(key) === 'preparing') {
          this.releaseSlot(key, rinfo.address);
          try {
            this.sendError(listener, rinfo, ErrorCode.NOT_DEFINED, 'internal error');
          } catch {
            // listener closed meanwhile
          }
        }
      });
    } catch (err) {
      this.stats.drops.internal++;
      this.log.error({ err }, 'tftp request handler error');
    }
  }

  private releaseSlot(key: string, address: string): void {
    if (!this.active.delete(key)) return;
    const n = (this.perClient.get(address) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(address);
    else this.perClient.set(address, n);
    if (this.active.size === 0) for (const w of this.drainWaiters.splice(0)) w();
  }

  private refuse(listener: Listener, rinfo: dgram.RemoteInfo, key: string, file: string, code: number, reason: string): void {
    this.releaseSlot(key, rinfo.address);
    this.stats.transfersFailed++;
    this.sendError(
      listener,
      rinfo,
      code,
      code === ErrorCode.FILE_NOT_FOUND ? 'file not found' : code === ErrorCode.ACCESS_VIOLATION ? 'access violation' : reason,
    );
    const level = code === ErrorCode.ACCESS_VIOLATION ? 'warn' : 'info';
    this.log[level](
      { client: rinfo.address, port: rinfo.port, file: file.slice(0, 300), outcome: 'error', errorCode: code, reason },
      'tftp request refused',
    );
    this.opt.onTransferEnd?.({
      client: rinfo.address,
      port: rinfo.port,
      file,
      mode: 'octet',
      virtual: false,
      options: { blksize: 512, windowsize: 1, timeoutMs: this.opt.defaultTimeoutMs, tsize: undefined },
      size: 0,
      bytesSent: 0,
      retransmits: 0,
      busyPolls: { hits: 0, misses: 0 },
      durationMs: 0,
      outcome: 'error',
      errorCode: code,
      reason,
    });
  }

  private async prepare(listener: Listener, rinfo: dgram.RemoteInfo, key: string, req: RequestPacket): Promise<void> {
    if (req.mode === 'mail')
      return this.refuse(listener, rinfo, key, req.filename, ErrorCode.ILLEGAL_OPERATION, 'mail mode is for WRQ only');
    const mode: TransferMode = req.mode === 'netascii' ? 'netascii' : 'octet';
    const norm = normalizeRequestPath(req.filename, this.opt.maxNameBytes);
    if (!norm.ok) return this.refuse(listener, rinfo, key, req.filename, norm.code, norm.reason);
    const neg = negotiateOptions(req.options, { maxBlksize: this.opt.maxBlksize, maxWindowsize: this.opt.maxWindowsize });
    if (!neg.ok) {
      this.stats.drops.malformed++;
      return this.refuse(listener, rinfo, key, norm.rel, neg.code, neg.reason);
    }

    let file: RunnerStart['file'] | undefined;
    let size = 0;
    let virtual = false;
    if (this.opt.provider) {
      const client: FileClient = { address: rinfo.address };
      const vf = await this.opt.provider.virtualFile(norm.rel, client);
      if (vf) {
        virtual = true;
        const content = mode === 'netascii' ? toNetascii(vf.content) : vf.content;
        file = { content };
        size = content.length;
        this.log.debug({ client: rinfo.address, file: norm.rel, origin: vf.origin }, 'tftp virtual file');
      }
    }
    if (!file) {
      const opened = await openInRoot(this.realRoot, norm.rel);
      if (!opened.ok) return this.refuse(listener, rinfo, key, norm.rel, opened.code, opened.reason);
      const f = opened.file;
      if (mode === 'netascii') {
        // netascii changes the size, so the converted file is built in memory (tsize
        // must be the converted size, RFC 2349); it is meant for small text files
        if (f.size > this.opt.maxNetasciiBytes) {
          fs.close(f.fd, () => undefined);
          return this.refuse(listener, rinfo, key, norm.rel, ErrorCode.NOT_DEFINED, 'file too large for netascii');
        }
        const raw = Buffer.allocUnsafe(f.size);
        let got = 0;
        try {
          while (got < f.size) {
            const n = await new Promise<number>((res, rej) => fs.read(f.fd, raw, got, f.size - got, got, (e, k) => (e ? rej(e) : res(k))));
            if (n === 0) break;
            got += n;
          }
        } finally {
          fs.close(f.fd, () => undefined);
        }
        const content = toNetascii(raw.subarray(0, got));
        file = { content };
        size = content.length;
      } else {
        // the fd is process-wide: the runner (maybe in a worker) reads and closes it
        file = { fd: f.fd, size: f.size, dev: String(f.dev), ino: String(f.ino), mtimeNs: String(f.mtimeNs) };
        size = f.size;
      }
    }
    const closeFile = (): void => {
      if (file && 'fd' in file) fs.close(file.fd, () => undefined);
    };
    if (this.closing || this.executors.length === 0) {
      closeFile();
      return this.refuse(listener, rinfo, key, norm.rel, ErrorCode.NOT_DEFINED, 'server shutting down');
    }

    const o = neg.options;
    const blksize = o.blksize ?? 512;
    const windowsize = o.windowsize ?? 1;
    const timeoutMs = o.timeout !== undefined ? o.timeout * 1000 : this.opt.defaultTimeoutMs;
    const entries = oackEntries(o, size);
    // RFC 2347: options we do not accept are not echoed; with none accepted, DATA 1 follows directly
    const oack = entries.length > 0 ? encodeOack(entries) : null;

    let catcher: dgram.Socket;
    try {
      catcher = await this.openCatcher(listener);
    } catch (err) {
      closeFile();
      throw err;
    }
    if (this.closing) {
      closeFile();
      catcher.close();
      return this.refuse(listener, rinfo, key, norm.rel, ErrorCode.NOT_DEFINED, 'server shutting down');
    }
    const localPort = catcher.address().port;
    const summary: Active['summary'] = {
      client: rinfo.address,
      port: rinfo.port,
      file: norm.rel,
      mode,
      virtual,
      options: { blksize, windowsize, timeoutMs, tsize: o.tsize ? size : undefined },
      size,
    };
    // least-loaded executor: transfers are long-lived, so counting them is enough
    let exec = this.executors[0] as Executor;
    for (const e of this.executors) if (e.load < exec.load) exec = e;
    const id = this.nextId++;
    this.active.set(key, { id, exec, catcher, localPort, summary });
    this.byId.set(id, key);
    exec.load++;
    // counted at hand-off (not when the runner confirms) so the stats never lag the wire
    this.stats.transfersStarted++;
    this.stats.active++;
    exec.post({
      t: 'start',
      id,
      file,
      blksize,
      windowsize,
      timeoutMs,
      busyPollUs: this.opt.busyPollUs,
      maxRetries: this.opt.maxRetries,
      maxRetriesBeforeAck: this.opt.maxRetriesBeforeAck,
      oack,
      bindHost: listener.host,
      family: listener.family,
      localPort,
      clientAddress: rinfo.address,
      clientPort: rinfo.port,
    });
  }

  /**
   * The transfer's port (RFC 1350 sec. 4, its TID) is claimed here by the unconnected
   * catcher (SO_REUSEADDR); the runner then binds its connected socket to the same
   * port. Linux prefers the connected socket for the peer's datagrams, so the catcher
   * only ever sees foreign TIDs.
   */
  private async openCatcher(listener: Listener): Promise<dgram.Socket> {
    const catcher = dgram.createSocket({ type: listener.family, reuseAddr: true, ipv6Only: listener.family === 'udp6' });
    catcher.on('error', () => undefined);
    try {
      await new Promise<void>((resolve, reject) => {
        catcher.once('error', reject);
        catcher.bind(0, listener.host, () => {
          catcher.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      catcher.close();
      throw err;
    }
    catcher.on('message', (msg, from) => this.onForeignDatagram(catcher, msg, from));
    return catcher;
  }

  /** A datagram on a transfer port from anyone but the transfer's peer (RFC 1350 sec. 4). */
  private onForeignDatagram(catcher: dgram.Socket, msg: Buffer, from: dgram.RemoteInfo): void {
    try {
      if (this.opt.allow && !this.opt.allow(from.address)) {
        this.stats.drops.denied++;
        return;
      }
      this.stats.drops.foreignTid++;
      // never answer an ERROR (RFC 1350: errors are not acknowledged), nor junk shorter than an opcode
      if (msg.length < 2 || (msg[0] === 0 && msg[1] === 5)) return;
      this.stats.errorsSent++;
      catcher.send(encodeError(ErrorCode.UNKNOWN_TID, 'unknown transfer ID'), from.port, from.address);
    } catch (err) {
      this.stats.drops.internal++;
      this.log.error({ err }, 'tftp foreign-TID handler error');
    }
  }

  private onRunnerEnd(m: RunnerEnd): void {
    const key = this.byId.get(m.id);
    if (key === undefined) return;
    this.byId.delete(m.id);
    const a = this.active.get(key);
    if (a === undefined || a === 'preparing' || a.id !== m.id) return;
    const outcome = m.outcome;
    this.stats.active--;
    this.stats.bytesSent += m.bytesSent;
    if (outcome.kind === 'ok') this.stats.transfersOk++;
    else this.stats.transfersFailed++;
    a.catcher.close();
    this.releaseSlot(key, a.summary.client);
    const summary: TransferSummary = {
      ...a.summary,
      bytesSent: m.bytesSent,
      retransmits: m.retransmits,
      busyPolls: m.busyPolls,
      durationMs: Math.round(m.durationMs * 10) / 10,
      outcome: outcome.kind === 'ok' ? 'ok' : outcome.kind === 'timeout' ? 'timeout' : outcome.kind === 'aborted' ? 'aborted' : 'error',
    };
    if (outcome.kind === 'peer-error') {
      summary.errorCode = outcome.code;
      summary.reason = `peer error: ${outcome.message}`;
    } else if (outcome.kind === 'error') {
      summary.errorCode = outcome.code;
      summary.reason = outcome.reason;
    } else if (outcome.kind === 'aborted') summary.reason = outcome.reason;
    this.log.info({ ...summary, stalls: m.stalls }, 'tftp transfer finished');
    try {
      this.opt.onTransferEnd?.(summary);
    } catch (err) {
      this.log.error({ err }, 'tftp onTransferEnd callback failed');
    }
  }
}
