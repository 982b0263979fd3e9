import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { Logger } from '../log.js';
import { RenderError, type FileClient, type RenderedFile, type VirtualFile } from '../boot/types.js';
import { normalizeRequestPath } from '../tftp/paths.js';
import { openRegularFile, sendOpenedFile } from './files.js';

export interface HttpDeps {
  logger: Logger;
  /** directory whose files (kernels, initrds) iPXE clients fetch under /files/… */
  filesRoot: string;
  /**
   * unattended-install file for a host: preseed, kickstart, autoyast, user-data,
   * meta-data…; only with the host's live install token (else RenderError 403)
   */
  unattended?: (mac: string, token: string, file: string, clientAddress: string) => Promise<RenderedFile>;
  /** the installer's "finished" report, with the host's install token (else RenderError 403) */
  installDone?: (mac: string, token: string, clientAddress: string) => Promise<string>;
  /**
   * Files produced on demand (per-host pxelinux.cfg/01-<mac>, rendered menus), asked
   * before the disk, as TFTP does: pxelinux.0 loaded over HTTP makes the same lookups
   * under /files/.
   */
  virtualFile?: (relPath: string, client: FileClient) => Promise<VirtualFile | null>;
  /** iPXE script for a client (mac may be unknown) */
  ipxeScript?: (mac: string | undefined, clientAddress: string) => Promise<RenderedFile>;
  /**
   * false: /files/ bodies stream through Node even when the native sendfile module is
   * loaded (the fallback, tested alongside); default: sendfile when available
   */
  sendfile?: boolean;
  /** false: the request gets nothing at all (the connection is dropped) */
  allow?: (address: string) => boolean;
  /** Prometheus text exposition */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  health?: () => Record<string, unknown>;
  onRequest?: (ev: { client: string; method: string; url: string; status: number; bytes: number; reason?: string }) => void;
  /** count drops for /metrics */
  onDenied?: (address: string) => void;
}

/** Resolves a URL path under root; null if it escapes (.., NUL, symlink out of the root). */
export async function safeResolve(root: string, urlPath: string): Promise<string | null> {
  if (urlPath.includes('\0')) return null;
  const rootReal = await realpath(root).catch(() => null);
  if (!rootReal) return null;
  const candidate = resolve(rootReal, `.${sep}${urlPath.replace(/\\/g, '/').replace(/^\/+/, '')}`);
  const rel = relative(rootReal, candidate);
  if (rel.startsWith('..') || isAbsolute(rel)) return null;
  const real = await realpath(candidate).catch(() => null);
  if (!real) return candidate; // does not exist: the caller reports 404
  const relReal = relative(rootReal, real);
  if (relReal.startsWith('..') || isAbsolute(relReal)) return null;
  return real;
}

const MAC_RE = /^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i;
const normMac = (m: string): string | null =>
  MAC_RE.test(m)
    ? m
        .toLowerCase()
        .replace(/[^0-9a-f]/g, '')
        .match(/../g)!
        .join(':')
    : null;

/**
 * The HTTP side of the boot: unattended-install answers for installers, iPXE scripts,
 * and kernels/initrds for iPXE clients (HTTP is far faster than TFTP for 40+ MiB
 * initrds). Rendering happens fully in memory first: a client never receives half a
 * preseed.
 */
/** Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; logs and allowlists want a.b.c.d. */
export const clientAddress = (ip: string): string => ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');

/**
 * The URL as logged: an install token is a secret (whoever reads it may fetch the
 * host's answers while it is live), so logs and boot events show `<token>` instead.
 */
export const redactToken = (url: string): string => url.replace(/^(\/unattended\/[^/?]+\/)[^/?]+(?=\/)/, '$1<token>');

export function createHttpServer(deps: HttpDeps): FastifyInstance {
  const app = Fastify({ logger: false, return503OnClosing: true });
  const log = deps.logger.child({ svc: 'http' });

  /** Per-reply state the handlers leave for the access log. */
  type ReplyNotes = { pxeReason?: string; pxeVirtual?: boolean; pxeLogged?: boolean; pxeBytes?: number };
  const notesOf = (reply: object): ReplyNotes => reply;

  /**
   * One access-log line (and boot-event) per request. Normally from onResponse; but
   * fastify runs onResponse only on the response's 'finish', and a client that closes
   * the connection as soon as it has the last byte (curl, a firmware) can make node
   * see the close first: the request is then logged from 'close', with `complete`.
   */
  const logRequest = (req: FastifyRequest, reply: FastifyReply, complete: boolean): void => {
    const notes = notesOf(reply);
    if (notes.pxeLogged) return;
    notes.pxeLogged = true;
    // a file response is written on the raw response and says itself what went out
    const bytes = notes.pxeBytes ?? Number(reply.getHeader('content-length') ?? 0);
    const { pxeReason: reason, pxeVirtual: virtual } = notes;
    const ev = {
      client: clientAddress(req.ip),
      method: req.method,
      url: redactToken(req.url),
      status: reply.statusCode,
      bytes,
      ...(reason ? { reason } : {}),
    };
    // `virtual` as on TFTP's "transfer finished": rendered on demand or read from disk
    const line = {
      ...ev,
      ...(virtual === undefined ? {} : { virtual }),
      ...(complete ? {} : { complete }),
      ms: Math.round(reply.elapsedTime),
    };
    if (reply.statusCode >= 500) log.error(line, 'http request failed');
    // a missing file under /files/ is routine (pxelinux tries uuid, MAC and IP names
    // before `default`): info, as TFTP logs its "file not found"
    else if (reply.statusCode === 404 && req.url.startsWith('/files/')) log.info(line, 'http request refused');
    else if (reply.statusCode >= 400) log.warn(line, 'http request refused');
    else log.info(line, 'http request');
    // after the log line: whatever the boot-event log does, the request is logged
    try {
      deps.onRequest?.(ev);
    } catch (err) {
      log.error({ err }, 'boot-event log failed');
    }
  };

  app.addHook('onRequest', async (req, reply) => {
    if (deps.allow && !deps.allow(clientAddress(req.ip))) {
      deps.onDenied?.(clientAddress(req.ip));
      notesOf(reply).pxeLogged = true; // counted, not logged per request
      // Outside the allowlist: no answer at all, not even a 403.
      req.raw.socket.destroy();
      return reply.hijack();
    }
    // writableEnded: the whole response was handed to the socket
    reply.raw.once('close', () => logRequest(req, reply, reply.raw.writableEnded));
  });

  app.addHook('onResponse', async (req, reply) => logRequest(req, reply, true));

  const fail = (
    reply: { code: (n: number) => unknown; type: (t: string) => unknown; send: (b: string) => unknown },
    status: number,
    reason: string,
  ) => {
    notesOf(reply).pxeReason = reason;
    reply.code(status);
    reply.type('text/plain; charset=utf-8');
    return reply.send(`${reason}\n`);
  };

  app.get('/healthz', async () => ({ status: 'ok', uptimeSeconds: Math.round(process.uptime()), ...(deps.health?.() ?? {}) }));

  app.get('/metrics', async (_req, reply) => {
    if (!deps.metrics) return fail(reply, 404, 'metrics disabled');
    const m = await deps.metrics();
    reply.type(m.contentType);
    return m.body;
  });

  // Answer files carry secrets (password hash, SSH keys) and MACs are public on a LAN:
  // only the URL with the host's install token (its rendered boot config has it) works.
  app.get<{ Params: { mac: string; file: string } }>('/unattended/:mac/:file', async (req, reply) =>
    fail(reply, 403, `install token required: /unattended/<mac>/<token>/${req.params.file}`),
  );

  const unattendedError = (reply: FastifyReply, err: unknown, mac: string, file: string) => {
    if (err instanceof RenderError) return fail(reply, err.status, err.message);
    log.error({ err, mac, file }, 'unattended render crashed');
    return fail(reply, 500, `render failed: ${(err as Error).message}`);
  };

  /** the installer's last step: GET (d-i's busybox wget) or POST (curl) */
  const done = async (req: FastifyRequest<{ Params: { mac: string; token: string } }>, reply: FastifyReply) => {
    const mac = normMac(req.params.mac);
    if (!mac || !deps.installDone) return fail(reply, 403, 'no install in progress for this URL');
    try {
      reply.type('text/plain; charset=utf-8');
      return `${await deps.installDone(mac, req.params.token, clientAddress(req.ip))}\n`;
    } catch (err) {
      return unattendedError(reply, err, mac, 'done');
    }
  };
  app.get('/unattended/:mac/:token/done', done);
  app.post('/unattended/:mac/:token/done', done);

  app.get<{ Params: { mac: string; token: string; file: string } }>('/unattended/:mac/:token/:file', async (req, reply) => {
    const mac = normMac(req.params.mac);
    // 403 rather than 404 for any MAC: the answer says nothing about which hosts exist
    if (!mac || !deps.unattended) return fail(reply, 403, 'no install in progress for this URL');
    try {
      const file = await deps.unattended(mac, req.params.token, req.params.file, clientAddress(req.ip));
      reply.type(file.contentType);
      return file.body;
    } catch (err) {
      return unattendedError(reply, err, mac, req.params.file);
    }
  });

  app.get<{ Querystring: { mac?: string } }>('/boot.ipxe', async (req, reply) => {
    if (!deps.ipxeScript) return fail(reply, 404, 'no iPXE script configured');
    const mac = req.query.mac ? (normMac(req.query.mac) ?? undefined) : undefined;
    try {
      const file = await deps.ipxeScript(mac, clientAddress(req.ip));
      reply.type(file.contentType);
      return file.body;
    } catch (err) {
      if (err instanceof RenderError) return fail(reply, err.status, err.message);
      return fail(reply, 500, `render failed: ${(err as Error).message}`);
    }
  });

  app.get<{ Params: { '*': string } }>('/files/*', async (req, reply) => {
    if (deps.virtualFile) {
      const norm = normalizeRequestPath(req.params['*']);
      let file: VirtualFile | null;
      try {
        file = norm.ok ? await deps.virtualFile(norm.rel, { address: clientAddress(req.ip) }) : null;
      } catch (err) {
        log.error({ err, file: req.params['*'] }, 'virtual file render crashed');
        return fail(reply, 500, `render failed: ${(err as Error).message}`);
      }
      if (file) {
        notesOf(reply).pxeVirtual = true;
        reply.header('content-length', file.content.length);
        reply.type('application/octet-stream');
        return reply.send(file.content);
      }
    }
    const path = await safeResolve(deps.filesRoot, req.params['*']);
    if (!path) return fail(reply, 403, `path escapes the root: ${req.params['*']}`);
    const file = await openRegularFile(path);
    if (!file) return fail(reply, 404, `no such file: ${req.params['*']}`);
    notesOf(reply).pxeVirtual = false;
    reply.hijack();
    sendOpenedFile(req.method, req.headers, reply.raw, file, notesOf(reply), deps.sendfile !== false);
    return reply;
  });

  return app;
}
