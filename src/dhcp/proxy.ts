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
 *
 * The request path (handle) reads as: decode -> classify -> access (allow list, rate
 * limit) -> ask the booter -> encode -> send. Around it, by job: sockets.ts (the two
 * socket adapters), interfaces.ts (which of our addresses to advertise), limits.ts
 * (rate limiter, reply-log budget), idle.ts (work done between storms), warmup.ts
 * (the start-up warm-up).
 */
import { performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { nativeUdpStatus, resolveUdpIo, type UdpIo } from '../native/udp.js';
import { logOutputOf, type LogOutput } from '../log.js';
import { decode, macString, type DhcpPacket } from './codec.js';
import { IdleWork } from './idle.js';
import { ServerAddresses } from './interfaces.js';
import { RateLimiter, ReplyLog } from './limits.js';
import { messageType } from './options.js';
import type { BootEvent, ProxyDhcpOptions, ProxyDhcpStats } from './proxy-types.js';
import { classify, replyDestination, toDhcpClient, type Destination } from './pxe.js';
import { DEFAULT_RECV_BUFFER, openProxySocket, type ProxyPort, type ProxySocket, type Source } from './sockets.js';
import { ReplyTemplates } from './template.js';
import { WarmDecisions, warmUp } from './warmup.js';

export type { BootEvent, ProxyDhcpOptions, ProxyDhcpStats };

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
  // (--trace-deopt: "wrong map").
  private dhcpSocket: ProxySocket | null = null;
  private pxeSocket: ProxySocket | null = null;
  private log: Logger;
  /** the process log output when the logger came from createLogger (the warm-up drops its lines there) */
  private readonly logOutput: LogOutput | undefined;
  private readonly addresses: ServerAddresses;
  private readonly idle: IdleWork;
  private readonly replyLog: ReplyLog;
  private readonly templates = new ReplyTemplates();
  private warnedNoRoute = false;

  // The warm-up's state (warmUp()).
  private warming = false;
  /** where replies go during the loopback warm-up (never a real destination) */
  private warmSink: { address: string; port: number } | undefined;
  private readonly warmDecisions = new WarmDecisions();
  private readonly limiter: RateLimiter | undefined;
  /** same class as `limiter`, never limiting: the warm-up exercises the limiter's code, not its state */
  private readonly warmLimiter: RateLimiter | undefined;
  /**
   * The limiter handle() uses: warmLimiter while warming, limiter after. One field
   * read at one site, so the warm-up leaves type feedback for the read real traffic
   * makes (a `warming ? warmLimiter : limiter` branch left the second arm without
   * any, and it deoptimised handle() at the first real request: --trace-deopt).
   */
  private activeLimiter: RateLimiter | undefined;

  /** datagram I/O in use */
  readonly io: UdpIo;

  constructor(private readonly opts: ProxyDhcpOptions) {
    this.log = opts.logger.child({ component: 'dhcp' });
    this.logOutput = logOutputOf(opts.logger);
    this.io = resolveUdpIo(opts.io);
    this.addresses = new ServerAddresses({ serverAddress: opts.serverAddress, networkInterfaces: opts.networkInterfaces });
    this.idle = new IdleWork(this.addresses, this.log);
    this.replyLog = new ReplyLog(() => this.log, this.logOutput);
    this.limiter = opts.ratePerMacPerSecond && opts.ratePerMacPerSecond > 0 ? new RateLimiter(opts.ratePerMacPerSecond) : undefined;
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
        await this.dhcpSocket.close();
        this.dhcpSocket = null;
        throw e;
      }
    }
    this.idle.start();
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

  async close(): Promise<void> {
    this.idle.stop();
    const socks = [this.dhcpSocket, this.pxeSocket].filter((s): s is ProxySocket => s !== null);
    this.dhcpSocket = null;
    this.pxeSocket = null;
    await Promise.all(socks.map((s) => s.close()));
  }

  /** The address a client is told to reach us on (see ServerAddresses.forRequest). */
  serverAddressFor(req: Pick<DhcpPacket, 'giaddr' | 'ciaddr'>, source: string, arrivalIfindex = 0): string {
    return this.addresses.forRequest(req, source, arrivalIfindex, this.log);
  }

  private open(port: number, address: string, kind: ProxyPort): Promise<ProxySocket> {
    return openProxySocket({
      io: this.io,
      port,
      address,
      kind,
      recvBufferSize: this.opts.recvBufferSize ?? DEFAULT_RECV_BUFFER,
      onDatagram: this.onDatagram,
      log: this.log,
    });
  }

  /**
   * The warm-up (warmup.ts) calls the allow list, a never-limiting rate limiter and
   * the booter (side-effect free by contract) like real traffic does; nothing reaches
   * onEvent, stats are restored afterwards, and log lines are dropped.
   */
  private async warmUp(): Promise<void> {
    const saved = { stats: { ...this.stats }, log: this.log };
    this.warming = true;
    this.activeLimiter = this.warmLimiter;
    this.replyLog.discarding = true;
    // Log lines: with the process logger (createLogger), the warm-up logs through the
    // very logger objects real traffic uses, and the output drops what is logged while
    // a warm-up request is handled (onDatagram, ReplyLog; see LogOutput: a stand-in
    // logger has another hidden class, and the first real reply deoptimised handle()
    // at its log call). Any other logger (tests, pretty output) is replaced by a
    // throw-away info-level one writing nowhere, which still warms pino's JSON paths.
    if (!this.logOutput) this.log = pino({ level: 'info', base: undefined }, { write: () => {} }).child({ component: 'dhcp' });
    try {
      await warmUp({
        onDatagram: this.onDatagram,
        open: (port, address, kind) => this.open(port, address, kind),
        interfaces: () => this.addresses.interfaces(),
        resetRareBranches: () => {
          this.addresses.forget();
          this.replyLog.newSecond();
          this.templates.clear();
        },
        setSink: (sink) => {
          this.warmSink = sink;
        },
      });
    } catch (err) {
      // Warm-up is an optimisation: a host without a usable loopback still serves.
      saved.log.warn({ err }, 'proxyDHCP warm-up over loopback failed (first boot storm will be slower)');
    } finally {
      this.warming = false;
      this.activeLimiter = this.limiter;
      this.replyLog.discarding = false;
      this.warmSink = undefined;
      // The warm-up's shapes (fake boot file and next-server) never match real traffic.
      this.templates.clear();
      // its reply lines not flushed yet (the flush would write them with the real logger)
      this.replyLog.reset();
      this.log = saved.log;
      Object.assign(this.stats, saved.stats);
    }
  }

  /**
   * Never throws: everything is counted. While warming, what the request logs is
   * dropped at the process log output (the same calls either way, no branch: code only
   * real traffic reached would deoptimise at its first datagram).
   */
  private readonly onDatagram = (msg: Buffer, source: Source, kind: ProxyPort, sock: ProxySocket | undefined): void => {
    this.stats.received++;
    this.idle.lastRequestAt = performance.now();
    this.logOutput?.setDiscarding(this.warming);
    try {
      this.handle(msg, source, kind, sock);
    } catch (err) {
      this.stats.internalErrors++;
      this.log.error({ err, from: `${source.address}:${source.port}` }, 'internal error handling DHCP packet');
    }
    this.logOutput?.setDiscarding(false);
  };

  /** decode -> classify -> access -> ask the booter -> encode -> send (+ event, log line). */
  private handle(msg: Buffer, source: Source, kind: ProxyPort, sock: ProxySocket | undefined): void {
    // decode
    const r = decode(msg);
    if (!r.ok) {
      this.stats.malformed++;
      this.log.debug({ from: source.address, error: r.error, detail: r.detail }, 'malformed DHCP packet dropped');
      return;
    }
    const req = r.packet;
    const mac = macString(req);

    // classify: is this a PXE request for us, and what would the reply be
    const cls = classify(req, {
      port: kind,
      allowHttpClient: this.opts.allowHttpClient ?? false,
      isOwnAddress: (ip) => this.addresses.isOwnAddress(ip),
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

    // access: the allow list, the rate limiter. Both are called while warming too, at
    // the same call sites as the booter: a call site first reached by the first real
    // request had no type feedback and deoptimised handle() in the middle of the first
    // boot storm (--trace-deopt, and TurboFan recompiling on the storm's CPU in a perf profile).
    if (this.opts.allow && !this.opts.allow(source.address, mac) && !this.warming) {
      this.stats.denied++;
      if (wantEvents) this.emit({ ...this.eventBase(mac, kind, req, source), reply: 'none', reason: 'denied by allow list' });
      return;
    }
    const limiter = this.activeLimiter;
    if (limiter && !limiter.allow(mac, Date.now())) {
      this.stats.rateLimited++;
      this.log.debug({ mac }, 'rate limited');
      return;
    }

    // ask the booter
    const serverAddress = this.addresses.forRequest(req, source.address, source.ifindex ?? 0, this.log);
    const client = toDhcpClient(req, source.address, serverAddress);
    let decision = this.opts.booter.dhcpBoot(client);
    // (Booter.dhcpBoot is side-effect free by contract.) A booter that ignores the
    // synthetic clients still leaves the reply path to warm.
    if (this.warming && decision.action !== 'boot') decision = this.warmDecisions.next();
    if (decision.action !== 'boot') {
      this.stats.booterIgnored++;
      if (wantEvents) this.emit({ ...this.eventBase(mac, kind, req, source), client, reply: 'none', reason: decision.reason });
      this.log.info({ mac, firmware: client.firmware, reason: decision.reason }, 'booter ignored client');
      return;
    }

    // encode. Option 54 must be an address the client can reach us on: the one the 4011
    // REQUEST will be sent to. When the booter points next-server elsewhere, 54 still names us.
    // Byte-identical to encode(buildReply(...)) (test/unit/dhcp-template.test.ts), from a per-shape template.
    const enc = this.templates.encodeReply(
      msg,
      req,
      decision,
      { reply: cls.reply, vendor: cls.vendor, client, serverId: serverAddress },
      1472,
    );
    if (!enc.ok) {
      this.stats.internalErrors++;
      this.log.error({ mac, error: enc.error, detail: enc.detail }, 'cannot encode reply');
      return;
    }

    // send
    let dest = replyDestination(req, kind, source);
    if (dest.port === 68 && this.opts.clientPort !== undefined) dest.port = this.opts.clientPort;
    // Loopback warm-up (warmup.ts, stage 2): replies only ever go to the loopback sink.
    if (this.warming) dest = { address: this.warmSink?.address ?? '127.0.0.1', port: this.warmSink?.port ?? 9, broadcast: false };
    if (cls.reply === 'offer') this.stats.offers++;
    else this.stats.acks++;
    // A broadcast reply leaves by the interface the request came in on (when the
    // socket knows it), not by whatever interface the default route names.
    if (sock) this.send(sock, enc.data, dest, serverAddress, dest.broadcast ? (source.ifindex ?? 0) : 0);

    if (wantEvents) {
      this.emit({
        ...this.eventBase(mac, kind, req, source),
        client,
        reply: cls.reply,
        bootFile: decision.bootFile,
        nextServer: decision.nextServer,
        destination: `${dest.address}:${dest.port}`,
        reason: decision.reason,
      });
    }
    this.replyLog.add({
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
  }

  private eventBase(mac: string, kind: ProxyPort, req: DhcpPacket, source: Source): Omit<BootEvent, 'reply' | 'reason'> {
    return { time: new Date().toISOString(), mac, port: kind, messageType: messageType(req), sourceAddress: source.address };
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
    const targets = this.addresses.directedBroadcasts(serverAddress);
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
}
