import { BlockList, isIP } from 'node:net';

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
