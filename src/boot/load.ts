import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { buildApp, type App } from '../app.js';
import { loadConfiguredCatalog } from '../catalog/load.js';
import type { Catalog } from '../catalog/schema.js';
import {
  CatalogRenderError,
  renderIpxeScript,
  renderUnattended,
  TEMPLATE_FILTERS,
  type FirmwareClass,
  type RenderContext,
} from '../catalog/render.js';
import { findHost, hostAccess, loadHosts, type Hosts } from '../hosts/load.js';
import { InstallState } from '../hosts/state.js';
import { InstallTokens } from '../hosts/tokens.js';
import { checkRendering } from '../catalog/check.js';
import { loadTemplateSet } from '../catalog/templates.js';
import { RenderError, type RenderedFile } from './types.js';
import { unknownClientsRule } from './access.js';
import { ClientMemory } from './clients.js';
import { isEfi } from './firmware.js';
import { catalogFileProvider } from './files.js';
import { installedChecker } from '../sync/menus.js';
import type { Logger } from '../log.js';

/**
 * Loads what the policy needs from disk (catalog, hosts file, install-once state)
 * and builds the App plus the HTTP handlers. A reload (SIGHUP) calls this again and
 * swaps the result in whole, so a bad edit never leaves a half-applied policy.
 */
export interface LoadedApp extends App {
  catalog: Catalog;
  hosts: Hosts | undefined;
  renderContext: RenderContext;
  /** an answer file, only with the host's live install token (else RenderError 403) */
  unattended: (mac: string, token: string, file: string, clientAddress: string) => Promise<RenderedFile>;
  /** the installer reports it finished: marks an install_once host installed, ends the token */
  installDone: (mac: string, token: string, clientAddress: string) => Promise<string>;
  ipxeScript: (mac: string | undefined, clientAddress: string) => Promise<RenderedFile>;
  /** what was learnt about clients (shared by every load of one `pxe serve`) */
  clients: ClientMemory;
  /** the render context for a client (the address it was advertised, else the default) */
  renderContextFor: (mac: string | undefined) => RenderContext;
}

/** The address clients reach us at when the config does not say: the first non-internal IPv4. */
export function defaultServerAddress(config: Config): string {
  if (config.serverAddress) return config.serverAddress;
  if (config.listen !== '0.0.0.0') return config.listen;
  for (const list of Object.values(networkInterfaces())) {
    for (const ifc of list ?? []) if (ifc.family === 'IPv4' && !ifc.internal) return ifc.address;
  }
  return '127.0.0.1';
}

const toRenderError = (err: unknown): Error =>
  err instanceof CatalogRenderError ? new RenderError(err.message, err.status === 404 ? 404 : 500) : (err as Error);

export interface LoadOptions {
  /**
   * Issue install tokens when a host's boot config is rendered (`pxe serve`). Off for
   * commands that only show files (`pxe which`): their URLs carry NO_TOKEN and
   * nothing is written to the state directory.
   */
  issueTokens?: boolean;
  /**
   * The server's memory of its clients: `pxe serve` passes the same one to every load
   * so a reload keeps it; a one-off load (`pxe which`, tests) gets a fresh one.
   */
  clients?: ClientMemory;
}

export async function loadApp(config: Config, logger?: Logger, opts: LoadOptions = {}): Promise<LoadedApp> {
  const clients = opts.clients ?? new ClientMemory();
  const catalog: Catalog = loadConfiguredCatalog(config);
  const hosts = existsSync(config.hostsFile) ? loadHosts(config.hostsFile, catalog) : undefined;
  const installState = InstallState.inDir(config.stateDir);
  const tokens = InstallTokens.inDir(config.stateDir, config.install.tokenTtlMinutes);
  const root = config.tftp.root;

  const renderContext: RenderContext = {
    catalog,
    serverAddress: defaultServerAddress(config),
    httpPort: config.http.port,
    mirrors: config.mirrors,
    menu: config.menu,
    templatesDir: config.templatesDir,
    // read and compiled anew on every load (start, SIGHUP): an edit is picked up, a failure never cached
    templates: loadTemplateSet(config.templatesDir, TEMPLATE_FILTERS),
    // Only entries whose files `pxe sync` installed are offered (images/<id>/<version>/<arch>).
    isInstalled: installedChecker(root),
    hostInstalled: (mac: string) => installState.isInstalled(mac),
    ...(opts.issueTokens ? { installToken: (mac: string) => tokens.current(mac) } : {}),
  };
  // Every template and catalog template string test-rendered for every entry: a broken
  // one refuses the start, or the reload (the running set stays), with file:line.
  checkRendering(renderContext, hosts);

  // memdisk and LOCALBOOT entries are BIOS-only: an EFI client gets a menu without them.
  const firmwareOf = (mac: string | undefined): FirmwareClass => (isEfi(clients.firmwareOf(mac)) ? 'efi' : 'bios');

  // Multi-homed hosts: each client's files carry the address the proxyDHCP advertised to
  // it (its arrival interface), not one address for every segment. A configured
  // serverAddress always wins.
  const contextByAddress = new Map<string, RenderContext>();
  const renderContextFor = (mac: string | undefined): RenderContext => {
    const addr = config.serverAddress ? undefined : clients.serverAddressOf(mac);
    if (!addr || addr === renderContext.serverAddress) return renderContext;
    let ctx = contextByAddress.get(addr);
    if (!ctx) {
      // our own addresses: few, but bounded all the same
      if (contextByAddress.size >= 1_000) contextByAddress.clear();
      ctx = { ...renderContext, serverAddress: addr };
      contextByAddress.set(addr, ctx);
    }
    return ctx;
  };

  const emptyHosts: Hosts = { file: '', unknown: undefined, byMac: new Map() };
  const catalogProvider = catalogFileProvider(renderContextFor, () => hosts ?? emptyHosts, logger, {
    firmwareOf: (mac) => clients.firmwareOf(mac),
    hasStaticFile: async (rel) => (await stat(join(root, rel)).catch(() => null))?.isFile() === true,
    // `name` is a bare "<word>.c32" (checked by the provider): no path traversal possible.
    efiModule: async (name) => readFile(join(root, 'efi64', name)).catch(() => null),
  });

  // hosts.yaml's own `unknown:` setting, when present, decides for unlisted MACs.
  const dhcpConfig = { ...config.dhcp, unknownClients: unknownClientsRule(config.dhcp.unknownClients, hosts?.unknown) };
  const base = buildApp(
    { ...config, dhcp: dhcpConfig },
    {
      ...(hosts ? { hostAccess: (mac: string) => hostAccess(hosts, mac) } : {}),
      providers: [catalogProvider],
    },
  );

  return {
    ...base,
    catalog,
    hosts,
    renderContext,
    clients,
    renderContextFor,
    async unattended(mac, token, file) {
      const host = hosts && findHost(hosts, mac);
      // unknown host and bad token look the same: the answer says nothing about which MACs are hosts
      const check = host ? tokens.check(mac, token) : { ok: false as const, reason: 'no install in progress for this host' };
      if (!check.ok) throw new RenderError(`${file} for ${mac}: ${check.reason}`, 403);
      try {
        const out = renderUnattended(renderContextFor(mac), host, file, token);
        return { contentType: out.contentType, body: out.body };
      } catch (err) {
        throw toRenderError(err);
      }
    },
    async installDone(mac, token) {
      const host = hosts && findHost(hosts, mac);
      const check = host ? tokens.check(mac, token) : { ok: false as const, reason: 'no install in progress for this host' };
      if (!host || !check.ok) throw new RenderError(`install done for ${mac}: ${check.ok ? 'unknown host' : check.reason}`, 403);
      const entry = catalog.entries.find((e) => e.id === host.entry);
      if (host.install_once) installState.markInstalled(mac, host.entry, host.version ?? entry?.versions[0]?.version ?? '');
      tokens.revoke(mac);
      logger?.info(
        { mac, hostname: host.hostname, installOnce: host.install_once },
        'install finished (reported by the installer); its token ends',
      );
      return host.install_once ? `${host.hostname}: installed; next boot is from the local disk` : `${host.hostname}: install finished`;
    },
    async ipxeScript(mac) {
      try {
        const host = mac && hosts ? (findHost(hosts, mac) ?? null) : null;
        return {
          contentType: 'text/plain; charset=utf-8',
          body: renderIpxeScript(renderContextFor(mac), host, { firmware: firmwareOf(mac) }),
        };
      } catch (err) {
        throw toRenderError(err);
      }
    },
  };
}
