import { mkdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from './config.js';
import { loadConfig } from './config.js';
import { BootEventLog } from './events.js';
import { createHttpServer } from './http/server.js';
import { boundHttpServer, httpConnectionBudget, openFileLimit } from './http/limits.js';
import { nativeSendfileStatus } from './native/sendfile.js';
import { mountDashboard } from './dashboard/wiring.js';
import { createLogger, type Logger } from './log.js';
import { Metrics, type StatsShape } from './metrics.js';
import { NetworkAccess } from './boot/access.js';
import { ClientMemory } from './boot/clients.js';
import type { Booter, DhcpClient, FileClient } from './boot/types.js';
import { ProxyDhcpServer } from './dhcp/proxy.js';
import { TftpServer } from './tftp/server.js';
import { loadApp, type LoadedApp } from './boot/load.js';
import { UserError } from './errors.js';
import { watchFileChanges } from './hosts/watch.js';

/**
 * `pxe serve`: proxyDHCP + TFTP + HTTP around one policy. The protocol servers get a
 * delegating Booter, so SIGHUP can swap the whole policy (config, catalog, hosts) in
 * one assignment while transfers in flight carry on untouched.
 */
export interface RunningServer {
  close(graceMs?: number): Promise<void>;
  reload(): Promise<void>;
  app(): LoadedApp;
  logger: Logger;
}

/** Turns socket bind errors into one line a person can act on. */
function bindError(what: string, host: string, port: number, err: unknown): UserError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const msg = (err as Error).message;
  if (code === 'EADDRINUSE' || /EADDRINUSE/.test(msg))
    return new UserError(`${what}: port ${port} on ${host} is already in use (another TFTP/DHCP server running?)`, 1);
  if (code === 'EACCES' || /EACCES/.test(msg))
    return new UserError(
      `${what}: no permission to bind port ${port} on ${host} (run as root or grant CAP_NET_BIND_SERVICE; see README "Running as a daemon")`,
      1,
    );
  if (code === 'EADDRNOTAVAIL' || /EADDRNOTAVAIL/.test(msg))
    return new UserError(`${what}: address ${host} is not configured on this machine`, 1);
  return new UserError(`${what}: cannot listen on ${host}:${port}: ${msg}`, 1);
}

export interface StartOptions {
  logger?: Logger;
  /** re-reads the configuration for SIGHUP (file + the same command-line overrides) */
  reloadConfig?: () => Config;
}

export async function startServer(initial: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger(initial.logLevel);
  let config = initial;

  if (config.tftp.enabled || config.http.enabled) {
    const st = await stat(config.tftp.root).catch(() => null);
    if (!st?.isDirectory())
      throw new UserError(
        `TFTP root ${config.tftp.root} does not exist or is not a directory (create it, or set tftp.root / --tftp-root)`,
        1,
      );
  }
  // Boot events, install-once markers and install tokens live there: a read-only state
  // directory (the default next to /etc/pxe/pxe.yaml under ProtectSystem=strict) would
  // drop events silently and fail every install: refuse to start instead.
  try {
    await mkdir(config.stateDir, { recursive: true });
    const probe = join(config.stateDir, `.write-test.${process.pid}`);
    await writeFile(probe, '');
    await unlink(probe);
  } catch (err) {
    throw new UserError(
      `state directory ${config.stateDir} is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): set stateDir in ${config.source} to a writable directory (systemd: one in ReadWritePaths)`,
      1,
    );
  }

  // One memory for the server's lifetime: every reload gets the same (boot/clients.ts).
  const clients = new ClientMemory();
  let app = await loadApp(config, logger, { issueTokens: true, clients });
  const events = new BootEventLog(join(config.stateDir, 'boot-events.jsonl'), {
    macFor: (ip) => clients.macFor(ip),
    maxBytes: config.eventLog.maxMegabytes * 1024 * 1024,
  });
  const metrics = new Metrics();
  metrics.setSyncStateDir(config.stateDir);
  let access = new NetworkAccess(config.allow);
  const allowed = (address: string) => access.allowed(address);

  const booter: Booter = {
    dhcpBoot: (client: DhcpClient) => app.booter.dhcpBoot(client),
    virtualFile: (relPath: string, client: FileClient) => app.booter.virtualFile(relPath, clients.identify(relPath, client)),
  };

  let tftp: TftpServer | undefined;
  let dhcp: ProxyDhcpServer | undefined;
  let http: ReturnType<typeof createHttpServer> | undefined;
  const started: Array<{ close(graceMs?: number): Promise<void> }> = [];

  /** Binds a protocol server (one clear line on failure), registers it for shutdown and /metrics. */
  const startUdpService = async (
    subsystem: string,
    label: string,
    server: { start(): Promise<void>; close(graceMs?: number): Promise<void>; stats: object },
    port: number,
  ): Promise<void> => {
    try {
      await server.start();
    } catch (err) {
      throw bindError(label, config.listen, port, err);
    }
    started.push(server);
    metrics.addSource(subsystem, () => ({ ...(server.stats as StatsShape) }));
  };

  const stopAll = async (graceMs = 0) => {
    await Promise.allSettled(started.map((s) => s.close(graceMs)));
    await events.flush();
  };

  try {
    if (config.tftp.enabled) {
      const listen = [{ host: config.listen, port: config.tftp.port }];
      if (config.tftp.ipv6 && config.listen === '0.0.0.0') listen.push({ host: '::', port: config.tftp.port });
      tftp = new TftpServer({
        root: config.tftp.root,
        listen,
        maxBlksize: config.tftp.maxBlksize,
        maxWindowsize: config.tftp.maxWindowsize,
        defaultTimeoutMs: config.tftp.timeoutMs,
        maxRetries: config.tftp.maxRetries,
        busyPollUs: config.tftp.busyPollUs,
        maxTransfers: config.tftp.maxTransfers,
        maxTransfersPerClient: config.tftp.maxTransfersPerClient,
        ...(config.tftp.workers === undefined ? {} : { workers: config.tftp.workers }),
        provider: booter,
        allow: allowed,
        logger: logger.child({ svc: 'tftp' }),
        onTransferEnd: (t) => {
          events.record({
            proto: 'tftp',
            ip: t.client,
            what: `${t.outcome === 'ok' ? 'fetched' : `failed (${t.outcome})`} ${t.file}`,
            detail: { bytes: t.size, ms: t.durationMs, ...(t.reason ? { reason: t.reason } : {}) },
          });
        },
      });
      await startUdpService('tftp', 'TFTP', tftp, config.tftp.port);
    }

    if (config.dhcp.enabled) {
      dhcp = new ProxyDhcpServer({
        booter,
        logger,
        dhcpPort: config.dhcp.port,
        pxePort: config.dhcp.pxePort,
        bindAddress: config.listen,
        ...(config.serverAddress ? { serverAddress: config.serverAddress } : {}),
        allowHttpClient: config.dhcp.httpClient,
        allow: (address) => access.dhcpAllowed(address),
        ratePerMacPerSecond: config.dhcp.ratePerMac,
        onEvent: (ev) => {
          if (ev.client) clients.noteDhcp(ev.mac, ev.client.firmware, ev.reply === 'none' ? undefined : ev.client.serverAddress);
          if (ev.port === 'pxe' && ev.sourceAddress !== '0.0.0.0') clients.noteAddress(ev.sourceAddress, ev.mac);
          events.record({
            proto: 'dhcp',
            mac: ev.mac,
            what: ev.reply === 'none' ? `no reply: ${ev.reason}` : `${ev.reply} ${ev.bootFile ?? ''} via ${ev.nextServer ?? '?'}`,
            detail: { port: ev.port, firmware: ev.client?.firmware, ipxe: ev.client?.isIpxe, vendorClass: ev.client?.vendorClass },
          });
        },
      });
      await startUdpService('dhcp', 'proxyDHCP', dhcp, config.dhcp.port);
    }

    if (config.http.enabled) {
      let httpDenied = 0;
      let httpRequests = 0;
      http = createHttpServer({
        logger,
        filesRoot: config.tftp.root,
        virtualFile: (relPath, client) => booter.virtualFile(relPath, client),
        unattended: async (mac, token, file, addr) => {
          const out = await app.unattended(mac, token, file, addr);
          // learnt only with a valid token: a refused client must not borrow the host's MAC
          clients.noteAddress(addr, mac);
          return out;
        },
        installDone: async (mac, token, addr) => {
          const said = await app.installDone(mac, token, addr);
          events.record({ proto: 'http', mac, ip: addr, what: `install finished: ${said}` });
          return said;
        },
        ipxeScript: (mac, addr) => app.ipxeScript(mac, addr),
        allow: allowed,
        metrics: () => metrics.render(),
        health: () => ({
          tftp: tftp ? 'up' : 'off',
          dhcp: dhcp ? 'up' : 'off',
          catalogEntries: app.catalog.entries.length,
          hosts: app.hosts?.byMac.size ?? 0,
        }),
        onRequest: (ev) => {
          httpRequests++;
          events.record({
            proto: 'http',
            ip: ev.client,
            what: `${ev.method} ${ev.url} -> ${ev.status}`,
            detail: { bytes: ev.bytes, ...(ev.reason ? { reason: ev.reason } : {}) },
          });
        },
        onDenied: () => void httpDenied++,
      });
      const limits = {
        maxConnections: httpConnectionBudget(
          config.http.maxConnections,
          openFileLimit(),
          config.tftp.enabled ? config.tftp.maxTransfers : 0,
        ),
        maxConnectionsPerClient: config.http.maxConnectionsPerClient,
        idleTimeoutMs: config.http.idleTimeoutSeconds * 1000,
        requestTimeoutMs: config.http.requestTimeoutSeconds * 1000,
      };
      const bounded = boundHttpServer(http.server, limits, logger.child({ svc: 'http' }));
      metrics.addSource('http', () => ({ requests: httpRequests, denied: httpDenied, ...bounded.stats() }));
      if (config.dashboard.enabled) {
        mountDashboard(http, {
          config: () => config,
          logger,
          events,
          eventsFile: join(config.stateDir, 'boot-events.jsonl'),
          metrics,
          app: () => app,
          services: () => [
            { service: 'proxyDHCP', port: `${config.dhcp.port}, ${config.dhcp.pxePort}`, state: dhcp ? 'up' : 'off' },
            { service: 'TFTP', port: config.tftp.port, state: tftp ? 'up' : 'off' },
            { service: 'HTTP', port: config.http.port, state: 'up' },
          ],
        });
      }
      const host = config.http.ipv6 && config.listen === '0.0.0.0' ? '::' : config.listen;
      try {
        // '::' is dual-stack on Linux: IPv4 clients arrive as ::ffff:a.b.c.d
        await http.listen({ host, port: config.http.port, ipv6Only: false } as { host: string; port: number });
      } catch (err) {
        throw bindError('HTTP', host, config.http.port, err);
      }
      const h = http;
      started.push({ close: async () => void (await h.close()) });
      const sendfile = nativeSendfileStatus();
      logger.info(
        {
          svc: 'http',
          ...limits,
          addresses: http.addresses().map((a) => (typeof a === 'string' ? a : `${a.address}:${a.port}`)),
          files: sendfile.native ? 'sendfile' : `node stream (${sendfile.reason})`,
        },
        'http server listening',
      );
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  logger.info(
    {
      config: config.source,
      configWhy: config.sourceWhy,
      serverAddress: app.renderContext.serverAddress,
      catalogEntries: app.catalog.entries.length,
      hosts: app.hosts?.byMac.size ?? 0,
    },
    'pxe serving',
  );

  const reload = async () => {
    // Validate everything first; only a fully loaded new policy replaces the old one.
    const next = opts.reloadConfig ? opts.reloadConfig() : config.source === '(embedded defaults)' ? config : loadConfig(config.source);
    // Sockets stay as they are: ports, addresses and the TFTP root need a restart.
    const nextApp = await loadApp({ ...next, listen: config.listen, tftp: { ...next.tftp, root: config.tftp.root } }, logger, {
      issueTokens: true,
      clients,
    });
    if (
      next.tftp.port !== config.tftp.port ||
      next.dhcp.port !== config.dhcp.port ||
      next.http.port !== config.http.port ||
      next.listen !== config.listen
    ) {
      logger.warn('reload: port or listen-address changes take effect only after a restart');
    }
    config = {
      ...config,
      allow: next.allow,
      dhcp: { ...config.dhcp, bootFiles: next.dhcp.bootFiles, unknownClients: next.dhcp.unknownClients },
    };
    app = nextApp;
    access = new NetworkAccess(next.allow);
    logger.info(
      { catalogEntries: app.catalog.entries.length, hosts: app.hosts?.byMac.size ?? 0 },
      'reloaded configuration, catalog and hosts',
    );
  };

  return { close: stopAll, reload, app: () => app, logger };
}

/** `pxe serve` in the foreground: signals for reload and graceful stop. */
export async function serve(config: Config, reloadConfig?: () => Config): Promise<void> {
  const server = await startServer(config, reloadConfig ? { reloadConfig } : {});
  const { logger } = server;
  process.on('SIGHUP', () => {
    server
      .reload()
      .catch((err: Error) => logger.error({ reason: err.message }, 'reload rejected; the previous configuration stays in force'));
  });
  // hosts.yaml is reloaded when it changes (pxe host add/rm, the dashboard, an editor):
  // no restart and no signal needed. The same validated reload as SIGHUP.
  const stopWatching = watchFileChanges(config.hostsFile, () => {
    logger.info({ file: config.hostsFile }, 'hosts file changed: reloading');
    server
      .reload()
      .catch((err: Error) => logger.error({ reason: err.message }, 'reload rejected; the previous configuration stays in force'));
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    stopWatching();
    logger.info({ signal }, 'stopping: no new requests; letting transfers in flight finish (up to 10 s)');
    server.close(10_000).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
