/**
 * The image store, after MAAS's snapshot model (anchors.md §1): every verified
 * kernel+initrd pair lives in its own immutable snapshot directory
 *
 *   <tftproot>/.store/<id>/<version>-<arch>/<snapshot>/<files>
 *
 * and the served path is a relative symlink
 *
 *   <tftproot>/images/<id>/<version>/<arch> -> ../../../.store/<id>/<version>-<arch>/<snapshot>
 *
 * switched with symlink(tmp) + rename(tmp, link), which rename(2) makes atomic: a
 * client opening images/…/linux sees the old pair or the new pair, never a mix and
 * never a partial file. The store stays inside tftproot because the TFTP/HTTP
 * servers resolve realpath() and refuse anything outside the root.
 *
 * Snapshots are built in a staging directory on the same filesystem (so rename() of
 * the whole directory works) that is not under the served tree, and only renamed
 * into `.store` once every file in it is verified.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, lstat, mkdir, open, readdir, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

export const STORE_DIR = '.store';
export const IMAGES_DIR = 'images';

export interface UnitKey {
  id: string;
  version: string;
  arch: string;
}

export function unitName(u: UnitKey): string {
  return `${u.id}/${u.version}/${u.arch}`;
}

/** Reject path components that could climb out of the store ("..", "/", NUL, hidden). */
export function safeComponent(s: string, what: string): string {
  if (s === '' || s === '.' || s === '..' || s.includes('/') || s.includes('\\') || s.includes('\0') || s.startsWith('.')) {
    throw new Error(`unsafe ${what} "${s}"`);
  }
  return s;
}

/** A relative file path inside a snapshot: no absolute paths, no "..". */
export function safeRelPath(p: string): string {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.length === 0 || parts.some((x) => x === '..' || x.includes('\0') || x.includes('\\')))
    throw new Error(`unsafe file path "${p}"`);
  return parts.join('/');
}

export function newSnapshotId(now = new Date()): string {
  // sortable like MAAS's snapshot-YYYYmmdd-HHMMSS, plus randomness so two runs in one second differ
  const ts = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `snapshot-${ts}-${randomBytes(3).toString('hex')}`;
}

export class Store {
  constructor(
    readonly tftpRoot: string,
    /** where snapshots are assembled; must be on the same filesystem as tftpRoot */
    readonly stagingRoot: string,
  ) {}

  unitDir(u: UnitKey): string {
    return join(
      this.tftpRoot,
      STORE_DIR,
      safeComponent(u.id, 'id'),
      `${safeComponent(u.version, 'version')}-${safeComponent(u.arch, 'arch')}`,
    );
  }

  snapshotDir(u: UnitKey, snap: string): string {
    return join(this.unitDir(u), safeComponent(snap, 'snapshot'));
  }

  linkPath(u: UnitKey): string {
    return join(this.tftpRoot, IMAGES_DIR, safeComponent(u.id, 'id'), safeComponent(u.version, 'version'), safeComponent(u.arch, 'arch'));
  }

  /** The snapshot the served link points at now, if any. */
  async currentSnapshot(u: UnitKey): Promise<string | undefined> {
    try {
      const target = await readlink(this.linkPath(u));
      const base = target.split('/').pop();
      return base && base.startsWith('snapshot-') ? base : undefined;
    } catch {
      return undefined;
    }
  }

  async snapshotExists(u: UnitKey, snap: string): Promise<boolean> {
    try {
      return (await stat(this.snapshotDir(u, snap))).isDirectory();
    } catch {
      return false;
    }
  }

  /** A fresh, private staging directory for one snapshot. */
  async createStaging(u: UnitKey, snap: string): Promise<string> {
    await mkdir(this.stagingRoot, { recursive: true, mode: 0o700 });
    const dir = join(this.stagingRoot, `${u.id}--${u.version}--${u.arch}--${snap}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** Reuse an unchanged file from the installed snapshot: hard link (same fs), else copy. */
  async carryOver(u: UnitKey, fromSnap: string, relPath: string, stagingDir: string): Promise<void> {
    const src = join(this.snapshotDir(u, fromSnap), relPath);
    const dst = join(stagingDir, relPath);
    await mkdir(dirname(dst), { recursive: true });
    try {
      // a hard link shares the inode, whose data was made durable when it was installed
      await link(src, dst);
    } catch {
      await copyFile(src, dst);
      await syncPath(dst, true); // a copy is new data: durable before seal(), like a download
    }
  }

  /**
   * Make the staged snapshot visible: rename the directory into the store (atomic,
   * same filesystem), then switch the served symlink to it (atomic).
   */
  /**
   * Survive power loss too, not just kill -9: file data and directory entries must be on
   * disk before a link points at them, or a crash right after the switch could serve
   * zero-length files (ext4 delayed allocation). Call before commit().
   *
   * Division of labour (so no byte is synced twice and the syncs overlap the downloads
   * still running): every writer of a staged file syncs its data itself the moment the
   * file is complete (engine.ts's fdatasync of each download, the archive member writer, carryOver's
   * copy; hard links share an inode that was synced when first installed). What is left
   * here is the directory entries: one fsync per staging directory. commit() then syncs
   * the parent of the renamed snapshot and of the switched link, and only after that
   * does the state file (fsync'd itself, at the end of the run) name the snapshot.
   */
  async seal(stagingDir: string): Promise<void> {
    await syncDirs(stagingDir);
  }

  async commit(u: UnitKey, snap: string, stagingDir: string): Promise<void> {
    const dest = this.snapshotDir(u, snap);
    await mkdir(dirname(dest), { recursive: true });
    await rename(stagingDir, dest);
    await syncPath(dirname(dest));
    await this.pointTo(u, snap);
    await syncPath(dirname(this.linkPath(u)));
  }

  /** Atomically point the served link at `snap` (which must exist). */
  async pointTo(u: UnitKey, snap: string): Promise<void> {
    const linkPath = this.linkPath(u);
    await mkdir(dirname(linkPath), { recursive: true });
    const existing = await lstat(linkPath).catch(() => null);
    if (existing && !existing.isSymbolicLink()) {
      // Someone put real files there (an older manual install). Never delete them silently.
      throw new Error(`${linkPath} exists and is not a symlink managed by pxe sync; move it away first`);
    }
    const target = relative(dirname(linkPath), this.snapshotDir(u, snap)).split(sep).join('/');
    // The temp link sits next to the real one (rename(2) needs the same directory) under a
    // dot-name; it points at a complete snapshot, so even a client that guessed its name
    // would only ever read verified files.
    const tmp = join(dirname(linkPath), `.${u.arch}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`);
    await symlink(target, tmp);
    try {
      await rename(tmp, linkPath);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
  }

  /** Delete snapshots of `u` other than `keep` (current + previous). */
  async prune(u: UnitKey, keep: ReadonlyArray<string | undefined>): Promise<void> {
    const dir = this.unitDir(u);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) {
      if (!n.startsWith('snapshot-') || keep.includes(n)) continue;
      await rm(join(dir, n), { recursive: true, force: true });
    }
  }

  /** Staging leftovers of a killed run (we hold the lock, so nothing else uses them). */
  async cleanStaging(): Promise<number> {
    const names = await readdir(this.stagingRoot).catch(() => [] as string[]);
    for (const n of names) await rm(join(this.stagingRoot, n), { recursive: true, force: true });
    return names.length;
  }
}

/**
 * fdatasync(2) a complete staged file: its data and the metadata needed to read it back
 * (size, block map); mtime is not worth a journal write. Its directory entry is synced
 * by seal().
 */
export function syncFileData(p: string): Promise<void> {
  return syncPath(p, true);
}

async function syncPath(p: string, dataOnly = false): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await (dataOnly ? fh.datasync() : fh.sync());
  } finally {
    await fh.close();
  }
}

/** fsync `dir` and every directory below it (the files' data is synced by their writers). */
async function syncDirs(dir: string): Promise<void> {
  const subdirs = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory());
  await Promise.all(subdirs.map((e) => syncDirs(join(dir, e.name))));
  await syncPath(dir);
}

/** True when a and b are on the same filesystem (rename(2) across devices fails with EXDEV). */
export async function sameFilesystem(a: string, b: string): Promise<boolean> {
  try {
    return (await stat(a)).dev === (await stat(b)).dev;
  } catch {
    return false;
  }
}
