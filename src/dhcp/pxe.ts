/**
 * Pure proxyDHCP logic: which requests deserve an answer, what the answer holds
 * for each firmware, and where it goes. No sockets here so every decision is unit
 * testable; `proxy.ts` only moves bytes.
 *
 * What the reply holds, per firmware (the captures of dnsmasq's replies in
 * test/fixtures/dhcp/ and the sources cited below):
 *
 * - Every OFFER/ACK: op 2, the client's xid/chaddr/flags, yiaddr 0.0.0.0 (a proxy
 *   never leases, RFC 4578 §1 / PXE 2.1 §2.2.5), siaddr = next-server, `file` =
 *   boot file, 53, 54 (server identifier: without it clients cannot address the
 *   4011 request, smee proxy.go), 60 "PXEClient" (how iPXE and EDK2 recognise a
 *   ProxyDHCPOFFER, iPXE net/udp/dhcp.c), 97 echoed when sent (PXE 2.1 table 2-3).
 *
 * - BIOS PXE ROMs (93 = 0 or absent: PXE 2.0 ROMs predate RFC 4578): 43 =
 *   {6: 8} PXE_DISCOVERY_CONTROL "use the boot file in this offer, skip boot
 *   server discovery". Without sub-option 6 Intel/SeaBIOS-era ROMs start boot
 *   server discovery and, with no menu, fail (dnsmasq sends 6=8 when it has no
 *   menu; smee and pixiecore do the same for BIOS).
 *
 * - UEFI PXE (93 = 6/7/9/11, not iPXE): NO option 43 in the OFFER. EDK2's
 *   UefiPxeBcDxe (PxeBcDhcp4.c, PxeBcParseDhcp4Packet) classifies a PXEClient
 *   proxy offer without discovery vendor options as "ProxyBinl" and then sends a
 *   ProxyDHCPREQUEST to option 54 on UDP 4011 (PxeBcRetryBinlOffer) and boots from
 *   the ACK; an offer with sub-option 6 becomes "ProxyPxe10" and enters the
 *   menu/prompt/discover path, which pixiecore found broken on real UEFI firmware
 *   ("some UEFI firmware ignores proxy offers that bypass discovery"). siaddr and
 *   `file` are still set in the OFFER (dnsmasq's pxe_uefi_workaround): iPXE-EFI
 *   and other stacks that take them straight from the offer boot without 4011.
 *   Verified in the e2e lab with OVMF 2022.11's native PXE: OFFER without 43 ->
 *   REQUEST from :4011 to :4011 -> ACK -> TFTP -> boot (replies kept byte for byte
 *   in test/fixtures/dhcp/lab/). Counter-experiment: the same OVMF also boots when
 *   the OFFER carries 43 = {6: 8} (no 4011 round trip), so for EDK2 both work; we
 *   keep the 4011 path for UEFI because it is the one every UEFI stack must
 *   implement (PXE 2.1 boot-server discovery) and the one pixiecore and dnsmasq
 *   rely on for EFI, while "boot from the offer" is what pixiecore saw ignored.
 *
 * - iPXE (77 = "iPXE"): booter picks the file (often an HTTP script URL). iPXE
 *   takes siaddr + file from the offer when both are present
 *   (dhcp_has_pxeopts), so no 4011 round trip; 43 = {6: 8} as for BIOS.
 *
 * - UEFI HTTP boot (60 = "HTTPClient", 93 = 16/19): UEFI 2.x §24.7.2 requires
 *   the reply to carry 60 "HTTPClient" and the URI in `file`; no option 43.
 *
 * - 4011 ACK: siaddr, file, 53=ACK, 54, 60, 97 and 43 = {71: boot item}, echoing
 *   the client's requested item or, when it sent none, type 0x8000 layer 0 (what
 *   pixiecore's pxe.go answers; EDK2 accepts it).
 */
import { firmwareFromArch } from '../boot/firmware.js';
import type { DhcpBootDecision, DhcpClient } from '../boot/types.js';
import { BOOTREPLY, BOOTREQUEST, FLAG_BROADCAST, type DhcpPacket } from './codec.js';
import { macString, parseIpv4 } from './codec.js';
import {
  DISCOVERY,
  MSG,
  OPT,
  PXE_SUB,
  clientArch,
  clientUuid,
  encodeSubOptions,
  isIpxeUserClass,
  messageType,
  parseSubOptions,
  serverId,
  vendorClass,
} from './options.js';

export type VendorKind = 'PXEClient' | 'HTTPClient';

/** Option 60 prefix check (dnsmasq is_pxe_client matches the prefix too). */
export function bootVendor(p: DhcpPacket, allowHttpClient: boolean): VendorKind | undefined {
  const vc = vendorClass(p);
  if (vc === undefined) return undefined;
  if (vc.startsWith('PXEClient')) return 'PXEClient';
  if (allowHttpClient && vc.startsWith('HTTPClient')) return 'HTTPClient';
  return undefined;
}

/** Arch from option 93, else from "PXEClient:Arch:NNNNN:..." in 60 (PXE 2.1 §2.2.4). */
export function archOf(p: DhcpPacket): number | undefined {
  return archFrom(p, vendorClass(p) ?? '');
}

function archFrom(p: DhcpPacket, vc: string): number | undefined {
  const a = clientArch(p);
  if (a !== undefined) return a;
  const m = /^(?:PXE|HTTP)Client:Arch:(\d{5})/.exec(vc);
  return m ? Number(m[1]) : undefined;
}

export type Classification =
  | { answer: true; reply: 'offer' | 'ack'; vendor: VendorKind }
  | {
      answer: false;
      reason: 'bootreply' | 'no-message-type' | 'not-pxe' | 'message-type' | 'other-server' | 'lease-request' | 'wrong-port';
    };

export interface ClassifyOptions {
  /** UDP port the datagram arrived on: 67 or the PXE port (4011) */
  port: 'dhcp' | 'pxe';
  allowHttpClient: boolean;
  /** true when `ip` (option 54 of a REQUEST) is one of this server's addresses */
  isOwnAddress: (ip: string) => boolean;
}

/**
 * Decide whether to answer. Ordinary DHCP traffic must get no reply at all: a proxy
 * shares the segment with the site's DHCP server and must never look like one.
 */
export function classify(p: DhcpPacket, o: ClassifyOptions): Classification {
  if (p.op !== BOOTREQUEST) return { answer: false, reason: 'bootreply' };
  const mt = messageType(p);
  if (mt === undefined) return { answer: false, reason: 'no-message-type' };
  const vendor = bootVendor(p, o.allowHttpClient);
  if (!vendor) return { answer: false, reason: 'not-pxe' };
  if (mt === MSG.DISCOVER) {
    // Boot server discovery on 4011 uses REQUEST (PXE 2.1 §2.2.6), never DISCOVER.
    return o.port === 'dhcp' ? { answer: true, reply: 'offer', vendor } : { answer: false, reason: 'wrong-port' };
  }
  if (mt === MSG.REQUEST) {
    if (o.port === 'pxe') return { answer: true, reply: 'ack', vendor };
    // On 67 a REQUEST naming another server selects the site's lease: stay quiet.
    // A PXE REQUEST naming us, or naming nobody (PXE 2.1 §2.2.6 broadcast boot
    // server discovery), gets the ACK. A REQUEST with a requested address (50) and
    // no server id is an INIT-REBOOT lease confirmation (RFC 2131 §4.3.2) for the
    // site server: an ACK with yiaddr 0 from us could only confuse the client.
    const sid = serverId(p);
    if (sid !== undefined) {
      return o.isOwnAddress(sid) ? { answer: true, reply: 'ack', vendor } : { answer: false, reason: 'other-server' };
    }
    if (p.options.has(OPT.REQUESTED_IP)) return { answer: false, reason: 'lease-request' };
    return { answer: true, reply: 'ack', vendor };
  }
  // DECLINE, RELEASE, INFORM and anything else: never answered by a proxy.
  return { answer: false, reason: 'message-type' };
}

/** Build the DhcpClient handed to the Booter. */
export function toDhcpClient(p: DhcpPacket, sourceAddress: string, serverAddress: string): DhcpClient {
  // Option 60 decoded once (it was three Latin-1 decodes per request).
  const vc = vendorClass(p) ?? '';
  const arch = archFrom(p, vc);
  return {
    mac: macString(p),
    arch,
    firmware: firmwareFromArch(arch, vc),
    isIpxe: isIpxeUserClass(p),
    vendorClass: vc,
    uuid: clientUuid(p),
    sourceAddress,
    relayAddress: p.giaddr !== '0.0.0.0' ? p.giaddr : undefined,
    serverAddress,
  };
}

/** Whether the OFFER carries 43 = {6: 8}: see the header comment for the per-firmware reasoning. */
export function offerCarriesDiscoveryControl(client: DhcpClient, vendor: VendorKind): boolean {
  if (vendor === 'HTTPClient') return false;
  if (client.isIpxe) return true;
  return client.firmware === 'bios';
}

/** PXE_BOOT_ITEM that pixiecore answers when a 4011 REQUEST names none: type 0x8000, layer 0. */
const DEFAULT_BOOT_ITEM = Buffer.from([0x80, 0x00, 0x00, 0x00]);

// Constant option values, built once (the reply path runs per packet in a boot
// storm; encode() copies them into the datagram, nothing mutates them).
const MT_OFFER = Buffer.from([MSG.OFFER]);
const MT_ACK = Buffer.from([MSG.ACK]);
const VENDOR_BYTES: Record<VendorKind, Buffer> = {
  PXEClient: Buffer.from('PXEClient', 'latin1'),
  HTTPClient: Buffer.from('HTTPClient', 'latin1'),
};
const OPT43_USE_BOOTFILE = encodeSubOptions([[PXE_SUB.DISCOVERY_CONTROL, Buffer.from([DISCOVERY.USE_BOOTFILE])]]);
const OPT43_DEFAULT_ITEM = encodeSubOptions([[PXE_SUB.BOOT_ITEM, DEFAULT_BOOT_ITEM]]);

export interface ReplyContext {
  reply: 'offer' | 'ack';
  vendor: VendorKind;
  client: DhcpClient;
  /** option 54: our address on the client's network */
  serverId: string;
}

export function buildReply(req: DhcpPacket, d: Extract<DhcpBootDecision, { action: 'boot' }>, ctx: ReplyContext): DhcpPacket {
  const options = new Map<number, Buffer>();
  options.set(OPT.MESSAGE_TYPE, ctx.reply === 'offer' ? MT_OFFER : MT_ACK);
  options.set(OPT.SERVER_ID, ipBytes(ctx.serverId));
  options.set(OPT.VENDOR_CLASS, VENDOR_BYTES[ctx.vendor]);
  // Echoed as sent (a view of the request; encode() copies it).
  const uuid = req.options.get(OPT.CLIENT_UUID);
  if (uuid) options.set(OPT.CLIENT_UUID, uuid);

  if (ctx.reply === 'offer') {
    if (offerCarriesDiscoveryControl(ctx.client, ctx.vendor)) options.set(OPT.VENDOR_SPECIFIC, OPT43_USE_BOOTFILE);
  } else if (ctx.vendor === 'PXEClient') {
    const reqVendor = req.options.get(OPT.VENDOR_SPECIFIC);
    const parsed = reqVendor ? parseSubOptions(reqVendor) : undefined;
    const item = parsed?.ok ? parsed.sub.get(PXE_SUB.BOOT_ITEM) : undefined;
    options.set(OPT.VENDOR_SPECIFIC, item && item.length === 4 ? encodeSubOptions([[PXE_SUB.BOOT_ITEM, item]]) : OPT43_DEFAULT_ITEM);
  }

  // The header `file` holds 127 bytes + NUL. Longer names (iPXE script URLs with
  // query strings) go in option 67 instead, which iPXE and EDK2 both read.
  let file = d.bootFile;
  if (Buffer.byteLength(file, 'latin1') >= 128) {
    options.set(OPT.BOOTFILE_NAME, Buffer.from(file, 'latin1'));
    file = '';
  }
  let sname = d.serverName ?? '';
  if (Buffer.byteLength(sname, 'latin1') >= 64) {
    options.set(OPT.TFTP_SERVER_NAME, Buffer.from(sname, 'latin1'));
    sname = '';
  }

  return {
    op: BOOTREPLY,
    htype: req.htype,
    hlen: req.hlen,
    hops: 0,
    xid: req.xid,
    secs: 0,
    // RFC 2131 table 3: flags are copied from the client's message.
    flags: req.flags,
    // RFC 2131 table 3: ciaddr 0 in an OFFER, the client's ciaddr in an ACK.
    ciaddr: ctx.reply === 'ack' ? req.ciaddr : '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: d.nextServer,
    giaddr: req.giaddr,
    chaddr: req.chaddr,
    sname,
    file,
    options,
  };
}

function ipBytes(ip: string): Buffer {
  const p = parseIpv4(ip);
  return p ? Buffer.from(p) : Buffer.alloc(4);
}

export interface Destination {
  address: string;
  port: number;
  /** true when the datagram goes to a broadcast address (needs SO_BROADCAST and a route) */
  broadcast: boolean;
}

/**
 * Where a reply goes (RFC 2131 §4.1): relayed requests to giaddr:67; a client
 * that already has an address and did not ask for broadcast to ciaddr:68;
 * everyone else on 67 to 255.255.255.255:68 (the client has no address yet, and
 * Node cannot write an ARP entry for yiaddr like dnsmasq does). Requests on 4011
 * are unicast by the client from a configured address, so the reply goes back to
 * the sender's address and port (PXE 2.1 §2.2.6).
 */
export function replyDestination(req: DhcpPacket, port: 'dhcp' | 'pxe', from: { address: string; port: number }): Destination {
  if (port === 'pxe') return { address: from.address, port: from.port, broadcast: false };
  if (req.giaddr !== '0.0.0.0') return { address: req.giaddr, port: 67, broadcast: false };
  if (req.ciaddr !== '0.0.0.0' && (req.flags & FLAG_BROADCAST) === 0) {
    return { address: req.ciaddr, port: 68, broadcast: false };
  }
  return { address: '255.255.255.255', port: 68, broadcast: true };
}
