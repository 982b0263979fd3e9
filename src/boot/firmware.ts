import type { Firmware } from './types.js';

/**
 * DHCP option 93 (RFC 4578 §2.1, IANA "Processor Architecture Types") to firmware class.
 * 7 is "EFI BC" and 9 "EFI x86-64" in RFC 4578, but real x64 UEFI stacks send either
 * (EDK2/OVMF send 7, some HP/Dell ROMs 9): both are x64 UEFI, as in dnsmasq and pixiecore.
 */
export function firmwareFromArch(arch: number | undefined, vendorClass = ''): Firmware {
  if (arch === undefined) {
    // Old PXE 2.x ROMs without option 93 are BIOS (RFC 4578 makes 93 mandatory only later).
    return vendorClass.startsWith('PXEClient') ? 'bios' : 'unknown';
  }
  switch (arch) {
    case 0:
      return 'bios';
    case 6:
      return 'efi-ia32';
    case 7:
    case 9:
      return 'efi-x64';
    case 11:
      return 'efi-arm64';
    case 16:
      return 'efi-x64-http';
    case 19:
      return 'efi-arm64-http';
    default:
      return 'unknown';
  }
}

export const FIRMWARE_LABEL: Record<Firmware, string> = {
  bios: 'x86 BIOS (93=0)',
  'efi-ia32': 'x86 UEFI 32-bit (93=6)',
  'efi-x64': 'x64 UEFI (93=7/9)',
  'efi-arm64': 'ARM64 UEFI (93=11)',
  'efi-x64-http': 'x64 UEFI HTTP boot (93=16)',
  'efi-arm64-http': 'ARM64 UEFI HTTP boot (93=19)',
  unknown: 'unknown architecture',
};

/** A UEFI client (any architecture, PXE or HTTP boot); false for BIOS, unknown or not yet seen. */
export function isEfi(firmware: Firmware | undefined): boolean {
  return firmware !== undefined && firmware.startsWith('efi-');
}
