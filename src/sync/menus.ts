/**
 * After a sync changes what is installed, re-render the static menus with the
 * catalog renderer (src/catalog/render.ts) so a TFTP server without the policy's
 * virtual files (or a plain tftpd pointed at the same root) offers exactly what is
 * installed. The server's virtual `pxelinux.cfg/default`, when wired, takes
 * precedence over these files and is rendered per request from the same model.
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
import { renderMainMenu, type RenderContext } from '../catalog/render.js';
import type { Arch, Catalog } from '../catalog/schema.js';
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
  mirrors: Record<string, string>;
  serverAddress?: string | undefined;
  http?: { port: number } | undefined;
  templatesDir?: string | undefined;
}

async function atomicWriteIn(stagingRoot: string, dest: string, text: string): Promise<void> {
  await mkdir(stagingRoot, { recursive: true });
  await mkdir(dirname(dest), { recursive: true });
  const tmp = join(stagingRoot, `menu-${randomBytes(4).toString('hex')}`);
  await writeFile(tmp, text);
  await rename(tmp, dest);
}

/** Returns a one-line description of what happened (printed by `pxe sync`). */
export async function renderStaticMenus(cfg: MenuConfig, catalog: Catalog, stagingRoot: string): Promise<string> {
  if (!cfg.serverAddress) {
    // Menus carry http://<server>/... URLs for kernels; without a fixed address only the
    // server (which knows the address per client network) can render them.
    return 'static menus not written (no serverAddress in pxe.yaml; pxe serve renders them per request)';
  }
  const ctx: RenderContext = {
    catalog,
    serverAddress: cfg.serverAddress,
    httpPort: cfg.http?.port ?? 8080,
    mirrors: cfg.mirrors,
    isInstalled: installedChecker(cfg.tftp.root),
    ...(cfg.templatesDir && safeIsDir(cfg.templatesDir) ? { templatesDir: cfg.templatesDir } : {}),
  };
  const written: string[] = [];
  for (const [file, firmware] of [
    ['pxelinux.cfg/default', 'bios'],
    ['efi64/pxelinux.cfg/default', 'efi'],
  ] as const) {
    await atomicWriteIn(stagingRoot, join(cfg.tftp.root, file), renderMainMenu(ctx, { firmware }));
    written.push(file);
  }
  return `rendered ${written.join(', ')}`;
}

function safeIsDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
