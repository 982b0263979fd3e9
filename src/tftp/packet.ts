/**
 * Pure TFTP wire codec: RFC 1350 (RRQ/WRQ/DATA/ACK/ERROR), RFC 2347 (OACK and
 * request options). Decoding never throws: every malformed datagram yields a typed
 * error so socket handlers can count and drop it.
 */

export const Opcode = {
  RRQ: 1,
  WRQ: 2,
  DATA: 3,
  ACK: 4,
  ERROR: 5,
  OACK: 6,
} as const;

/** RFC 1350 appendix + RFC 2347 (code 8). */
export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_REFUSED: 8,
} as const;

export type TftpErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export type TransferMode = 'octet' | 'netascii';

export interface RequestPacket {
  op: 'rrq' | 'wrq';
  filename: string;
  /** lower-cased raw mode string ("octet", "netascii", "mail", or garbage for WRQ checks) */
  mode: string;
  /** options in the order sent; names lower-cased (RFC 2347: case-insensitive), first occurrence wins */
  options: Map<string, string>;
}

export type Packet =
  | RequestPacket
  | { op: 'data'; block: number; data: Buffer }
  | { op: 'ack'; block: number }
  | { op: 'error'; code: number; message: string }
  | { op: 'oack'; options: Map<string, string> };

export type DecodeErrorKind =
  'empty' | 'short' | 'bad-opcode' | 'too-long' | 'unterminated' | 'empty-filename' | 'bad-mode' | 'too-many-options' | 'bad-length';

export interface DecodeError {
  kind: DecodeErrorKind;
  /** opcode if at least two bytes were present */
  opcode: number | undefined;
  detail: string;
}

export type DecodeResult = { ok: true; packet: Packet } | { ok: false; error: DecodeError };

export interface DecodeLimits {
  /**
   * RFC 2347 says requests must not exceed 512 octets; we accept a little more because
   * some firmware pads requests, but never unbounded.
   */
  maxRequestBytes: number;
  /** only a handful of options exist; a long list is garbage or an attack */
  maxOptions: number;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxRequestBytes: 1024, maxOptions: 16 };

function fail(kind: DecodeErrorKind, opcode: number | undefined, detail: string): DecodeResult {
  return { ok: false, error: { kind, opcode, detail } };
}

/**
 * Reads NUL-terminated strings starting at `start`. Trailing NUL padding after the
 * last complete string is tolerated (some PXE ROMs pad requests with zeros).
 * Returns null when a string is not terminated.
 */
function readStrings(buf: Buffer, start: number): string[] | null {
  const out: string[] = [];
  let pos = start;
  while (pos < buf.length) {
    const end = buf.indexOf(0, pos);
    if (end < 0) return null;
    if (end === pos) {
      // an empty string: either padding (all remaining bytes zero) or an empty field
      let rest = pos;
      while (rest < buf.length && buf[rest] === 0) rest++;
      if (rest === buf.length) break;
    }
    // latin1 keeps a 1:1 byte mapping, so length checks on names are in bytes
    out.push(buf.toString('latin1', pos, end));
    pos = end + 1;
  }
  return out;
}

function decodeRequest(buf: Buffer, op: 'rrq' | 'wrq', opcode: number, limits: DecodeLimits): DecodeResult {
  if (buf.length > limits.maxRequestBytes) return fail('too-long', opcode, `request of ${buf.length} bytes`);
  const strings = readStrings(buf, 2);
  if (strings === null) return fail('unterminated', opcode, 'unterminated string in request');
  const [filename, modeRaw] = strings;
  if (filename === undefined || filename.length === 0) return fail('empty-filename', opcode, 'empty file name');
  if (modeRaw === undefined) return fail('unterminated', opcode, 'missing mode');
  const mode = modeRaw.toLowerCase();
  if (mode !== 'octet' && mode !== 'netascii' && mode !== 'mail')
    return fail('bad-mode', opcode, `mode ${JSON.stringify(modeRaw.slice(0, 32))}`);
  const optionStrings = strings.length - 2;
  if (optionStrings / 2 > limits.maxOptions) return fail('too-many-options', opcode, `${Math.floor(optionStrings / 2)} options`);
  const options = new Map<string, string>();
  // A dangling option name without value is ignored rather than refused: RFC 2347
  // servers must ignore what they do not understand.
  for (let i = 2; i + 1 < strings.length; i += 2) {
    const name = (strings[i] as string).toLowerCase();
    if (!options.has(name)) options.set(name, strings[i + 1] as string);
  }
  return { ok: true, packet: { op, filename, mode, options } };
}

export function decodePacket(buf: Buffer, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): DecodeResult {
  if (buf.length === 0) return fail('empty', undefined, 'empty datagram');
  if (buf.length < 2) return fail('short', undefined, `${buf.length}-byte datagram`);
  const opcode = buf.readUInt16BE(0);
  switch (opcode) {
    case Opcode.RRQ:
      return decodeRequest(buf, 'rrq', opcode, limits);
    case Opcode.WRQ:
      return decodeRequest(buf, 'wrq', opcode, limits);
    case Opcode.DATA:
      if (buf.length < 4) return fail('short', opcode, 'DATA without block number');
      return { ok: true, packet: { op: 'data', block: buf.readUInt16BE(2), data: buf.subarray(4) } };
    case Opcode.ACK:
      // RFC 1350: an ACK is exactly 4 bytes; tolerate trailing bytes (some stacks pad to
      // a minimum frame) but require the block number.
      if (buf.length < 4) return fail('short', opcode, 'ACK without block number');
      return { ok: true, packet: { op: 'ack', block: buf.readUInt16BE(2) } };
    case Opcode.ERROR: {
      if (buf.length < 4) return fail('short', opcode, 'ERROR without code');
      const code = buf.readUInt16BE(2);
      // The message should be NUL-terminated; a missing terminator is tolerated for
      // ERROR since we only log it.
      const end = buf.indexOf(0, 4);
      const message = buf.toString('latin1', 4, end < 0 ? buf.length : end).slice(0, 256);
      return { ok: true, packet: { op: 'error', code, message } };
    }
    case Opcode.OACK: {
      const strings = readStrings(buf, 2);
      if (strings === null) return fail('unterminated', opcode, 'unterminated string in OACK');
      if (strings.length % 2 !== 0) return fail('bad-length', opcode, 'odd number of OACK strings');
      const options = new Map<string, string>();
      for (let i = 0; i + 1 < strings.length; i += 2) options.set((strings[i] as string).toLowerCase(), strings[i + 1] as string);
      return { ok: true, packet: { op: 'oack', options } };
    }
    default:
      return fail('bad-opcode', opcode, `opcode ${opcode}`);
  }
}

/** Fast path for transfer sockets: an ACK block number, or -1 when the datagram is not an ACK. */
export function ackBlock(buf: Buffer, length = buf.length): number {
  if (length < 4 || buf[0] !== 0 || buf[1] !== Opcode.ACK) return -1;
  return (buf[2] as number) * 256 + (buf[3] as number);
}

export function encodeRequest(op: 'rrq' | 'wrq', filename: string, mode: string, options: Iterable<[string, string]> = []): Buffer {
  const parts: string[] = [filename, mode];
  for (const [k, v] of options) parts.push(k, v);
  const body = Buffer.from(parts.map((p) => p + '\0').join(''), 'latin1');
  const out = Buffer.allocUnsafe(2 + body.length);
  out.writeUInt16BE(op === 'rrq' ? Opcode.RRQ : Opcode.WRQ, 0);
  body.copy(out, 2);
  return out;
}

export function encodeAck(block: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt16BE(Opcode.ACK, 0);
  out.writeUInt16BE(block & 0xffff, 2);
  return out;
}

export function encodeData(block: number, data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + data.length);
  writeDataHeader(out, block);
  data.copy(out, 4);
  return out;
}

/** Writes a DATA header in place (hot path: no allocation). Block numbers wrap at 16 bits. */
export function writeDataHeader(buf: Buffer, block: number, at = 0): void {
  buf[at] = 0;
  buf[at + 1] = Opcode.DATA;
  buf[at + 2] = (block >>> 8) & 0xff;
  buf[at + 3] = block & 0xff;
}

export function encodeError(code: number, message: string): Buffer {
  const msg = Buffer.from(message.slice(0, 200), 'latin1');
  const out = Buffer.alloc(4 + msg.length + 1);
  out.writeUInt16BE(Opcode.ERROR, 0);
  out.writeUInt16BE(code & 0xffff, 2);
  msg.copy(out, 4);
  return out;
}

export function encodeOack(options: Iterable<[string, string]>): Buffer {
  const parts: string[] = [];
  for (const [k, v] of options) parts.push(k + '\0' + v + '\0');
  const body = Buffer.from(parts.join(''), 'latin1');
  const out = Buffer.allocUnsafe(2 + body.length);
  out.writeUInt16BE(Opcode.OACK, 0);
  body.copy(out, 2);
  return out;
}

// ---------------------------------------------------------------------------
// Option negotiation (RFC 2347/2348/2349/7440)
// ---------------------------------------------------------------------------

export interface OptionLimits {
  /** RFC 2348 allows up to 65464; default 1468 keeps DATA within a 1500-byte MTU (1500-20-8-4). */
  maxBlksize: number;
  /** RFC 7440 allows up to 65535 */
  maxWindowsize: number;
}

export interface NegotiatedOptions {
  blksize: number | undefined;
  /** true when the client asked for tsize (the server fills in the size) */
  tsize: boolean;
  /** retransmission timeout in seconds (RFC 2349) */
  timeout: number | undefined;
  windowsize: number | undefined;
}

export type NegotiationResult = { ok: true; options: NegotiatedOptions } | { ok: false; code: TftpErrorCode; reason: string };

const DECIMAL = /^[0-9]{1,10}$/;

/**
 * Validates the options we understand. Values outside the RFC ranges (blksize 0 or
 * 999999, windowsize 0, non-numeric tsize) make the request fail with error 8
 * (RFC 2347: the server may refuse a request whose options it cannot accept);
 * in-range values above our limits are clamped (RFC 2348/7440 allow the server to
 * answer with a smaller value). Unknown options are ignored.
 */
export function negotiateOptions(requested: Map<string, string>, limits: OptionLimits): NegotiationResult {
  const out: NegotiatedOptions = { blksize: undefined, tsize: false, timeout: undefined, windowsize: undefined };
  const num = (name: string): number | null | undefined => {
    const v = requested.get(name);
    if (v === undefined) return undefined;
    return DECIMAL.test(v) ? Number(v) : null;
  };
  const blksize = num('blksize');
  if (blksize !== undefined) {
    if (blksize === null || blksize < 8 || blksize > 65464)
      return { ok: false, code: ErrorCode.OPTION_REFUSED, reason: `invalid blksize ${requested.get('blksize')?.slice(0, 16)}` };
    out.blksize = Math.min(blksize, limits.maxBlksize);
  }
  const tsize = num('tsize');
  if (tsize !== undefined) {
    // RFC 2349: in a RRQ the client sends 0; any number is tolerated, non-numbers are not
    if (tsize === null) return { ok: false, code: ErrorCode.OPTION_REFUSED, reason: 'invalid tsize' };
    out.tsize = true;
  }
  const timeout = num('timeout');
  if (timeout !== undefined) {
    if (timeout === null || timeout < 1 || timeout > 255)
      return { ok: false, code: ErrorCode.OPTION_REFUSED, reason: `invalid timeout ${requested.get('timeout')?.slice(0, 16)}` };
    out.timeout = timeout;
  }
  const windowsize = num('windowsize');
  if (windowsize !== undefined) {
    if (windowsize === null || windowsize < 1 || windowsize > 65535)
      return { ok: false, code: ErrorCode.OPTION_REFUSED, reason: `invalid windowsize ${requested.get('windowsize')?.slice(0, 16)}` };
    out.windowsize = Math.max(1, Math.min(windowsize, limits.maxWindowsize));
  }
  return { ok: true, options: out };
}

/** Builds the OACK option list in a stable order; only options we accepted are echoed (RFC 2347). */
export function oackEntries(opts: NegotiatedOptions, tsizeValue: number): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (opts.blksize !== undefined) out.push(['blksize', String(opts.blksize)]);
  if (opts.tsize) out.push(['tsize', String(tsizeValue)]);
  if (opts.timeout !== undefined) out.push(['timeout', String(opts.timeout)]);
  if (opts.windowsize !== undefined) out.push(['windowsize', String(opts.windowsize)]);
  return out;
}

/** RFC 1350 netascii for reads: LF -> CR LF, CR -> CR NUL. */
export function toNetascii(input: Buffer): Buffer {
  let extra = 0;
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c === 0x0a || c === 0x0d) extra++;
  }
  if (extra === 0) return input;
  const out = Buffer.allocUnsafe(input.length + extra);
  let o = 0;
  for (let i = 0; i < input.length; i++) {
    const c = input[i] as number;
    if (c === 0x0a) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    } else if (c === 0x0d) {
      out[o++] = 0x0d;
      out[o++] = 0x00;
    } else out[o++] = c;
  }
  return out;
}
