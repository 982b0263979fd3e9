import { readFileSync } from 'node:fs';
import { parse as parseYamlText } from 'yaml';
import type { Hosts } from '../hosts/load.js';
import { HOST_DEFAULTS, type Host } from '../hosts/schema.js';
import { ConfigError } from '../yamlfile.js';
import { locateEntryField } from './load.js';
import {
  buildItem,
  CatalogRenderError,
  renderGrubConfig,
  renderGrubDispatch,
  renderHostPxelinux,
  renderIpxeScript,
  renderMainMenu,
  renderUnattended,
  unattendedFileNames,
  type RenderContext,
} from './render.js';
import { versionArches, type Arch, type CatalogEntry } from './schema.js';
import { templateErrorPosition, templateRenderError } from './templates.js';
import { renderUbootHost, renderUbootMenu } from './uboot.js';

/**
 * Templates checked like configuration (at start and on SIGHUP, before a new policy
 * replaces the old one): every catalog string that is a template (append, automation,
 * repo, paths) is rendered for every entry/version/arch, and every template file for
 * every entry (BIOS and EFI menus, iPXE, GRUB, U-Boot, the host configs in their
 * install and local-boot forms, each answer file), as if everything were synced.
 * The first failure is thrown as a ConfigError naming the file and line: the start is
 * refused, a reload keeps the old set. Rendering is side-effect free here (no install
 * tokens are issued: URLs carry NO_TOKEN).
 */
const SAMPLE_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl check@pxe';

function sampleHost(entry: CatalogEntry, arch: Arch, version: string): Host {
  return {
    mac: '02:00:00:00:00:01',
    hostname: 'template-check',
    domain: 'example.org',
    entry: entry.id,
    version,
    arch,
    allow: true,
    install_once: true,
    ...HOST_DEFAULTS,
    password_hash: '$6$check$check',
    ssh_keys: [SAMPLE_KEY],
    mirror: '',
    append: '',
  };
}

/** A catalog string's render error at its catalog file:line ("<id>.<field>: …" from renderInline). */
function catalogStringError(ctx: RenderContext, err: Error): ConfigError | undefined {
  const m = /^([a-z0-9][a-z0-9-]*)\.([a-z_]+): /.exec(err.message);
  const entry = m && ctx.catalog.entries.find((e) => e.id === m[1]);
  if (!m || !entry) return undefined;
  const field = m[2]!;
  const file = ctx.catalog.sources.get(entry.id) ?? '(catalog)';
  let pos: { line: number; col: number } | undefined;
  try {
    const text = readFileSync(file, 'utf8');
    const ids = ((parseYamlText(text) as { entries?: Array<{ id?: string }> }).entries ?? []).map((e) => e.id);
    pos = locateEntryField(text, ids.indexOf(entry.id), field);
  } catch {
    pos = undefined;
  }
  const inner = templateErrorPosition(err.message.slice(m[0].length));
  const where = inner.line === undefined ? '' : ` (template line ${inner.line}, column ${inner.col})`;
  return new ConfigError(file, pos?.line, pos?.col, `${entry.id}.${field}`, `${inner.detail}${where}`);
}

export function checkRendering(base: RenderContext, hosts?: Hosts): void {
  const dir = base.templates?.dir ?? base.templatesDir ?? '(templates)';
  const ctx: RenderContext = { ...base, isInstalled: () => true, hostInstalled: () => false };
  delete ctx.installToken;
  const installed: RenderContext = { ...ctx, hostInstalled: () => true };

  /** one render; a 404 (not applicable: memdisk under EFI, two initrds on U-Boot) is no fault */
  const attempt = (what: string, render: () => unknown): void => {
    try {
      render();
    } catch (err) {
      if (err instanceof CatalogRenderError && err.status === 404) return;
      if (err instanceof ConfigError) throw err;
      throw catalogStringError(ctx, err as Error) ?? templateRenderError(dir, err, what);
    }
  };

  const forHost = (h: Host, label: string) => {
    for (const [c, state] of [
      [ctx, 'install'],
      [installed, 'installed'],
    ] as const) {
      const w = (file: string) => `${file} for ${label} (${state})`;
      attempt(w('pxelinux.cfg/01-<mac> (BIOS)'), () => renderHostPxelinux(c, h, { firmware: 'bios' }));
      attempt(w('pxelinux.cfg/01-<mac> (EFI)'), () => renderHostPxelinux(c, h, { firmware: 'efi' }));
      attempt(w('the iPXE script'), () => renderIpxeScript(c, h));
      attempt(w('grub.cfg'), () => renderGrubConfig(c, h));
      if (h.arch === 'aarch64') attempt(w('the U-Boot config'), () => renderUbootHost(c, h));
    }
    for (const name of unattendedFileNames(ctx, h)) attempt(`${name} for ${label}`, () => renderUnattended(ctx, h, name));
  };

  for (const entry of ctx.catalog.entries) {
    for (const v of entry.versions) {
      for (const arch of versionArches(entry, v)) {
        const label = `${entry.id} ${v.version} ${arch}`;
        attempt(`the menu item ${label}`, () => buildItem(ctx, entry, v, arch));
        forHost(sampleHost(entry, arch, v.version), `a host on ${label}`);
      }
    }
  }
  for (const arch of ['x86_64', 'aarch64'] as const) {
    for (const firmware of ['bios', 'efi'] as const) {
      attempt(`the ${firmware} ${arch} pxelinux menu`, () => renderMainMenu(ctx, { arch, firmware }));
      attempt(`the ${firmware} ${arch} iPXE menu`, () => renderIpxeScript(ctx, null, { arch, firmware }));
    }
    attempt(`the ${arch} GRUB menu`, () => renderGrubConfig(ctx, null, { arch }));
  }
  attempt('grub/grub.cfg', () => renderGrubDispatch(ctx));
  attempt('the U-Boot menu', () => renderUbootMenu(ctx));
  for (const h of hosts?.byMac.values() ?? []) forHost(h, `host ${h.hostname} (${h.mac}) in ${hosts!.file}`);
}
