/**
 * HTTP fetching for sync: conditional GETs (RFC 9110 §13.1.2 If-None-Match, §13.1.3
 * If-Modified-Since), bounded retries with exponential backoff on 5xx, timeouts and
 * connection errors, SHA-256 computed while streaming to a temp file, and strict
 * Content-Length checking (a body shorter or longer than declared is a failure,
 * never a file).
 */
import { createHash, type Hash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import http from 'node:http';
import https from 'node:https';
import got from 'got';

/**
 * Keep-alive agents shared by every request of the process. A catalog sync makes ~100
 * requests to a handful of mirrors; without keep-alive each one pays a TCP (and TLS)
 * handshake. maxSockets is per host and above any sane --concurrency (sync's own
 * semaphore is the real bound). Idle agent sockets are unref'd by node, so they never
 * keep the CLI alive.
 */
const AGENT_OPTS = { keepAlive: true, maxSockets: 32, scheduling: 'lifo' as const };
const agents = { http: new http.Agent(AGENT_OPTS), https: new https.Agent(AGENT_OPTS) };

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
  /** name resolution (default: the system's); tests make a host name fail to resolve with it */
  dnsLookup?: (
    hostname: string,
    options: object,
    callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
  ) => void;
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
    /** the system error code (ENOTFOUND, EAI_AGAIN, ECONNREFUSED, ...), when there was one */
    readonly code?: string,
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
  return new FetchError(`${url}: ${code ? code + ' ' : ''}${e.message}`, url, transient, undefined, code || undefined);
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

/**
 * The download sink: hashes and counts every chunk in the order it is written (so the
 * digest is of exactly the bytes in the file), and writes in batches of at least
 * WRITE_BATCH with one writev(2). Socket reads arrive in <= 64 KiB chunks; one
 * thread-pool round trip per chunk (fs.WriteStream) cost more main-thread time than
 * the SHA-256 itself. The Writable's highWaterMark lets the socket keep reading while
 * a batch is being written.
 */
const WRITE_BATCH = 1024 * 1024;
const IDLE_FLUSH_MS = 50;

export class HashingFileSink extends Writable {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** writes are chained: writev at the implicit file position must never overlap */
  private chain: Promise<void> = Promise.resolve();
  private failed: Error | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly fh: FileHandle,
    private readonly onChunk?: (bytes: number) => void,
  ) {
    super({ highWaterMark: 4 * WRITE_BATCH });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.failed) {
      cb(this.failed);
      return;
    }
    try {
      this.onChunk?.(this.bytes + chunk.length);
    } catch (e) {
      cb(e as Error);
      return;
    }
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= WRITE_BATCH) {
      this.flush().then(() => cb(), cb);
      return;
    }
    // A slow or stalled body still reaches the disk in bounded time (a partial batch is
    // never held back for more than IDLE_FLUSH_MS).
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flush().catch((e: unknown) => (this.failed ??= e as Error));
    }, IDLE_FLUSH_MS);
    cb();
  }

  private flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.chain = this.chain.then(async () => {
      let left = batch;
      // writev may write less than asked (signals, quotas): continue from where it stopped
      while (left.length > 0) {
        const { bytesWritten } = await this.fh.writev(left);
        if (bytesWritten === 0) throw new Error('writev wrote nothing');
        let n = bytesWritten;
        let i = 0;
        while (i < left.length && n >= left[i]!.length) n -= left[i++]!.length;
        left = i < left.length ? [left[i]!.subarray(n), ...left.slice(i + 1)] : [];
      }
    });
    return this.chain;
  }

  override _final(cb: (err?: Error | null) => void): void {
    // Not synced here: the caller makes a kept file durable after it released its
    // download slot (engine.ts syncFileData), and an archive is deleted after extraction.
    this.flush()
      .then(() => {
        if (this.failed) throw this.failed;
      })
      .then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    // let a write in flight finish before the caller closes the handle
    this.chain.then(
      () => cb(err),
      () => cb(err),
    );
  }
}

/**
 * Opens a got stream and waits for the response head. Redirects, keep-alive (the
 * shared agents) and timeouts are got's; `socket` is an inactivity timeout, so a
 * stalled body fails after timeoutMs while a slow but moving 60 MiB initrd does not.
 */
async function openStream(
  url: string,
  method: 'GET' | 'HEAD',
  headers: Record<string, string>,
  timeoutMs: number,
  dnsLookup?: FetchOptions['dnsLookup'],
) {
  const req = got.stream(url, {
    ...(dnsLookup ? { dnsLookup: dnsLookup } : {}),
    method,
    headers,
    timeout: { connect: timeoutMs, response: timeoutMs, socket: timeoutMs },
    retry: { limit: 0 },
    throwHttpErrors: false,
    agent: agents,
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
  return { req, response };
}

/**
 * Sends the request with the conditional headers (RFC 9110 §13.1: If-None-Match,
 * If-Modified-Since) and reads the response head: 'not-modified' for a 304, an HTTP
 * error as a FetchError (5xx, 408 and 429 are transient), else the body stream with
 * the validators and the declared length (to catch a truncated body).
 */
async function openResponse(url: string, method: 'GET' | 'HEAD', opts: FetchOptions) {
  const headers: Record<string, string> = { 'user-agent': 'pxe-sync/0.1' };
  if (opts.validators?.etag) headers['if-none-match'] = opts.validators.etag;
  if (opts.validators?.lastModified) headers['if-modified-since'] = opts.validators.lastModified;
  const { req, response } = await openStream(url, method, headers, opts.timeoutMs ?? DEFAULTS.timeoutMs, opts.dnsLookup);
  const status = response.statusCode;
  if (status === 304) {
    req.destroy();
    return 'not-modified' as const;
  }
  if (status < 200 || status >= 300) {
    req.destroy();
    throw new FetchError(`${url}: HTTP ${status}`, url, status >= 500 || status === 408 || status === 429, status);
  }
  const cl = response.headers['content-length'];
  return {
    req,
    declared: cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined,
    etag: typeof response.headers.etag === 'string' ? response.headers.etag : undefined,
    lastModified: typeof response.headers['last-modified'] === 'string' ? response.headers['last-modified'] : undefined,
  };
}

async function attemptFile(url: string, dest: string, opts: FetchOptions): Promise<FetchResult> {
  const head = await openResponse(url, 'GET', opts);
  if (head === 'not-modified') return { status: 'not-modified' };
  const { req: res, declared, etag, lastModified } = head;
  let fh: FileHandle;
  try {
    fh = await open(dest, 'w', 0o644);
  } catch (err) {
    res.destroy();
    throw toFetchError(err, url);
  }
  const sink = new HashingFileSink(fh, (n) => {
    if (declared !== undefined && n > declared) throw new FetchError(`${url}: body longer than its Content-Length ${declared}`, url, true);
    opts.onProgress?.(n, declared);
  });
  try {
    await pipeline(res, sink);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(dest, { force: true });
    throw toFetchError(err, url);
  }
  await fh.close();
  if (declared !== undefined && sink.bytes !== declared) {
    await rm(dest, { force: true });
    throw new FetchError(`${url}: truncated body (${sink.bytes} of ${declared} bytes)`, url, true);
  }
  return { status: 'ok', sha256: sink.hash.digest('hex'), size: sink.bytes, etag, lastModified };
}

/** Manifests larger than this are refused: a checksum file is kilobytes, not megabytes. */
const MAX_MANIFEST = 16 * 1024 * 1024;

/** Manifests (into memory) and HEAD requests. */
async function attempt(url: string, dest: string | null, opts: FetchOptions): Promise<FetchResult> {
  if (dest !== null && !opts.headOnly) return attemptFile(url, dest, opts);
  const head = await openResponse(url, opts.headOnly ? 'HEAD' : 'GET', opts);
  if (head === 'not-modified') return { status: 'not-modified' };
  const { req, declared, etag, lastModified } = head;
  if (opts.headOnly) {
    req.destroy();
    return { status: 'ok', sha256: '', size: declared ?? 0, etag, lastModified };
  }
  if (declared !== undefined && declared > MAX_MANIFEST) {
    req.destroy();
    throw new FetchError(`${url}: manifest too large (${declared} bytes)`, url, false);
  }
  const counter = new HashCounter((n) => {
    opts.onProgress?.(n, declared);
    if (n > MAX_MANIFEST) counter.destroy(new FetchError(`${url}: manifest too large`, url, false));
  });
  const collector = new Collector();
  try {
    await pipeline(req, counter, collector);
  } catch (err) {
    throw toFetchError(err, url);
  }
  if (declared !== undefined && counter.bytes !== declared) {
    throw new FetchError(`${url}: truncated body (${counter.bytes} of ${declared} bytes)`, url, true);
  }
  return {
    status: 'ok',
    sha256: counter.hash.digest('hex'),
    size: counter.bytes,
    etag,
    lastModified,
    body: Buffer.concat(collector.chunks),
  };
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
