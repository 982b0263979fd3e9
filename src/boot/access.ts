import { BlockList, isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

/**
 * The client-network allowlist (pxe.yaml `allow:`), shared by DHCP, TFTP and HTTP.
 * An empty list allows everyone. IPv4-mapped IPv6 addresses (::ffff:10.0.0.5, as a
 * dual-stack socket reports IPv4 peers) are checked as the IPv4 address they are.
 */
export function createAllowlist(cidrs: readonly string[]): ((address: string) => boolean) | undefined {
  if (cidrs.length === 0) return undefined;
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, len] = c.split('/') as [string, string | undefined];
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (len === undefined) list.addAddress(addr, family);
    else list.addSubnet(addr, Number(len), family);
  }
  return (address: string): boolean => {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    const a = mapped ? mapped[1]! : address;
    const family = isIP(a);
    if (family === 0) return false;
    return list.check(a, family === 6 ? 'ipv6' : 'ipv4');
  };
}

/**
 * The allowlist as the three servers use it. `dhcpAllowed` also admits a DISCOVER from
 * 0.0.0.0: on a directly attached LAN the client has no address yet (RFC 2131 §4.1),
 * but it is on one of our interfaces' networks, so it is allowed when the allowlist
 * covers one of our interface addresses. That answer is cached for 5 s: reading the
 * interfaces per packet would be slow in a boot storm.
 */
export class NetworkAccess {
  private readonly check: ((address: string) => boolean) | undefined;
  private lanCache: { at: number; ok: boolean } | undefined;

  constructor(
    cidrs: readonly string[],
    private readonly interfaces: () => NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces,
  ) {
    this.check = createAllowlist(cidrs);
  }

  /** TFTP, HTTP and relayed or addressed DHCP requests: the source address is the client's. */
  allowed(address: string): boolean {
    return this.check ? this.check(address) : true;
  }

  dhcpAllowed(address: string): boolean {
    return address === '0.0.0.0' ? this.directLanAllowed() : this.allowed(address);
  }

  private directLanAllowed(): boolean {
    if (!this.check) return true;
    const now = Date.now();
    if (!this.lanCache || now - this.lanCache.at > 5000) {
      const addrs = Object.values(this.interfaces())
        .flatMap((l) => l ?? [])
        .filter((i) => i.family === 'IPv4' && !i.internal);
      this.lanCache = { at: now, ok: addrs.some((i) => this.allowed(i.address)) };
    }
    return this.lanCache.ok;
  }
}

/** What the hosts file says about a MAC. */
export type HostAccess = 'allowed' | 'denied' | 'unknown';

/** pxe.yaml `dhcp.unknownClients`, unless hosts.yaml's own `unknown:` says otherwise (it wins). */
export function unknownClientsRule(configured: 'boot' | 'ignore', hostsUnknown: 'menu' | 'ignore' | undefined): 'boot' | 'ignore' {
  if (hostsUnknown === undefined) return configured;
  return hostsUnknown === 'ignore' ? 'ignore' : 'boot';
}

/** Why the proxyDHCP must not answer this MAC, or undefined when it may. */
export function hostRefusal(mac: string, access: HostAccess, unknownClients: 'boot' | 'ignore'): string | undefined {
  if (access === 'denied') return `host ${mac} is denied in the hosts file`;
  if (access === 'unknown' && unknownClients === 'ignore') return `host ${mac} is not in the hosts file and unknownClients is "ignore"`;
  return undefined;
}
