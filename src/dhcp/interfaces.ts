/**
 * Which of our addresses a client is told to use (option 54 and the default
 * next-server), from the interface list, the relay (giaddr), the arrival interface
 * (IP_PKTINFO, native socket only) and the client's own address; and where a
 * broadcast goes when there is no route for 255.255.255.255.
 *
 * The interface list is cached: reading it (os.networkInterfaces(), i.e. getifaddrs,
 * plus if_nametoindex per interface) costs 0.1-0.6 ms, which taken in the request
 * path at a cache expiry stalled every request queued behind it in a boot storm. The
 * proxy's idle timer refreshes it (IdleWork in idle.ts); a request reads it here only
 * when there is no list yet or an arrival interface is missing from it.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { interfaceIndex } from '../native/udp.js';
import { ipv4ToInt, type DhcpPacket } from './codec.js';

export interface V4If {
  name: string;
  address: string;
  netmask: string;
  /** address & netmask and the mask as integers (-1 when unparsable), for the per-packet subnet test */
  net: number;
  mask: number;
  /** if_nametoindex(name), 0 without the native addon: matches IP_PKTINFO's ifindex */
  ifindex: number;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function inSubnet(ip: string, ifc: V4If): boolean {
  const a = ipv4ToInt(ip);
  return a !== null && ifc.mask !== -1 && (a & ifc.mask) >>> 0 === ifc.net;
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

/** Our address on interface `ifindex`: with several, the one whose subnet holds ciaddr or the source. */
function arrivalAddress(ifs: V4If[], ifindex: number, ciaddr: string, source: string): string | undefined {
  let first: V4If | undefined;
  for (const i of ifs) {
    if (i.ifindex !== ifindex) continue;
    if (inSubnet(ciaddr, i) || inSubnet(source, i)) return i.address;
    first ??= i;
  }
  return first?.address;
}

export interface ServerAddressOptions {
  /** advertised server address; derived from interfaces when absent */
  serverAddress?: string | undefined;
  /** injectable for tests: defaults to os.networkInterfaces */
  networkInterfaces?: (() => NodeJS.Dict<os.NetworkInterfaceInfo[]>) | undefined;
}

export class ServerAddresses {
  private cache: { at: number; list: V4If[] } | undefined;
  private warnedAmbiguous = false;

  constructor(private readonly opts: ServerAddressOptions) {}

  /**
   * Our IPv4 interfaces, from the cache (a new address is picked up within the idle
   * timer's refresh period, or at once through the `maxAgeMs` of a lookup that
   * missed). Read here only when there is no cache yet, or it is older than `maxAgeMs`.
   */
  interfaces(maxAgeMs = Infinity): V4If[] {
    const now = performance.now();
    if (this.cache && now - this.cache.at < maxAgeMs) return this.cache.list;
    const list = this.readInterfaces();
    this.cache = { at: now, list };
    return list;
  }

  /** Age of the cached list in ms (Infinity when there is none). */
  cacheAge(now: number): number {
    return this.cache ? now - this.cache.at : Infinity;
  }

  /** Drops the cached list: the next lookup reads the interfaces again. */
  forget(): void {
    this.cache = undefined;
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
          out.push({
            name,
            address: a.address,
            netmask: a.netmask,
            net: ok ? (b & m) >>> 0 : -1,
            mask: ok ? m : -1,
            // an IPv4 alias label (eth0:1) is not a device name
            ifindex: interfaceIndex(name.split(':')[0] ?? name),
          });
        }
      }
    }
    return out;
  }

  isOwnAddress(ip: string): boolean {
    if (this.opts.serverAddress === ip) return true;
    return this.interfaces().some((i) => i.address === ip);
  }

  /**
   * The address clients should use to reach us: the configured one, else the
   * interface whose subnet holds giaddr (relayed), else our address on the interface
   * the request arrived on (IP_PKTINFO ifindex, native socket; with several addresses
   * there, the one whose subnet holds ciaddr or the source), else the interface whose
   * subnet holds ciaddr or the source address; else the only non-internal interface;
   * else the first (warned once on `log`).
   */
  forRequest(req: Pick<DhcpPacket, 'giaddr' | 'ciaddr'>, source: string, arrivalIfindex: number, log: Logger): string {
    if (this.opts.serverAddress) return this.opts.serverAddress;
    const ifs = this.interfaces();
    const relay = subnetMatch(req.giaddr, ifs);
    if (relay) return relay.address;
    if (arrivalIfindex !== 0) {
      const a = arrivalAddress(ifs, arrivalIfindex, req.ciaddr, source);
      if (a) return a;
      // an interface newer than the cache (hot-plugged, just configured): look again,
      // at most every 250 ms
      const fresh = this.interfaces(250);
      const b = fresh === ifs ? undefined : arrivalAddress(fresh, arrivalIfindex, req.ciaddr, source);
      if (b) return b;
    }
    const m = subnetMatch(req.ciaddr, ifs) ?? subnetMatch(source, ifs);
    if (m) return m.address;
    const first = ifs[0];
    if (ifs.length === 1 && first) return first.address;
    if (!first) {
      if (!this.warnedAmbiguous) {
        this.warnedAmbiguous = true;
        log.warn('no non-internal IPv4 interface: advertising 127.0.0.1; set serverAddress');
      }
      return '127.0.0.1';
    }
    if (!this.warnedAmbiguous) {
      this.warnedAmbiguous = true;
      log.warn(
        { chosen: first.address, interfaces: ifs.map((i) => `${i.name}=${i.address}`) },
        'several IPv4 interfaces and the client has no address: advertising the first one; set serverAddress on multi-homed hosts',
      );
    }
    return first.address;
  }

  /**
   * Where a broadcast goes when 255.255.255.255 has no route (ENETUNREACH): the
   * directed broadcast address of the interface owning `serverAddress`, or of every
   * interface when none does.
   */
  directedBroadcasts(serverAddress: string): string[] {
    const ifs = this.interfaces();
    const own = ifs.filter((i) => i.address === serverAddress);
    return [...new Set((own.length ? own : ifs).map(directedBroadcast).filter((x): x is string => !!x))];
  }
}
