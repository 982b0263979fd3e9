/**
 * What a static file response is, given the request's validators and Range: the
 * decisions nginx's not_modified and range filters make, so a client (iPXE, UEFI HTTP
 * boot, a mirror tool) sees the same answers from pxe as from nginx in front of it:
 *   - ETag "<mtime seconds hex>-<size hex>", Last-Modified from the mtime (seconds);
 *   - If-Unmodified-Since / If-Match failing -> 412 (RFC 9110 §13.1.1, §13.1.4);
 *   - If-None-Match (weak comparison, lists, *) and If-Modified-Since -> 304 when every
 *     one present says unchanged; If-Modified-Since is nginx's default `exact` match;
 *   - Range "bytes=" (RFC 9110 §14.2): one range -> 206, several -> 206
 *     multipart/byteranges, none satisfiable (or bad syntax) -> 416 with the size in
 *     Content-Range; a first range nginx declines, overlapping ranges larger than the file, or an If-Range
 *     that does not match (strong ETag or exact date) -> the whole file, 200.
 * Pure: no I/O, unit-tested; src/http/files.ts sends what it decides.
 */
export interface FileIdentity {
  size: number;
  mtimeMs: number;
}

export interface RequestValidators {
  range?: string | undefined;
  ifRange?: string | undefined;
  ifMatch?: string | undefined;
  ifNoneMatch?: string | undefined;
  ifModifiedSince?: string | undefined;
  ifUnmodifiedSince?: string | undefined;
}

/** [start, end) byte ranges */
export type ByteRange = [number, number];

export type FilePlan =
  { status: 200; ranges: [ByteRange] } | { status: 206; ranges: ByteRange[] } | { status: 304 | 412 | 416; ranges: [] };

export const etagOf = (f: FileIdentity): string => `"${Math.floor(f.mtimeMs / 1000).toString(16)}-${f.size.toString(16)}"`;
export const lastModifiedOf = (f: FileIdentity): string => new Date(Math.floor(f.mtimeMs / 1000) * 1000).toUTCString();

/** An HTTP-date (any of RFC 9110 §5.6.7's three forms Date.parse reads) in whole seconds; NaN if unparsable. */
function httpTime(v: string): number {
  const t = Date.parse(v);
  return Number.isNaN(t) ? NaN : Math.floor(t / 1000);
}

/** Whether `etag` is in the If-Match / If-None-Match list `header` ('*' matches any). */
export function etagListMatches(header: string, etag: string, weak: boolean): boolean {
  if (header.trim() === '*') return true;
  const ours = weak && etag.startsWith('W/') ? etag.slice(2) : etag;
  for (const raw of header.split(',')) {
    let t = raw.trim();
    if (weak && t.startsWith('W/')) t = t.slice(2);
    if (t === ours) return true;
  }
  return false;
}

/**
 * The ranges of a "bytes=" header against a file of `size` bytes: 'ignore' (serve the
 * whole file), 'unsatisfiable', or the ranges. Follows nginx's ngx_http_range_parse:
 * a syntax error is 416, a first range starting at 0 of an empty file is ignored.
 */
export function parseRange(header: string, size: number): ByteRange[] | 'ignore' | 'unsatisfiable' {
  if (header.length < 7 || header.slice(0, 6).toLowerCase() !== 'bytes=') return 'ignore';
  const s = header.slice(6);
  const ranges: ByteRange[] = [];
  let total = 0;
  let i = 0;
  const digits = (): number | null => {
    const from = i;
    while (i < s.length && s[i]! >= '0' && s[i]! <= '9') i++;
    if (i === from) return null;
    const n = Number(s.slice(from, i));
    // nginx refuses what overflows its off_t (2^63 - 1)
    // (2^63 - 1 as a double is 2^63)
    return n > 2 ** 63 ? null : n;
  };
  const spaces = () => {
    while (s[i] === ' ') i++;
  };
  for (;;) {
    let start = 0;
    let end = 0;
    spaces();
    let open = false;
    if (s[i] !== '-') {
      const a = digits();
      if (a === null) return 'unsatisfiable';
      start = a;
      spaces();
      if (s[i++] !== '-') return 'unsatisfiable';
      spaces();
      if (i >= s.length || s[i] === ',') {
        end = size;
        open = true;
      }
    }
    if (!open) {
      const suffix = s[i] === '-';
      if (suffix) i++;
      const b = digits();
      if (b === null) return 'unsatisfiable';
      spaces();
      if (i < s.length && s[i] !== ',') return 'unsatisfiable';
      if (suffix) {
        start = b < size ? size - b : 0;
        end = size;
      } else end = b >= size ? size : b + 1;
    }
    if (start < end) {
      ranges.push([start, end]);
      total += end - start;
    } else if (start === 0) return 'ignore';
    if (s[i++] !== ',') break;
  }
  if (ranges.length === 0) return 'unsatisfiable';
  if (total > size) return 'ignore';
  return ranges;
}

/** The response for a GET/HEAD of a regular file with identity `f`. */
export function planFileResponse(req: RequestValidators, f: FileIdentity): FilePlan {
  const etag = etagOf(f);
  const mtime = Math.floor(f.mtimeMs / 1000);
  if (req.ifUnmodifiedSince !== undefined) {
    const t = httpTime(req.ifUnmodifiedSince);
    // nginx: an unparsable date fails the precondition too
    if (Number.isNaN(t) || mtime > t) return { status: 412, ranges: [] };
  }
  if (req.ifMatch !== undefined && !etagListMatches(req.ifMatch, etag, false)) return { status: 412, ranges: [] };
  if (req.ifModifiedSince !== undefined || req.ifNoneMatch !== undefined) {
    const modified = req.ifModifiedSince !== undefined && httpTime(req.ifModifiedSince) !== mtime;
    const noneMatch = req.ifNoneMatch !== undefined && !etagListMatches(req.ifNoneMatch, etag, true);
    if (!modified && !noneMatch) return { status: 304, ranges: [] };
  }
  const whole: FilePlan = { status: 200, ranges: [[0, f.size]] };
  if (req.range === undefined) return whole;
  if (req.ifRange !== undefined) {
    const v = req.ifRange.trim();
    if (v.endsWith('"') ? v !== etag : httpTime(v) !== mtime) return whole;
  }
  const r = parseRange(req.range, f.size);
  if (r === 'ignore') return whole;
  if (r === 'unsatisfiable') return { status: 416, ranges: [] };
  return { status: 206, ranges: r };
}
