import { z } from 'zod';
import { renderInline } from './template.js';

/**
 * Schema of the distro catalog (`distros/*.yaml`). One file holds one or more
 * entries under `entries:`; ids are unique across all files (checked by the
 * loader, which knows file names).
 *
 * Every path below is relative to the entry's mirror base URL and is a nunjucks
 * template rendered with { id, version, codename, arch, uarch, ...vars }:
 * - `arch` is our canonical name (x86_64, aarch64, i386) used in tftproot paths and
 *   to match clients (DHCP option 93);
 * - `uarch` is the upstream spelling (Debian "amd64", Fedora "x86_64"), from
 *   `arch_names`, defaulting to `arch`.
 */

export const ARCHES = ['x86_64', 'aarch64', 'i386'] as const;
export type Arch = (typeof ARCHES)[number];

const nonEmpty = z.string().min(1);
/** A relative path template (no scheme, no leading '/', no '..' segment). */
const relTemplate = z
  .string()
  .min(1)
  .refine((s) => !/^[a-z][a-z0-9+.-]*:/i.test(s) && !s.startsWith('/'), 'expected a path relative to the mirror (no scheme, no leading /)')
  .refine((s) => !s.split('/').includes('..'), 'must not contain a ".." segment');
const httpUrl = z
  .string()
  .url()
  .refine((s) => /^https?:\/\//.test(s), 'expected an http:// or https:// URL');

export const TRUST_LEVELS = ['signed', 'checksum', 'unverified'] as const;
export type TrustLevel = (typeof TRUST_LEVELS)[number];

/**
 * Where the upstream publishes the SHA-256 of each file. The key looked up inside
 * the checksum file is the file's path relative to the checksum file's directory
 * (computed by `expandEntry`), e.g. Debian's `…/current/images/SHA256SUMS` lists
 * `./netboot/debian-installer/amd64/linux`: the key is
 * `netboot/debian-installer/amd64/linux` (parsers strip a leading `./` or `*`).
 */
export const checksumSourceSchema = z.discriminatedUnion('kind', [
  /** `<hex>  <path>` lines (GNU coreutils), or BSD tags `SHA256 (<path>) = <hex>` (FreeBSD, OpenBSD). */
  z.object({ kind: z.literal('sha256sums'), path: relTemplate }).strict(),
  /** Fedora/EL `.treeinfo`, section `[checksums]`: `images/pxeboot/vmlinuz = sha256:<hex>`. */
  z.object({ kind: z.literal('treeinfo'), path: relTemplate }).strict(),
  /** openSUSE repomd `CHECKSUMS` (sha256 lines, detached `CHECKSUMS.asc`). */
  z.object({ kind: z.literal('suse-checksums'), path: relTemplate }).strict(),
  /** `<file>.sha256` next to every file (key: the file's base name). */
  z.object({ kind: z.literal('sha256-per-file'), suffix: z.string().min(1).default('.sha256') }).strict(),
  /** No upstream checksum exists (or none we can use): the entry must say trust `unverified`. */
  z.object({ kind: z.literal('none') }).strict(),
]);
export type ChecksumSource = z.infer<typeof checksumSourceSchema>;
export type ChecksumKind = ChecksumSource['kind'];

/**
 * Signature over the checksum file.
 * - `debian-release`: `dists/<suite>/InRelease` is clearsigned and lists the SHA256
 *   of the checksum file under its path relative to `dists/<suite>/`
 *   (e.g. `main/installer-amd64/current/images/SHA256SUMS`).
 * - `gpg-detached`: a detached signature of the checksum file (Ubuntu
 *   `SHA256SUMS.gpg`, openSUSE `CHECKSUMS.asc`).
 * `keyring` names a keyring in pxe.yaml `keyrings:`.
 */
export const signatureSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('debian-release'), inrelease: relTemplate, keyring: nonEmpty }).strict(),
  z.object({ kind: z.literal('gpg-detached'), path: relTemplate, keyring: nonEmpty }).strict(),
]);
export type SignatureSource = z.infer<typeof signatureSchema>;

/** The file, or an archive member, that is installed (relative to the mirror, templated). */
const initrdSchema = z.union([relTemplate, z.array(relTemplate).min(1)]);

export const bootSchema = z.discriminatedUnion('method', [
  /** kernel + initrd(s), booted by pxelinux LINUX, iPXE `kernel`, GRUB `linux`. */
  z
    .object({
      method: z.literal('linux'),
      kernel: relTemplate,
      /** a list is loaded in order (Arch: CPU microcode first, then the initramfs) */
      initrd: initrdSchema.optional(),
      /** more files to sync and serve, by name; templates reference `files.<name>` (their HTTP URL) */
      extra: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), relTemplate).optional(),
    })
    .strict(),
  /** a disk image loaded by syslinux memdisk (BIOS only). */
  z.object({ method: z.literal('memdisk'), image: relTemplate, format: z.enum(['iso', 'raw']) }).strict(),
  /** chain to another network boot program (pxelinux `pxechn.c32` / iPXE `chain`). */
  z.object({ method: z.literal('chain'), file: relTemplate }).strict(),
  /** exit to the next boot device (the local disk). */
  z.object({ method: z.literal('localboot') }).strict(),
]);
export type BootSpec = z.infer<typeof bootSchema>;

export const UNATTENDED_KINDS = ['preseed', 'kickstart', 'autoyast', 'autoinstall', 'ignition'] as const;
export type UnattendedKind = (typeof UNATTENDED_KINDS)[number];

export const versionSchema = z
  .object({
    /** the version string used in paths and tftproot (`images/<id>/<version>/<arch>/`) */
    // a string: YAML reads `version: 24.10` as the number 24.1 (the loader says "quote it")
    version: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'expected a version made of letters, digits, ".", "_", "-"'),
    codename: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]*$/)
      .optional(),
    label: nonEmpty.optional(),
    /** restricts the entry's architectures for this version */
    architectures: z.array(z.enum(ARCHES)).min(1).optional(),
    /** extra template variables for this version (override the entry's `vars`) */
    vars: z.record(z.string(), z.string()).optional(),
  })
  .strict();
export type VersionSpec = z.infer<typeof versionSchema>;

export const catalogEntrySchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lower-case letters, digits and "-"'),
    label: nonEmpty,
    /** menu group (submenu title); entries of one group are listed together */
    group: nonEmpty,
    /** menu position: groups and entries are listed by ascending order, then by file order */
    order: z.number().int().default(100),
    /** the menu default (only the local-boot entry should set it) */
    default: z.boolean().default(false),
    versions: z.array(versionSchema).default([]),
    architectures: z.array(z.enum(ARCHES)).min(1).default(['x86_64']),
    /** canonical -> upstream architecture spelling (`uarch` in templates) */
    arch_names: z.partialRecord(z.enum(ARCHES), nonEmpty).optional(),
    /** upstream base URL; pxe.yaml `mirrors: { <id>: <url> }` replaces it per site */
    mirror: httpUrl.optional(),
    vars: z.record(z.string(), z.string()).optional(),
    /**
     * The boot files are members of an archive (Ubuntu's netboot tarball, memtest86+'s
     * zip): the archive is downloaded and verified, then the members are extracted.
     * `boot` paths are then member names inside the archive.
     */
    archive: z
      .object({ path: relTemplate, format: z.enum(['tar.gz', 'zip']) })
      .strict()
      .optional(),
    boot: bootSchema,
    checksum: checksumSourceSchema.default({ kind: 'none' }),
    signature: signatureSchema.optional(),
    trust: z.enum(TRUST_LEVELS),
    /**
     * The installation tree/repository URL (nunjucks, full URL), exposed as `{{ repo }}`
     * to append lines and unattended templates (kickstart `url`, AutoYAST, inst.repo).
     */
    repo: z.string().optional(),
    /** kernel command line always used (nunjucks) */
    append: z.string().default(''),
    /** kernel arguments that start the unattended install; only rendered for hosts (nunjucks, has `automation_url`) */
    automation: z.string().optional(),
    unattended: z.enum([...UNATTENDED_KINDS, 'none']).default('none'),
    /** free text shown in `pxe list` */
    notes: z.string().optional(),
  })
  .strict()
  .superRefine((e, ctx) => {
    const needsFiles = e.boot.method !== 'localboot';
    if (needsFiles && !e.mirror) ctx.addIssue({ code: 'custom', path: ['mirror'], message: `required for boot method "${e.boot.method}"` });
    if (needsFiles && e.versions.length === 0)
      ctx.addIssue({ code: 'custom', path: ['versions'], message: 'at least one version is required' });
    if (e.checksum.kind === 'none' && e.trust !== 'unverified' && needsFiles)
      ctx.addIssue({ code: 'custom', path: ['trust'], message: 'checksum kind "none" requires trust "unverified"' });
    if (e.trust === 'signed' && !e.signature)
      ctx.addIssue({ code: 'custom', path: ['trust'], message: 'trust "signed" requires a "signature" section' });
    if (e.signature && e.checksum.kind !== 'sha256sums' && e.checksum.kind !== 'suse-checksums' && e.checksum.kind !== 'treeinfo')
      ctx.addIssue({ code: 'custom', path: ['signature'], message: 'a signature needs a single checksum file to sign' });
    if (e.unattended !== 'none' && !e.automation)
      ctx.addIssue({ code: 'custom', path: ['automation'], message: `required when unattended is "${e.unattended}"` });
    const seen = new Set<string>();
    e.versions.forEach((v, i) => {
      if (seen.has(v.version))
        ctx.addIssue({ code: 'custom', path: ['versions', i, 'version'], message: `duplicate version "${v.version}"` });
      seen.add(v.version);
      for (const a of v.architectures ?? [])
        if (!e.architectures.includes(a))
          ctx.addIssue({ code: 'custom', path: ['versions', i, 'architectures'], message: `"${a}" is not in the entry's architectures` });
    });
  });

export type CatalogEntry = z.infer<typeof catalogEntrySchema>;

export const catalogFileSchema = z
  .object({
    entries: z.array(catalogEntrySchema).default([]),
    /** ids of entries of an earlier catalog layer (the shipped catalog) that this site does not offer */
    disable: z.array(z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a catalog entry id')).optional(),
  })
  .strict()
  .refine((f) => f.entries.length > 0 || (f.disable?.length ?? 0) > 0, 'a catalog file needs "entries:" (or "disable:")');
export type CatalogFile = z.infer<typeof catalogFileSchema>;

/** A loaded catalog: entries in layer and file order, with the file each came from. */
export interface Catalog {
  entries: CatalogEntry[];
  /** entry id -> source file */
  sources: Map<string, string>;
  /** entry id -> the file of an earlier layer whose entry it replaced */
  replaced?: Map<string, string>;
  /** entry id -> the file whose `disable:` removed it */
  disabled?: Map<string, string>;
  /** the directory of the first layer (the shipped catalog, unless pxe.yaml `catalogDir` replaces it) */
  baseDir?: string;
}

// ---- expansion: an entry -> the concrete files of each version/arch ----

export type FileRole = 'kernel' | 'initrd' | 'image' | 'chain' | 'extra';

export type ExpandedChecksum =
  | { kind: 'none' }
  | {
      kind: Exclude<ChecksumKind, 'none'>;
      /** URL of the checksum file (for sha256-per-file: `<file url><suffix>`) */
      url: string;
      /** the name to look up inside it */
      key: string;
    };

export interface ExpandedSignature {
  kind: SignatureSource['kind'];
  /** InRelease, or the detached signature */
  url: string;
  /** pxe.yaml keyring name */
  keyring: string;
  /** debian-release: the checksum file's path as listed in InRelease; gpg-detached: its URL */
  key: string;
}

export interface ExpandedFile {
  role: FileRole;
  /** for role 'extra': its name (`files.<name>` in templates); else the role, or `initrd<N>` */
  name: string;
  /** where to download it (the archive's URL when `extract` is set) */
  url: string;
  /** where it is installed, relative to tftproot: `images/<id>/<version>/<arch>/<basename>` */
  relPath: string;
  checksum: ExpandedChecksum;
  /** when set: `url` is an archive; verify the archive, then extract `member` to relPath */
  extract?: { format: 'tar.gz' | 'zip'; member: string };
}

export interface ExpandedTarget {
  entryId: string;
  version: string;
  arch: Arch;
  trust: TrustLevel;
  /** the mirror actually used (site override applied) */
  mirror: string;
  /** the signature over the checksum file(s), when the upstream signs them */
  signature?: ExpandedSignature;
  /** relative to tftproot: `images/<id>/<version>/<arch>` */
  dir: string;
  files: ExpandedFile[];
}

declare const siteMirrorsBrand: unique symbol;
/**
 * pxe.yaml `mirrors`: catalog entry id -> base URL replacing the entry's upstream
 * mirror. A branded type, made only by `siteMirrors()` (config.ts does it when it
 * validates the file): a plain record, or an options object, cannot be passed
 * where the mirrors are expected, nor the reverse. (A rendering path once passed
 * the record where `{ mirrors }` was expected, and every answer file and menu
 * named the upstream hosts.)
 */
export type SiteMirrors = Readonly<Record<string, string>> & { readonly [siteMirrorsBrand]: true };

export function siteMirrors(byEntryId: Readonly<Record<string, string>>): SiteMirrors {
  return Object.freeze({ ...byEntryId }) as SiteMirrors;
}

/** No site mirror: every entry uses its upstream. */
export const NO_MIRRORS: SiteMirrors = siteMirrors({});

export interface ExpandOptions {
  /** pxe.yaml `mirrors` (required: say NO_MIRRORS to mean upstream) */
  mirrors: SiteMirrors;
}

function joinUrl(base: string, rel: string): string {
  return `${base.replace(/\/+$/, '')}/${rel.replace(/^\/+/, '')}`;
}

function posixDirname(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

function basename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** `file` relative to directory `dir` (both mirror-relative); undefined when it is not below it. */
function relativeTo(dir: string, file: string): string | undefined {
  if (dir === '') return file;
  return file.startsWith(`${dir}/`) ? file.slice(dir.length + 1) : undefined;
}

export class CatalogExpandError extends Error {
  constructor(
    readonly entryId: string,
    message: string,
    /** the entry field at fault, e.g. "boot.initrd[0]", when known */
    readonly field?: string,
  ) {
    super(`entry "${entryId}": ${message}`);
    this.name = 'CatalogExpandError';
  }
}

/** Template variables for one version/arch of an entry (paths and append lines). */
export function entryVars(entry: CatalogEntry, v: VersionSpec, arch: Arch, mirror: string): Record<string, string> {
  return {
    ...(entry.vars ?? {}),
    ...(v.vars ?? {}),
    id: entry.id,
    version: v.version,
    codename: v.codename ?? v.version,
    arch,
    uarch: entry.arch_names?.[arch] ?? arch,
    mirror: mirror.replace(/\/+$/, ''),
  };
}

/** The base URL an entry's files and repositories come from: the site mirror when one is set. */
export function entryMirror(entry: CatalogEntry, mirrors: SiteMirrors): string {
  return (mirrors[entry.id] ?? entry.mirror ?? '').replace(/\/+$/, '');
}

/** The architectures a version is offered for. */
export function versionArches(entry: CatalogEntry, v: VersionSpec): Arch[] {
  return v.architectures ?? entry.architectures;
}

/**
 * Expands one version/arch of an entry into the concrete files to download,
 * verify and install. Throws CatalogExpandError on a template error or when a
 * file is not below its checksum file's directory (the key would be ambiguous).
 */
export function expandTarget(
  entry: CatalogEntry,
  v: VersionSpec,
  arch: Arch,
  opts: ExpandOptions = { mirrors: NO_MIRRORS },
): ExpandedTarget {
  const mirror = entryMirror(entry, opts.mirrors);
  const vars = entryVars(entry, v, arch, mirror);
  const r = (what: string, tpl: string): string => {
    try {
      return renderInline(`${entry.id}.${what}`, tpl, vars);
    } catch (err) {
      throw new CatalogExpandError(entry.id, (err as Error).message, what);
    }
  };
  const dir = `images/${entry.id}/${v.version}/${arch}`;

  const boot = entry.boot;
  const wanted: Array<{ role: FileRole; name: string; path: string }> = [];
  switch (boot.method) {
    case 'linux': {
      wanted.push({ role: 'kernel', name: 'kernel', path: r('boot.kernel', boot.kernel) });
      const initrds = boot.initrd === undefined ? [] : Array.isArray(boot.initrd) ? boot.initrd : [boot.initrd];
      initrds.forEach((p, i) =>
        wanted.push({ role: 'initrd', name: initrds.length === 1 ? 'initrd' : `initrd${i}`, path: r(`boot.initrd[${i}]`, p) }),
      );
      for (const [name, p] of Object.entries(boot.extra ?? {})) wanted.push({ role: 'extra', name, path: r(`boot.extra.${name}`, p) });
      break;
    }
    case 'memdisk':
      wanted.push({ role: 'image', name: 'image', path: r('boot.image', boot.image) });
      break;
    case 'chain':
      wanted.push({ role: 'chain', name: 'chain', path: r('boot.file', boot.file) });
      break;
    case 'localboot':
      break;
  }

  const archive = entry.archive ? { path: r('archive.path', entry.archive.path), format: entry.archive.format } : undefined;
  // The checksum covers what is downloaded: the archive when there is one.
  const checksumFor = (downloadPath: string): ExpandedChecksum => {
    const c = entry.checksum;
    if (c.kind === 'none') return { kind: 'none' };
    if (c.kind === 'sha256-per-file')
      return { kind: c.kind, url: `${joinUrl(mirror, downloadPath)}${c.suffix}`, key: basename(downloadPath) };
    const sumsPath = r('checksum.path', c.path);
    const key = relativeTo(posixDirname(sumsPath), downloadPath);
    if (key === undefined)
      throw new CatalogExpandError(entry.id, `"${downloadPath}" is not below the directory of checksum file "${sumsPath}"`);
    return { kind: c.kind, url: joinUrl(mirror, sumsPath), key };
  };

  const names = new Set<string>();
  const files: ExpandedFile[] = wanted.map((w) => {
    const base = basename(w.path);
    if (names.has(base)) throw new CatalogExpandError(entry.id, `two files install to the same name "${base}"`);
    names.add(base);
    const relPath = `${dir}/${base}`;
    if (archive) {
      return {
        role: w.role,
        name: w.name,
        url: joinUrl(mirror, archive.path),
        relPath,
        checksum: checksumFor(archive.path),
        extract: { format: archive.format, member: w.path },
      };
    }
    return { role: w.role, name: w.name, url: joinUrl(mirror, w.path), relPath, checksum: checksumFor(w.path) };
  });

  let signature: ExpandedSignature | undefined;
  if (entry.signature && entry.checksum.kind !== 'none' && entry.checksum.kind !== 'sha256-per-file') {
    const s = entry.signature;
    const sumsPath = r('checksum.path', entry.checksum.path);
    if (s.kind === 'debian-release') {
      const inrelease = r('signature.inrelease', s.inrelease);
      const key = relativeTo(posixDirname(inrelease), sumsPath);
      if (key === undefined)
        throw new CatalogExpandError(entry.id, `checksum file "${sumsPath}" is not below the directory of "${inrelease}"`);
      signature = { kind: s.kind, url: joinUrl(mirror, inrelease), keyring: s.keyring, key };
    } else {
      signature = { kind: s.kind, url: joinUrl(mirror, r('signature.path', s.path)), keyring: s.keyring, key: joinUrl(mirror, sumsPath) };
    }
  }

  return { entryId: entry.id, version: v.version, arch, trust: entry.trust, mirror, ...(signature ? { signature } : {}), dir, files };
}

/** Every version x architecture of an entry (none for localboot). */
export function expandEntry(entry: CatalogEntry, opts: ExpandOptions = { mirrors: NO_MIRRORS }): ExpandedTarget[] {
  if (entry.boot.method === 'localboot') return [];
  return entry.versions.flatMap((v) => versionArches(entry, v).map((a) => expandTarget(entry, v, a, opts)));
}

/** Every target of the catalog, optionally restricted to one entry id. */
export function expandCatalog(catalog: Catalog, opts: ExpandOptions & { only?: string } = { mirrors: NO_MIRRORS }): ExpandedTarget[] {
  return catalog.entries.filter((e) => opts.only === undefined || e.id === opts.only).flatMap((e) => expandEntry(e, opts));
}
