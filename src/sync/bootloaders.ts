/**
 * Bootloader provisioning: copies syslinux's network boot programs and the COM32
 * modules the menus need from the Debian packages (pxelinux, syslinux-common,
 * syslinux-efi) into tftproot. Chosen over downloading an upstream syslinux
 * archive: the packages are already a dependency of the test lab, are signed by
 * apt, and kernel.org's syslinux tarballs have not been updated since 6.03 (2014).
 *
 * Layout (pxelinux.0 and syslinux.efi look for modules next to themselves, and
 * BIOS and EFI modules share file names but are different binaries):
 *   pxelinux.0 ldlinux.c32 menu/vesamenu/libutil/libcom32.c32 memdisk   (BIOS, root)
 *   syslinux.efi ldlinux.e64                                            (root: pxe.yaml default bootFiles.efi-x64)
 *   efi64/{syslinux.efi,ldlinux.e64,menu.c32,vesamenu.c32,libutil.c32,libcom32.c32}
 * A site that wants UEFI menus points bootFiles.efi-x64 at efi64/syslinux.efi so
 * syslinux.efi finds the efi64 modules in its own directory.
 *   ipxe/snponly.efi ipxe/undionly.kpxe   (Debian's ipxe package, when installed: for
 *   sites that chain into iPXE, e.g. bootFiles.efi-x64-http or bootFiles.bios pointing
 *   there; both drive the NIC through the firmware's own stack, SNP or UNDI)
 *
 * Each file is copied to a staging path on the same filesystem and renamed into
 * place (atomic), and only when its content differs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface BootloaderFile {
  dest: string;
  /** candidate source paths, first existing wins */
  sources: string[];
  /** the package that provides it, for the hint when missing */
  pkg: string;
}

const BIOS_MODS = '/usr/lib/syslinux/modules/bios';
const EFI64_MODS = '/usr/lib/syslinux/modules/efi64';
const MENU_MODULES = ['menu.c32', 'vesamenu.c32', 'libutil.c32', 'libcom32.c32'];

export function defaultBootloaders(): BootloaderFile[] {
  return [
    { dest: 'pxelinux.0', sources: ['/usr/lib/PXELINUX/pxelinux.0'], pkg: 'pxelinux' },
    { dest: 'ldlinux.c32', sources: [`${BIOS_MODS}/ldlinux.c32`], pkg: 'syslinux-common' },
    ...MENU_MODULES.map((m) => ({ dest: m, sources: [`${BIOS_MODS}/${m}`], pkg: 'syslinux-common' })),
    { dest: 'memdisk', sources: ['/usr/lib/syslinux/memdisk'], pkg: 'syslinux-common' },
    { dest: 'syslinux.efi', sources: ['/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi'], pkg: 'syslinux-efi' },
    { dest: 'ldlinux.e64', sources: [`${EFI64_MODS}/ldlinux.e64`], pkg: 'syslinux-efi' },
    { dest: 'efi64/syslinux.efi', sources: ['/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi'], pkg: 'syslinux-efi' },
    { dest: 'efi64/ldlinux.e64', sources: [`${EFI64_MODS}/ldlinux.e64`], pkg: 'syslinux-efi' },
    ...MENU_MODULES.map((m) => ({ dest: `efi64/${m}`, sources: [`${EFI64_MODS}/${m}`], pkg: 'syslinux-efi' })),
    { dest: 'ipxe/snponly.efi', sources: ['/usr/lib/ipxe/snponly.efi'], pkg: 'ipxe' },
    { dest: 'ipxe/undionly.kpxe', sources: ['/usr/lib/ipxe/undionly.kpxe'], pkg: 'ipxe' },
  ];
}

export interface BootloaderResult {
  dest: string;
  status: 'installed' | 'unchanged' | 'missing' | 'would-install' | 'failed';
  detail?: string;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export async function provisionBootloaders(
  tftpRoot: string,
  stagingRoot: string,
  files: BootloaderFile[] = defaultBootloaders(),
  dryRun = false,
): Promise<BootloaderResult[]> {
  const results: BootloaderResult[] = [];
  for (const f of files) {
    let src: Buffer | undefined;
    let srcPath = '';
    for (const s of f.sources) {
      try {
        src = await readFile(s);
        srcPath = s;
        break;
      } catch {
        /* try the next candidate */
      }
    }
    if (!src) {
      results.push({ dest: f.dest, status: 'missing', detail: `none of ${f.sources.join(', ')} (apt-get install ${f.pkg})` });
      continue;
    }
    const dest = join(tftpRoot, f.dest);
    const cur = await readFile(dest).catch(() => undefined);
    if (cur && sha(cur) === sha(src)) {
      results.push({ dest: f.dest, status: 'unchanged' });
      continue;
    }
    if (dryRun) {
      results.push({ dest: f.dest, status: 'would-install', detail: srcPath });
      continue;
    }
    try {
      await mkdir(stagingRoot, { recursive: true });
      await mkdir(dirname(dest), { recursive: true });
      const tmp = join(stagingRoot, `bootloader-${randomBytes(4).toString('hex')}`);
      await copyFile(srcPath, tmp);
      try {
        await rename(tmp, dest);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
      results.push({ dest: f.dest, status: 'installed', detail: srcPath });
    } catch (e) {
      results.push({ dest: f.dest, status: 'failed', detail: (e as Error).message });
    }
  }
  return results;
}
