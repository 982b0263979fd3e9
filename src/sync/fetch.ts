/**
 * HTTP fetching for sync: conditional GETs (RFC 9110 §13.1.2 If-None-Match, §13.1.3
 * If-Modified-Since), bounded retries with exponential backoff on 5xx, timeouts and
 * connection errors, SHA-256 computed while streaming to a temp file, and strict
 * Content-Length checking (a body shorter or longer than declared is a failure,
 * never a file).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import got from 'got';

export interface Validators {
  etag?: string | undefined;
  lastModified?: string | undefined;
}

export interface FetchOptions {
  /** send If-None-Match / If-Modified-Since */
  validators?: Validators | undefined;
  /** inactivity timeout (connect, first byte, and between body chunks) */
  timeoutMs?: number;
  /** attempts after the first one */
  retries?: number;
  /** first backoff delay; doubled per attempt */
  backoffMs?: number;
  /** called with (bytesSoFar, totalOrUndefined) while the body streams */
  onProgress?: (done: number, total: number | undefined) => void;
  /** HEAD instead of GET (dry runs: learn whether it changed without the body) */
  headOnly?: boolean;
  /** called when a retry is scheduled (for logs) */
  onRetry?: (attempt: number, err: Error) => void;
}

export type FetchResult =
  | { status: 'not-modified' }
  | {
      status: 'ok';
      sha256: string;
      size: number;
      etag: string | undefined;
      lastModified: string | undefined;
      /** only for fetchBuffer */
      body?: Buffer;
    };

export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    message: string,
    readonly url: string,
    /** whether a retry might help (5xx, timeout, reset, truncated body) */
    readonly transient: boolean,
    readonly statusCode?: number,
  ) {
    super(message);
  }
}

const DEFAULTS = { timeoutMs: 15_000, retries: 3, backoffMs: 250 };

/** Node/got error codes that mean "the network hiccupped", worth retrying. */
const TRANSIENT_CODES = new Set([
  'ETIMEDOUT',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ECONNABORTED',
]);

function toFetchError(err: unknown, url: string): FetchError {
  if (err instanceof FetchError) return err;
  const e = err as Error & { code?: string };
  const code = e.code ?? '';
  const transient = TRANSIENT_CODES.has(code) || e.name === 'TimeoutError' || e.name === 'ReadError' || e.name === 'RequestError';
  return new FetchError(`${url}: ${code ? code + ' ' : ''}${e.message}`, url, transient);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Counts bytes and hashes them as they pass, so the file is hashed exactly as written. */
class HashCounter extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly onChunk: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onChunk(this.bytes);
    cb(null, chunk);
  }
}

/** Collects into memory (small manifests only). */
class Collector extends Transform {
  readonly chunks: Buffer[] = [];
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.chunks.push(chunk);
    cb();
  }
}

/** Manifests larger than this are refused: a checksum file is kilobytes, not megabytes. */
const MAX_MANIFEST = 16 * 1024 * 1024;

async function attempt(url: string, dest: string | null, opts: FetchOptions): Promise<FetchResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULTS.timeoutMs;
  const headers: Record<string, string> = { 'user-agent': 'pxe-sync/0.1' };
  if (opts.validators?.etag) headers['if-none-match'] = opts.validators.etag;
  if (opts.validators?.lastModified) headers['if-modified-since'] = opts.validators.lastModified;

  const req = got.stream(url, {
    method: opts.headOnly ? 'HEAD' : 'GET',
    headers,
    // `socket` is an inactivity timeout: a stalled body fails after timeoutMs, a slow
    // but moving 60 MiB initrd does not.
    timeout: { connect: timeoutMs, response: timeoutMs, socket: timeoutMs },
    retry: { limit: 0 },
    throwHttpErrors: false,
    // keep bytes as served: `initrd.gz` must stay gzip even if a mirror labels it
    // Content-Encoding: gzip, or its checksum would not match.
    decompress: false,
  });

  const response = await new Promise<import('got').Response>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  }).catch((err: unknown) => {
    req.destroy();
    throw toFetchError(err, url);
  });

  const status = response.statusCode;
  if (status === 304) {
    req.destroy();
    return { status: 'not-modified' };
  }
  if (status < 200 || status >= 300) {
    req.destroy();
    throw new FetchError(`${url}: HTTP ${status}`, url, status >= 500 || status === 408 || status === 429, status);
  }
  const cl = response.headers['content-length'];
  const declared = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
  const etag = typeof response.headers.etag === 'string' ? response.headers.etag : undefined;
  const lastModified = typeof response.headers['last-modified'] === 'string' ? response.headers['last-modified'] : undefined;
  if (opts.headOnly) {
    req.destroy();
    return { status: 'ok', sha256: '', size: declared ?? 0, etag, lastModified };
  }
  if (dest === null && declared !== undefined && declared > MAX_MANIFEST) {
    req.destroy();
    throw new FetchError(`${url}: manifest too large (${declared} bytes)`, url, false);
  }
  const counter = new HashCounter((n) => {
    opts.onProgress?.(n, declared);
    if (dest === null && n > MAX_MANIFEST) counter.destroy(new FetchError(`${url}: manifest too large`, url, false));
  });
  const collector = dest === null ? new Collector() : null;
  try {
    if (dest !== null) await pipeline(req, counter, createWriteStream(dest, { flags: 'w', mode: 0o644 }));
    else await pipeline(req, counter, collector!);
  } catch (err) {
    if (dest !== null) await rm(dest, { force: true });
    throw toFetchError(err, url);
  }
  if (declared !== undefined && counter.bytes !== declared) {
    if (dest !== null) await rm(dest, { force: true });
    throw new FetchError(`${url}: truncated body (${counter.bytes} of ${declared} bytes)`, url, true);
  }
  const result: FetchResult = { status: 'ok', sha256: counter.hash.digest('hex'), size: counter.bytes, etag, lastModified };
  if (collector) result.body = Buffer.concat(collector.chunks);
  return result;
}

async function withRetries(url: string, dest: string | null, opts: FetchOptions): Promise<FetchResult> {
  const retries = opts.retries ?? DEFAULTS.retries;
  const backoff = opts.backoffMs ?? DEFAULTS.backoffMs;
  for (let i = 0; ; i++) {
    try {
      return await attempt(url, dest, opts);
    } catch (err) {
      const fe = toFetchError(err, url);
      if (!fe.transient || i >= retries) throw fe;
      opts.onRetry?.(i + 1, fe);
      await sleep(backoff * 2 ** i);
    }
  }
}

/** Stream `url` into `dest` (a staging path), hashing on the way. */
export function fetchToFile(url: string, dest: string, opts: FetchOptions = {}): Promise<FetchResult> {
  return withRetries(url, dest, opts);
}

/** Fetch a small document (checksum manifest, InRelease) into memory. */
export function fetchBuffer(url: string, opts: FetchOptions = {}): Promise<FetchResult> {
  return withRetries(url, null, opts);
}

/** Run `fn` over `items` with at most `limit` in flight. Results keep input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
