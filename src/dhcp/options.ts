/**
 * DHCP option codes and typed accessors (RFC 2132, RFC 4578 for PXE, RFC 3004 for
 * user class, iPXE's 175 encapsulation). Accessors never throw: an option whose
 * length is wrong for its type reads as `undefined`, so one malformed option does
 * not cost us the rest of an otherwise usable packet.
 */

export const OPT = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  HOSTNAME: 12,
  VENDOR_SPECIFIC: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST_LIST: 55,
  MAX_MESSAGE_SIZE: 57,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER_NAME: 66,
  BOOTFILE_NAME: 67,
  USER_CLASS: 77,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  CLIENT_UUID: 97,
  IPXE_ENCAP: 175,
  END: 255,
} as const;

/** DHCP message types (RFC 2132 §9.6). */
export const MSG = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

/** PXE vendor sub-options inside option 43 (PXE 2.1 spec table 2-1; iPXE include/ipxe/dhcp.h). */
export const PXE_SUB = {
  MTFTP_IP: 1,
  DISCOVERY_CONTROL: 6,
  MCAST_ADDR: 7,
  BOOT_SERVERS: 8,
  BOOT_MENU: 9,
  MENU_PROMPT: 10,
  BOOT_ITEM: 71,
} as const;

/**
 * PXE_DISCOVERY_CONTROL bits (PXE 2.1 §2.2.7; ipxe/src/include/ipxe/dhcp.h:96-107).
 * 8 = "boot file name is in this offer: skip boot-server discovery".
 */
export const DISCOVERY = {
  NO_BROADCAST: 1,
  NO_MULTICAST: 2,
  ONLY_LISTED: 4,
  USE_BOOTFILE: 8,
} as const;

/** The subset of a decoded packet the accessors need (kept structural to avoid an import cycle). */
export interface HasOptions {
  options: Map<number, Buffer>;
}

export function messageType(p: HasOptions): number | undefined {
  const v = p.options.get(OPT.MESSAGE_TYPE);
  return v && v.length === 1 ? v[0] : undefined;
}

export function ipv4FromBuffer(b: Buffer, offset = 0): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

/** Option 54 (RFC 2132 §9.7): exactly 4 bytes. */
export function serverId(p: HasOptions): string | undefined {
  const v = p.options.get(OPT.SERVER_ID);
  return v && v.length === 4 ? ipv4FromBuffer(v) : undefined;
}

/** Option 55: a list of codes; an empty list is allowed but useless. */
export function paramRequestList(p: HasOptions): number[] | undefined {
  const v = p.options.get(OPT.PARAM_REQUEST_LIST);
  return v ? [...v] : undefined;
}

/** Option 60 as Latin-1 (it is ASCII in practice; Latin-1 never fails to decode). */
export function vendorClass(p: HasOptions): string | undefined {
  const v = p.options.get(OPT.VENDOR_CLASS);
  return v ? v.toString('latin1') : undefined;
}

/** Option 61 (RFC 2132 §9.14): type byte + identifier; at least 2 bytes. */
export function clientId(p: HasOptions): { type: number; id: Buffer } | undefined {
  const v = p.options.get(OPT.CLIENT_ID);
  if (!v || v.length < 2) return undefined;
  return { type: v[0] ?? 0, id: v.subarray(1) };
}

/**
 * Option 77 user class. RFC 3004 defines length-prefixed instances, but iPXE sends
 * the raw 4 bytes "iPXE" (verified on the ROMs in the e2e lab), so both shapes are
 * returned: `raw` as a string and `classes` when the RFC 3004 framing parses.
 */
export function userClass(p: HasOptions): { raw: string; classes: string[] | undefined } | undefined {
  const v = p.options.get(OPT.USER_CLASS);
  if (!v) return undefined;
  const classes: string[] = [];
  let i = 0;
  while (i < v.length) {
    const len = v[i] ?? 0;
    if (len === 0 || i + 1 + len > v.length) {
      return { raw: v.toString('latin1'), classes: undefined };
    }
    classes.push(v.toString('latin1', i + 1, i + 1 + len));
    i += 1 + len;
  }
  return { raw: v.toString('latin1'), classes };
}

export function isIpxeUserClass(p: HasOptions): boolean {
  const uc = userClass(p);
  if (!uc) return false;
  return uc.raw === 'iPXE' || (uc.classes?.includes('iPXE') ?? false);
}

/** Option 93 (RFC 4578 §2.1): a list of 16-bit architecture types; even, non-zero length. */
export function clientArchList(p: HasOptions): number[] | undefined {
  const v = p.options.get(OPT.CLIENT_ARCH);
  if (!v || v.length === 0 || v.length % 2 !== 0) return undefined;
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 2) out.push(v.readUInt16BE(i));
  return out;
}

export function clientArch(p: HasOptions): number | undefined {
  return clientArchList(p)?.[0];
}

/** Option 94 (RFC 4578 §2.2): type (1 = UNDI), major, minor; exactly 3 bytes. */
export function clientNdi(p: HasOptions): { type: number; major: number; minor: number } | undefined {
  const v = p.options.get(OPT.CLIENT_NDI);
  if (!v || v.length !== 3) return undefined;
  return { type: v[0] ?? 0, major: v[1] ?? 0, minor: v[2] ?? 0 };
}

/**
 * Option 97 (RFC 4578 §2.3): type 0 + 16-byte UUID. Formatted in wire byte order,
 * lower-case and dashed, which is what pxelinux uses for `pxelinux.cfg/<uuid>`.
 */
export function clientUuid(p: HasOptions): string | undefined {
  const v = p.options.get(OPT.CLIENT_UUID);
  if (!v || v.length !== 17 || v[0] !== 0) return undefined;
  const h = v.subarray(1).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Result of parsing an encapsulated (sub-option) block. */
export type SubOptionsResult = { ok: true; sub: Map<number, Buffer> } | { ok: false; error: 'truncated-suboption'; offset: number };

/**
 * Parse an encapsulated option space (43 vendor options, 175 iPXE): the same TLV
 * grammar as the main options area, with 0 = pad and 255 = end (RFC 2132 §8.4).
 * Repeated sub-options are concatenated, like top-level options (RFC 3396).
 */
export function parseSubOptions(v: Buffer): SubOptionsResult {
  const sub = new Map<number, Buffer>();
  let i = 0;
  while (i < v.length) {
    const code = v[i] ?? 0;
    if (code === 0) {
      i += 1;
      continue;
    }
    if (code === 255) break;
    const len = v[i + 1];
    if (len === undefined || i + 2 + len > v.length) return { ok: false, error: 'truncated-suboption', offset: i };
    const val = v.subarray(i + 2, i + 2 + len);
    const prev = sub.get(code);
    sub.set(code, prev ? Buffer.concat([prev, val]) : Buffer.from(val));
    i += 2 + len;
  }
  return { ok: true, sub };
}

/** Build an encapsulated block; always ends with 255 (PXE 2.1 §2.2.7 requires the end tag in 43). */
export function encodeSubOptions(sub: Map<number, Buffer> | Iterable<[number, Buffer]>): Buffer {
  const parts: Buffer[] = [];
  for (const [code, val] of sub) {
    if (code <= 0 || code >= 255) continue;
    // A sub-option longer than 255 bytes is split like a top-level one (RFC 3396 §7).
    let off = 0;
    do {
      const chunk = val.subarray(off, off + 255);
      parts.push(Buffer.from([code, chunk.length]), chunk);
      off += 255;
    } while (off < val.length);
  }
  parts.push(Buffer.from([255]));
  return Buffer.concat(parts);
}

/** Option 43 parsed as PXE vendor options (meaningful when option 60 starts with PXEClient). */
export function pxeVendorOptions(p: HasOptions): Map<number, Buffer> | undefined {
  const v = p.options.get(OPT.VENDOR_SPECIFIC);
  if (!v) return undefined;
  const r = parseSubOptions(v);
  return r.ok ? r.sub : undefined;
}

/** Sub-option 6 PXE_DISCOVERY_CONTROL (1 byte). */
export function pxeDiscoveryControl(p: HasOptions): number | undefined {
  const v = pxeVendorOptions(p)?.get(PXE_SUB.DISCOVERY_CONTROL);
  return v && v.length === 1 ? v[0] : undefined;
}

/** Sub-option 71 PXE_BOOT_ITEM: type (u16) + layer (u16), sent in a 4011 REQUEST after a menu. */
export function pxeBootItem(p: HasOptions): { type: number; layer: number } | undefined {
  const v = pxeVendorOptions(p)?.get(PXE_SUB.BOOT_ITEM);
  if (!v || v.length !== 4) return undefined;
  return { type: v.readUInt16BE(0), layer: v.readUInt16BE(2) };
}

/** Option 175: iPXE's encapsulated options (177 bus-id, 235 version, feature flags). */
export function ipxeEncapsulated(p: HasOptions): Map<number, Buffer> | undefined {
  const v = p.options.get(OPT.IPXE_ENCAP);
  if (!v) return undefined;
  const r = parseSubOptions(v);
  return r.ok ? r.sub : undefined;
}

/** iPXE version from 175/235 (3 bytes major.minor.patch), e.g. "1.0.0". */
export function ipxeVersion(p: HasOptions): string | undefined {
  const v = ipxeEncapsulated(p)?.get(235);
  return v && v.length === 3 ? `${v[0]}.${v[1]}.${v[2]}` : undefined;
}
