import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';

/**
 * Which loader chain x64 UEFI PXE clients get. shim (signed by Microsoft's UEFI CA,
 * which OVMF and almost every PC trust) loads `grubx64.efi` from its own directory;
 * Debian's signed GRUB then boots only kernels signed by Debian. syslinux.efi is
 * unsigned, so a machine with Secure Boot on refuses it.
 */
export const SHIM_X64 = 'shimx64.efi';
export const GRUB_X64 = 'grubx64.efi';
export const SHIM_AA64 = 'shimaa64.efi';
export const GRUB_AA64 = 'grubaa64.efi';
export const SYSLINUX_EFI = 'syslinux.efi';

/** true when `pxe sync` installed both halves of the x64 Secure Boot chain in tftproot */
export function shimChainInstalled(tftpRoot: string): boolean {
  return existsSync(join(tftpRoot, SHIM_X64)) && existsSync(join(tftpRoot, GRUB_X64));
}

/**
 * dhcp.bootFiles.efi-x64 when set (null: no answer), else the file of dhcp.efiX64Chain;
 * `auto` looks at tftproot once, here (the chain of a running server changes with a
 * reload, not per request).
 */
export function efiX64BootFile(config: Pick<Config, 'dhcp'> & Partial<Pick<Config, 'tftp'>>): string | null {
  const explicit = config.dhcp.bootFiles['efi-x64'];
  if (explicit !== undefined) return explicit;
  switch (config.dhcp.efiX64Chain) {
    case 'shim-grub':
      return SHIM_X64;
    case 'syslinux':
      return SYSLINUX_EFI;
    case 'auto':
      // (no tftproot known: a policy built from bare DHCP settings) syslinux, as before the chain existed
      return config.tftp && shimChainInstalled(config.tftp.root) ? SHIM_X64 : SYSLINUX_EFI;
  }
}

/** dhcp.bootFiles with efi-x64 resolved (what the proxy and `pxe dhcp-config` hand out). */
export function resolvedBootFiles(
  config: Pick<Config, 'dhcp'> & Partial<Pick<Config, 'tftp'>>,
): Config['dhcp']['bootFiles'] & { 'efi-x64': string | null } {
  return { ...config.dhcp.bootFiles, 'efi-x64': efiX64BootFile(config) };
}
