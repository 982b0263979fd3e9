/**
 * What the dashboard reads from a running `pxe serve`: the boot-event log, the loaded
 * app (hosts, catalog: it changes on SIGHUP, hence the getter), metrics, and the sync
 * engine for the page's "sync" action (the same runSync as `pxe sync --only ID`).
 */
import { PassThrough } from 'node:stream';
import { createInterface } from 'node:readline';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { BootEventLog } from '../events.js';
import { readEvents } from '../events.js';
import type { Metrics } from '../metrics.js';
import type { LoadedApp } from '../boot/load.js';
import { listEntries } from '../sync/list.js';
import { runSync } from '../sync/engine.js';
import { nativeUdpStatus } from '../native/udp.js';
import { reinstallHost, removeHost, type HostEditResult } from '../hosts/edit.js';
import { InstallState } from '../hosts/state.js';
import { registerDashboard, type Dashboard, type DashboardDeps, type HostAction } from './routes.js';
import type { HostView } from './views.js';

/** How many events of the persisted log seed the machine list at start. */
const HISTORY_EVENTS = 200_000;

export interface DashboardSources {
  config: () => Config;
  logger: Logger;
  events: BootEventLog;
  eventsFile: string;
  metrics: Metrics;
  app: () => LoadedApp;
  services: () => Array<{ service: string; port: number | string; state: string }>;
}

const done = <T>(r: HostEditResult<T>): T => {
  if (!r.ok) throw new Error(r.message);
  return r.value;
};

/**
 * The page's host actions, through the same code as `pxe host reinstall` / `pxe host rm`
 * (hosts/edit.ts); "local boot" ends a pending install-once install, as the installer's
 * done report would. The hosts file watcher reloads the server after an edit.
 */
function hostAction(s: DashboardSources): NonNullable<DashboardDeps['hostAction']> {
  return async (mac: string, action: HostAction): Promise<string> => {
    const config = s.config();
    const app = s.app();
    if (action === 'reinstall') {
      const v = done(reinstallHost(config.hostsFile, app.catalog, config.stateDir, mac, config.install.tokenTtlMinutes));
      return `${v.mac}: a new install starts at its next boot`;
    }
    if (action === 'remove') return `${done(removeHost(config.hostsFile, app.catalog, mac)).mac}: removed from ${config.hostsFile}`;
    const host = app.hosts?.byMac.get(mac.toLowerCase().replace(/-/g, ':'));
    if (!host) throw new Error(`${mac} is not in ${config.hostsFile}`);
    if (!host.install_once)
      throw new Error(`${mac} is not an install-once host: it boots ${host.entry} on every boot (change its entry to boot locally)`);
    InstallState.inDir(config.stateDir).markInstalled(host.mac, host.entry, host.version ?? '');
    return `${host.mac}: marked installed, boots from its disk until reinstalled`;
  };
}

export function mountDashboard(http: FastifyInstance, s: DashboardSources): Dashboard {
  const hostView = (mac: string): HostView | undefined => {
    const app = s.app();
    const h = app.hosts?.byMac.get(mac);
    if (!h) return undefined;
    return {
      mac: h.mac,
      hostname: h.hostname,
      entry: h.entry,
      version: h.version,
      arch: h.arch,
      allow: h.allow,
      installOnce: h.install_once,
      installed: h.install_once && app.renderContext.hostInstalled?.(h.mac) === true,
    };
  };
  return registerDashboard(http, {
    logger: s.logger,
    adminToken: s.config().dashboard.adminToken,
    history: () => readEvents(s.eventsFile, undefined, HISTORY_EVENTS),
    subscribe: (fn) => s.events.subscribe(fn),
    hostOf: hostView,
    hosts: () => {
      const app = s.app();
      const list = [...(app.hosts?.byMac.keys() ?? [])].map((mac) => hostView(mac)).filter((h): h is HostView => h !== undefined);
      return { file: app.hosts?.file ?? s.config().hostsFile, list };
    },
    catalog: async () =>
      (await listEntries({ config: s.config(), catalog: s.app().catalog })).map((r) => ({
        id: r.id,
        label: r.label,
        version: r.version,
        arch: r.arch,
        state: r.state,
        trust: r.trust ?? r.declaredTrust,
        lastSuccess: r.lastSuccess,
        lastError: r.lastError,
      })),
    server: () => ({
      ports: s.services(),
      io: nativeUdpStatus().native ? 'native (src/native/udp.c)' : `node:dgram (${nativeUdpStatus().reason})`,
      allow: s.config().allow,
      stats: s.metrics.snapshot(),
    }),
    sync: async (id, onLine) => {
      const out = new PassThrough();
      const lines = createInterface({ input: out });
      lines.on('line', onLine);
      try {
        const res = await runSync({ config: s.config(), only: id, progress: 'plain', out, logger: s.logger.child({ svc: 'sync' }) });
        return res.exitCode;
      } finally {
        out.end();
      }
    },
    hostAction: hostAction(s),
  });
}
