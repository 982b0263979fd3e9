/**
 * Bootloader provisioning: copies syslinux's network boot programs and the COM32
 * modules the menus need from the Debian packages (pxelinux, syslinux-common,
 * syslinux-efi) into tftproot, and the Secure Boot chain: Microsoft-signed shim
 * (shim-signed) with Debian's signed network GRUB (grub-efi-amd64-signed,
 * grub-efi-arm64-signed) beside it under the name shim loads from its own
 * directory (grubx64.efi / grubaa64.efi). Chosen over downloading an upstream syslinux
 * archive: the packages are already a dependency of the test lab, are signed by
 * apt, and kernel.org's syslinux tarballs have not been updated since 6.03 (2014).
 *
 * Layout (pxelinux.0 and syslinux.efi look for modules next to themselves, and
 * BIOS and EFI modules share file names but are different binaries):
 *   pxelinux.0 ldlinux.c32 menu/vesamenu/libutil/libcom32.c32 memdisk   (BIOS, root)
 *   syslinux.efi ldlinux.e64                                            (root: pxe.yaml default bootFiles.efi-x64)
 *   efi64/{syslinux.efi,ldlinux.e64,menu.c32,vesamenu.c32,libutil.c32,libcom32.c32}
 *   shimx64.efi grubx64.efi     (x64 UEFI, Secure Boot: the default chain, dhcp.efiX64Chain)
 *   shimaa64.efi grubaa64.efi   (ARM64 UEFI; optional: the arm64 packages do not install on
 *                                an amd64 server, scripts/arm64-loaders.sh unpacks them)
 * A site that wants UEFI menus points bootFiles.efi-x64 at efi64/syslinux.efi so
 * syslinux.efi finds the efi64 modules in its own directory.
 *   ipxe/snponly.efi ipxe/undionly.kpxe   (Debian's ipxe package, when installed: for
 *   sites that chain into iPXE, e.g. bootFiles.efi-x64-http or bootFiles.bios pointing
 *   there; both drive the NIC through the firmware's own stack, SNP or UNDI)
 *
 * A copied file must be byte-identical to what its package installed: its MD5 is
 * checked against dpkg's list for the package (/var/lib/dpkg/info/<pkg>.md5sums)
 * when dpkg has one, so a file changed on disk after installation is refused.
 *
 * Each file is copied to a staging path on the same filesystem and renamed into
 * place (atomic), and only when its content differs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface BootloaderFile {
  dest: string;
  /** candidate source paths, first existing wins */
  sources: string[];
  /** the package that provides it, for the hint when missing */
  pkg: string;
  /** absent is normal (ARM64 loaders on an amd64 server): reported, never an error */
  optional?: boolean;
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
    // shim loads "grubx64.efi" from the directory it was itself loaded from (shim's
    // DEFAULT_LOADER); grubnetx64 is the GRUB image built for network boot (its prefix
    // is /grub on the TFTP server it came from).
    { dest: 'shimx64.efi', sources: ['/usr/lib/shim/shimx64.efi.signed'], pkg: 'shim-signed' },
    { dest: 'grubx64.efi', sources: ['/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed'], pkg: 'grub-efi-amd64-signed' },
    {
      dest: 'shimaa64.efi',
      sources: ['/usr/lib/shim/shimaa64.efi.signed', `${ARM64_UNPACKED}/usr/lib/shim/shimaa64.efi.signed`],
      pkg: 'shim-signed:arm64',
      optional: true,
    },
    {
      dest: 'grubaa64.efi',
      sources: [
        '/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed',
        `${ARM64_UNPACKED}/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed`,
      ],
      pkg: 'grub-efi-arm64-signed',
      optional: true,
    },
  ];
}

/** Where scripts/arm64-loaders.sh unpacks the arm64 loader packages on a non-arm64 server. */
export const ARM64_UNPACKED = '/var/lib/pxe/arm64-loaders';

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
  const digests = await dpkgDigests(files.flatMap((f) => f.sources));
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
      results.push({
        dest: f.dest,
        status: 'missing',
        detail: `none of ${f.sources.join(', ')} (${f.optional ? 'optional: ' : ''}apt-get install ${f.pkg})`,
      });
      continue;
    }
    const recorded = digests.get(srcPath);
    const md5 = recorded ? createHash('md5').update(src).digest('hex') : '';
    if (recorded && md5 !== recorded.md5) {
      results.push({
        dest: f.dest,
        status: 'failed',
        detail: `${srcPath} differs from what ${recorded.pkg} installed (md5 ${md5}, dpkg says ${recorded.md5})`,
      });
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

/**
 * dpkg's recorded MD5 of each wanted path (md5sums lists paths without the leading
 * '/') with the package that installed it. A path no list names (a file unpacked by
 * a script from a .deb that apt-get download checked against the signed index) is
 * simply absent. Read once per provisioning run.
 */
async function dpkgDigests(paths: string[]): Promise<Map<string, { md5: string; pkg: string }>> {
  const want = new Set(paths.map((p) => p.replace(/^\/+/, '')));
  const out = new Map<string, { md5: string; pkg: string }>();
  const lists = await readdir(DPKG_INFO).catch(() => [] as string[]);
  for (const list of lists) {
    if (!list.endsWith('.md5sums')) continue;
    const text = await readFile(join(DPKG_INFO, list), 'latin1').catch(() => '');
    for (const line of text.split('\n')) {
      const rel = line.slice(34);
      if (want.has(rel)) out.set(`/${rel}`, { md5: line.slice(0, 32), pkg: list.replace(/\.md5sums$/, '') });
    }
  }
  return out;
}

const DPKG_INFO = '/var/lib/dpkg/info';
