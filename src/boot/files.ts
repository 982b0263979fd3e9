import type { Logger } from '../log.js';
import type { Hosts } from '../hosts/load.js';
import { findHost } from '../hosts/load.js';
import { isEfi } from './firmware.js';
import { macFromPxelinuxPath } from './pxelinux.js';
import type { FileClient, Firmware, VirtualFile, VirtualFileProvider } from './types.js';
import {
  archOfGrubCpu,
  CatalogRenderError,
  GRUB_CLIENT_DIR,
  renderGrubConfig,
  renderGrubDispatch,
  renderHostPxelinux,
  renderMainMenu,
  type FirmwareClass,
  type RenderContext,
} from '../catalog/render.js';
import {
  renderUbootHost,
  renderUbootMenu,
  UBOOT_ARCH,
  UBOOT_DEFAULT_CFG,
  UBOOT_SCRIPT,
  UBOOT_SCRIPT_NAME,
  ubootScriptImage,
} from '../catalog/uboot.js';

const DEFAULT_CFG = /^(?:.*\/)?pxelinux\.cfg\/default$/;
const GRUB_CFG = /^(?:grub\/)?grub\.cfg$/;
/** where Debian's network GRUB looks first: $prefix/<cpu>-<platform>/grub.cfg (its embedded config) */
const GRUB_PLATFORM_CFG = /^grub\/(x86_64|arm64|i386)-efi\/grub\.cfg$/;
/** what grub/grub.cfg sends every GRUB to: $prefix/client/$grub_cpu/$net_default_mac.cfg */
const GRUB_CLIENT_CFG = new RegExp(`^grub/${GRUB_CLIENT_DIR}/(x86_64|arm64|i386)/([0-9a-f]{2}(?::[0-9a-f]{2}){5})\\.cfg$`);
/** a COM32 module at the tftproot root (menu.c32, vesamenu.c32, libutil.c32, libcom32.c32, ...) */
const ROOT_C32 = /^[a-z0-9_-]+\.c32$/;

/**
 * Serves the rendered boot-loader configs as virtual files for TFTP/HTTP:
 * `pxelinux.cfg/01-<mac>` (hosts in hosts.yaml only: others get null and pxelinux
 * moves on down its lookup list), `pxelinux.cfg/default` and `grub.cfg` /
 * `grub/grub.cfg` (one file for every GRUB: it asks on for `grub/client/<cpu>/<mac>.cfg`
 * with its own $grub_cpu and $net_default_mac, which is the host's entry for a host in
 * hosts.yaml and the menu of that architecture for anyone else),
 * `grub/<cpu>-efi/grub.cfg` (the menu of that architecture).
 * U-Boot (src/catalog/uboot.ts): `boot.scr.uimg`, the script its network boot runs,
 * `pxelinux.cfg/default-arm[-<soc>]` and the `01-<mac>` of an aarch64 host (syslinux
 * has no ARM build, so only U-Boot asks for those).
 * `getHosts`/`getCtx` are read on every request so a reload swaps them atomically.
 * A render failure returns null (the client sees "file not found") and is logged:
 * better than a half-valid config.
 */
export interface ProviderOptions {
  /** firmware of a client as DHCP saw it (boot/clients.ts); undefined: not seen, taken as BIOS */
  firmwareOf?: (mac: string | undefined) => Firmware | undefined;
  /**
   * true when the site keeps its own static file at this path in tftproot: the
   * rendered menus (default, grub.cfg) then step aside. Per-host configs always win.
   */
  hasStaticFile?: (relPath: string) => Promise<boolean>;
  /**
   * Content of `efi64/<name>` in tftproot, or null when absent. BIOS and EFI COM32
   * modules share file names but are different binaries (32-bit vs x86_64 ELF), and
   * `pxe sync` keeps the BIOS set at the root (next to pxelinux.0) and the EFI set in
   * efi64/. A root `syslinux.efi` (the default bootFiles.efi-x64) looks up `UI menu.c32`
   * and the libraries it pulls in (libutil.c32) in its own directory, gets the BIOS
   * build and dies (OVMF: "X64 Exception Type - 00(#DE - Divide Error)", seen in
   * test/e2e/uefi-menu.test.ts without this). So a root `.c32` request from a client
   * DHCP saw as x64 UEFI gets the efi64 copy. (`PATH efi64/` in the EFI menu was not used:
   * syslinux tries the bare name before PATH entries, so the root file would still win;
   * that is from its source, not tried on firmware.)
   */
  efiModule?: (name: string) => Promise<Buffer | null>;
}

/**
 * `getCtx(mac)`: the render context for that client (its server address may differ per
 * client on a multi-homed host: load.ts).
 */
export function catalogFileProvider(
  getCtx: (mac?: string) => RenderContext,
  getHosts: () => Hosts,
  log?: Logger,
  opts: ProviderOptions = {},
): VirtualFileProvider {
  // memdisk and LOCALBOOT entries are BIOS-only: the menu of an EFI client leaves them out
  const fw = (mac: string | undefined): { firmware: FirmwareClass } => ({ firmware: isEfi(opts.firmwareOf?.(mac)) ? 'efi' : 'bios' });
  const ubootScript = ubootScriptImage(UBOOT_SCRIPT);
  const isStatic = async (relPath: string) => (opts.hasStaticFile ? opts.hasStaticFile(relPath) : false);
  const wrap = (relPath: string, origin: string, render: () => string): VirtualFile | null => {
    try {
      return { content: Buffer.from(render(), 'utf8'), origin };
    } catch (err) {
      const status = err instanceof CatalogRenderError ? err.status : 500;
      log?.[status === 404 ? 'info' : 'error']({ relPath, err: (err as Error).message }, 'cannot render boot config');
      return null;
    }
  };
  return {
    async virtualFile(relPath: string, client: FileClient): Promise<VirtualFile | null> {
      const path = relPath.toLowerCase();
      const hostMac = macFromPxelinuxPath(path);
      if (hostMac) {
        const host = findHost(getHosts(), hostMac);
        if (!host || !host.allow) return null;
        if (host.arch === UBOOT_ARCH)
          return wrap(relPath, `rendered from templates/uboot-host.njk for host ${host.hostname}`, () =>
            renderUbootHost(getCtx(host.mac), host),
          );
        return wrap(relPath, `rendered from templates/pxelinux-host.njk for host ${host.hostname}`, () =>
          renderHostPxelinux(getCtx(host.mac), host, fw(host.mac)),
        );
      }
      if (ROOT_C32.test(path) && opts.efiModule && opts.firmwareOf?.(client.mac) === 'efi-x64') {
        // client.mac is known here: syslinux.efi asks for pxelinux.cfg/01-<mac> before it
        // loads the UI module, which teaches ClientMemory the address -> MAC mapping.
        // x64 only: efi64/ holds x86_64 modules, which an ia32 or ARM64 loader cannot run.
        const content = await opts.efiModule(path);
        return content ? { content, origin: `efi64/${path} (EFI COM32 module for an EFI client)` } : null;
      }
      const gc = GRUB_CLIENT_CFG.exec(path);
      if (gc) {
        // GRUB names its CPU in the path ($grub_cpu): a host without `arch:` boots that
        // architecture, and an unlisted client sees only that architecture's entries.
        const arch = archOfGrubCpu(gc[1]!);
        const o = arch ? { arch } : {};
        const host = findHost(getHosts(), gc[2]!);
        if (host && !host.allow) return null;
        if (host)
          return wrap(relPath, `rendered from templates/grub-host.njk for host ${host.hostname}`, () =>
            renderGrubConfig(getCtx(host.mac), host, o),
          );
        return wrap(relPath, `rendered from templates/grub-menu.njk (${arch}, not in hosts.yaml)`, () =>
          renderGrubConfig(getCtx(gc[2]), null, o),
        );
      }
      const gp = GRUB_PLATFORM_CFG.exec(path);
      if (
        (DEFAULT_CFG.test(path) || GRUB_CFG.test(path) || gp || UBOOT_DEFAULT_CFG.test(path) || path === UBOOT_SCRIPT_NAME) &&
        (await isStatic(relPath))
      )
        return null;
      if (UBOOT_DEFAULT_CFG.test(path))
        return wrap(relPath, 'rendered from templates/uboot-menu.njk', () => renderUbootMenu(getCtx(client.mac)));
      if (path === UBOOT_SCRIPT_NAME) return { content: ubootScript, origin: 'U-Boot boot script: pxe get; pxe boot' };
      if (gp) {
        const arch = archOfGrubCpu(gp[1]!);
        return wrap(relPath, `rendered from templates/grub-menu.njk (${arch})`, () =>
          renderGrubConfig(getCtx(client.mac), null, arch ? { arch } : {}),
        );
      }
      if (DEFAULT_CFG.test(path))
        return wrap(relPath, 'rendered from templates/pxelinux-menu.njk', () => renderMainMenu(getCtx(client.mac), fw(client.mac)));
      if (GRUB_CFG.test(path))
        return wrap(relPath, 'rendered from templates/grub-dispatch.njk', () => renderGrubDispatch(getCtx(client.mac)));
      return null;
    },
  };
}
