/**
 * Menus after a sync. `pxe serve` renders pxelinux.cfg/default per request (firmware-
 * aware, from installedChecker below), and a static file at that path in tftproot is
 * treated as a site override that makes the rendered menu step aside
 * (src/boot/files.ts). So by default sync does not write menus: it renders them
 * in memory to prove the catalog+templates still render for what is now installed,
 * and reports the item counts. With `writeMenus` (`pxe sync --write-menus`, for a
 * plain tftpd serving the same root) it writes them atomically:
 *
 *   pxelinux.cfg/default          BIOS menu (pxelinux.0 at the root)
 *   efi64/pxelinux.cfg/default    UEFI menu (efi64/syslinux.efi: syslinux looks for
 *                                 pxelinux.cfg/ next to the boot file it was loaded as)
 */
import { statSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { buildMenuModel, renderMainMenu, type RenderContext } from '../catalog/render.js';
import type { Arch, Catalog, SiteMirrors } from '../catalog/schema.js';
import { IMAGES_DIR } from './store.js';

/**
 * "Is this entry/version/arch installed?" for RenderContext.isInstalled: true when the
 * served link resolves to a snapshot directory (a dangling or missing link is "no").
 */
export function installedChecker(tftpRoot: string): (entryId: string, version: string, arch: Arch) => boolean {
  return (entryId, version, arch) => {
    try {
      return statSync(join(tftpRoot, IMAGES_DIR, entryId, version, arch)).isDirectory();
    } catch {
      return false;
    }
  };
}

export interface MenuConfig {
  tftp: { root: string };
  stateDir: string;
  mirrors: SiteMirrors;
  serverAddress?: string | undefined;
  http?: { port: number } | undefined;
  templatesDir?: string | undefined;
  /** pxe.yaml `menu`: the same title, timeout, UI and default entry as pxe serve renders */
  menu?: RenderContext['menu'];
}

async function atomicWriteIn(stagingRoot: string, dest: string, text: string): Promise<void> {
  await mkdir(stagingRoot, { recursive: true });
  await mkdir(dirname(dest), { recursive: true });
  const tmp = join(stagingRoot, `menu-${randomBytes(4).toString('hex')}`);
  await writeFile(tmp, text);
  await rename(tmp, dest);
}

/** Returns a one-line description of what happened (printed by `pxe sync`). */
export async function renderMenusAfterSync(cfg: MenuConfig, catalog: Catalog, stagingRoot: string, write: boolean): Promise<string> {
  if (write && !cfg.serverAddress) {
    // Static menus carry http://<server>/... URLs; without a fixed address only the
    // server (which knows its address per client network) can render them.
    throw new Error('--write-menus needs serverAddress in pxe.yaml');
  }
  const ctx: RenderContext = {
    catalog,
    // (only used for URLs inside the text; when not writing, the text is discarded)
    serverAddress: cfg.serverAddress ?? '127.0.0.1',
    httpPort: cfg.http?.port ?? 8080,
    mirrors: cfg.mirrors,
    ...(cfg.menu ? { menu: cfg.menu } : {}),
    isInstalled: installedChecker(cfg.tftp.root),
    ...(cfg.templatesDir && safeIsDir(cfg.templatesDir) ? { templatesDir: cfg.templatesDir } : {}),
  };
  const parts: string[] = [];
  for (const [file, firmware] of [
    ['pxelinux.cfg/default', 'bios'],
    ['efi64/pxelinux.cfg/default', 'efi'],
  ] as const) {
    const text = renderMainMenu(ctx, { firmware });
    const items = buildMenuModel(ctx, { firmware }).groups.reduce((a, g) => a + g.items.length, 0);
    if (write) await atomicWriteIn(stagingRoot, join(cfg.tftp.root, file), text);
    parts.push(`${firmware} ${items} item(s)${write ? ` -> ${file}` : ''}`);
  }
  return `${parts.join(', ')}${write ? '' : ' (rendered per request by pxe serve)'}`;
}

function safeIsDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
