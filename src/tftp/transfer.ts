/**
 * One read transfer: RFC 1350 lock-step, RFC 2347 OACK handshake, RFC 7440 windows.
 *
 * Hot-path rules (see /docs and the benchmark): one connected UDP socket per transfer
 * (the kernel filters foreign TIDs and skips a route lookup per send), one timer per
 * transfer re-armed lazily (no per-packet timer churn), DATA packets built in
 * one ring of window slots reused for the whole transfer (no per-packet allocation of
 * payload buffers) and sent with one call per window (a UDP GSO send or sendmmsg with
 * the native socket), payload copied from large shared chunks. On the native socket the
 * common case, the in-order ACK of the whole window, is answered by the socket itself
 * (auto-advance, armed once per chunk from here) without entering JS; every other case
 * (loss, duplicates, the end, chunk loading, timers) is handled below.
 */
import { performance } from 'node:perf_hooks';
import { ackBlock, decodePacket, encodeError, ErrorCode, Opcode, writeDataHeader } from './packet.js';
import type { BlockSource } from './source.js';
import { AutoAdvanceSlot } from '../native/udp.js';

export type TransferOutcome =
  | { kind: 'ok' }
  | { kind: 'timeout' }
  | { kind: 'aborted'; reason: string }
  | { kind: 'peer-error'; code: number; message: string }
  | { kind: 'error'; code: number; reason: string };

/**
 * The transfer's connected socket, as the transfer needs it: native (src/native/udp.ts,
 * one sendmmsg per window, no per-datagram allocation) or node:dgram (runner.ts).
 */
export interface TransferLink {
  /** datagrams as (buffer, length): the native socket reuses one buffer, no view per datagram */
  listen(onMessage: (buf: Buffer, length: number) => void): void;
  unlisten(): void;
  send(buf: Buffer): void;
  /**
   * Builds the DATA packets of blocks firstBlock..firstBlock+count-1 into their ring
   * slots (slot = block % slots, `stride` bytes each) from the file's chunks (chunks[i]
   * is chunk firstChunk+i) and sends them: one native call (udp.c sendFileWindow), or
   * buildWindow() + a send per slot on node:dgram.
   */
  sendWindow(w: WindowSpec): void;
  /**
   * Native link only (udp.c auto-advance): from now on the link itself answers the
   * in-order ACK of the whole outstanding window with the next window, built from
   * `w.chunks` (chunk `w.firstChunk` on), while that window lies inside them (the
   * file's last window included; the ACK that ends the transfer always comes here); it
   * advances `state` (AutoAdvanceSlot) in place, and every other datagram still reaches
   * onMessage. `null` disarms (before any chunk given is released).
   */
  autoAdvance?(state: Float64Array, w: WindowSpec | null, windowsize: number): void;
  /** the clock of state[AutoAdvanceSlot.LastSendMs] */
  nowMs?(): number;
}

/** One window of DATA packets to build from a file held in equal chunks. */
export interface WindowSpec {
  ring: Buffer;
  stride: number;
  slots: number;
  firstBlock: number;
  count: number;
  blksize: number;
  fileSize: number;
  chunkSize: number;
  firstChunk: number;
  chunks: Buffer[];
}

/**
 * The JS twin of udp.c's sendFileWindow (for the node:dgram link): writes the window's
 * DATA packets (RFC 1350 sec. 5, block numbers wrapping at 16 bits) into their ring
 * slots; returns the length of the last packet (every other one is 4 + blksize).
 */
export function buildWindow(w: WindowSpec): number {
  let lastLength = 4;
  for (let b = w.firstBlock; b < w.firstBlock + w.count; b++) {
    const off = (b - 1) * w.blksize;
    const len = Math.max(0, Math.min(w.blksize, w.fileSize - off));
    const at = (b % w.slots) * w.stride;
    writeDataHeader(w.ring, b, at);
    for (let copied = 0; copied < len;) {
      const pos = off + copied;
      const idx = Math.floor(pos / w.chunkSize);
      const chunk = w.chunks[idx - w.firstChunk] as Buffer;
      const start = pos - idx * w.chunkSize;
      const n = Math.min(len - copied, chunk.length - start);
      chunk.copy(w.ring, at + 4 + copied, start, start + n);
      copied += n;
    }
    lastLength = 4 + len;
  }
  return lastLength;
}

export interface TransferParams {
  socket: TransferLink;
  source: BlockSource;
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  /**
   * microseconds the native link may busy-poll for the ACK after a window it sent by
   * itself (udp.c busy-poll; only while this is the one armed transfer in the process,
   * backing off while the peer answers slower than this); 0 = never
   */
  busyPollUs: number;
  maxRetries: number;
  /** retransmissions allowed before the peer acknowledged anything (amplification bound) */
  maxRetriesBeforeAck: number;
  /** encoded OACK, or null to start with DATA 1 */
  oack: Buffer | null;
  onMalformed: () => void;
  onStray: () => void;
  onInternalError: (err: unknown) => void;
  onEnd: (t: Transfer, outcome: TransferOutcome) => void;
}

/** chunks (256 KiB by default) loaded ahead of the window being sent */
const READ_AHEAD_CHUNKS = 1;
/** udp.c AA_MAX_CHUNKS */
const MAX_ARMED_CHUNKS = 64;
/**
 * Larger windows are always sent from here, at JS pace: a window arriving faster than
 * the receiver reads it overflows its socket buffer (~64 full-size datagrams by
 * default), and atftp at windowsize 300 then lost part of nearly every window
 * (measured: 10-50k retransmissions per 12 MiB against ~0 at this pace).
 */
const MAX_AUTO_ADVANCE_WINDOW = 64;

const enum Phase {
  Oack,
  Data,
  Done,
}

export class Transfer {
  readonly startedAt = performance.now();
  retransmits = 0;
  /** windows that had to wait for a chunk read (diagnostics) */
  stalls = 0;

  private phase: Phase;
  private readonly totalBlocks: number;
  /**
   * The window state, shared with the native link's auto-advance (one copy, advanced by
   * whichever side handles an ACK): last block acknowledged (0 = none), highest block
   * sent, and what the link sent by itself (AutoAdvanceSlot).
   */
  private readonly st = new Float64Array(AutoAdvanceSlot.Length);
  private bytesSentHere = 0;
  private packetsSentHere = 0;
  /** the chunks auto-advance holds: first index and count (0 = disarmed) */
  private armedFirst = -1;
  private armedCount = 0;
  private armSpec: WindowSpec | undefined;
  /** lastAcked when the timer last ran: progress made by auto-advance resets the retries */
  private ackedAtTimer = 0;
  /** lastAcked value for which we already rewound once (RFC 7440 sec. 4 without resend storms) */
  private rewoundAt = -1;
  private retries = 0;
  private peerSeen = false;
  private lastSendAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingForChunk = false;
  private releasedBelow = 0;
  /** the window being sent: its ring of DATA slots (4 + blksize bytes each) and chunk list are reused */
  private window: WindowSpec | undefined;
  private readonly held = new Map<number, Buffer>();
  private readonly pending = new Map<number, Promise<Buffer>>();
  private readonly onMessage = (buf: Buffer, length: number): void => this.handle(buf, length);

  constructor(private readonly p: TransferParams) {
    this.totalBlocks = Math.floor(p.source.size / p.blksize) + 1;
    this.phase = p.oack ? Phase.Oack : Phase.Data;
    this.st[AutoAdvanceSlot.BusyPollUs] = p.busyPollUs;
  }

  /** ACKs the link caught by busy-polling, and polls that timed out */
  get busyPolls(): { hits: number; misses: number } {
    return { hits: this.st[AutoAdvanceSlot.PollHits] as number, misses: this.st[AutoAdvanceSlot.PollMisses] as number };
  }

  /** absolute number of the last block acknowledged (0 = none) */
  private get lastAcked(): number {
    return this.st[AutoAdvanceSlot.LastAcked] as number;
  }
  private set lastAcked(v: number) {
    this.st[AutoAdvanceSlot.LastAcked] = v;
  }
  /** absolute number of the highest block sent */
  private get sentUpTo(): number {
    return this.st[AutoAdvanceSlot.SentUpTo] as number;
  }
  private set sentUpTo(v: number) {
    this.st[AutoAdvanceSlot.SentUpTo] = v;
  }

  get bytesSent(): number {
    return this.bytesSentHere + (this.st[AutoAdvanceSlot.Bytes] as number);
  }

  get packetsSent(): number {
    return this.packetsSentHere + (this.st[AutoAdvanceSlot.Packets] as number);
  }

  get done(): boolean {
    return this.phase === Phase.Done;
  }

  start(): void {
    this.p.socket.listen(this.onMessage);
    if (this.p.oack) this.sendRaw(this.p.oack);
    else this.sendWindow(1);
    this.armTimer();
  }

  /** Ends the transfer now, telling the peer why (server shutdown). */
  abort(reason: string): void {
    if (this.phase === Phase.Done) return;
    this.sendRaw(encodeError(ErrorCode.NOT_DEFINED, reason));
    this.finish({ kind: 'aborted', reason });
  }

  private handle(buf: Buffer, length: number): void {
    try {
      if (this.phase === Phase.Done) return;
      const block = ackBlock(buf, length);
      if (block >= 0) {
        if (this.phase === Phase.Data) this.onAck(block);
        else if (block === 0) {
          // ACK of the OACK (RFC 2347): the peer exists and accepted our options
          this.phase = Phase.Data;
          this.peerSeen = true;
          this.retries = 0;
          this.sendWindow(1);
        } else this.p.onStray();
        return;
      }
      const r = decodePacket(length === buf.length ? buf : buf.subarray(0, length));
      if (!r.ok) {
        this.p.onMalformed();
        return;
      }
      if (r.packet.op === 'error') {
        this.finish({ kind: 'peer-error', code: r.packet.code, message: r.packet.message });
        return;
      }
      // DATA/RRQ/WRQ/OACK from our peer on a read transfer make no sense: drop, keep going
      this.p.onMalformed();
    } catch (err) {
      this.p.onInternalError(err);
    }
  }

  private onAck(block16: number): void {
    const delta = (block16 - (this.lastAcked & 0xffff)) & 0xffff;
    const outstanding = this.sentUpTo - this.lastAcked;
    if (delta === 0) {
      // Duplicate ACK. In lock-step it is ignored (RFC 1123 4.2.3.1, Sorcerer's
      // Apprentice); in a window it means the first block of the window was lost, so
      // rewind once for this ACK value (RFC 7440 sec. 4), then leave it to the timer.
      if (this.p.windowsize > 1 && outstanding > 0 && this.rewoundAt !== this.lastAcked && !this.waitingForChunk) {
        this.rewoundAt = this.lastAcked;
        this.retransmits += outstanding;
        this.sendWindow(this.lastAcked + 1);
      } else this.p.onStray();
      return;
    }
    if (delta > outstanding) {
      // ACK of a block not sent yet, or an old one from before a rollover: ignore
      this.p.onStray();
      return;
    }
    this.lastAcked += delta;
    this.peerSeen = true;
    this.retries = 0;
    if (this.lastAcked >= this.totalBlocks) {
      this.finish({ kind: 'ok' });
      return;
    }
    // chunks wholly before the next block to send are no longer needed (checked only
    // when the boundary moves: no Map iteration per ACK)
    const firstNeeded = Math.floor((this.lastAcked * this.p.blksize) / this.p.source.chunkSize);
    if (firstNeeded > this.releasedBelow) {
      this.releasedBelow = firstNeeded;
      this.releaseBefore(firstNeeded);
    }
    if (this.lastAcked < this.sentUpTo) {
      // partial ACK: the peer lost the block after this one; restart the window there
      this.rewoundAt = this.lastAcked;
      this.retransmits += this.sentUpTo - this.lastAcked;
    }
    if (!this.waitingForChunk) this.sendWindow(this.lastAcked + 1);
  }

  /** Sends blocks first..first+window-1 (bounded by the file end). */
  private sendWindow(first: number): void {
    const last = Math.min(first + this.p.windowsize - 1, this.totalBlocks);
    const { blksize, source } = this.p;
    // make sure every chunk the window touches is loaded (none when the window is only
    // the zero-length final block)
    const cs = source.chunkSize;
    const startOff = (first - 1) * blksize;
    const endOff = Math.min(source.size, last * blksize);
    const c0 = Math.floor(startOff / cs);
    const c1 = endOff > startOff ? Math.floor((endOff - 1) / cs) : c0 - 1;
    let wait: Promise<Buffer> | undefined;
    for (let c = c0; c <= c1; c++) {
      const w = this.need(c);
      if (w) wait = w;
    }
    // read-ahead: the next chunk loads while this window is on the wire. Measured
    // (the `stalls` count in the 'transfer finished' log): 1-3 stalls per 64 MiB
    // transfer even on a loaded machine, the first being the initial read, so one
    // chunk ahead is enough.
    if (c1 >= c0) for (let next = c1 + 1; next <= c1 + READ_AHEAD_CHUNKS && next * cs < source.size; next++) void this.need(next);
    if (wait) {
      this.stalls++;
      this.waitingForChunk = true;
      wait.then(
        () => {
          this.waitingForChunk = false;
          if (this.phase === Phase.Data) this.sendWindow(this.lastAcked + 1);
        },
        (err: unknown) => {
          this.waitingForChunk = false;
          this.sendRaw(encodeError(ErrorCode.NOT_DEFINED, 'read error'));
          this.finish({ kind: 'error', code: ErrorCode.NOT_DEFINED, reason: `read: ${(err as Error).message}` });
        },
      );
      return;
    }
    if (last < first) return;
    const slots = Math.min(this.p.windowsize, this.totalBlocks);
    const w = (this.window ??= {
      ring: Buffer.allocUnsafe(slots * (4 + blksize)),
      stride: 4 + blksize,
      slots,
      firstBlock: 0,
      count: 0,
      blksize,
      fileSize: source.size,
      chunkSize: cs,
      firstChunk: 0,
      chunks: [],
    });
    w.firstBlock = first;
    w.count = last - first + 1;
    w.firstChunk = c0;
    w.chunks.length = 0;
    for (let c = c0; c <= c1; c++) w.chunks.push(this.held.get(c) as Buffer);
    this.p.socket.sendWindow(w);
    this.bytesSentHere += Math.max(0, endOff - startOff);
    this.packetsSentHere += w.count;
    if (last > this.sentUpTo) this.sentUpTo = last;
    this.lastSendAt = performance.now();
    if (this.p.socket.autoAdvance && this.p.windowsize <= MAX_AUTO_ADVANCE_WINDOW && last < this.totalBlocks) this.arm(w, c0);
  }

  /**
   * Hands the link the chunks held from `c0` on (the window's and the read-ahead's,
   * contiguous) so it can answer ACKs itself until it runs past them; re-armed only when
   * that set changes, i.e. about once per chunk (~178 blocks of 1468 in 256 KiB).
   */
  private arm(w: WindowSpec, c0: number): void {
    let n = 0;
    while (n < MAX_ARMED_CHUNKS && this.held.has(c0 + n)) n++;
    if (n === 0 || (c0 === this.armedFirst && n === this.armedCount)) return;
    const spec = (this.armSpec ??= { ...w, chunks: [] });
    spec.firstChunk = c0;
    spec.chunks.length = 0;
    for (let i = 0; i < n; i++) spec.chunks.push(this.held.get(c0 + i) as Buffer);
    this.armedFirst = c0;
    this.armedCount = n;
    this.p.socket.autoAdvance?.(this.st, spec, this.p.windowsize);
  }

  private disarm(): void {
    if (this.armedCount === 0) return;
    this.armedFirst = -1;
    this.armedCount = 0;
    this.p.socket.autoAdvance?.(this.st, null, this.p.windowsize);
  }

  /** Takes a reference on chunk `idx` unless held; returns a promise if it is still loading. */
  private need(idx: number): Promise<Buffer> | undefined {
    if (this.held.has(idx)) return undefined;
    const pend = this.pending.get(idx);
    if (pend) return pend;
    const r = this.p.source.acquire(idx);
    if (Buffer.isBuffer(r)) {
      this.held.set(idx, r);
      return undefined;
    }
    const p = r.then((buf) => {
      if (this.pending.get(idx) === p) {
        this.pending.delete(idx);
        this.held.set(idx, buf);
      }
      return buf;
    });
    p.catch(() => undefined);
    this.pending.set(idx, p);
    return p;
  }

  private releaseBefore(idx: number): void {
    // the link must not read a chunk after the cache may have recycled it
    this.disarm();
    for (const k of this.held.keys()) {
      if (k < idx) {
        this.held.delete(k);
        this.p.source.release(k);
      }
    }
    for (const k of this.pending.keys()) {
      if (k < idx) {
        this.pending.delete(k);
        this.p.source.release(k);
      }
    }
  }

  private sendRaw(buf: Buffer): void {
    this.p.socket.send(buf);
    this.packetsSentHere++;
    this.lastSendAt = performance.now();
  }

  private armTimer(delay = this.p.timeoutMs): void {
    this.timer = setTimeout(this.onTimer, delay);
  }

  private readonly onTimer = (): void => {
    try {
      this.timer = undefined;
      if (this.phase === Phase.Done) return;
      if (this.lastAcked !== this.ackedAtTimer) {
        // acknowledged progress the link made by itself since the last look
        this.ackedAtTimer = this.lastAcked;
        this.peerSeen = true;
        this.retries = 0;
      }
      let idle = performance.now() - this.lastSendAt;
      if ((this.st[AutoAdvanceSlot.Windows] as number) > 0 && this.p.socket.nowMs) {
        idle = Math.min(idle, this.p.socket.nowMs() - (this.st[AutoAdvanceSlot.LastSendMs] as number));
      }
      if (idle < this.p.timeoutMs || this.waitingForChunk) {
        // something was sent since the timer was armed: sleep for the remainder (a
        // whole period while a chunk read is pending, not a 1 ms spin)
        this.armTimer(this.waitingForChunk ? this.p.timeoutMs : Math.max(1, this.p.timeoutMs - idle));
        return;
      }
      this.retries++;
      const limit = this.peerSeen ? this.p.maxRetries : Math.min(this.p.maxRetries, this.p.maxRetriesBeforeAck);
      if (this.retries > limit) {
        this.finish({ kind: 'timeout' });
        return;
      }
      if (this.phase === Phase.Oack) this.sendRaw(this.p.oack as Buffer);
      else {
        this.retransmits += Math.max(1, this.sentUpTo - this.lastAcked);
        this.sendWindow(this.lastAcked + 1);
      }
      this.armTimer();
    } catch (err) {
      this.p.onInternalError(err);
    }
  };

  finish(outcome: TransferOutcome): void {
    if (this.phase === Phase.Done) return;
    this.phase = Phase.Done;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.p.socket.unlisten();
    this.releaseBefore(Number.MAX_SAFE_INTEGER);
    this.p.source.close();
    this.p.onEnd(this, outcome);
  }
}

export { Opcode };
