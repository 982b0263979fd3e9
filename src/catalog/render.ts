import nunjucks from 'nunjucks';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYamlText } from 'yaml';
import type { Host } from '../hosts/schema.js';
import {
  entryMirror,
  NO_MIRRORS,
  entryVars,
  expandTarget,
  versionArches,
  type Arch,
  type Catalog,
  type CatalogEntry,
  type ExpandedTarget,
  type SiteMirrors,
  type UnattendedKind,
  type VersionSpec,
} from './schema.js';
import { renderInline } from './template.js';
import { loadTemplateSet, type FilterSet, type TemplateSet } from './templates.js';
import { NO_TOKEN } from '../hosts/tokens.js';

/**
 * Renders boot menus (pxelinux, iPXE, GRUB) and unattended-install files from one
 * model. Everything is rendered to a string in memory and returned whole (or a
 * typed error is thrown): a client never gets half a file.
 *
 * URL scheme (documented in templates/README.md):
 *   http://<server>:<port><filesPath>/images/<id>/<version>/<arch>/<file>  kernels, initrds, images
 *   http://<server>:<port>/unattended/<mac-with-dashes>/<token>/<file>     per-host answers
 *     preseed.cfg | kickstart.ks | autoyast.xml | user-data, meta-data, vendor-data | config.ign
 *   http://<server>:<port>/unattended/<mac-with-dashes>/<token>/done       the installer's "finished"
 * <token> is the host's install token (src/hosts/tokens.ts): without it the server refuses.
 * TFTP clients (pxelinux, GRUB) get the same files by the tftproot-relative path
 * `images/<id>/<version>/<arch>/<file>`.
 */

export class CatalogRenderError extends Error {
  constructor(
    message: string,
    /** 404: nothing to render for this request (unknown host/file); 500: a template or catalog fault */
    readonly status: 404 | 500,
  ) {
    super(message);
    this.name = 'CatalogRenderError';
  }
}

export type FirmwareClass = 'bios' | 'efi';

export interface RenderContext {
  catalog: Catalog;
  /** address clients reach us at (HTTP host, TFTP next-server) */
  serverAddress: string;
  httpPort: number;
  /** URL path prefix under which the HTTP server serves tftproot (default "/files") */
  httpFilesPath?: string;
  /** pxe.yaml `mirrors`: every rendered file names the site mirror of an entry that has one */
  mirrors?: SiteMirrors;
  /** are this entry/version/arch's files synced into tftproot? Only those are offered. */
  isInstalled: (entryId: string, version: string, arch: Arch) => boolean;
  /** install-once state: has this host (MAC) already installed? */
  hostInstalled?: (mac: string) => boolean;
  /**
   * The host's install token for the URLs its boot config and answer files carry
   * (issuing one when none is live: src/hosts/tokens.ts). Absent (pxe which, pxe
   * render): URLs carry NO_TOKEN, which the server refuses, and nothing is written.
   */
  installToken?: (mac: string) => string;
  /** templates directory (default: the project's templates/) */
  templatesDir?: string;
  /** the compiled templates of this load (src/catalog/templates.ts); else loaded once per directory */
  templates?: TemplateSet;
  /**
   * pxe.yaml `menu`. `default` is a catalog entry id: its first synced, usable item
   * becomes ONTIMEOUT. When that entry is not offered (not synced, memdisk under UEFI)
   * the catalog's own default (local boot) stays, so a typo never starts an installer.
   */
  menu?: {
    title?: string | undefined;
    timeoutSeconds?: number | undefined;
    ui?: 'vesamenu.c32' | 'menu.c32' | undefined;
    default?: string | undefined;
  };
}

export interface RenderOptions {
  /** client architecture (default x86_64) */
  arch?: Arch;
  /** firmware class: memdisk and LOCALBOOT only work under BIOS */
  firmware?: FirmwareClass;
}

interface FileRef {
  /** tftproot-relative path */
  tftp: string;
  /** full HTTP URL */
  http: string;
  /** base name (iPXE names an initrd by it; `initrd=<name>`) */
  name: string;
}

export interface BootItem {
  /** unique label (pxelinux LABEL, iPXE label, GRUB --id): [a-z0-9_.-] */
  label: string;
  title: string;
  entryId: string;
  version: string;
  arch: Arch;
  method: 'linux' | 'memdisk' | 'chain' | 'localboot';
  kernel?: FileRef;
  initrds: FileRef[];
  image?: FileRef & { format: 'iso' | 'raw' };
  chain?: FileRef;
  /** kernel arguments, rendered (without initrd=) */
  append: string;
  trust: string;
}

export interface MenuGroup {
  title: string;
  /** unique tag for the submenu */
  tag: string;
  items: BootItem[];
}

export interface MenuModel {
  title: string;
  timeoutSeconds: number;
  ui: string;
  defaultLabel: string;
  /** top-level items (local boot) */
  top: BootItem[];
  groups: MenuGroup[];
}

export const UNATTENDED_FILES: Record<UnattendedKind, { primary: string; others: string[] }> = {
  preseed: { primary: 'preseed.cfg', others: [] },
  kickstart: { primary: 'kickstart.ks', others: [] },
  autoyast: { primary: 'autoyast.xml', others: [] },
  autoinstall: { primary: 'user-data', others: ['meta-data', 'vendor-data'] },
  ignition: { primary: 'config.ign', others: [] },
};

const CONTENT_TYPES: Record<string, string> = {
  'preseed.cfg': 'text/plain; charset=utf-8',
  'kickstart.ks': 'text/plain; charset=utf-8',
  'autoyast.xml': 'application/xml; charset=utf-8',
  'user-data': 'text/cloud-config; charset=utf-8',
  'meta-data': 'text/plain; charset=utf-8',
  'vendor-data': 'text/cloud-config; charset=utf-8',
  'config.ign': 'application/vnd.coreos.ignition+json',
};

const TEMPLATE_OF: Record<string, string> = {
  'preseed.cfg': 'unattended/preseed.cfg.njk',
  'kickstart.ks': 'unattended/kickstart.ks.njk',
  'autoyast.xml': 'unattended/autoyast.xml.njk',
  'user-data': 'unattended/user-data.njk',
  'meta-data': 'unattended/meta-data.njk',
  'vendor-data': 'unattended/vendor-data.njk',
  'config.ign': 'unattended/config.ign.njk',
};

export function defaultTemplatesDir(): string {
  // src/catalog/render.ts and dist/catalog/render.js are both two levels below the project root.
  return fileURLToPath(new URL('../../templates', import.meta.url));
}

/** Filters every template set gets. */
export const TEMPLATE_FILTERS: FilterSet = {
  // GRUB shell word quoting (cobbler#1777: ';' in ds=nocloud-net;s= ends the command otherwise).
  grubq: (s: unknown) => grubQuote(String(s)),
  grubargs: (s: unknown) => grubArgs(String(s)),
  // For data: URLs in Ignition.
  urlencode_all: (s: unknown) => encodeURIComponent(String(s)),
};

/** Sets for contexts built without one (one-shot commands, tests), by directory. */
const fallbackSets = new Map<string, TemplateSet>();
/** The context's template set (`pxe serve` loads one per start/SIGHUP: wiring); XML templates autoescape. */
function env(ctx: RenderContext, autoescape: boolean): nunjucks.Environment {
  let set = ctx.templates;
  if (!set) {
    const dir = ctx.templatesDir ?? defaultTemplatesDir();
    if (!existsSync(dir)) throw new CatalogRenderError(`templates directory ${dir} does not exist`, 500);
    set = fallbackSets.get(dir);
    if (!set) {
      set = loadTemplateSet(dir, TEMPLATE_FILTERS);
      fallbackSets.set(dir, set);
    }
  }
  return autoescape ? set.xml : set.text;
}

export function renderFile(ctx: RenderContext, name: string, vars: Record<string, unknown>, autoescape = false): string {
  try {
    return env(ctx, autoescape).render(name, vars);
  } catch (err) {
    if (err instanceof CatalogRenderError) throw err;
    const msg = (err as Error).message.replace(/\s+/g, ' ').trim();
    throw new CatalogRenderError(`template ${name}: ${msg}`, 500);
  }
}

/** Quotes one GRUB word: plain when safe, else single-quoted ('\'' for a quote). */
export function grubQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Quotes every whitespace-separated kernel argument for GRUB's `linux` command. */
export function grubArgs(args: string): string {
  return args
    .split(/\s+/)
    .filter((w) => w !== '')
    .map(grubQuote)
    .join(' ');
}

export function httpBase(ctx: RenderContext): string {
  const host = ctx.serverAddress.includes(':') ? `[${ctx.serverAddress}]` : ctx.serverAddress;
  return `http://${host}:${ctx.httpPort}`;
}

function filesBase(ctx: RenderContext): string {
  return `${httpBase(ctx)}/${(ctx.httpFilesPath ?? '/files').replace(/^\/+|\/+$/g, '')}`.replace(/\/$/, '');
}

/** "52:54:00:12:34:56" -> "52-54-00-12-34-56" (URL path segment) */
export function macSlug(mac: string): string {
  return mac.toLowerCase().replace(/:/g, '-');
}

export function unattendedBaseUrl(ctx: RenderContext, mac: string, token: string): string {
  return `${httpBase(ctx)}/unattended/${macSlug(mac)}/${token}/`;
}

function fileRef(ctx: RenderContext, relPath: string): FileRef {
  return { tftp: relPath, http: `${filesBase(ctx)}/${relPath}`, name: relPath.slice(relPath.lastIndexOf('/') + 1) };
}

function labelOf(entryId: string, version: string, arch: Arch): string {
  return `${entryId}-${version}-${arch}`.toLowerCase().replace(/[^a-z0-9_.-]/g, '_');
}

/**
 * Host-specific template variables (empty in menus, where no host is known). `token`:
 * the one the request was authenticated with (answer files); else the host's current
 * one, asked only when the entry has answer files.
 */
function hostVars(ctx: RenderContext, entry: CatalogEntry, host: Host, token?: string): Record<string, unknown> {
  const kind = entry.unattended === 'none' ? undefined : entry.unattended;
  const base = unattendedBaseUrl(ctx, host.mac, (kind ? (token ?? ctx.installToken?.(host.mac)) : undefined) ?? NO_TOKEN);
  return {
    host,
    hostname: host.hostname,
    automation_dir: base,
    automation_url: kind ? `${base}${UNATTENDED_FILES[kind].primary}` : '',
    // the installer's last step reports here: that, not fetching the answers, ends the install
    install_done_url: `${base}done`,
  };
}

function commonVars(
  ctx: RenderContext,
  entry: CatalogEntry,
  v: VersionSpec,
  arch: Arch,
  target: ExpandedTarget | undefined,
): Record<string, unknown> {
  const mirror = entryMirror(entry, ctx.mirrors ?? NO_MIRRORS);
  const vars: Record<string, unknown> = {
    ...entryVars(entry, v, arch, mirror),
    http_base: httpBase(ctx),
    files_base: filesBase(ctx),
    server: ctx.serverAddress,
    files: Object.fromEntries((target?.files ?? []).filter((f) => f.role === 'extra').map((f) => [f.name, fileRef(ctx, f.relPath).http])),
  };
  vars.repo = entry.repo ? renderInline(`${entry.id}.repo`, entry.repo, vars) : '';
  return vars;
}

/** One boot item for an entry/version/arch, with the host's automation when given. */
export function buildItem(ctx: RenderContext, entry: CatalogEntry, v: VersionSpec, arch: Arch, host?: Host): BootItem {
  const label = labelOf(entry.id, v.version, arch);
  const title = v.label ?? `${entry.label} ${v.version}`;
  const base = { label, title, entryId: entry.id, version: v.version, arch, initrds: [] as FileRef[], trust: entry.trust };
  if (entry.boot.method === 'localboot') return { ...base, label: entry.id, title: entry.label, method: 'localboot', append: '' };
  let target: ExpandedTarget;
  let append: string;
  try {
    target = expandTarget(entry, v, arch, { mirrors: ctx.mirrors ?? NO_MIRRORS });
    const vars = { ...commonVars(ctx, entry, v, arch, target), ...(host ? hostVars(ctx, entry, host) : {}) };
    const parts: string[] = [];
    if (host && entry.automation) parts.push(renderInline(`${entry.id}.automation`, entry.automation, vars));
    parts.push(renderInline(`${entry.id}.append`, entry.append, vars));
    if (host?.append) parts.push(host.append);
    append = parts.join(' ').replace(/\s+/g, ' ').trim();
  } catch (err) {
    throw new CatalogRenderError((err as Error).message, 500);
  }
  const byRole = (role: string) => target.files.filter((f) => f.role === role).map((f) => fileRef(ctx, f.relPath));
  switch (entry.boot.method) {
    case 'linux':
      return { ...base, method: 'linux', kernel: byRole('kernel')[0]!, initrds: byRole('initrd'), append };
    case 'memdisk':
      return { ...base, method: 'memdisk', image: { ...byRole('image')[0]!, format: entry.boot.format }, append };
    case 'chain':
      return { ...base, method: 'chain', chain: byRole('chain')[0]!, append };
  }
}

function usable(item: BootItem, firmware: FirmwareClass): boolean {
  // memdisk is a BIOS real-mode program: it cannot run under UEFI.
  return !(firmware === 'efi' && item.method === 'memdisk');
}

/** The menu: local boot first (the default), then one submenu per group with every SYNCED version. */
export function buildMenuModel(ctx: RenderContext, opts: RenderOptions = {}): MenuModel {
  const arch = opts.arch ?? 'x86_64';
  const firmware = opts.firmware ?? 'bios';
  const top: BootItem[] = [];
  const groups: MenuGroup[] = [];
  let defaultLabel: string | undefined;
  // Stable sort: ascending `order`, then catalog (file) order.
  const entries = [...ctx.catalog.entries].sort((a, b) => a.order - b.order);
  for (const entry of entries) {
    if (entry.boot.method === 'localboot') {
      const item = buildItem(ctx, entry, { version: 'local' }, arch);
      top.push(item);
      if (entry.default || defaultLabel === undefined) defaultLabel = item.label;
      continue;
    }
    for (const v of entry.versions) {
      if (!versionArches(entry, v).includes(arch)) continue;
      if (!ctx.isInstalled(entry.id, v.version, arch)) continue;
      const item = buildItem(ctx, entry, v, arch);
      if (!usable(item, firmware)) continue;
      let g = groups.find((x) => x.title === entry.group);
      if (!g) {
        g = { title: entry.group, tag: `group-${groups.length}`, items: [] };
        groups.push(g);
      }
      g.items.push(item);
      if (entry.default) defaultLabel = item.label;
    }
  }
  const wanted = ctx.menu?.default;
  if (wanted !== undefined) {
    const item = [...top, ...groups.flatMap((g) => g.items)].find((i) => i.entryId === wanted);
    if (item) defaultLabel = item.label;
  }
  if (defaultLabel === undefined) {
    // No local-boot entry in the catalog: still never start an installer on timeout.
    const local: BootItem = {
      label: 'local',
      title: 'Boot from local disk',
      entryId: 'local',
      version: 'local',
      arch,
      method: 'localboot',
      initrds: [],
      append: '',
      trust: 'unverified',
    };
    top.unshift(local);
    defaultLabel = local.label;
  }
  return {
    title: ctx.menu?.title ?? 'PXE boot menu',
    timeoutSeconds: ctx.menu?.timeoutSeconds ?? 10,
    ui: ctx.menu?.ui ?? 'menu.c32',
    defaultLabel,
    top,
    groups,
  };
}

export type HostBootPlan = { kind: 'install'; item: BootItem; entry: CatalogEntry } | { kind: 'localboot'; reason: string };

/** What a known host boots: its entry directly, or the local disk once installed. */
export function hostBootPlan(ctx: RenderContext, host: Host, opts: RenderOptions = {}): HostBootPlan {
  if (host.install_once && ctx.hostInstalled?.(host.mac))
    return { kind: 'localboot', reason: `${host.hostname} was installed (install_once)` };
  const entry = ctx.catalog.entries.find((e) => e.id === host.entry);
  if (!entry) throw new CatalogRenderError(`host ${host.mac} (${host.hostname}): unknown catalog entry "${host.entry}"`, 500);
  if (entry.boot.method === 'localboot') return { kind: 'localboot', reason: `${host.hostname} is assigned "${entry.id}"` };
  const v = host.version === undefined ? entry.versions[0] : entry.versions.find((x) => x.version === host.version);
  if (!v) throw new CatalogRenderError(`host ${host.mac}: entry "${entry.id}" has no version "${host.version}"`, 500);
  const arch = host.arch ?? opts.arch ?? 'x86_64';
  if (!versionArches(entry, v).includes(arch))
    throw new CatalogRenderError(`host ${host.mac}: ${entry.id} ${v.version} is not offered for ${arch}`, 500);
  if (!ctx.isInstalled(entry.id, v.version, arch))
    throw new CatalogRenderError(`host ${host.mac}: ${entry.id} ${v.version} ${arch} is not synced (run pxe sync --only ${entry.id})`, 404);
  const item = buildItem(ctx, entry, v, arch, host);
  if (!usable(item, opts.firmware ?? 'bios'))
    throw new CatalogRenderError(`host ${host.mac}: ${entry.id} uses memdisk, which needs BIOS`, 404);
  return { kind: 'install', item, entry };
}

// ---- boot-loader configs ----

/** pxelinux.cfg/default */
export function renderMainMenu(ctx: RenderContext, opts: RenderOptions = {}): string {
  return renderFile(ctx, 'pxelinux-menu.njk', { m: buildMenuModel(ctx, opts), firmware: opts.firmware ?? 'bios' });
}

/** pxelinux.cfg/01-<mac>: the host's entry as DEFAULT with no menu, or local boot. */
export function renderHostPxelinux(ctx: RenderContext, host: Host, opts: RenderOptions = {}): string {
  const plan = hostBootPlan(ctx, host, opts);
  return renderFile(ctx, 'pxelinux-host.njk', { plan, host, firmware: opts.firmware ?? 'bios' });
}

/** iPXE script: the host's entry, or the menu for an unknown client (host null). */
export function renderIpxeScript(ctx: RenderContext, host: Host | null, opts: RenderOptions = {}): string {
  if (host) return renderFile(ctx, 'ipxe-host.njk', { plan: hostBootPlan(ctx, host, opts), host, files_base: filesBase(ctx) });
  return renderFile(ctx, 'ipxe-menu.njk', { m: buildMenuModel(ctx, opts), files_base: filesBase(ctx) });
}

/** Directory under GRUB's $prefix of the per-client files: `<dir>/<$grub_cpu>/<$net_default_mac>.cfg`. */
export const GRUB_CLIENT_DIR = 'client';

/** GRUB's `$grub_cpu` for each catalog architecture, and back. */
export const GRUB_CPU: Record<Arch, string> = { x86_64: 'x86_64', aarch64: 'arm64', i386: 'i386' };
export function archOfGrubCpu(cpu: string): Arch | undefined {
  return (Object.keys(GRUB_CPU) as Arch[]).find((a) => GRUB_CPU[a] === cpu);
}

/** `set default=` for GRUB: a submenu's entry is named by its path "<submenu id>><entry id>". */
export function grubDefaultPath(m: MenuModel): string {
  const g = m.groups.find((x) => x.items.some((i) => i.label === m.defaultLabel));
  return g ? `${g.tag}>${m.defaultLabel}` : m.defaultLabel;
}

/**
 * A GRUB config for UEFI clients (memdisk entries are left out: BIOS only): the host's
 * entry, or the menu of `opts.arch` (x86_64 by default).
 */
export function renderGrubConfig(ctx: RenderContext, host: Host | null, opts: RenderOptions = {}): string {
  const o = { ...opts, firmware: 'efi' as const };
  if (host) return renderFile(ctx, 'grub-host.njk', { plan: hostBootPlan(ctx, host, o), host });
  const m = buildMenuModel(ctx, o);
  return renderFile(ctx, 'grub-menu.njk', { m, arch: o.arch ?? 'x86_64', defaultPath: grubDefaultPath(m) });
}

/** grub/grub.cfg: the same for every client; sends GRUB on to GRUB_CLIENT_DIR/$grub_cpu/$net_default_mac.cfg. */
export function renderGrubDispatch(ctx: RenderContext): string {
  return renderFile(ctx, 'grub-dispatch.njk', { clientDir: GRUB_CLIENT_DIR });
}

// ---- unattended files ----

export interface UnattendedFile {
  contentType: string;
  body: string;
  entryId: string;
  version: string;
}

/** Which file names a host's entry serves under /unattended/<mac>/. */
export function unattendedFileNames(ctx: RenderContext, host: Host): string[] {
  const entry = ctx.catalog.entries.find((e) => e.id === host.entry);
  if (!entry || entry.unattended === 'none') return [];
  const f = UNATTENDED_FILES[entry.unattended];
  return [f.primary, ...f.others];
}

function mirrorParts(url: string): { mirror_url: string; mirror_host: string; mirror_dir: string; mirror_scheme: string } {
  const u = new URL(url);
  return {
    mirror_url: url.replace(/\/+$/, ''),
    mirror_host: u.host,
    mirror_dir: u.pathname.replace(/\/+$/, '') || '/',
    mirror_scheme: u.protocol.replace(':', ''),
  };
}

/**
 * Renders one unattended file for a host. Throws CatalogRenderError 404 for an
 * unknown host or a file its entry does not use, 500 for a template fault. The
 * output is parsed back (JSON, YAML) before it is returned.
 */
export function renderUnattended(ctx: RenderContext, host: Host | undefined, fileName: string, token?: string): UnattendedFile {
  if (!host) throw new CatalogRenderError('unknown host: not in the hosts file', 404);
  const entry = ctx.catalog.entries.find((e) => e.id === host.entry);
  if (!entry) throw new CatalogRenderError(`host ${host.mac}: unknown catalog entry "${host.entry}"`, 500);
  if (entry.unattended === 'none') throw new CatalogRenderError(`host ${host.mac}: entry "${entry.id}" has no unattended install`, 404);
  const names = unattendedFileNames(ctx, host);
  if (!names.includes(fileName)) throw new CatalogRenderError(`host ${host.mac}: no file "${fileName}" (serves ${names.join(', ')})`, 404);
  const v = host.version === undefined ? entry.versions[0] : entry.versions.find((x) => x.version === host.version);
  if (!v) throw new CatalogRenderError(`host ${host.mac}: entry "${entry.id}" has no version "${host.version}"`, 500);
  const arch = host.arch ?? versionArches(entry, v)[0]!;
  let vars: Record<string, unknown>;
  try {
    const common = commonVars(ctx, entry, v, arch, undefined);
    const mirror = host.mirror || String(common.mirror);
    vars = {
      ...common,
      ...hostVars(ctx, entry, host, token),
      ...mirrorParts(mirror),
      entry,
      fqdn: host.domain ? `${host.hostname}.${host.domain}` : host.hostname,
      // kickstart ignoredisk/clearpart take "sda" or a full /dev/disk/by-* path
      disk_short: host.disk.startsWith('/dev/disk/') ? host.disk : host.disk.replace(/^\/dev\//, ''),
      instance_id: `pxe-${macSlug(host.mac)}`,
    };
  } catch (err) {
    throw new CatalogRenderError((err as Error).message, 500);
  }
  const body = renderFile(ctx, TEMPLATE_OF[fileName]!, vars, fileName.endsWith('.xml'));
  // Never hand out a file the installer would choke on halfway: check it parses.
  try {
    if (fileName.endsWith('.ign')) JSON.parse(body);
    else if (fileName === 'user-data' || fileName === 'meta-data' || fileName === 'vendor-data') parseYamlText(body);
  } catch (err) {
    throw new CatalogRenderError(`template ${TEMPLATE_OF[fileName]} produced invalid output: ${(err as Error).message}`, 500);
  }
  return {
    contentType: CONTENT_TYPES[fileName] ?? 'text/plain; charset=utf-8',
    body,
    entryId: entry.id,
    version: v.version,
  };
}

/**
 * Parses "/unattended/<mac>/<token>/<file>" (MAC with '-' or ':'); null when it is not
 * such a path. For HTTP layers that do not route it themselves.
 */
export function parseUnattendedPath(path: string): { mac: string; token: string; file: string } | null {
  const m = /^\/?unattended\/([0-9a-f]{2}(?:[-:][0-9a-f]{2}){5})\/([A-Za-z0-9-]+)\/([A-Za-z0-9._-]+)$/i.exec(path);
  return m && !m[3]!.startsWith('.') ? { mac: m[1]!.toLowerCase().replace(/-/g, ':'), token: m[2]!, file: m[3]! } : null;
}
