/**
 * What the proxyDHCP server (proxy.ts) takes and reports: its options, its counters
 * and the boot event it hands the event log for every request it answers or drops.
 */
import type { NetworkInterfaceInfo } from 'node:os';
import type { Logger } from 'pino';
import type { UdpIo } from '../native/udp.js';
import type { Booter, DhcpClient } from '../boot/types.js';
import type { ProxyPort } from './sockets.js';

export interface BootEvent {
  time: string;
  mac: string;
  port: ProxyPort;
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
  networkInterfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
  /** SO_RCVBUF for both sockets (default 4 MiB, capped by net.core.rmem_max) */
  recvBufferSize?: number;
  /** port replies to port-67 clients go to (68); only tests change it */
  clientPort?: number;
}
