/**
 * Typed face of src/native/udp.c (built by `npm ci` through the package's install
 * script, node-gyp against the Node headers). Datagram I/O only: the protocols stay in
 * TypeScript. Why it exists and what it saves: the header of udp.c and
 * docs/benchmarks.md.
 *
 * When the addon is missing (a build without a compiler) or PXE_UDP=dgram is set, the
 * callers fall back to node:dgram: slower, same behaviour. `nativeUdpStatus()` says
 * which one is in use and why; `pxe serve` logs it at start-up.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_DIR } from '../config.js';

/** ring, stride, slots, blksize, fileSize, chunkSize, firstChunk, chunks */
type FileWindowArgs = [Buffer, number, number, number, number, number, number, Buffer[]];

interface UdpAddon {
  open(family: 4 | 6, flags: number, rcvbuf: number, sndbuf: number): unknown;
  bind(h: unknown, host: string, port: number): number;
  connect(h: unknown, host: string, port: number): number;
  start(h: unknown, recv: Buffer, info: Buffer | null, onMessage: (len: number) => void): void;
  send(h: unknown, buf: Buffer, offset: number, length: number): number;
  sendTo(h: unknown, buf: Buffer, offset: number, length: number, port: number, host: string, ifindex?: number): number;
  close(h: unknown): void;
  stats(h: unknown): [number, number, number, number, number];
  nameToIndex(name: string): number;
  // the file window (ring .. chunks) is the same trailing arguments for both (udp.c get_file_window)
  sendFileWindow(h: unknown, firstBlock: number, count: number, ...window: FileWindowArgs): number;
  autoAdvance(h: unknown, state: Float64Array | null, windowsize?: number, ...window: Partial<FileWindowArgs>): void;
  nowMs(): number;
}

export const NATIVE_UDP_PATH = join(PACKAGE_DIR, 'src', 'native', 'build', 'Release', 'udp.node');

let addon: UdpAddon | undefined;
let status: { native: boolean; reason: string };

function load(): void {
  if (process.env.PXE_UDP === 'dgram') {
    status = { native: false, reason: 'PXE_UDP=dgram' };
    return;
  }
  if (!existsSync(NATIVE_UDP_PATH)) {
    status = { native: false, reason: `${NATIVE_UDP_PATH} not built (npm run build:native)` };
    return;
  }
  try {
    addon = createRequire(import.meta.url)(NATIVE_UDP_PATH) as UdpAddon;
    status = { native: true, reason: NATIVE_UDP_PATH };
  } catch (err) {
    status = { native: false, reason: `load failed: ${(err as Error).message}` };
  }
}
load();

export function nativeUdpStatus(): { native: boolean; reason: string } {
  return status;
}

/** The datagram I/O a server uses: the native socket, or node:dgram. */
export type UdpIo = 'native' | 'dgram';

/**
 * `requested` undefined: native when available. Asking for native explicitly when the
 * addon is not loaded is an error, not a silent slow path.
 */
export function resolveUdpIo(requested: UdpIo | undefined): UdpIo {
  if (requested === 'dgram') return 'dgram';
  if (status.native) return 'native';
  if (requested === 'native') throw new Error(`native UDP requested but unavailable: ${status.reason}`);
  return 'dgram';
}

export interface NativeUdpOptions {
  family: 'udp4' | 'udp6';
  reuseAddr?: boolean;
  broadcast?: boolean;
  ipv6Only?: boolean;
  /** IPv4: learn the arrival interface of every datagram (IP_PKTINFO) */
  pktinfo?: boolean;
  recvBufferSize?: number;
  sendBufferSize?: number;
  /** largest datagram delivered whole; longer ones arrive as an empty message */
  maxDatagram?: number;
}

/** Where the last datagram came from (valid during the onMessage call only). */
export interface DatagramSource {
  address: string;
  port: number;
  /** with `pktinfo`: the interface it arrived on (0 when unknown; see interfaceIndex()) */
  ifindex: number;
}

/**
 * One UDP socket on the calling thread's event loop. `onMessage` gets a view of the one
 * receive buffer: it is overwritten by the next datagram, so handlers copy what they
 * keep. Sends never throw for network errors (UDP is best effort; the protocols
 * retransmit) and never block: a full socket buffer queues the datagram natively.
 */
export class NativeUdpSocket {
  private handle: unknown;
  private readonly recv: Buffer;
  private readonly info = Buffer.alloc(24);
  readonly source: DatagramSource = { address: '', port: 0, ifindex: 0 };
  errors = 0;

  constructor(opts: NativeUdpOptions) {
    if (!addon) throw new Error(`native UDP unavailable: ${status.reason}`);
    const flags = (opts.reuseAddr ? 1 : 0) | (opts.broadcast ? 2 : 0) | (opts.ipv6Only ? 4 : 0) | (opts.pktinfo ? 8 : 0);
    this.handle = addon.open(opts.family === 'udp6' ? 6 : 4, flags, opts.recvBufferSize ?? 0, opts.sendBufferSize ?? 0);
    this.recv = Buffer.allocUnsafe(opts.maxDatagram ?? 65536);
  }

  /** Binds; returns the local port (the kernel's choice when `port` is 0). */
  bind(port: number, host: string): number {
    return (addon as UdpAddon).bind(this.handle, host, port);
  }

  connect(port: number, host: string): void {
    (addon as UdpAddon).connect(this.handle, host, port);
  }

  /**
   * Starts delivering datagrams as (receive buffer, length): no object per datagram.
   * A datagram longer than maxDatagram arrives with length 0 (malformed for every
   * protocol here). With `withSource`, `this.source` holds the sender's address and
   * port during each call (one small string per datagram, unconnected sockets only).
   */
  start(onMessage: (buf: Buffer, length: number) => void, withSource = false): void {
    const recv = this.recv;
    const info = withSource ? this.info : null;
    (addon as UdpAddon).start(this.handle, recv, info, (len: number) => {
      if (len < 0) {
        // ICMP error reported on the socket (port unreachable...): the protocol's
        // timers deal with a vanished peer
        this.errors++;
        return;
      }
      if (info) this.readSource(info);
      onMessage(recv, len > recv.length ? 0 : len);
    });
  }

  private readSource(info: Buffer): void {
    const src = this.source;
    src.port = info.readUInt16BE(2);
    src.ifindex = info[1] === 1 ? info.readUInt32LE(20) : 0;
    if (info[0] === 4) src.address = `${info[4]}.${info[5]}.${info[6]}.${info[7]}`;
    else if (info[0] === 6) {
      // v4-mapped addresses on a dual-stack socket are reported the way dgram does
      if (info.readUInt32BE(4) === 0 && info.readUInt32BE(8) === 0 && info.readUInt32BE(12) === 0xffff) {
        src.address = `::ffff:${info[16]}.${info[17]}.${info[18]}.${info[19]}`;
      } else {
        const parts: string[] = [];
        for (let i = 4; i < 20; i += 2) parts.push(info.readUInt16BE(i).toString(16));
        src.address = compressIpv6(parts);
      }
    }
  }

  /** Sends on a connected socket; returns 0 or -errno. */
  send(buf: Buffer, offset = 0, length = buf.length - offset): number {
    return (addon as UdpAddon).send(this.handle, buf, offset, length);
  }

  /** `ifindex` (IPv4, not 0): out of that interface (IP_PKTINFO), whatever the routes say. */
  sendTo(buf: Buffer, port: number, host: string, offset = 0, length = buf.length - offset, ifindex = 0): number {
    return (addon as UdpAddon).sendTo(this.handle, buf, offset, length, port, host, ifindex);
  }

  /**
   * Builds TFTP DATA packets for blocks firstBlock..firstBlock+count-1 of a file held in
   * `chunks` (chunk firstChunk onwards) into their ring slots and sends them in one
   * sendmmsg (see udp.c): transfer.ts's window loop without a Buffer#copy per block.
   */
  sendFileWindow(
    ring: Buffer,
    stride: number,
    slots: number,
    firstBlock: number,
    count: number,
    blksize: number,
    fileSize: number,
    chunkSize: number,
    firstChunk: number,
    chunks: Buffer[],
  ): number {
    return (addon as UdpAddon).sendFileWindow(
      this.handle,
      firstBlock,
      count,
      ring,
      stride,
      slots,
      blksize,
      fileSize,
      chunkSize,
      firstChunk,
      chunks,
    );
  }

  /**
   * Arms TFTP auto-advance (udp.c auto_advance_t): the in-order ACK of the whole
   * outstanding window is answered natively with the next window, built from `chunks`,
   * as long as it lies inside them (the ACK that ends the transfer is never answered
   * here); the transfer state it reads and
   * advances is `state` (AutoAdvanceSlot indexes). Every other datagram still reaches
   * onMessage. `null` disarms; disarm before releasing any chunk given.
   */
  autoAdvance(
    state: Float64Array | null,
    ring?: Buffer,
    stride?: number,
    slots?: number,
    windowsize?: number,
    blksize?: number,
    fileSize?: number,
    chunkSize?: number,
    firstChunk?: number,
    chunks?: Buffer[],
  ): void {
    (addon as UdpAddon).autoAdvance(this.handle, state, windowsize, ring, stride, slots, blksize, fileSize, chunkSize, firstChunk, chunks);
  }

  /**
   * [datagrams queued on a full buffer, dropped because the queue was full, queued now,
   *  windows sent as one UDP GSO batch, 1 once GSO was refused on this socket]
   */
  stats(): [number, number, number, number, number] {
    return (addon as UdpAddon).stats(this.handle);
  }

  close(): void {
    if (this.handle === undefined) return;
    (addon as UdpAddon).close(this.handle);
    this.handle = undefined;
  }

  get closed(): boolean {
    return this.handle === undefined;
  }
}

/** The slots of an auto-advance state array (udp.c AA_*). */
export const enum AutoAdvanceSlot {
  LastAcked = 0,
  SentUpTo = 1,
  /** nativeNowMs() of the last window auto-advance sent */
  LastSendMs = 2,
  Windows = 3,
  Packets = 4,
  Bytes = 5,
  /** set by the transfer: busy-poll budget after each auto-advanced window (udp.c), 0 = off */
  BusyPollUs = 6,
  /** ACKs that arrived while busy-polling / polls that timed out */
  PollHits = 7,
  PollMisses = 8,
  Length = 9,
}

/** The monotonic clock (ms) auto-advance stamps its sends with. */
export function nativeNowMs(): number {
  if (!addon) throw new Error(`native UDP unavailable: ${status.reason}`);
  return addon.nowMs();
}

/** The index of a network interface by name (if_nametoindex), 0 when unknown or without the addon. */
export function interfaceIndex(name: string): number {
  return addon ? addon.nameToIndex(name) : 0;
}

/** RFC 5952 text form: longest run of zero groups (>= 2) becomes "::". */
function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
