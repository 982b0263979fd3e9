import type { Firmware } from './types.js';
import { macFromPxelinuxPath } from './pxelinux.js';

/**
 * What the server learnt about clients while they boot, kept across reloads.
 *
 * A boot spans protocols that each see half of the client: the proxyDHCP sees the MAC
 * and the firmware (option 93) but never leases an address; TFTP and HTTP see the
 * address but not the MAC. The files a client fetches later still depend on what DHCP
 * saw: a UEFI client's `menu.c32` must be the efi64/ build (boot/files.ts), and a
 * client of a multi-homed server must be pointed at the address it was advertised.
 *
 * `pxe serve` creates one ClientMemory and hands it to every load (boot/load.ts): a
 * SIGHUP between a client's DHCP exchange and its TFTP requests must not make the
 * server forget that the client is UEFI (it would then get the BIOS menu.c32, which
 * syslinux.efi cannot run).
 *
 * Bounded: each table holds at most `capacity` entries (default 100,000; a forged-MAC
 * flood cannot grow it further). Past that the least recently noted entry is dropped,
 * so clients in the middle of a boot, which are noted again at every step, stay.
 */
export class ClientMemory {
  private readonly firmwareByMac = new Map<string, Firmware>();
  private readonly serverByMac = new Map<string, string>();
  private readonly macByIp = new Map<string, string>();

  constructor(readonly capacity = 100_000) {}

  /** What a DHCP exchange taught: the firmware, and the server address we advertised (when we answered). */
  noteDhcp(mac: string, firmware: Firmware, advertised: string | undefined): void {
    const key = mac.toLowerCase();
    remember(this.firmwareByMac, key, firmware, this.capacity);
    if (advertised !== undefined) remember(this.serverByMac, key, advertised, this.capacity);
  }

  /** `ip` is `mac` (a 4011 request's ciaddr, a pxelinux.cfg/01-<mac> request, an /unattended/<mac>/ URL). */
  noteAddress(ip: string, mac: string): void {
    remember(this.macByIp, ip, mac.toLowerCase(), this.capacity);
  }

  /** Firmware class DHCP saw for this MAC, if any. */
  firmwareOf(mac: string | undefined): Firmware | undefined {
    return mac ? this.firmwareByMac.get(mac.toLowerCase()) : undefined;
  }

  /** The server address the proxyDHCP advertised to this MAC, if it answered it. */
  serverAddressOf(mac: string | undefined): string | undefined {
    return mac ? this.serverByMac.get(mac.toLowerCase()) : undefined;
  }

  macFor(ip: string): string | undefined {
    return this.macByIp.get(ip);
  }

  /**
   * The client of a TFTP/HTTP file request with its MAC filled in when known. A
   * request for pxelinux.cfg/01-<mac> names the MAC itself: pxelinux and syslinux.efi
   * ask for it before any UI module, so later requests from that address are known.
   */
  identify<C extends { address: string; mac?: string }>(relPath: string, client: C): C {
    const named = macFromPxelinuxPath(relPath);
    if (named) this.noteAddress(client.address, named);
    if (client.mac) return client;
    const mac = this.macFor(client.address);
    return mac ? { ...client, mac } : client;
  }

  /** Entries per table (for tests and /metrics). */
  get size(): { firmware: number; server: number; addresses: number } {
    return { firmware: this.firmwareByMac.size, server: this.serverByMac.size, addresses: this.macByIp.size };
  }
}

/** map.set(key, value) as the most recent entry; drops the oldest once `max` is exceeded. */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
}
