/**
 * The proxy's start-up warm-up: the whole request path runs on synthetic BIOS/UEFI
 * DISCOVERs and REQUESTs before the ports open, so V8 has optimised it before the
 * first real boot storm. Without it the first storm of 1000 clients costs more CPU
 * than its 100 ms arrival window (the queue then sets the p99): docs/benchmarks.md.
 *
 * Two stages. (1) The request handler called directly: cheap, optimises our own
 * code. (2) The same requests through real sockets on 127.0.0.1 (ephemeral ports, a
 * loopback sink as the only destination, so nothing is ever broadcast): this is
 * what makes the first storm fast, because most of the per-datagram cost of a cold
 * process is Node's own dgram code (the 'message' emit, rinfo objects,
 * send/lookup/SendWrap, nextTick) and inline caches seeing the real rinfo shapes.
 * Measured on the storm bench: the first storm cost ~140 ms CPU per 1000 requests
 * with stage 1 only, the same as storms 3-5 (~30-50 ms) with both.
 * Bounded: 5000 rounds / 400 ms for stage 1, 4000 datagrams / 600 ms for stage 2.
 *
 * What the proxy does while warming (ProxyDhcpServer.warmUp) is in proxy.ts: the
 * same call sites as for real traffic, with replies sent only to the sink, events
 * and log lines dropped, stats restored.
 */
import dgram from 'node:dgram';
import type { DhcpBootDecision } from '../boot/types.js';
import { FLAG_BROADCAST, encode, makeRequest } from './codec.js';
import type { V4If } from './interfaces.js';
import type { ProxyPort, ProxySocket, Source } from './sockets.js';

export interface WarmUpHost {
  /** the request path, as for a real datagram; `sock` undefined in stage 1 (nothing sent) */
  onDatagram(msg: Buffer, source: Source, kind: ProxyPort, sock: ProxySocket | undefined): void;
  /** a proxy socket bound to `address`:`port` feeding onDatagram */
  open(port: number, address: string, kind: ProxyPort): Promise<ProxySocket>;
  interfaces(): V4If[];
  /**
   * Makes the next request take the rarely-taken branches real traffic will take
   * (each one first taken in a storm deoptimised the handler, into which they are
   * inlined): the interface re-read, the log-budget summary at a new second, and a
   * reply template built from scratch (the first ones are built before V8 collects
   * type feedback, so a template miss in a storm deoptimised encodeReply).
   */
  resetRareBranches(): void;
  /** where every reply goes during stage 2 */
  setSink(sink: { address: string; port: number }): void;
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

/** The synthetic requests, encoded, with the port each one is sent to. */
function warmRequests(clientAddress: string): Array<[Buffer, ProxyPort]> {
  const reqs: Array<[Buffer, ProxyPort]> = [];
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
  return reqs;
}

/** Runs both stages; throws if stage 2 cannot use the loopback (the caller carries on). */
export async function warmUp(host: WarmUpHost): Promise<void> {
  // Sources both without an address and inside one of our subnets (a client that
  // already has an address, as in the lab and the bench): a branch first taken
  // by real traffic deoptimises the code around it ("insufficient type feedback").
  const near = host.interfaces()[0];
  const nearAddress = near?.address ?? '0.0.0.0';
  const reqs = warmRequests(nearAddress !== '0.0.0.0' ? nearAddress : '10.0.0.1');
  // the native socket's source shape ({address, port, ifindex}): one hidden class;
  // sources arrive on a known interface (the per-interface branch is warmed), one of
  // them from an address inside that interface's subnet (a client that already has
  // an address, as iPXE after its own DHCP: the arrival-address subnet match, whose
  // first real use deoptimised it in the first storm: --trace-deopt)
  const nearIf = near?.ifindex ?? 0;
  const sources: Source[] = [
    { address: '0.0.0.0', port: 68, ifindex: nearIf },
    { address: nearAddress, port: 68, ifindex: 0 },
    { address: nearAddress, port: 68, ifindex: nearIf },
  ];
  const deadline = Date.now() + 400;
  for (let i = 0; i < 5000 && Date.now() < deadline; i++) {
    if (i % 500 === 499) host.resetRareBranches();
    const r = reqs[i % reqs.length];
    const source = sources[(i >> 2) % sources.length];
    if (r && source) host.onDatagram(varyRequest(r[0], i), source, r[1], undefined);
  }
  await warmUpSockets(host, reqs);
}

/** Stage 2: bursts of requests through real loopback sockets. */
async function warmUpSockets(host: WarmUpHost, reqs: Array<[Buffer, ProxyPort]>): Promise<void> {
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
    host.setSink({ address: '127.0.0.1', port: sink.address().port });
    const byKind = {
      dhcp: await host.open(0, '127.0.0.1', 'dhcp'),
      pxe: await host.open(0, '127.0.0.1', 'pxe'),
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

/**
 * The fake boot decisions used while warming when the booter ignores the synthetic
 * client (unknown hosts ignored, no boot file for that firmware). Their strings
 * alternate between literals and strings built at run time: real decisions carry
 * config and interface strings that V8 did not internalise, and comparing those
 * where only literals were seen deoptimised the template lookup.
 */
export class WarmDecisions {
  private count = 0;
  next(): Extract<DhcpBootDecision, { action: 'boot' }> {
    const fresh = (this.count++ & 1) === 1;
    return {
      action: 'boot',
      bootFile: fresh ? Buffer.from('warm-up', 'latin1').toString('latin1') : 'warm-up',
      nextServer: fresh ? Buffer.from('192.0.2.1', 'latin1').toString('latin1') : '192.0.2.1',
      reason: 'warm-up',
    };
  }
}
