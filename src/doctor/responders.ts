/**
 * The network half of `pxe doctor`: broadcast one PXE DISCOVER and one plain DISCOVER
 * out of each interface and list everyone who answers. Nothing here ever answers a
 * client or requests a lease: a DISCOVER only makes a server hold an offer for a short
 * while (RFC 2131 §4.3.1), and the MAC we send is a locally administered one derived
 * from the interface's, so no real client's binding is touched.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { decode, encode, FLAG_BROADCAST, makeRequest, type DhcpPacket } from '../dhcp/codec.js';
import { MSG, OPT, PXE_SUB, messageType, parseSubOptions, serverId, vendorClass, ipv4FromBuffer } from '../dhcp/options.js';
import type { Finding } from './findings.js';

export interface ProbeInterface {
  name: string;
  /** the interface's IPv4 address: the probe's source, so the kernel sends the broadcast out of it */
  address: string;
  mac: string;
}

export type ProbeKind = 'pxe' | 'plain';

export interface Offer {
  interface: string;
  probe: ProbeKind;
  /** source address of the reply */
  from: string;
  packet: DhcpPacket;
}

export interface ProbeOptions {
  /** how long to listen in all (the DISCOVERs are sent twice, at 0 and a third of it) */
  timeoutMs: number;
  clientPort?: number;
  serverPort?: number;
}

/** A locally administered unicast MAC (RFC 7042 §2.1) derived from the interface's own. */
export function probeMac(mac: string): Buffer {
  const b = Buffer.from(mac.split(':').map((h) => Number.parseInt(h, 16)));
  if (b.length !== 6 || b.every((x) => x === 0)) return Buffer.from([0x02, ...randomBytes(5)]);
  b[0] = ((b[0] ?? 0) | 0x02) & 0xfe;
  b[5] = (b[5] ?? 0) ^ 0x5a;
  return b;
}

// What a PXE ROM asks for (PXE 2.1 §2.2.1): vendor class, architecture 0 (BIOS), UNDI 2.1.
const PXE_VENDOR_CLASS = 'PXEClient:Arch:00000:UNDI:002001';
const PARAMS = [1, 3, 6, 15, 28, 43, 54, 60, 66, 67];

export function discoverPacket(kind: ProbeKind, chaddr: Buffer, xid: number): Buffer {
  const options = new Map<number, Buffer>([
    [OPT.MESSAGE_TYPE, Buffer.from([MSG.DISCOVER])],
    [OPT.PARAM_REQUEST_LIST, Buffer.from(PARAMS)],
  ]);
  if (kind === 'pxe') {
    options.set(OPT.VENDOR_CLASS, Buffer.from(PXE_VENDOR_CLASS, 'latin1'));
    options.set(OPT.CLIENT_ARCH, Buffer.from([0, 0]));
    options.set(OPT.CLIENT_NDI, Buffer.from([1, 2, 1]));
    options.set(OPT.CLIENT_UUID, Buffer.concat([Buffer.from([0]), randomBytes(16)]));
  }
  const r = encode(makeRequest({ chaddr, xid, flags: FLAG_BROADCAST, options }));
  if (!r.ok) throw new Error(`cannot encode the probe DISCOVER: ${r.detail}`);
  return r.data;
}

function bindSocket(address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    s.once('error', reject);
    s.bind(port, address, () => {
      s.removeListener('error', reject);
      s.setBroadcast(true);
      resolve(s);
    });
  });
}

/**
 * Sends the probes and collects the OFFERs whose xid is ours. Replies arrive either
 * broadcast (to the wildcard socket) or unicast to the interface address (to that
 * interface's socket), so every socket listens.
 */
export async function probeInterfaces(ifaces: ProbeInterface[], opts: ProbeOptions): Promise<{ offers: Offer[]; errors: string[] }> {
  const clientPort = opts.clientPort ?? 68;
  const serverPort = opts.serverPort ?? 67;
  const offers: Offer[] = [];
  const errors: string[] = [];
  const xids = new Map<number, { iface: string; kind: ProbeKind }>();
  const sockets: dgram.Socket[] = [];
  const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    const d = decode(msg);
    if (!d.ok || d.packet.op !== 2) return;
    const sent = xids.get(d.packet.xid);
    if (!sent || messageType(d.packet) !== MSG.OFFER) return;
    const dup = offers.some((o) => o.packet.xid === d.packet.xid && o.from === rinfo.address);
    if (!dup) offers.push({ interface: sent.iface, probe: sent.kind, from: rinfo.address, packet: d.packet });
  };
  try {
    try {
      const any = await bindSocket('0.0.0.0', clientPort);
      any.on('message', onMessage);
      sockets.push(any);
    } catch (err) {
      errors.push(`cannot listen on UDP ${clientPort} for replies: ${(err as Error).message}`);
      return { offers, errors };
    }
    const senders: Array<{ iface: ProbeInterface; sock: dgram.Socket; packets: Buffer[] }> = [];
    for (const iface of ifaces) {
      try {
        const sock = await bindSocket(iface.address, clientPort);
        sock.on('message', onMessage);
        sockets.push(sock);
        const chaddr = probeMac(iface.mac);
        const packets = (['pxe', 'plain'] as const).map((kind) => {
          const xid = randomBytes(4).readUInt32BE(0);
          xids.set(xid, { iface: iface.name, kind });
          return discoverPacket(kind, chaddr, xid);
        });
        senders.push({ iface, sock, packets });
      } catch (err) {
        errors.push(`${iface.name}: cannot send from ${iface.address}:${clientPort}: ${(err as Error).message}`);
      }
    }
    const sendAll = (): void => {
      for (const s of senders) {
        for (const p of s.packets) {
          s.sock.send(p, serverPort, '255.255.255.255', (err) => {
            if (err) errors.push(`${s.iface.name}: send failed: ${err.message}`);
          });
        }
      }
    };
    // Two rounds: a single lost broadcast should not read as "no DHCP server".
    sendAll();
    await new Promise((r) => setTimeout(r, Math.floor(opts.timeoutMs / 3)));
    sendAll();
    await new Promise((r) => setTimeout(r, opts.timeoutMs - Math.floor(opts.timeoutMs / 3)));
  } finally {
    for (const s of sockets) s.close();
  }
  return { offers, errors: [...new Set(errors)] };
}

/** One server as seen through its offers on one interface. */
export interface Responder {
  interface: string;
  server: string;
  /** the address it offered (absent: it offered none, i.e. a proxyDHCP) */
  offeredAddress?: string;
  routers: string[];
  nameServers: string[];
  /** answered as a PXE server (option 60 "PXEClient" in its offer) */
  pxe: boolean;
  nextServer?: string;
  bootFile?: string;
  serverName?: string;
  /** PXE boot menu items (option 43, sub-option 9), e.g. dnsmasq's pxe-service names */
  menu: string[];
  answered: ProbeKind[];
}

function addressList(b: Buffer | undefined): string[] {
  if (!b || b.length % 4 !== 0) return [];
  const out: string[] = [];
  for (let i = 0; i < b.length; i += 4) out.push(ipv4FromBuffer(b, i));
  return out;
}

/** PXE 2.1 §2.2.5 boot menu: type (2 bytes), description length (1), description. */
function pxeMenu(p: DhcpPacket): string[] {
  const raw = p.options.get(OPT.VENDOR_SPECIFIC);
  if (!raw) return [];
  const sub = parseSubOptions(raw);
  if (!sub.ok) return [];
  const menu = sub.sub.get(PXE_SUB.BOOT_MENU);
  const out: string[] = [];
  for (let i = 0; menu && i + 3 <= menu.length;) {
    const len = menu[i + 2] ?? 0;
    out.push(menu.subarray(i + 3, i + 3 + len).toString('latin1'));
    i += 3 + len;
  }
  return out;
}

export function responders(offers: Offer[]): Responder[] {
  const byKey = new Map<string, Responder>();
  for (const o of offers) {
    const p = o.packet;
    const server = serverId(p) ?? o.from;
    const key = `${o.interface}|${server}`;
    const r = byKey.get(key) ?? { interface: o.interface, server, routers: [], nameServers: [], pxe: false, menu: [], answered: [] };
    byKey.set(key, r);
    if (!r.answered.includes(o.probe)) r.answered.push(o.probe);
    if (p.yiaddr !== '0.0.0.0') r.offeredAddress = p.yiaddr;
    if (r.routers.length === 0) r.routers = addressList(p.options.get(OPT.ROUTER));
    if (r.nameServers.length === 0) r.nameServers = addressList(p.options.get(6));
    if (vendorClass(p)?.startsWith('PXEClient')) r.pxe = true;
    if (p.siaddr !== '0.0.0.0') r.nextServer = p.siaddr;
    const file = p.options.get(OPT.BOOTFILE_NAME)?.toString('latin1').replace(/\0+$/, '') || p.file;
    if (file) r.bootFile = file;
    const sname = p.options.get(OPT.TFTP_SERVER_NAME)?.toString('latin1').replace(/\0+$/, '') || p.sname;
    if (sname) r.serverName = sname;
    if (r.menu.length === 0) r.menu = pxeMenu(p);
  }
  return [...byKey.values()];
}

function describePxe(r: Responder): string {
  const parts: string[] = [];
  if (r.nextServer) parts.push(`next-server ${r.nextServer}`);
  if (r.bootFile) parts.push(`boot file "${r.bootFile}"`);
  if (r.serverName) parts.push(`server name "${r.serverName}"`);
  if (r.menu.length) parts.push(`PXE menu ${r.menu.map((m) => `"${m}"`).join(', ')}`);
  return parts.length ? parts.join(', ') : 'no boot file in its offer';
}

/**
 * What the answers mean for PXE clients on each interface. `local` holds this host's
 * addresses: an answer from one of them is this pxe (or another server on this host).
 */
export function classify(ifaces: ProbeInterface[], offers: Offer[], local: Set<string>): Finding[] {
  const findings: Finding[] = [];
  const all = responders(offers);
  for (const iface of ifaces) {
    const here = all.filter((r) => r.interface === iface.name);
    const leasing = here.filter((r) => r.offeredAddress);
    if (leasing.length === 0) {
      findings.push({
        severity: 'error',
        check: 'dhcp',
        message: `${iface.name}: no DHCP server offered an address: PXE clients on this segment get none (pxe is a proxy and never leases)`,
        fix: 'start the site DHCP server for this segment, or a relay (ip helper-address) to it',
      });
    }
    for (const r of leasing) {
      const what = `${iface.name}: DHCP server ${r.server} offers addresses (${r.offeredAddress})`;
      const details = [`router ${r.routers.join(', ') || 'none'}`, `name server ${r.nameServers.join(', ') || 'none'}`];
      findings.push({ severity: 'ok', check: 'dhcp', message: `${what}, ${details.join(', ')}` });
      if (r.routers.length === 0) {
        findings.push({
          severity: 'warn',
          check: 'dhcp',
          message: `${iface.name}: DHCP server ${r.server} gives no router (option 3): installers cannot reach a mirror outside this subnet`,
          fix: 'site DHCP server: option 3 (routers)',
        });
      }
      if (r.nameServers.length === 0) {
        findings.push({
          severity: 'warn',
          check: 'dhcp',
          message: `${iface.name}: DHCP server ${r.server} gives no name server (option 6): the Debian installer stops at a prompt, mirrors by name fail`,
          fix: 'site DHCP server: option 6 (domain-name-servers)',
        });
      }
      if (r.pxe || r.bootFile) {
        const ours = r.nextServer !== undefined && local.has(r.nextServer);
        findings.push({
          severity: ours ? 'ok' : 'warn',
          check: 'dhcp',
          message: ours
            ? `${iface.name}: DHCP server ${r.server} points PXE clients at this host (${describePxe(r)})`
            : `${iface.name}: DHCP server ${r.server} also hands PXE clients a boot file (${describePxe(r)}): firmware may boot it instead of pxe's offer`,
          ...(ours
            ? {}
            : {
                fix: 'remove next-server/filename for PXE clients on the site DHCP server, or use it on purpose with `pxe serve --no-dhcp` and `pxe dhcp-config`',
              }),
        });
      }
    }
    for (const r of here.filter((x) => !x.offeredAddress)) {
      if (local.has(r.server)) {
        findings.push({
          severity: 'ok',
          check: 'dhcp',
          message: `${iface.name}: this host's proxyDHCP (${r.server}) answers PXE clients: ${describePxe(r)}`,
        });
      } else {
        findings.push({
          severity: 'error',
          check: 'dhcp',
          message: `${iface.name}: another proxyDHCP/PXE server at ${r.server} answers PXE clients (${describePxe(r)}): machines may boot its file instead of pxe's`,
          fix: `turn off the PXE service on ${r.server} for this segment (dnsmasq: dhcp-range=…,proxy / pxe-service), or let it serve and run pxe with dhcp.enabled: false`,
        });
      }
    }
  }
  return findings;
}
