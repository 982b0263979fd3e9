/**
 * A small HTTP mirror for tests and the sync benchmark: node:http on 127.0.0.1 with
 * a random port, strong ETags and Last-Modified, conditional GET (304), and fault
 * switches per path to reproduce what real mirrors do to us (5xx, stalls, bodies
 * cut short against their Content-Length, silently changed content).
 *
 * It lives under src/ (not test/) because `pxe` benchmarks need it too; it is never
 * started by the server itself.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface MirrorFault {
  /** answer with this status and a short body */
  status?: number;
  /** wait this long before sending headers (time-to-first-byte timeout) */
  delayMs?: number;
  /** send this many body bytes, then stop sending while keeping the socket open */
  stallAfter?: number;
  /** declare the full Content-Length, send this many bytes, then close the socket */
  truncateAt?: number;
  /** serve these bytes instead of the real content (same ETag: a lying mirror) */
  wrongContent?: Buffer;
  /** ignore If-None-Match/If-Modified-Since */
  noConditional?: boolean;
}

/** A published file, serialisable (for running the mirror in another process). */
export interface MirrorTableEntry {
  path: string;
  dataBase64?: string;
  diskPath?: string;
  size: number;
  etag: string;
  lastModified: string;
}

interface MirrorFile {
  /** in-memory content, or a file on disk (benchmark sizes) */
  data?: Buffer;
  diskPath?: string;
  size: number;
  etag: string;
  lastModified: string;
}

export interface MirrorStats {
  requests: number;
  /** response body bytes written (200 responses only; 304 have none) */
  bodyBytes: number;
  notModified: number;
  byPath: Map<string, { requests: number; bodyBytes: number }>;
}

export class LocalMirror {
  private readonly files = new Map<string, MirrorFile>();
  private readonly faults = new Map<string, MirrorFault>();
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private server: Server | null = null;
  private version = 0;
  stats: MirrorStats = { requests: 0, bodyBytes: 0, notModified: 0, byPath: new Map() };
  port = 0;

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  url(path: string): string {
    return `${this.baseUrl}/${path.replace(/^\/+/, '')}`;
  }

  /** Publish (or replace) a file. A replacement gets a new ETag and a later Last-Modified. */
  put(path: string, content: Buffer | string): void {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    const sha = createHash('sha256').update(data).digest('hex');
    this.files.set(norm(path), { data, size: data.length, etag: `"${sha.slice(0, 32)}"`, lastModified: this.nextDate() });
  }

  /** Publish a file from disk without holding it in memory (the caller knows its hash). */
  putFile(path: string, diskPath: string, size: number, sha256: string): void {
    this.files.set(norm(path), { diskPath, size, etag: `"${sha256.slice(0, 32)}"`, lastModified: this.nextDate() });
  }

  get(path: string): Buffer | undefined {
    return this.files.get(norm(path))?.data;
  }

  delete(path: string): void {
    this.files.delete(norm(path));
  }

  exportTable(): MirrorTableEntry[] {
    return [...this.files].map(([path, f]) => ({
      path,
      size: f.size,
      etag: f.etag,
      lastModified: f.lastModified,
      ...(f.data ? { dataBase64: f.data.toString('base64') } : {}),
      ...(f.diskPath ? { diskPath: f.diskPath } : {}),
    }));
  }

  importTable(table: MirrorTableEntry[]): void {
    for (const e of table) {
      const f: MirrorFile = { size: e.size, etag: e.etag, lastModified: e.lastModified };
      if (e.dataBase64 !== undefined) f.data = Buffer.from(e.dataBase64, 'base64');
      if (e.diskPath !== undefined) f.diskPath = e.diskPath;
      this.files.set(norm(e.path), f);
    }
  }

  fault(path: string, fault: MirrorFault | null): void {
    if (fault === null) this.faults.delete(norm(path));
    else this.faults.set(norm(path), fault);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  resetStats(): void {
    this.stats = { requests: 0, bodyBytes: 0, notModified: 0, byPath: new Map() };
  }

  bodyBytesFor(path: string): number {
    return this.stats.byPath.get(norm(path))?.bodyBytes ?? 0;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    const srv = this.server;
    this.server = null;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }

  private nextDate(): string {
    // One second per version so If-Modified-Since (1 s resolution, RFC 9110 §5.6.7) sees the change.
    return new Date(Date.UTC(2024, 0, 1) + ++this.version * 1000).toUTCString();
  }

  private count(path: string, bytes: number): void {
    this.stats.bodyBytes += bytes;
    const p = this.stats.byPath.get(path) ?? { requests: 0, bodyBytes: 0 };
    p.bodyBytes += bytes;
    this.stats.byPath.set(path, p);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = norm(decodeURIComponent((req.url ?? '/').split('?')[0]!));
    this.stats.requests++;
    const p = this.stats.byPath.get(path) ?? { requests: 0, bodyBytes: 0 };
    p.requests++;
    this.stats.byPath.set(path, p);
    const fault = this.faults.get(path) ?? {};
    const go = () => this.respond(req, res, path, fault);
    if (fault.delayMs) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        go();
      }, fault.delayMs);
      this.timers.add(t);
    } else go();
  }

  private respond(req: IncomingMessage, res: ServerResponse, path: string, fault: MirrorFault): void {
    if (res.destroyed) return;
    if (fault.status) {
      res.writeHead(fault.status, { 'content-type': 'text/plain' }).end(`fault ${fault.status}\n`);
      return;
    }
    const file = this.files.get(path);
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (!fault.noConditional) {
      const inm = req.headers['if-none-match'];
      const ims = req.headers['if-modified-since'];
      // RFC 9110 §13.2.2: If-None-Match takes precedence; If-Modified-Since only without it.
      const notModified =
        inm !== undefined
          ? inm
              .split(',')
              .map((s) => s.trim())
              .includes(file.etag)
          : ims !== undefined && Date.parse(ims) >= Date.parse(file.lastModified);
      if (notModified) {
        this.stats.notModified++;
        res.writeHead(304, { etag: file.etag, 'last-modified': file.lastModified }).end();
        return;
      }
    }
    const body = fault.wrongContent;
    const size = body ? body.length : file.size;
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(size),
      etag: file.etag,
      'last-modified': file.lastModified,
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const limit = fault.truncateAt ?? fault.stallAfter;
    if (limit === undefined && !body && file.diskPath) {
      const rs = createReadStream(file.diskPath);
      rs.on('data', (c) => this.count(path, (c as Buffer).length));
      rs.on('error', () => res.destroy());
      rs.pipe(res);
      return;
    }
    const data = body ?? file.data ?? Buffer.alloc(0);
    if (limit === undefined) {
      this.count(path, data.length);
      res.end(data);
      return;
    }
    const part = data.subarray(0, Math.min(limit, data.length));
    this.count(path, part.length);
    res.write(part, () => {
      // flushHeaders+partial body are on the wire; now either cut (truncate) or hang (stall).
      if (fault.truncateAt !== undefined) {
        const t = setTimeout(() => {
          this.timers.delete(t);
          res.socket?.destroy();
        }, 20);
        this.timers.add(t);
      }
    });
  }
}

function norm(p: string): string {
  return p.replace(/^\/+/, '');
}

export async function startLocalMirror(): Promise<LocalMirror> {
  return new LocalMirror().start();
}
