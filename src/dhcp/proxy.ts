/**
 * proxyDHCP server (PXE 2.1 §2.2.5, RFC 4578): listens on UDP 67 next to the site's
 * DHCP server and on the PXE boot-server port 4011, answers only PXE (and
 * optionally UEFI HTTP) clients, never hands out addresses (yiaddr is always 0).
 *
 * Interfaces. We bind 0.0.0.0. With the native socket (src/native/udp.c, the default)
 * every request carries the index of its arrival interface (IP_PKTINFO); our address
 * on that interface is the advertised next-server / option 54 (unless relayed or
 * configured), and a broadcast reply is sent out of that same interface, as dnsmasq
 * does, so multi-homed hosts and hosts without a default route need no settings.
 *
 * On the node:dgram fallback (addon not built, PXE_UDP=dgram) neither is known:
 * - the advertised address is derived from giaddr / ciaddr / the source address when
 *   the client has one, else from the only non-internal IPv4 interface, else the
 *   first one (warned once); on multi-homed hosts set `serverAddress`;
 * - a limited broadcast (255.255.255.255) leaves through the interface the routing
 *   table picks for it (normally the default route), not necessarily the one the
 *   DISCOVER came in on. With no route at all the kernel returns ENETUNREACH: we
 *   then fall back to the directed broadcast address of the interface that owns the
 *   advertised address (or every interface when none does), and log one error line
 *   telling the operator to add a route (`ip route add 255.255.255.255 dev IF` or a
 *   default route). Clients in the DHCP state accept directed-broadcast frames
 *   (Ethernet destination ff:ff:ff:ff:ff:ff) as verified in the namespace tests.
 */
import dgram from 'node:dgram';
import { getSystemErrorName } from 'node:util';
import { interfaceIndex, NativeUdpSocket, nativeUdpStatus, resolveUdpIo, type UdpIo } from '../native/udp.js';
import dns from 'node:dns';
import { isIPv4 } from 'node:net';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { pino, type Logger } from 'pino';
import { logOutputOf, type LogOutput } from '../log.js';
import type { Booter, DhcpBootDecision, DhcpClient } from '../boot/types.js';
import { FLAG_BROADCAST, decode, encode, ipv4ToInt, macString, makeRequest, type DhcpPacket } from './codec.js';
import { messageType } from './options.js';
import { classify, replyDestination, toDhcpClient, type Destination } from './pxe.js';
import { ReplyTemplates } from './template.js';

export interface BootEvent {
  time: string;
  mac: string;
  port: 'dhcp' | 'pxe';
  messageType: number | undefined;
  sourceAddress: string;
  client?: DhcpClient;
  /** what we sent, or why nothing */
  reply: 'offer' | 'ack' | 'none';
  bootFile?: string;
  nextServer?: string;
  destination?: string;
  reason: string;
}

export interface ProxyDhcpStats {
  received: number;
  offers: number;
  acks: number;
  /** well-formed but not for us: non-PXE, BOOTREPLY, INFORM/RELEASE/DECLINE, other server's REQUEST */
  ignored: number;
  /** the booter said "ignore" */
  booterIgnored: number;
  malformed: number;
  denied: number;
  rateLimited: number;
  sendErrors: number;
  /** handler bugs caught before they could escape the socket callback */
  internalErrors: number;
}

export interface ProxyDhcpOptions {
  booter: Pick<Booter, 'dhcpBoot'>;
  logger: Logger;
  /** datagram I/O: native (default when built) or node:dgram */
  io?: UdpIo;
  /** default 67 */
  dhcpPort?: number;
  /** default 4011; null disables the PXE port */
  pxePort?: number | null;
  /** default '0.0.0.0' (needed to receive broadcasts: Linux does not deliver them to unicast-bound sockets) */
  bindAddress?: string;
  /** advertised server address (option 54 and default next-server); derived from interfaces when absent */
  serverAddress?: string;
  /** also answer UEFI HTTP boot clients (option 60 "HTTPClient") */
  allowHttpClient?: boolean;
  /** return false to ignore a client silently (counted as denied) */
  allow?: (address: string, mac: string) => boolean;
  /** answers per MAC per second; excess requests are dropped (boot loops, spoofers). Default unlimited. */
  ratePerMacPerSecond?: number;
  /** boot-event log sink */
  onEvent?: (ev: BootEvent) => void;
  /** injectable for tests: defaults to os.networkInterfaces */
  networkInterfaces?: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  /** SO_RCVBUF for both sockets (default 4 MiB, capped by net.core.rmem_max) */
  recvBufferSize?: number;
  /** port replies to port-67 clients go to (68); only tests change it */
  clientPort?: number;
}

interface V4If {
  name: string;
  address: string;
  netmask: string;
  /** address & netmask and the mask as integers (-1 when unparsable), for the per-packet subnet test */
  net: number;
  mask: number;
  /** if_nametoindex(name), 0 without the native addon: matches IP_PKTINFO's ifindex */
  ifindex: number;
}


/**
 * dgram resolves every destination through dns.lookup, which for an IP literal
 * still defers the send by a process.nextTick (and runs the tick queue after each
 * datagram). The proxy only ever sends to literals, so answer those synchronously.
 */
const literalLookup: NonNullable<dgram.SocketOptions['lookup']> = (host, options, cb) => {
  if (isIPv4(host)) cb(null, host, 4);
  else dns.lookup(host, options, cb);
};

/**
 * Where a datagram came from: dgram's rinfo, or the native socket's source, which also
 * knows the index of the interface it arrived on (IP_PKTINFO).
 */
type Source = { address: string; port: number; ifindex?: number };

/**
 * A bound proxy socket. Native (src/native/udp.ts: no per-datagram allocation, a
 * synchronous sendto) when the addon is built; node:dgram otherwise.
 */
interface ProxySocket {
  readonly port: number;
  /**
   * Errors arrive through onError, possibly after send() returned. `ifindex` (native
   * only, 0 = let the routes decide) sends out of that interface.
   */
  send(data: Buffer, port: number, address: string, ifindex: number, onError: (err: NodeJS.ErrnoException) => void): void;
  close(): Promise<void>;
}

function errnoError(negErrno: number, to: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(negErrno);
  const err: NodeJS.ErrnoException = new Error(`send ${code} ${to}`);
  err.code = code;
  err.errno = negErrno;
  return err;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function inSubnet(ip: string, ifc: V4If): boolean {
  const a = ipv4ToInt(ip);
  return a !== null && ifc.mask !== -1 && ((a & ifc.mask) >>> 0) === ifc.net;
}

/** The interface whose subnet holds `hint` (skipped when 0.0.0.0: the client has no address). */
function subnetMatch(hint: string, ifs: V4If[]): V4If | undefined {
  if (hint === '0.0.0.0') return undefined;
  for (const i of ifs) if (inSubnet(hint, i)) return i;
  return undefined;
}

function directedBroadcast(ifc: V4If): string | null {
  const a = ipv4ToInt(ifc.address);
  const m = ipv4ToInt(ifc.netmask);
  return a === null || m === null ? null : intToIp((a | (~m >>> 0)) >>> 0);
}

/**
 * Give a warm-up request the value ranges real traffic has. Real xids are random
 * 32-bit values: with a small constant xid V8 optimised the packet object for a
 * Smi field, and the first real DISCOVER (xid >= 2^30, a heap number) changed
 * its hidden class and deoptimised decode/classify/toDhcpClient/buildReply/encode
 * all at once ("wrong map" in --trace-deopt), exactly when the storm started.
 * Same for secs and the MAC bytes.
 */
function varyRequest(req: Buffer, i: number): Buffer {
  req.writeUInt32BE((0x9e3779b9 * (i + 1)) >>> 0, 4); // xid: spread over the full 32-bit range
  req.writeUInt16BE(i & 0xffff, 8); // secs
  req.writeUInt16BE(i & 0xffff, 32); // chaddr bytes 4-5
  return req;
}

const DEFAULT_RECV_BUFFER = 4 * 1024 * 1024;

/** One 'proxyDHCP OFFER/ACK' info line (ProxyDhcpServer.flushReplyLogs). */
interface ReplyLogLine {
  mac: string;
  xid: number;
  firmware: string;
  arch: number | undefined;
  ipxe: boolean;
  reply: 'offer' | 'ack';
  file: string;
  nextServer: string;
  to: string;
}

/** Per-reply info log lines per second before the proxy summarises instead (see logBudgetAllows). */
const REPLY_LOG_PER_SECOND = 50;
/** interface list refresh period (ms), and the pause in requests that counts as idle */
const IF_REFRESH_MS = 2_000;
const IF_QUIET_MS = 50;
/** past this age the list is refreshed even in the middle of a flood */
const IF_MAX_AGE_MS = 10_000;
/** young-generation fill above which an idle pause is used for a scavenge */
const IDLE_SCAVENGE_FILL = 0.25;

/**
 * V8's gc(), for the idle-time scavenge, without --expose-gc on the command line: the
 * flag is set at run time and the function taken from a new context, where V8 installs
 * it. Undefined if this V8 refuses (the proxy then simply scavenges when V8 decides).
 */
let minorGcCached: { fn: ((opts: { type: 'minor' }) => void) | undefined } | undefined;
function minorGcFunction(): ((opts: { type: 'minor' }) => void) | undefined {
  // once per process: the flag is process-wide (a `gc` global in every context created
  // after this, worker threads included; nothing here relies on it elsewhere)
  if (minorGcCached) return minorGcCached.fn;
  minorGcCached = { fn: undefined };
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    if (typeof gc === 'function') minorGcCached.fn = gc as (opts: { type: 'minor' }) => void;
  } catch {
    // the proxy then scavenges when V8 decides
  }
  return minorGcCached.fn;
}

/** Token bucket per MAC, bounded in memory. */
class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly rate: number) {}
  allow(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= 50_000) this.buckets.clear(); // a spoofing flood must not grow memory
      b = { tokens: this.rate, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.rate, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

export class ProxyDhcpServer {
  readonly stats: ProxyDhcpStats = {
    received: 0,
    offers: 0,
    acks: 0,
    ignored: 0,
    booterIgnored: 0,
    malformed: 0,
    denied: 0,
    rateLimited: 0,
    sendErrors: 0,
    internalErrors: 0,
  };

  // null, not undefined, before the ports open: V8 gives a field defined as undefined
  // no representation yet, and the first object stored into it (after the warm-up)
  // changes the hidden class of the whole server object, which deoptimised every
  // function the warm-up had optimised on the first request of the first boot storm
  // (--trace-deopt: "wrong map"). The same holds for `housekeeping`.
  private dhcpSocket: ProxySocket | null = null;
  private pxeSocket: ProxySocket | null = null;
  private log: Logger;
  /** the process log output when the logger came from createLogger (the warm-up drops its lines there) */
  private readonly logOutput: LogOutput | undefined;
  private warming = false;
  /** where replies go during the loopback warm-up (never a real destination) */
  private warmSink: { address: string; port: number } | undefined;
  private readonly limiter: RateLimiter | undefined;
  private readonly warmLimiter: RateLimiter | undefined;
  /**
   * The limiter handle() uses: warmLimiter while warming, limiter after. One field
   * read at one site, so the warm-up leaves type feedback for the read real traffic
   * makes (a `warming ? warmLimiter : limiter` branch left the second arm without
   * any, and it deoptimised handle() at the first real request: --trace-deopt).
   */
  private activeLimiter: RateLimiter | undefined;
  private readonly templates = new ReplyTemplates();
  private warnedAmbiguous = false;
  private warnedNoRoute = false;
  private readonly logWindow = { sec: 0, lines: 0, suppressed: 0 };

  /** datagram I/O in use */
  readonly io: UdpIo;

  constructor(private readonly opts: ProxyDhcpOptions) {
    this.log = opts.logger.child({ component: 'dhcp' });
    this.logOutput = logOutputOf(opts.logger);
    this.io = resolveUdpIo(opts.io);
    this.limiter =
      opts.ratePerMacPerSecond && opts.ratePerMacPerSecond > 0 ? new RateLimiter(opts.ratePerMacPerSecond) : undefined;
    // same class, never limiting: the warm-up exercises the limiter's code, not its state
    this.warmLimiter = this.limiter ? new RateLimiter(1e9) : undefined;
    this.activeLimiter = this.limiter;
  }

  /** Bound ports (useful when 0 was requested). */
  get ports(): { dhcp: number | undefined; pxe: number | undefined } {
    return { dhcp: this.dhcpSocket?.port, pxe: this.pxeSocket?.port };
  }

  async start(): Promise<void> {
    const bind = this.opts.bindAddress ?? '0.0.0.0';
    // Before binding: once the port is open the hot path is already optimised.
    await this.warmUp();
    this.dhcpSocket = await this.open(this.opts.dhcpPort ?? 67, bind, 'dhcp');
    const pxePort = this.opts.pxePort === undefined ? 4011 : this.opts.pxePort;
    if (pxePort !== null) {
      try {
        this.pxeSocket = await this.open(pxePort, bind, 'pxe');
      } catch (e) {
        this.dhcpSocket.close();
        this.dhcpSocket = null;
        throw e;
      }
    }
    this.startHousekeeping();
    this.log.info(
      {
        bind,
        ports: this.ports,
        recvBuffer: this.opts.recvBufferSize ?? DEFAULT_RECV_BUFFER,
        io: this.io === 'native' ? 'native' : `node:dgram (${this.opts.io === 'dgram' ? 'configured' : nativeUdpStatus().reason})`,
        serverAddress: this.opts.serverAddress ?? '(derived per request)',
      },
      'proxyDHCP listening',
    );
  }

  /**
   * Run the whole request path on synthetic BIOS/UEFI DISCOVERs and REQUESTs before
   * the ports open, so V8 has optimised it before the first real boot storm. The
   * allow list, a never-limiting rate limiter and the booter (side-effect free by
   * contract) are called like for real traffic; nothing reaches onEvent, stats are
   * restored afterwards, and log lines go to a throw-away logger.
   *
   * Two stages. (1) handle() called directly: cheap, optimises our own code.
   * (2) The same requests through real sockets on 127.0.0.1 (ephemeral ports, a
   * loopback sink as the only destination, so nothing is ever broadcast): this is
   * what makes the first storm fast, because most of the per-datagram cost of a
   * cold process is Node's own dgram code (the 'message' emit, rinfo objects,
   * send/lookup/SendWrap, nextTick) and inline caches seeing the real rinfo
   * shapes. Measured on the storm bench: the first storm cost ~140 ms CPU per 1000
   * requests with stage 1 only, the same as storms 3-5 (~30-50 ms) with both.
   * Bounded: 5000 rounds / 400 ms for stage 1, 4000 datagrams / 600 ms for stage 2.
   */
  private async warmUp(): Promise<void> {
    // Sources both without an address and inside one of our subnets (a client that
    // already has an address, as in the lab and the bench): a branch first taken
    // by real traffic deoptimises the code around it ("insufficient type feedback").
    const near = this.v4Interfaces()[0]?.address ?? '0.0.0.0';
    const clientAddress = near !== '0.0.0.0' ? near : '10.0.0.1';
    const reqs: Array<[Buffer, 'dhcp' | 'pxe']> = [];
    // Requests with and without ciaddr: a client that has its address (every 4011
    // REQUEST, and iPXE's DISCOVERs after its own DHCP) takes the ciaddr branches of
    // decode and replyDestination (test/integration/log-output.test.ts).
    // iPXE (option 77) too: its BIOS clients take the policy's HTTP boot-file branch.
    for (const [arch, mt, kind, ciaddr, ipxe] of [
      [0, 1, 'dhcp', false, false],
      [7, 1, 'dhcp', false, false],
      [7, 3, 'pxe', true, false],
      [0, 3, 'dhcp', false, false],
      [0, 1, 'dhcp', true, false],
      [0, 3, 'pxe', true, false],
      [0, 1, 'dhcp', false, true],
      [7, 1, 'dhcp', false, true],
      [0, 3, 'pxe', true, true],
    ] as const) {
      const req = makeRequest({
        xid: 1,
        chaddr: Buffer.from([2, 0, 0, 0, 0, arch]),
        flags: ciaddr ? 0 : FLAG_BROADCAST,
        ciaddr: ciaddr ? clientAddress : '0.0.0.0',
      });
      req.options.set(53, Buffer.from([mt]));
      req.options.set(93, Buffer.from([0, arch]));
      req.options.set(94, Buffer.from([1, 3, 0]));
      req.options.set(60, Buffer.from(`PXEClient:Arch:0000${arch}:UNDI:003000`));
      req.options.set(97, Buffer.alloc(17));
      if (ipxe) req.options.set(77, Buffer.from('iPXE'));
      const enc = encode(req);
      if (enc.ok) reqs.push([enc.data, kind]);
    }
    // the native socket's source shape ({address, port, ifindex}): one hidden class;
    // sources arrive on a known interface (the per-interface branch is warmed), one of
    // them from an address inside that interface's subnet (a client that already has
    // an address, as iPXE after its own DHCP: arrivalAddress's subnet match, whose
    // first real use deoptimised it in the first storm: --trace-deopt)
    const nearIf = this.v4Interfaces()[0]?.ifindex ?? 0;
    const sources: Source[] = [
      { address: '0.0.0.0', port: 68, ifindex: nearIf },
      { address: near, port: 68, ifindex: 0 },
      { address: near, port: 68, ifindex: nearIf },
    ];
    const saved = { stats: { ...this.stats }, log: this.log };
    this.warming = true;
    this.activeLimiter = this.warmLimiter;
    // Log lines: with the process logger (createLogger), the warm-up logs through the
    // very logger objects real traffic uses, and the output drops what is logged while
    // a warm-up request is handled (onMessage, flushReplyLogs; see LogOutput: a
    // stand-in logger has another hidden class, and the first real reply deoptimised
    // handle() at its log call). Any other logger (tests, pretty output) is replaced
    // by a throw-away info-level one writing nowhere, which still warms pino's JSON paths.
    if (!this.logOutput) this.log = pino({ level: 'info', base: undefined }, { write: () => {} }).child({ component: 'dhcp' });
    const deadline = Date.now() + 400;
    try {
      for (let i = 0; i < 5000 && Date.now() < deadline; i++) {
        // Also take the rarely-taken branches real traffic will take (each one first
        // taken in a storm deoptimised handle(), into which they are inlined): the
        // interface-cache refresh, the log-budget summary at a new second, and a reply
        // template built from scratch (the first ones are built before V8 collects
        // type feedback, so a template miss in a storm deoptimised encodeReply).
        if (i % 500 === 499) {
          this.ifCache = undefined;
          this.logWindow.sec = 0;
          this.templates.clear();
        }
        const r = reqs[i % reqs.length];
        const rinfo = sources[(i >> 2) % sources.length];
        if (r && rinfo) this.onMessage(varyRequest(r[0], i), rinfo, r[1], undefined);
      }
      await this.warmUpSockets(reqs);
    } catch (err) {
      // Warm-up is an optimisation: a host without a usable loopback still serves.
      saved.log.warn({ err }, 'proxyDHCP warm-up over loopback failed (first boot storm will be slower)');
    } finally {
      this.warming = false;
      this.activeLimiter = this.limiter;
      this.warmSink = undefined;
      // The warm-up's shapes (fake boot file and next-server) never match real traffic.
      this.templates.clear();
      // its reply lines not flushed yet (the flush would write them with the real logger)
      this.pendingReplyLogs.length = 0;
      this.log = saved.log;
      this.logWindow.sec = 0;
      this.logWindow.lines = 0;
      this.logWindow.suppressed = 0;
      Object.assign(this.stats, saved.stats);
    }
  }

  private warmCount = 0;

  /**
   * The fake boot decision used while warming when the booter ignores the synthetic
   * client (unknown hosts ignored, no boot file for that firmware). Its strings
   * alternate between literals and strings built at run time: real decisions carry
   * config and interface strings that V8 did not internalise, and comparing those
   * where only literals were seen deoptimised the template lookup.
   */
  private warmDecision(): Extract<DhcpBootDecision, { action: 'boot' }> {
    const fresh = (this.warmCount++ & 1) === 1;
    return {
      action: 'boot',
      bootFile: fresh ? Buffer.from('warm-up', 'latin1').toString('latin1') : 'warm-up',
      nextServer: fresh ? Buffer.from('192.0.2.1', 'latin1').toString('latin1') : '192.0.2.1',
      reason: 'warm-up',
    };
  }

  /** Stage 2 of warmUp(): bursts of requests through real loopback sockets (see there). */
  private async warmUpSockets(reqs: Array<[Buffer, 'dhcp' | 'pxe']>): Promise<void> {
    const sink = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    const socks: ProxySocket[] = [];
    let replies = 0;
    sink.on('message', () => {
      replies++;
    });
    try {
      await new Promise<void>((res, rej) => {
        sink.once('error', rej);
        sink.bind(0, '127.0.0.1', () => res());
      });
      this.warmSink = { address: '127.0.0.1', port: sink.address().port };
      const byKind = {
        dhcp: await this.open(0, '127.0.0.1', 'dhcp'),
        pxe: await this.open(0, '127.0.0.1', 'pxe'),
      };
      socks.push(byKind.dhcp, byKind.pxe);
      const ports = { dhcp: byKind.dhcp.port, pxe: byKind.pxe.port };
      const deadline = Date.now() + 600;
      const BURST = 200;
      let sent = 0;
      while (sent < 4000 && Date.now() < deadline) {
        for (let i = 0; i < BURST; i++, sent++) {
          const r = reqs[sent % reqs.length];
          // A copy: send() resolves the address on the next tick and reads the buffer then.
          if (r) sink.send(Buffer.from(varyRequest(r[0], sent)), ports[r[1]], '127.0.0.1');
        }
        // Wait for this burst's replies (loopback can drop under load: bounded wait).
        const burstEnd = Date.now() + 100;
        while (replies < sent && Date.now() < burstEnd) await new Promise((res) => setTimeout(res, 1));
      }
    } finally {
      await new Promise<void>((res) => sink.close(() => res()));
      await Promise.all(socks.map((s) => s.close()));
    }
  }

  async close(): Promise<void> {
    if (this.housekeeping) clearInterval(this.housekeeping);
    this.housekeeping = null;
    const socks = [this.dhcpSocket, this.pxeSocket].filter((s): s is ProxySocket => s !== null);
    this.dhcpSocket = null;
    this.pxeSocket = null;
    await Promise.all(socks.map((s) => s.close()));
  }

  private open(port: number, address: string, kind: 'dhcp' | 'pxe'): Promise<ProxySocket> {
    // A boot storm (a rack powering on) delivers hundreds of DISCOVERs within
    // milliseconds; the default 208 KiB receive buffer holds only ~150-300 small
    // datagrams (skb truesize), and a cold JIT needs >100 µs per packet, so the
    // kernel drops most of a storm (measured: 75 % lost). Ask for 4 MiB; the kernel
    // caps it at net.core.rmem_max without error.
    const recvBufferSize = this.opts.recvBufferSize ?? DEFAULT_RECV_BUFFER;
    if (this.io === 'native') return Promise.resolve(this.openNative(port, address, kind, recvBufferSize));
    return this.openDgram(port, address, kind, recvBufferSize);
  }

  private openNative(port: number, address: string, kind: 'dhcp' | 'pxe', recvBufferSize: number): ProxySocket {
    const s = new NativeUdpSocket({ family: 'udp4', broadcast: true, pktinfo: true, recvBufferSize, maxDatagram: 65536 });
    let bound: number;
    try {
      bound = s.bind(port, address);
    } catch (err) {
      s.close();
      throw new Error(`proxyDHCP cannot bind ${address}:${port} (${kind}): ${(err as Error).message}`);
    }
    const ps: ProxySocket = {
      port: bound,
      send: (data, toPort, toAddress, ifindex, onError) => {
        const r = s.sendTo(data, toPort, toAddress, 0, data.length, ifindex);
        if (r < 0) onError(errnoError(r, `${toAddress}:${toPort}`));
      },
      close: async () => s.close(),
    };
    // The receive buffer is reused for the next datagram and decode() keeps views
    // into it (the boot-event sink may hold them), so each request gets its own copy
    // (a pooled small allocation, not dgram's 64 KiB one).
    s.start((buf, len) => {
      const msg = Buffer.allocUnsafe(len);
      buf.copy(msg, 0, 0, len);
      this.onMessage(msg, s.source, kind, ps);
    }, true);
    return ps;
  }

  private openDgram(port: number, address: string, kind: 'dhcp' | 'pxe', recvBufferSize: number): Promise<ProxySocket> {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket({ type: 'udp4', recvBufferSize, lookup: literalLookup });
      const onError = (err: Error): void => {
        s.close();
        reject(new Error(`proxyDHCP cannot bind ${address}:${port} (${kind}): ${err.message}`));
      };
      s.once('error', onError);
      s.bind(port, address, () => {
        s.off('error', onError);
        // Runtime socket errors must never crash the process: log and carry on.
        s.on('error', (err) => this.log.error({ err, kind }, 'socket error'));
        try {
          s.setBroadcast(true);
        } catch (err) {
          this.log.error({ err }, 'cannot enable SO_BROADCAST');
        }
        const ps: ProxySocket = {
          port: s.address().port,
          send: (data, toPort, toAddress, _ifindex, onError) =>
            s.send(data, toPort, toAddress, (err) => {
              if (err) onError(err as NodeJS.ErrnoException);
            }),
          close: () => new Promise<void>((res) => s.close(() => res())),
        };
        s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo, kind, ps));
        resolve(ps);
      });
    });
  }

  /**
   * Never throws: everything is counted. While warming, what the request logs is
   * dropped at the process log output (the same calls either way, no branch: code only
   * real traffic reached would deoptimise at its first datagram).
   */
  private onMessage(msg: Buffer, rinfo: Source, kind: 'dhcp' | 'pxe', sock: ProxySocket | undefined): void {
    this.stats.received++;
    this.lastRequestAt = performance.now();
    this.logOutput?.setDiscarding(this.warming);
    try {
      this.handle(msg, rinfo, kind, sock);
    } catch (err) {
      this.stats.internalErrors++;
      this.log.error({ err, from: `${rinfo.address}:${rinfo.port}` }, 'internal error handling DHCP packet');
    }
    this.logOutput?.setDiscarding(false);
  }

  private handle(msg: Buffer, rinfo: Source, kind: 'dhcp' | 'pxe', sock: ProxySocket | undefined): void {
    const r = decode(msg);
    if (!r.ok) {
      this.stats.malformed++;
      this.log.debug({ from: rinfo.address, error: r.error, detail: r.detail }, 'malformed DHCP packet dropped');
      return;
    }
    const req = r.packet;
    const mac = macString(req);
    const cls = classify(req, {
      port: kind,
      allowHttpClient: this.opts.allowHttpClient ?? false,
      isOwnAddress: (ip) => this.isOwnAddress(ip),
    });
    // Events are built only when there is a sink (Date formatting and the object per
    // packet add up in a storm), and without a closure per packet. While warming they
    // are built (so that code is optimised too) and dropped by emit().
    const wantEvents = this.opts.onEvent !== undefined;
    if (!cls.answer) {
      this.stats.ignored++;
      this.log.trace({ mac, reason: cls.reason }, 'not for the proxy');
      return;
    }
    // The allow list, the rate limiter and the booter are called while warming too, at
    // the same call sites: a call site first reached by the first real request had no
    // type feedback and deoptimised handle() in the middle of the first boot storm
    // (--trace-deopt, and TurboFan recompiling on the storm's CPU in a perf profile).
    if (this.opts.allow && !this.opts.allow(rinfo.address, mac) && !this.warming) {
      this.stats.denied++;
      if (wantEvents) this.emit({ ...this.eventBase(mac, kind, req, rinfo), reply: 'none', reason: 'denied by allow list' });
      return;
    }
    const limiter = this.activeLimiter;
    if (limiter && !limiter.allow(mac, Date.now())) {
      this.stats.rateLimited++;
      this.log.debug({ mac }, 'rate limited');
      return;
    }

    const serverAddress = this.serverAddressFor(req, rinfo.address, false, rinfo.ifindex ?? 0);
    const client = toDhcpClient(req, rinfo.address, serverAddress);
    let decision = this.opts.booter.dhcpBoot(client);
    // (Booter.dhcpBoot is side-effect free by contract.) A booter that ignores the
    // synthetic clients still leaves the reply path to warm.
    if (this.warming && decision.action !== 'boot') decision = this.warmDecision();
    if (decision.action !== 'boot') {
      this.stats.booterIgnored++;
      if (wantEvents) this.emit({ ...this.eventBase(mac, kind, req, rinfo), client, reply: 'none', reason: decision.reason });
      this.log.info({ mac, firmware: client.firmware, reason: decision.reason }, 'booter ignored client');
      return;
    }
    // Option 54 must be an address the client can reach us on: the one the 4011
    // REQUEST will be sent to. When the booter points next-server elsewhere, 54 still names us.
    // Byte-identical to encode(buildReply(...)) (test/unit/dhcp-template.test.ts), from a per-shape template.
    const enc = this.templates.encodeReply(msg, req, decision, { reply: cls.reply, vendor: cls.vendor, client, serverId: serverAddress }, 1472);
    if (!enc.ok) {
      this.stats.internalErrors++;
      this.log.error({ mac, error: enc.error, detail: enc.detail }, 'cannot encode reply');
      return;
    }
    let dest = replyDestination(req, kind, rinfo);
    if (dest.port === 68 && this.opts.clientPort !== undefined) dest.port = this.opts.clientPort;
    // Loopback warm-up (warmUpSockets): replies only ever go to the loopback sink.
    if (this.warming) dest = { address: this.warmSink?.address ?? '127.0.0.1', port: this.warmSink?.port ?? 9, broadcast: false };
    if (cls.reply === 'offer') this.stats.offers++;
    else this.stats.acks++;
    // A broadcast reply leaves by the interface the request came in on (when the
    // socket knows it), not by whatever interface the default route names.
    if (sock) this.send(sock, enc.data, dest, serverAddress, dest.broadcast ? (rinfo.ifindex ?? 0) : 0);
    if (wantEvents) {
      this.emit({
        ...this.eventBase(mac, kind, req, rinfo),
        client,
        reply: cls.reply,
        bootFile: decision.bootFile,
        nextServer: decision.nextServer,
        destination: `${dest.address}:${dest.port}`,
        reason: decision.reason,
      });
    }
    if (!this.logBudgetAllows()) return;
    // Written after the batch of datagrams this one came in with (flushReplyLogs), not
    // here: the first replies of every second are the logged ones, so in a boot storm
    // the JSON lines were written exactly while its first burst queued behind them
    // (the storm bench's slowest replies were the first 10, 0.5-0.9 ms; 0.4 without
    // logging). The reply is already on the wire; the line follows within the same
    // turn of the event loop.
    this.pendingReplyLogs.push({
      mac,
      xid: req.xid,
      firmware: client.firmware,
      arch: client.arch,
      ipxe: client.isIpxe,
      reply: cls.reply,
      file: decision.bootFile,
      nextServer: decision.nextServer,
      to: `${dest.address}:${dest.port}`,
    });
    if (!this.replyLogFlushScheduled) {
      this.replyLogFlushScheduled = true;
      setImmediate(this.flushReplyLogs);
    }
  }

  /** Reply log lines waiting for the end of the current batch (at most REPLY_LOG_PER_SECOND). */
  private readonly pendingReplyLogs: ReplyLogLine[] = [];
  private replyLogFlushScheduled = false;

  /**
   * Writes the queued reply lines. The warm-up's go through the same code and are
   * dropped at the log output (LogOutput), so real traffic meets this warm too.
   */
  private readonly flushReplyLogs = (): void => {
    this.replyLogFlushScheduled = false;
    this.logOutput?.setDiscarding(this.warming);
    for (const line of this.pendingReplyLogs) this.log.info(line, line.reply === 'offer' ? 'proxyDHCP OFFER' : 'proxyDHCP ACK');
    this.logOutput?.setDiscarding(false);
    this.pendingReplyLogs.length = 0;
  };

  /**
   * One info line per reply is what an operator wants for a single machine, but in
   * a boot storm it costs about a third of the per-packet CPU and floods the
   * journal. Up to REPLY_LOG_PER_SECOND lines per second are written; beyond that
   * replies are counted and summarised in one line when the next second starts.
   * (Every reply still reaches onEvent, the boot-event log.)
   */
  private logBudgetAllows(): boolean {
    const sec = Math.floor(Date.now() / 1000);
    if (sec !== this.logWindow.sec) {
      if (this.logWindow.suppressed > 0) {
        this.log.info({ suppressed: this.logWindow.suppressed }, `proxyDHCP: ${this.logWindow.suppressed} more replies in the last busy second were not logged (see stats/boot events)`);
      }
      // Fields updated in place: a new object literal here had another hidden class
      // than the field initializer's and deoptimised this (inlined) function.
      this.logWindow.sec = sec;
      this.logWindow.lines = 0;
      this.logWindow.suppressed = 0;
    }
    if (this.logWindow.lines < REPLY_LOG_PER_SECOND) {
      this.logWindow.lines++;
      return true;
    }
    this.logWindow.suppressed++;
    return false;
  }

  private eventBase(mac: string, kind: 'dhcp' | 'pxe', req: DhcpPacket, rinfo: Source): Omit<BootEvent, 'reply' | 'reason'> {
    return { time: new Date().toISOString(), mac, port: kind, messageType: messageType(req), sourceAddress: rinfo.address };
  }

  private emit(ev: BootEvent): void {
    if (!this.opts.onEvent || this.warming) return;
    try {
      this.opts.onEvent(ev);
    } catch (err) {
      this.log.error({ err }, 'boot-event sink threw');
    }
  }

  private send(sock: ProxySocket, data: Buffer, dest: Destination, serverAddress: string, ifindex: number): void {
    sock.send(data, dest.port, dest.address, ifindex, (err) => {
      const code = err.code;
      if (dest.broadcast && (code === 'ENETUNREACH' || code === 'EHOSTUNREACH')) {
        this.broadcastFallback(sock, data, dest.port, serverAddress);
        return;
      }
      this.stats.sendErrors++;
      this.log.warn({ err, to: `${dest.address}:${dest.port}` }, 'send failed');
    });
  }

  /** ENETUNREACH for 255.255.255.255: no route. Send to the subnet's directed broadcast instead. */
  private broadcastFallback(sock: ProxySocket, data: Buffer, port: number, serverAddress: string): void {
    const ifs = this.v4Interfaces();
    const own = ifs.filter((i) => i.address === serverAddress);
    const targets = [...new Set((own.length ? own : ifs).map(directedBroadcast).filter((x): x is string => !!x))];
    if (!this.warnedNoRoute) {
      this.warnedNoRoute = true;
      this.log.error(
        { fallback: targets },
        'no route for 255.255.255.255 (ENETUNREACH): sending proxy replies to the directed broadcast address instead; ' +
          'add a default route or `ip route add 255.255.255.255 dev <iface>` on the PXE interface',
      );
    }
    if (targets.length === 0) {
      this.stats.sendErrors++;
      return;
    }
    for (const t of targets) {
      sock.send(data, port, t, 0, (err) => {
        this.stats.sendErrors++;
        this.log.warn({ err, to: `${t}:${port}` }, 'directed broadcast send failed');
      });
    }
  }

  private ifCache: { at: number; list: V4If[] } | undefined;
  private housekeeping: NodeJS.Timeout | null = null;
  // Both hold performance.now() values (doubles). They start as a double too (-Infinity,
  // not 0): V8 stores a field that only ever held small integers as a Smi, and the
  // first double written into it changes the representation and with it the hidden
  // class of the whole server object. When that happened after the warm-up (the first
  // idle scavenge sets scavengedAfter), every function optimised during the warm-up
  // deoptimised ("wrong map") on the first request of the first boot storm, and
  // TurboFan recompiled them during it.
  private lastRequestAt = Number.NEGATIVE_INFINITY;
  /** lastRequestAt of the burst the idle-time scavenge last ran after */
  private scavengedAfter = Number.NEGATIVE_INFINITY;
  private readonly minorGc = minorGcFunction();

  /**
   * Work kept out of the request path, done from a timer once requests pause for
   * IF_QUIET_MS (a boot storm is bursty: a rack powers on, then quiet):
   *   - the interface list is re-read (os.networkInterfaces(), i.e. getifaddrs, plus
   *     if_nametoindex per interface: 0.1-0.6 ms); taken in the request path at a cache
   *     expiry it stalled every request queued behind it (in every other storm of the
   *     storm bench). In a flood that never pauses it is re-read after IF_MAX_AGE_MS.
   *   - a V8 young-generation collection (scavenge) when the burst left it more than
   *     IDLE_SCAVENGE_FILL full: otherwise the next burst fills the young
   *     generation and pays a 1-4 ms scavenge in the middle of its replies (--trace-gc
   *     on the storm bench: one inside nearly every second storm).
   */
  private startHousekeeping(): void {
    this.housekeeping = setInterval(() => {
      const now = performance.now();
      const quiet = now - this.lastRequestAt >= IF_QUIET_MS;
      const age = this.ifCache ? now - this.ifCache.at : Infinity;
      if (age >= IF_MAX_AGE_MS || (quiet && age >= IF_REFRESH_MS)) {
        try {
          this.v4Interfaces(0);
        } catch (err) {
          this.log.warn({ err }, 'cannot list network interfaces');
        }
      }
      if (quiet && this.lastRequestAt > this.scavengedAfter && this.minorGc) {
        this.scavengedAfter = this.lastRequestAt;
        const young = v8.getHeapSpaceStatistics().find((sp) => sp.space_name === 'new_space');
        if (young && young.space_used_size > young.space_size * IDLE_SCAVENGE_FILL) this.minorGc({ type: 'minor' });
      }
    }, IF_QUIET_MS);
    this.housekeeping.unref();
  }

  /** Our address on interface `ifindex`: with several, the one whose subnet holds ciaddr or the source. */
  private arrivalAddress(ifs: V4If[], ifindex: number, ciaddr: string, source: string): string | undefined {
    let first: V4If | undefined;
    for (const i of ifs) {
      if (i.ifindex !== ifindex) continue;
      if (inSubnet(ciaddr, i) || inSubnet(source, i)) return i.address;
      first ??= i;
    }
    return first?.address;
  }

  /**
   * Our IPv4 interfaces, from the cache the refresh timer keeps (a new address is
   * picked up within IF_REFRESH_MS, or at once through the `maxAgeMs` of a lookup that
   * missed). Read here only when there is no cache yet, or it is older than `maxAgeMs`.
   */
  private v4Interfaces(maxAgeMs = Infinity): V4If[] {
    const now = performance.now();
    if (this.ifCache && now - this.ifCache.at < maxAgeMs) return this.ifCache.list;
    const list = this.readInterfaces();
    this.ifCache = { at: now, list };
    return list;
  }

  private readInterfaces(): V4If[] {
    const all = (this.opts.networkInterfaces ?? os.networkInterfaces)();
    const out: V4If[] = [];
    for (const [name, list] of Object.entries(all)) {
      for (const a of list ?? []) {
        if (a.family === 'IPv4' && !a.internal) {
          const b = ipv4ToInt(a.address);
          const m = ipv4ToInt(a.netmask);
          const ok = b !== null && m !== null;
          out.push({ name, address: a.address, netmask: a.netmask, net: ok ? (b & m) >>> 0 : -1, mask: ok ? m : -1, // an IPv4 alias label (eth0:1) is not a device name
            ifindex: interfaceIndex(name.split(':')[0] ?? name) });
        }
      }
    }
    return out;
  }

  private isOwnAddress(ip: string): boolean {
    if (this.opts.serverAddress === ip) return true;
    return this.v4Interfaces().some((i) => i.address === ip);
  }

  /**
   * The address clients should use to reach us: the configured one, else the
   * interface whose subnet holds giaddr (relayed), else our address on the interface
   * the request arrived on (IP_PKTINFO ifindex, native socket; with several addresses
   * there, the one whose subnet holds ciaddr or the source), else the interface whose
   * subnet holds ciaddr or the source address; else the only non-internal interface;
   * else the first (warned once).
   */
  serverAddressFor(req: Pick<DhcpPacket, 'giaddr' | 'ciaddr'>, source: string, quiet = false, arrivalIfindex = 0): string {
    if (this.opts.serverAddress) return this.opts.serverAddress;
    const ifs = this.v4Interfaces();
    const relay = subnetMatch(req.giaddr, ifs);
    if (relay) return relay.address;
    if (arrivalIfindex !== 0) {
      const a = this.arrivalAddress(ifs, arrivalIfindex, req.ciaddr, source);
      if (a) return a;
      // an interface newer than the cache (hot-plugged, just configured): look again,
      // at most every 250 ms
      const fresh = this.v4Interfaces(250);
      const b = fresh === ifs ? undefined : this.arrivalAddress(fresh, arrivalIfindex, req.ciaddr, source);
      if (b) return b;
    }
    const m = subnetMatch(req.ciaddr, ifs) ?? subnetMatch(source, ifs);
    if (m) return m.address;
    const first = ifs[0];
    if (ifs.length === 1 && first) return first.address;
    if (!first) {
      if (!this.warnedAmbiguous && !quiet) {
        this.warnedAmbiguous = true;
        this.log.warn('no non-internal IPv4 interface: advertising 127.0.0.1; set serverAddress');
      }
      return '127.0.0.1';
    }
    if (!this.warnedAmbiguous && !quiet) {
      this.warnedAmbiguous = true;
      this.log.warn(
        { chosen: first.address, interfaces: ifs.map((i) => `${i.name}=${i.address}`) },
        'several IPv4 interfaces and the client has no address: advertising the first one; set serverAddress on multi-homed hosts',
      );
    }
    return first.address;
  }
}
