/**
 * The dashboard on `pxe serve`'s HTTP port: pages at /, /catalog, /hosts, /server, live
 * updates at /dashboard/live, actions at POST /dashboard/actions/…
 *
 * Who may do what: anyone the `allow:` list lets in may read (the HTTP server drops
 * everyone else before this runs); actions need the admin token from pxe.yaml
 * (`dashboard.adminToken`, as a Bearer header or the cookie the sign-in form sets) and,
 * with no token configured, come from loopback only. Every form carries a per-process
 * CSRF value that a page of another origin cannot read. Refusals are 401 and logged.
 * Pages never show a host's password hash or SSH keys: HostView has no field for them.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log.js';
import type { BootEvent } from '../events.js';
import { clientAddress } from '../http/server.js';
import { LiveHub, TOPICS } from './live.js';
import { MachineBook } from './machines.js';
import {
  catalogPage,
  flatStats,
  hostsPage,
  machineRow,
  machinesPage,
  rowId,
  serverPage,
  type CatalogView,
  type HostView,
  type ServerView,
} from './views.js';

export type HostAction = 'reinstall' | 'localboot' | 'remove';

export interface DashboardDeps {
  logger: Logger;
  /** pxe.yaml dashboard.adminToken; undefined: actions from loopback only */
  adminToken?: string | undefined;
  /** the boot events so far (seeding the machine list), oldest first */
  history?: () => Promise<BootEvent[]>;
  /** registers a listener for every new boot event */
  subscribe: (fn: (ev: BootEvent) => void) => void;
  hostOf: (mac: string) => HostView | undefined;
  hosts: () => { file: string; list: HostView[] };
  catalog: () => Promise<CatalogView[]>;
  server: () => Omit<ServerView, 'rates'>;
  /** runs `pxe sync --only id`, reporting each output line; resolves to its exit code */
  sync?: (id: string, onLine: (line: string) => void) => Promise<number>;
  /** the host commands (pxe host reinstall / rm, local boot); undefined: hosts are read-only */
  hostAction?: (mac: string, action: HostAction) => Promise<string>;
}

const COOKIE = 'pxe_admin';
const isLoopback = (ip: string): boolean => ip === '::1' || ip.startsWith('127.');

export interface Dashboard {
  book: MachineBook;
  hub: LiveHub;
}

export function registerDashboard(app: FastifyInstance, deps: DashboardDeps): Dashboard {
  const log = deps.logger.child({ svc: 'dashboard' });
  const book = new MachineBook();
  const secret = randomBytes(32);
  const csrf = createHmac('sha256', secret).update('csrf').digest('base64url');
  const cookieValue = deps.adminToken ? createHmac('sha256', secret).update(deps.adminToken).digest('base64url') : undefined;
  let last: { at: number; values: Record<string, number> } | undefined;

  const rates = (): ServerView => {
    const v = { ...deps.server(), rates: {} as Record<string, number> };
    const now = Date.now();
    const values = flatStats(v);
    const per = (keys: string[]): number =>
      keys.reduce((n, k) => n + (values[k] ?? 0) - (last?.values[k] ?? values[k] ?? 0), 0) /
      Math.max(0.001, (now - (last?.at ?? now - 1000)) / 1000);
    v.rates = {
      'dhcp-replies-per-s': per(['dhcp-offers', 'dhcp-acks']),
      'tftp-requests-per-s': per(['tftp-requests']),
      'http-requests-per-s': per(['http-requests']),
    };
    last = { at: now, values };
    return v;
  };
  const hub = new LiveHub(() => JSON.stringify(flatStats(rates())));

  const observe = (ev: BootEvent): void => {
    const m = book.observe(ev);
    if (m) hub.queueMachine(rowId(m.mac), () => machineRow(m, deps.hostOf(m.mac)).text);
  };
  // The log on disk seeds the list; events recorded while it is read wait in `early` and
  // are applied after it (the part of the file written meanwhile is skipped), so no
  // event is applied twice or out of order.
  let early: BootEvent[] | undefined = deps.history ? [] : undefined;
  deps.subscribe((ev) => (early ? early.length < 100_000 && early.push(ev) : observe(ev)));
  void deps
    .history?.()
    .then(
      (events) => {
        const cut = early?.[0]?.time;
        for (const ev of events) if (cut === undefined || ev.time < cut) book.observe(ev);
      },
      (err: Error) => log.warn({ reason: err.message }, 'dashboard: could not read the boot-event log'),
    )
    .finally(() => {
      const live = early ?? [];
      early = undefined;
      for (const ev of live) observe(ev);
    });

  const safeEq = (a: string, b: string): boolean => {
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return x.length === y.length && timingSafeEqual(x, y);
  };
  const cookieOf = (req: FastifyRequest): string | undefined => {
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === COOKIE) return v.join('=');
    }
    return undefined;
  };
  const isAdmin = (req: FastifyRequest): boolean => {
    if (!deps.adminToken) return isLoopback(clientAddress(req.ip));
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ') && safeEq(auth.slice(7), deps.adminToken)) return true;
    const c = cookieOf(req);
    return c !== undefined && cookieValue !== undefined && safeEq(c, cookieValue);
  };
  /** Actions: an admin, and the form's CSRF value (or a Bearer token, which a browser never sends by itself). */
  const authorize = (req: FastifyRequest, reply: FastifyReply, action: string): boolean => {
    const body = (req.body ?? {}) as Record<string, string>;
    const bearer = req.headers.authorization?.startsWith('Bearer ') === true;
    const admin = isAdmin(req);
    if (admin && (bearer || (typeof body.csrf === 'string' && safeEq(body.csrf, csrf)))) return true;
    if (admin) {
      log.warn({ client: clientAddress(req.ip), action, reason: 'no form token' }, 'dashboard action refused');
      void reply.code(403).type('text/plain').send('the form token is missing or stale: reload the page and try again\n');
      return false;
    }
    log.warn(
      {
        client: clientAddress(req.ip),
        action,
        reason: deps.adminToken ? 'no valid admin token' : 'actions need loopback or dashboard.adminToken',
      },
      'dashboard action refused',
    );
    void reply
      .code(401)
      .type('text/plain')
      .send(deps.adminToken ? 'admin token required\n' : 'actions are allowed from loopback only (set dashboard.adminToken in pxe.yaml)\n');
    return false;
  };

  app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    const page = (reply: FastifyReply, h: { text: string }): FastifyReply =>
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(h.text);

    scope.get<{ Querystring: { limit?: string } }>('/', async (req, reply) => {
      const limit = Math.min(5000, Math.max(1, Number(req.query.limit) || 500));
      return page(reply, machinesPage(book.list(limit), book.size, deps.hostOf, isAdmin(req)));
    });
    scope.get('/catalog', async (req, reply) => page(reply, catalogPage(await deps.catalog(), isAdmin(req), csrf)));
    scope.get('/hosts', async (req, reply) => {
      const h = deps.hosts();
      return page(reply, hostsPage(h.list, isAdmin(req), csrf, h.file, deps.hostAction !== undefined));
    });
    scope.get('/server', async (req, reply) => page(reply, serverPage(rates(), isAdmin(req))));
    scope.get<{ Querystring: { topic?: string } }>('/dashboard/live', async (req, reply) => {
      const topic = TOPICS.find((t) => t === req.query.topic);
      if (!topic) return reply.code(400).send('topic: machines, sync or server\n');
      reply.hijack();
      if (!hub.attach(topic, reply.raw)) {
        reply.raw.writeHead(503, { 'retry-after': '10' }).end('too many live views\n');
      }
    });
    scope.get('/dashboard/machines.json', async (_req, reply) => reply.send({ total: book.size, machines: book.list(500) }));

    scope.post('/dashboard/login', async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, string>;
      if (
        deps.adminToken &&
        typeof body.token === 'string' &&
        safeEq(body.token, deps.adminToken) &&
        typeof body.csrf === 'string' &&
        safeEq(body.csrf, csrf)
      ) {
        return reply.header('set-cookie', `${COOKIE}=${cookieValue}; HttpOnly; SameSite=Strict; Path=/`).redirect('/hosts', 303);
      }
      log.warn({ client: clientAddress(req.ip), action: 'login' }, 'dashboard action refused');
      return reply.code(401).type('text/plain').send('wrong token\n');
    });

    let syncing: string | undefined;
    scope.post<{ Params: { id: string } }>('/dashboard/actions/sync/:id', async (req, reply) => {
      if (!authorize(req, reply, `sync ${req.params.id}`)) return reply;
      if (!deps.sync) return reply.code(501).send('sync is not available in this server\n');
      if (syncing) return reply.code(409).send(`a sync of ${syncing} is running\n`);
      const id = req.params.id;
      syncing = id;
      log.info({ client: clientAddress(req.ip), entry: id }, 'dashboard: sync started');
      hub.send('sync', 'sync', { line: `pxe sync --only ${id}` });
      void deps
        .sync(id, (line) => hub.send('sync', 'sync', { line }))
        .then(
          (code) =>
            hub.send('sync', 'sync', {
              line: code === 0 ? `${id}: done` : `${id}: failed (exit ${code}); the previous files are still served`,
              done: true,
              code,
            }),
          (err: Error) => hub.send('sync', 'sync', { line: `${id}: ${err.message}`, done: true, code: 2 }),
        )
        .finally(() => (syncing = undefined));
      return req.headers.accept?.includes('text/html') ? reply.redirect('/catalog', 303) : reply.code(202).send({ started: id });
    });

    scope.post<{ Params: { mac: string; action: string } }>('/dashboard/actions/hosts/:mac/:action', async (req, reply) => {
      const action = req.params.action as HostAction;
      if (!['reinstall', 'localboot', 'remove'].includes(action)) return reply.code(404).send('unknown action\n');
      if (!authorize(req, reply, `${action} ${req.params.mac}`)) return reply;
      if (!deps.hostAction) return reply.code(501).send('host actions are not available\n');
      try {
        const what = await deps.hostAction(req.params.mac, action);
        log.info({ client: clientAddress(req.ip), mac: req.params.mac, action }, `dashboard: ${what}`);
        return req.headers.accept?.includes('text/html') ? reply.redirect('/hosts', 303) : reply.send({ ok: true, result: what });
      } catch (err) {
        return reply
          .code(400)
          .type('text/plain')
          .send(`${(err as Error).message}\n`);
      }
    });
  });
  return { book, hub };
}
