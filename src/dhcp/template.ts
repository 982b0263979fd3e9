/**
 * Reply templates: the fast path of the proxy's reply encoder.
 *
 * In a boot storm almost every reply differs from the previous one only in the
 * fields copied from the request (RFC 2131 table 3): htype, hlen, xid, flags,
 * ciaddr (ACK only), giaddr, chaddr, plus the two echoed option values the proxy
 * adds (97 client UUID, PXE 2.1 table 2-3; and in a 4011 ACK the 4-byte boot item
 * of 43/71). Everything else (53, 54, 60, 43 layout, siaddr, file, sname, 66/67)
 * depends only on the boot decision, the server address and the firmware class.
 *
 * So the first reply for a given shape is built the slow, readable way
 * (buildReply + encode), kept as a template together with the offsets of the two
 * echoed values, and later replies of the same shape are one copy of the template
 * plus a few byte patches: no Map, no option objects, no dotted-quad parsing.
 * The unit test checks, for every firmware class, that the patched bytes are
 * identical to the slow path's.
 */
import type { DhcpBootDecision } from '../boot/types.js';
import { encode, type DhcpPacket, type EncodeResult } from './codec.js';
import { OPT, PXE_SUB, parseSubOptions } from './options.js';
import { buildReply, offerCarriesDiscoveryControl, type ReplyContext } from './pxe.js';

type BootDecision = Extract<DhcpBootDecision, { action: 'boot' }>;

interface Template {
  // --- the key: everything the bytes depend on that is not patched per request
  reply: 'offer' | 'ack';
  vendor: ReplyContext['vendor'];
  discoveryControl: boolean;
  bootFile: string;
  nextServer: string;
  serverName: string | undefined;
  serverId: string;
  maxSize: number;
  /** length of the echoed option 97 value, -1 when the request had none */
  uuidLen: number;
  // --- the bytes
  data: Buffer;
  /** offset of the option 97 value in `data`, -1 when absent */
  uuidOff: number;
  /** offset of the 4-byte boot item (43/71) in `data`, -1 when absent */
  itemOff: number;
}

/** Header offsets (RFC 2131 figure 1). */
const HTYPE = 1;
const HLEN = 2;
const XID = 4;
const FLAGS = 10;
const CIADDR = 12;
const GIADDR = 24;
const CHADDR = 28;
const CHADDR_LEN = 16;
const OPTIONS = 240;

function copyBytes(from: Buffer, fromOff: number, to: Buffer, toOff: number, n: number): void {
  for (let i = 0; i < n; i++) to[toOff + i] = from[fromOff + i] ?? 0;
}

/** Index of `code`'s value in an encoded packet's options area, -1 when absent (single instance assumed). */
function optionValueOffset(b: Buffer, code: number): number {
  let i = OPTIONS;
  while (i < b.length) {
    const c = b[i] ?? 255;
    if (c === OPT.PAD) {
      i++;
      continue;
    }
    if (c === OPT.END) return -1;
    if (c === code) return i + 2;
    i += 2 + (b[i + 1] ?? 0);
  }
  return -1;
}

/** Bound on cached shapes (per-host boot files could otherwise grow the list without limit). */
export const MAX_TEMPLATES = 32;

export class ReplyTemplates {
  private readonly list: Template[] = [];
  private next = 0;

  /** counters for tests and the benchmark notes */
  hits = 0;
  misses = 0;

  /**
   * Forgets every template, keeping this object and its array: a new instance after
   * the warm-up started from an empty array of another elements kind, and the
   * optimised encodeReply deoptimised ("wrong map") on the first real request.
   */
  clear(): void {
    this.list.length = 0;
    this.next = 0;
  }

  /**
   * Same bytes as `encode(buildReply(req, d, ctx), { maxSize })`. `raw` is the
   * request datagram `req` was decoded from (header fields are copied from it
   * byte for byte, which is what decode + encode round-trips to).
   */
  encodeReply(raw: Buffer, req: DhcpPacket, d: BootDecision, ctx: ReplyContext, maxSize: number): EncodeResult {
    // Shapes the template does not model go the slow way: chaddr longer than the
    // field (an encode error), option 97 split over several instances (RFC 3396).
    const uuid = req.options.get(OPT.CLIENT_UUID);
    const uuidLen = uuid ? uuid.length : -1;
    if (req.chaddr.length > CHADDR_LEN || req.hlen > CHADDR_LEN || uuidLen > 255 || raw.length < OPTIONS) {
      return encode(buildReply(req, d, ctx), { maxSize });
    }
    const dc = ctx.reply === 'offer' && offerCarriesDiscoveryControl(ctx.client, ctx.vendor);
    let t = this.find(ctx, d, dc, uuidLen, maxSize);
    if (t) this.hits++;
    else t = this.create(req, d, ctx, dc, uuidLen, maxSize);
    if (!t) return encode(buildReply(req, d, ctx), { maxSize });

    // Byte loops and TypedArray#set rather than Buffer#copy/fill: for a handful of
    // bytes the argument checks of Buffer#copy cost more than the copy (profiled).
    const out = Buffer.allocUnsafe(t.data.length);
    out.set(t.data);
    out[HTYPE] = req.htype;
    out[HLEN] = req.hlen;
    copyBytes(raw, XID, out, XID, 4);
    copyBytes(raw, FLAGS, out, FLAGS, 2);
    // RFC 2131 table 3: ciaddr is the client's in an ACK, 0 in an OFFER (already 0 in the template).
    if (ctx.reply === 'ack') copyBytes(raw, CIADDR, out, CIADDR, 4);
    copyBytes(raw, GIADDR, out, GIADDR, 4);
    const hw = req.chaddr;
    for (let i = 0; i < CHADDR_LEN; i++) out[CHADDR + i] = i < hw.length ? (hw[i] ?? 0) : 0;
    if (uuid && t.uuidOff >= 0) copyBytes(uuid, 0, out, t.uuidOff, uuid.length);
    if (t.itemOff >= 0) {
      const item = bootItem(req) ?? DEFAULT_ITEM;
      copyBytes(item, 0, out, t.itemOff, 4);
    }
    return { ok: true, data: out };
  }

  private find(ctx: ReplyContext, d: BootDecision, dc: boolean, uuidLen: number, maxSize: number): Template | undefined {
    // A linear scan with === on strings that are, in practice, the same objects
    // every time (config values, the cached interface address): cheaper than
    // building a string key per packet. Few shapes exist at once.
    for (const t of this.list) {
      if (
        t.reply === ctx.reply &&
        t.vendor === ctx.vendor &&
        t.discoveryControl === dc &&
        t.uuidLen === uuidLen &&
        t.bootFile === d.bootFile &&
        t.nextServer === d.nextServer &&
        t.serverName === d.serverName &&
        t.serverId === ctx.serverId &&
        t.maxSize === maxSize
      ) {
        return t;
      }
    }
    return undefined;
  }

  private create(req: DhcpPacket, d: BootDecision, ctx: ReplyContext, dc: boolean, uuidLen: number, maxSize: number): Template | undefined {
    const enc = encode(buildReply(req, d, ctx), { maxSize });
    if (!enc.ok) return undefined;
    this.misses++;
    const data = Buffer.from(enc.data); // own copy: enc.data may be a slice of Node's shared pool
    const itemOff = ctx.reply === 'ack' && ctx.vendor === 'PXEClient' ? optionValueOffset(data, OPT.VENDOR_SPECIFIC) : -1;
    const t: Template = {
      reply: ctx.reply,
      vendor: ctx.vendor,
      discoveryControl: dc,
      bootFile: d.bootFile,
      nextServer: d.nextServer,
      serverName: d.serverName,
      serverId: ctx.serverId,
      maxSize,
      uuidLen,
      data,
      uuidOff: uuidLen >= 0 ? optionValueOffset(data, OPT.CLIENT_UUID) : -1,
      // 43 in an ACK is exactly {71: 4 bytes}, 255 (pxe.ts): the item starts 2 bytes into the value.
      itemOff: itemOff >= 0 ? itemOff + 2 : -1,
    };
    // Bounded: per-host boot files could create many shapes; replace round-robin.
    if (this.list.length < MAX_TEMPLATES) this.list.push(t);
    else {
      this.list[this.next] = t;
      this.next = (this.next + 1) % MAX_TEMPLATES;
    }
    return t;
  }
}

/** PXE_BOOT_ITEM pixiecore answers when the REQUEST names none (same value as pxe.ts). */
const DEFAULT_ITEM = Buffer.from([0x80, 0x00, 0x00, 0x00]);

/** The requested 43/71 boot item exactly as buildReply picks it (4011 ACKs only, so the Map is fine). */
function bootItem(req: DhcpPacket): Buffer | undefined {
  const v = req.options.get(OPT.VENDOR_SPECIFIC);
  const parsed = v ? parseSubOptions(v) : undefined;
  const item = parsed?.ok ? parsed.sub.get(PXE_SUB.BOOT_ITEM) : undefined;
  return item && item.length === 4 ? item : undefined;
}
