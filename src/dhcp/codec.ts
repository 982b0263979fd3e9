/**
 * BOOTP/DHCP wire codec (RFC 951, RFC 2131 §2, RFC 2132, RFC 3396). Pure: no
 * sockets, no logging. Decoding never throws; it returns a discriminated union so
 * the socket layer can drop and count malformed datagrams.
 *
 * Layout (RFC 2131 figure 1): op htype hlen hops | xid | secs flags | ciaddr |
 * yiaddr | siaddr | giaddr | chaddr[16] | sname[64] | file[128] | cookie | options.
 */
import { OPT } from './options.js';

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const MAGIC_COOKIE = 0x63825363;
/** Fixed header (236 bytes) + magic cookie. */
export const HEADER_LEN = 240;
/** RFC 1542 §3.4: some relay agents/clients drop BOOTP messages shorter than 300 bytes. */
export const BOOTP_MIN_LEN = 300;
/** Default ceiling for replies: 576-byte IP datagram minus IP (20) and UDP (8) headers (RFC 2131 §2). */
export const DEFAULT_MAX_REPLY = 576 - 28;
/** Broadcast bit of `flags` (RFC 2131 §2, figure 2). */
export const FLAG_BROADCAST = 0x8000;

const OFF = {
  op: 0,
  htype: 1,
  hlen: 2,
  hops: 3,
  xid: 4,
  secs: 8,
  flags: 10,
  ciaddr: 12,
  yiaddr: 16,
  siaddr: 20,
  giaddr: 24,
  chaddr: 28,
  sname: 44,
  file: 108,
  cookie: 236,
  options: 240,
} as const;
const SNAME_LEN = 64;
const FILE_LEN = 128;

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** client hardware address, exactly `hlen` bytes */
  chaddr: Buffer;
  /** NUL-terminated header field; '' when option 52 overloaded it with options */
  sname: string;
  /** NUL-terminated header field; '' when option 52 overloaded it with options */
  file: string;
  /**
   * Options in arrival order, repeated codes concatenated (RFC 3396 §5), including
   * those found in overloaded sname/file. Unknown options are kept raw.
   */
  options: Map<number, Buffer>;
}

export type DecodeError = 'too-short' | 'bad-op' | 'bad-hlen' | 'bad-cookie' | 'truncated-option' | 'bad-overload';

export type DecodeResult = { ok: true; packet: DhcpPacket } | { ok: false; error: DecodeError; detail: string };

export type EncodeError = 'bad-address' | 'bad-chaddr' | 'field-too-long' | 'too-large';

export type EncodeResult = { ok: true; data: Buffer } | { ok: false; error: EncodeError; detail: string };

function fail(error: DecodeError, detail: string): DecodeResult {
  return { ok: false, error, detail };
}

function readIp(b: Buffer, off: number): string {
  // Most request addresses are 0.0.0.0 (yiaddr/siaddr always, ciaddr/giaddr mostly): the
  // shared literal instead of a new string each (~3 KB is allocated per request in a
  // storm and every young-generation scavenge is a pause: docs/benchmarks.md).
  if (b[off] === 0 && b[off + 1] === 0 && b[off + 2] === 0 && b[off + 3] === 0) return '0.0.0.0';
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

function readCString(b: Buffer, off: number, len: number): string {
  // Requests almost always leave sname/file empty: skip the view and the decode.
  if (b[off] === 0) return '';
  const field = b.subarray(off, off + len);
  const nul = field.indexOf(0);
  return field.toString('latin1', 0, nul === -1 ? len : nul);
}

/**
 * Walk one TLV area into `into`. 0 is a one-byte pad, 255 ends the area (RFC 2132
 * §3.1-3.2); every other code needs a length byte and that many bytes inside the
 * area. A missing end option is tolerated: several ROMs fill the rest with pads
 * and some omit it, and nothing ambiguous follows the end of the datagram.
 */
function walkOptions(area: Buffer, into: Map<number, Buffer>, where: string): string | null {
  let i = 0;
  while (i < area.length) {
    const code = area[i] ?? 0;
    if (code === OPT.PAD) {
      i += 1;
      continue;
    }
    if (code === OPT.END) return null;
    const len = area[i + 1];
    if (len === undefined) return `${where}: option ${code} at ${i} has no length byte`;
    if (i + 2 + len > area.length) {
      return `${where}: option ${code} at ${i} declares ${len} bytes, ${area.length - i - 2} left`;
    }
    // A view, not a copy (see decode()).
    const val = area.subarray(i + 2, i + 2 + len);
    const prev = into.get(code);
    // RFC 3396 §5: several instances of one option are concatenated in order.
    into.set(code, prev ? Buffer.concat([prev, val]) : val);
    i += 2 + len;
  }
  return null;
}

/**
 * Decode a datagram. Option values, chaddr are views into `buf` (no copies: this
 * runs for every packet of a boot storm), so callers must not reuse `buf` while the
 * packet is in use; dgram hands every message its own buffer and the native socket
 * path copies each datagram out of its receive buffer (sockets.ts openNative).
 */
export function decode(buf: Buffer): DecodeResult {
  if (buf.length < HEADER_LEN) return fail('too-short', `${buf.length} bytes < ${HEADER_LEN}`);
  const op = buf[OFF.op] ?? 0;
  if (op !== BOOTREQUEST && op !== BOOTREPLY) return fail('bad-op', `op ${op}`);
  const hlen = buf[OFF.hlen] ?? 0;
  if (hlen > 16) return fail('bad-hlen', `hlen ${hlen} > 16`);
  const cookie = buf.readUInt32BE(OFF.cookie);
  if (cookie !== MAGIC_COOKIE) return fail('bad-cookie', `cookie 0x${cookie.toString(16)}`);

  const options = new Map<number, Buffer>();
  const err = walkOptions(buf.subarray(OFF.options), options, 'options');
  if (err) return fail('truncated-option', err);

  let sname = readCString(buf, OFF.sname, SNAME_LEN);
  let file = readCString(buf, OFF.file, FILE_LEN);
  const overload = options.get(OPT.OVERLOAD);
  if (overload) {
    // RFC 2132 §9.3: 1 = file holds options, 2 = sname, 3 = both. RFC 3396 §5
    // fixes the concatenation order: options field, then file, then sname.
    const v = overload.length === 1 ? (overload[0] ?? 0) : 0;
    if (v < 1 || v > 3) return fail('bad-overload', `option 52 = ${overload.toString('hex')}`);
    if (v & 1) {
      const e = walkOptions(buf.subarray(OFF.file, OFF.file + FILE_LEN), options, 'file');
      if (e) return fail('truncated-option', e);
      file = '';
    }
    if (v & 2) {
      const e = walkOptions(buf.subarray(OFF.sname, OFF.sname + SNAME_LEN), options, 'sname');
      if (e) return fail('truncated-option', e);
      sname = '';
    }
  }

  return {
    ok: true,
    packet: {
      op,
      htype: buf[OFF.htype] ?? 0,
      hlen,
      hops: buf[OFF.hops] ?? 0,
      xid: buf.readUInt32BE(OFF.xid),
      secs: buf.readUInt16BE(OFF.secs),
      flags: buf.readUInt16BE(OFF.flags),
      ciaddr: readIp(buf, OFF.ciaddr),
      yiaddr: readIp(buf, OFF.yiaddr),
      siaddr: readIp(buf, OFF.siaddr),
      giaddr: readIp(buf, OFF.giaddr),
      chaddr: buf.subarray(OFF.chaddr, OFF.chaddr + hlen),
      sname,
      file,
      options,
    },
  };
}

/**
 * Dotted quad to uint32, strictly (four 1-3 digit parts, each <= 255); null when
 * malformed. Hand-rolled, no regex/split/allocation: it runs several times per packet.
 */
export function ipv4ToInt(s: string): number | null {
  let part = 0;
  let digits = 0;
  let n = 0;
  let acc = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || n > 255 || part > 3) return null;
      acc = acc * 256 + n;
      part++;
      n = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      n = n * 10 + (c - 48);
      digits++;
    } else return null;
  }
  return part === 4 ? acc : null;
}

/** Parse dotted-quad IPv4 strictly; null when malformed. */
export function parseIpv4(s: string): [number, number, number, number] | null {
  const n = ipv4ToInt(s);
  return n === null ? null : [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

let scratchArea = Buffer.allocUnsafe(2048);

const ADDRESS_FIELDS = [
  ['ciaddr', OFF.ciaddr],
  ['yiaddr', OFF.yiaddr],
  ['siaddr', OFF.siaddr],
  ['giaddr', OFF.giaddr],
] as const;

/** Write a dotted quad at `off` without allocating; false when malformed. */
function writeIpv4(b: Buffer, off: number, s: string): boolean {
  const n = ipv4ToInt(s);
  if (n === null) return false;
  b.writeUInt32BE(n, off);
  return true;
}

export interface EncodeOptions {
  /** upper bound on the datagram; default 548 (RFC 2131 minimum 576-byte IP datagram) */
  maxSize?: number;
}

/**
 * Encode a packet. Options are written in map order, except that 53 goes first
 * (RFC 2131 does not require it, but it is what every server does and what
 * simple parsers expect). Values over 255 bytes are split into several
 * instances (RFC 3396 §7). Option 52 is never written: we never overload the
 * header fields, so sname/file are always plain strings. The result is padded
 * with zeros to 300 bytes (RFC 1542 §3.4).
 */
export function encode(p: DhcpPacket, opts: EncodeOptions = {}): EncodeResult {
  const maxSize = opts.maxSize ?? DEFAULT_MAX_REPLY;
  if (p.chaddr.length > 16 || p.hlen > 16) return { ok: false, error: 'bad-chaddr', detail: 'chaddr > 16 bytes' };
  const snameBytes = Buffer.from(p.sname, 'latin1');
  const fileBytes = Buffer.from(p.file, 'latin1');
  // Both fields are NUL-terminated, so one byte is reserved for the terminator.
  if (snameBytes.length >= SNAME_LEN) return { ok: false, error: 'field-too-long', detail: 'sname >= 64 bytes' };
  if (fileBytes.length >= FILE_LEN) return { ok: false, error: 'field-too-long', detail: 'file >= 128 bytes' };

  // Options are written straight into a scratch buffer (no per-option allocations:
  // this is the hot path of a boot storm), then header fields, then one copy out.
  // Buffer.alloc() creates a fresh ArrayBuffer per call (never pooled): measured as
  // the main GC cost of a storm. One module-level scratch area, zeroed per use.
  const cap = Math.max(maxSize, BOOTP_MIN_LEN) + 4;
  if (scratchArea.length < cap) scratchArea = Buffer.allocUnsafe(cap);
  const scratch = scratchArea.subarray(0, cap);
  scratch.fill(0);
  let w = OFF.options;
  let overflow = false;
  const writeOpt = (code: number, val: Buffer): void => {
    let off = 0;
    do {
      const n = Math.min(255, val.length - off);
      if (w + 2 + n + 1 > scratch.length) {
        overflow = true;
        return;
      }
      scratch[w] = code;
      scratch[w + 1] = n;
      val.copy(scratch, w + 2, off, off + n);
      w += 2 + n;
      off += 255;
    } while (off < val.length);
  };
  const mt = p.options.get(OPT.MESSAGE_TYPE);
  if (mt) writeOpt(OPT.MESSAGE_TYPE, mt);
  for (const [code, val] of p.options) {
    if (code === OPT.MESSAGE_TYPE || code === OPT.OVERLOAD || code === OPT.PAD || code === OPT.END) continue;
    if (code < 0 || code > 255) continue;
    writeOpt(code, val);
  }
  if (overflow) return { ok: false, error: 'too-large', detail: `options exceed ${maxSize} bytes` };
  scratch[w++] = OPT.END;

  const len = Math.max(BOOTP_MIN_LEN, w);
  if (len > maxSize) return { ok: false, error: 'too-large', detail: `${len} bytes > ${maxSize}` };
  const b = scratch;
  b[OFF.op] = p.op;
  b[OFF.htype] = p.htype;
  b[OFF.hlen] = p.hlen;
  b[OFF.hops] = p.hops;
  b.writeUInt32BE(p.xid >>> 0, OFF.xid);
  b.writeUInt16BE(p.secs & 0xffff, OFF.secs);
  b.writeUInt16BE(p.flags & 0xffff, OFF.flags);
  for (const [name, off] of ADDRESS_FIELDS) {
    if (!writeIpv4(b, off, p[name])) return { ok: false, error: 'bad-address', detail: `${name} = ${JSON.stringify(p[name])}` };
  }
  p.chaddr.copy(b, OFF.chaddr);
  snameBytes.copy(b, OFF.sname);
  fileBytes.copy(b, OFF.file);
  b.writeUInt32BE(MAGIC_COOKIE, OFF.cookie);
  // allocUnsafe + copy: small results come from Node's shared pool.
  const data = Buffer.allocUnsafe(len);
  b.copy(data, 0, 0, len);
  return { ok: true, data };
}

/** Lower-case colon-separated MAC from chaddr (for Ethernet, hlen 6). */
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function macString(p: Pick<DhcpPacket, 'chaddr'>): string {
  let s = '';
  for (let i = 0; i < p.chaddr.length; i++) s += (i ? ':' : '') + HEX[p.chaddr[i] ?? 0];
  return s;
}

/** Convenience for tests and the benchmark: a BOOTREQUEST with sensible zero defaults. */
export function makeRequest(init: Partial<DhcpPacket> & { chaddr: Buffer; xid: number }): DhcpPacket {
  return {
    op: BOOTREQUEST,
    htype: 1,
    hlen: init.chaddr.length,
    hops: 0,
    secs: 0,
    flags: 0,
    ciaddr: '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    sname: '',
    file: '',
    options: new Map(),
    ...init,
  };
}
