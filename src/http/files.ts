/**
 * A regular file under /files/ as an HTTP response: validators, Range and the body.
 * What to answer is conditional.ts's (nginx's rules); this file sends it on the raw
 * response (the reply is hijacked: fastify's send() would buffer or re-frame a body it
 * did not produce).
 *
 * The body of a 200 or a one-range 206 goes out with sendfile(2) from the native module
 * (src/native/sendfile.c: no copy through JavaScript, memory flat in the number of
 * clients, as nginx's `sendfile on`), or, without it (no compiler at install, or
 * PXE_HTTP_SENDFILE=0), through a Node read stream piped into the response. Multi-range
 * bodies (rare, small) always take the stream path. The file is opened once and
 * fstat()ed: the identity in ETag/Content-Length is the one of the bytes sent, even if
 * the path is replaced mid-way (the snapshot switch of `pxe sync`).
 */
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { nativeSendfileStatus, sendfileToSocket, type SendfileEnd, type SendfileJob } from '../native/sendfile.js';
import { etagOf, lastModifiedOf, planFileResponse, type ByteRange, type FileIdentity } from './conditional.js';

/** What the access log needs from a file response. */
export interface FileNotes {
  /** body bytes handed to the socket (all of them unless the client went away) */
  pxeBytes?: number;
  pxeReason?: string;
}

export interface OpenedFile {
  fh: FileHandle;
  identity: FileIdentity;
}

/** Opens `path` if it is a regular file (null for a directory, a device, nothing). */
export async function openRegularFile(path: string): Promise<OpenedFile | null> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return null;
  const st = await fh.stat().catch(() => null);
  if (!st?.isFile()) {
    await fh.close().catch(() => undefined);
    return null;
  }
  return { fh, identity: { size: st.size, mtimeMs: st.mtimeMs } };
}

const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v.join(', ') : v;
};

/** The fd of a TCP socket Node owns, or -1 (TLS, a pipe, already closed). */
function socketFd(sock: Socket | null): number {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } } | null)?._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

const errnoName = (status: number): string => Object.entries(osConstants.errno).find(([, v]) => v === -status)?.[0] ?? `errno ${-status}`;

/**
 * Sends the opened file as the answer to a GET/HEAD with `reqHeaders`; owns `file.fh`
 * from here on (closes it when the response ends, however it ends).
 */
export function sendOpenedFile(
  method: string,
  reqHeaders: IncomingHttpHeaders,
  res: ServerResponse,
  file: OpenedFile,
  notes: FileNotes,
  useSendfile = true,
): void {
  const { fh, identity } = file;
  let closed = false;
  const closeFile = () => {
    if (closed) return;
    closed = true;
    void fh.close().catch(() => undefined);
  };
  const plan = planFileResponse(
    {
      range: header(reqHeaders, 'range'),
      ifRange: header(reqHeaders, 'if-range'),
      ifMatch: header(reqHeaders, 'if-match'),
      ifNoneMatch: header(reqHeaders, 'if-none-match'),
      ifModifiedSince: header(reqHeaders, 'if-modified-since'),
      ifUnmodifiedSince: header(reqHeaders, 'if-unmodified-since'),
    },
    identity,
  );
  const validators = { 'last-modified': lastModifiedOf(identity), etag: etagOf(identity) };
  if (plan.status === 304) {
    closeFile();
    notes.pxeBytes = 0;
    res.writeHead(304, validators).end();
    return;
  }
  if (plan.status === 412 || plan.status === 416) {
    closeFile();
    const body = plan.status === 412 ? 'precondition failed\n' : 'requested range not satisfiable\n';
    notes.pxeReason = plan.status === 412 ? 'precondition failed' : `range not satisfiable: ${header(reqHeaders, 'range') ?? ''}`;
    notes.pxeBytes = method === 'HEAD' ? 0 : body.length;
    res.writeHead(plan.status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': body.length,
      ...(plan.status === 416 ? { 'content-range': `bytes */${identity.size}` } : {}),
    });
    res.end(method === 'HEAD' ? undefined : body);
    return;
  }
  res.once('close', closeFile);
  if (plan.status === 206 && plan.ranges.length > 1)
    return sendMultipart(method, res, fh, identity.size, plan.ranges, validators, notes, closeFile);
  const [start, end] = plan.ranges[0] as ByteRange;
  res.writeHead(plan.status, {
    'content-type': 'application/octet-stream',
    'content-length': end - start,
    ...validators,
    ...(plan.status === 206 ? { 'content-range': `bytes ${start}-${end - 1}/${identity.size}` } : { 'accept-ranges': 'bytes' }),
  });
  if (method === 'HEAD' || end === start) {
    notes.pxeBytes = 0;
    res.end();
    closeFile();
    return;
  }
  notes.pxeBytes = end - start;
  // The headers go to the socket now; sendfile may only start once they are all in the
  // kernel (Node's queue empty), or the body would overtake them.
  res.flushHeaders();
  const sock = res.socket;
  const fd = socketFd(sock);
  if (!useSendfile || !nativeSendfileStatus().native || fd < 0 || !sock || sock.writableLength > 0) {
    notes.pxeBytes = 0;
    streamRange(res, fh, start, end, closeFile, (n) => (notes.pxeBytes = (notes.pxeBytes ?? 0) + n));
    return;
  }
  const onEnd = ({ status, sent }: SendfileEnd): void => {
    notes.pxeBytes = sent;
    closeFile();
    if (status === 0) res.end();
    else {
      notes.pxeReason = `sendfile: ${errnoName(status)}`;
      sock.destroy();
    }
  };
  // the Node socket sees none of these writes: keep an idle timeout on it from firing
  // while bytes move
  const onProgress = (): void => {
    if (sock.timeout) sock.setTimeout(sock.timeout);
  };
  let job: SendfileJob;
  try {
    job = sendfileToSocket(fd, fh.fd, start, end - start, onEnd, onProgress);
  } catch (err) {
    // the module refused this socket (dup or poll failed): the stream path still works
    notes.pxeReason = `sendfile: ${(err as Error).message}`;
    streamRange(res, fh, start, end, closeFile, () => undefined);
    return;
  }
  // the client went away, a timeout or the server's close destroyed the socket
  res.once('close', () => job.cancel());
}

function streamRange(
  res: ServerResponse,
  fh: FileHandle,
  start: number,
  end: number,
  closeFile: () => void,
  onChunk: (bytes: number) => void,
): void {
  const body = fh.createReadStream({ start, end: end - 1, autoClose: false });
  body.on('data', (chunk: Buffer | string) => onChunk(chunk.length));
  pipeline(body, res).then(closeFile, () => {
    closeFile();
    res.destroy();
  });
}

/** nginx's multipart/byteranges layout: CRLF-delimited parts, each with its own Content-Range. */
function sendMultipart(
  method: string,
  res: ServerResponse,
  fh: FileHandle,
  size: number,
  ranges: ByteRange[],
  validators: Record<string, string>,
  notes: FileNotes,
  closeFile: () => void,
): void {
  const boundary = randomBytes(8).toString('hex');
  const heads = ranges.map(([s, e]) =>
    Buffer.from(`\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${s}-${e - 1}/${size}\r\n\r\n`),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length = heads.reduce((a, h) => a + h.length, 0) + ranges.reduce((a, [s, e]) => a + e - s, 0) + tail.length;
  res.writeHead(206, { 'content-type': `multipart/byteranges; boundary=${boundary}`, 'content-length': length, ...validators });
  notes.pxeBytes = method === 'HEAD' ? 0 : length;
  if (method === 'HEAD') {
    res.end();
    closeFile();
    return;
  }
  async function* parts(): AsyncGenerator<Buffer> {
    for (let i = 0; i < ranges.length; i++) {
      const [s, e] = ranges[i] as ByteRange;
      yield heads[i] as Buffer;
      for await (const chunk of fh.createReadStream({ start: s, end: e - 1, autoClose: false })) yield chunk as Buffer;
    }
    yield tail;
  }
  pipeline(Readable.from(parts()), new PassThrough(), res).then(closeFile, () => {
    closeFile();
    res.destroy();
  });
}
