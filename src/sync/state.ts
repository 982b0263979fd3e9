/**
 * Sync state in `<stateDir>/sync/`: validators per URL (for conditional GETs), the
 * installed snapshot per entry, cached manifests, and the run lock. Every write is
 * write-temp + rename, so a `kill -9` leaves either the old or the new state file,
 * never half of one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

export type Trust = 'signed' | 'checksum' | 'unverified';

const urlStateSchema = z.object({
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  sha256: z.string(),
  size: z.number(),
});
export type UrlState = z.infer<typeof urlStateSchema>;

const entryStateSchema = z.object({
  /** snapshot id served now */
  current: z.string().optional(),
  /** snapshot kept for `pxe rollback` */
  previous: z.string().optional(),
  status: z.enum(['synced', 'failed']),
  trust: z.enum(['signed', 'checksum', 'unverified']).optional(),
  lastError: z.string().optional(),
  lastAttempt: z.string().optional(),
  lastSuccess: z.string().optional(),
  /** relPath -> sha256 of the files in each snapshot */
  snapshots: z
    .record(
      z.string(),
      z.object({
        files: z.record(z.string(), z.string()),
        trust: z.enum(['signed', 'checksum', 'unverified']),
        /** download URL -> sha256 of the body the files came from (archive or file) */
        sources: z.record(z.string(), z.string()).default({}),
      }),
    )
    .default({}),
});
export type EntryState = z.infer<typeof entryStateSchema>;

const manifestMetaSchema = z.object({
  url: z.string(),
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  sha256: z.string(),
  /**
   * What verified this body: `<keyring name>:<keyring sha256>[:<detached sig sha256>]`.
   * A 304 on a body verified with the same keyring needs no second openpgp pass.
   */
  verifiedBy: z.string().optional(),
});

const stateSchema = z.object({
  version: z.literal(1),
  urls: z.record(z.string(), urlStateSchema).default({}),
  entries: z.record(z.string(), entryStateSchema).default({}),
  manifests: z.record(z.string(), manifestMetaSchema).default({}),
});
export type SyncStateData = z.infer<typeof stateSchema>;

export function emptyState(): SyncStateData {
  return { version: 1, urls: {}, entries: {}, manifests: {} };
}

/**
 * write-temp + rename. `durable` adds fsync before the rename (state.json: after a
 * crash it must name snapshots that exist); cached manifests skip it because a torn
 * one fails its sha256 check in cachedManifest() and is simply fetched again.
 */
export async function atomicWrite(path: string, data: string | Buffer, durable = true): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    if (durable) await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

export class SyncState {
  readonly dir: string;
  readonly file: string;
  data: SyncStateData = emptyState();

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'sync');
    this.file = join(this.dir, 'state.json');
  }

  /** Reads the state; creates nothing (dry runs and `pxe list` must not write). */
  async load(): Promise<this> {
    try {
      const parsed = stateSchema.safeParse(JSON.parse(await readFile(this.file, 'utf8')));
      // A corrupt or foreign state file only costs a full re-download, never a crash.
      this.data = parsed.success ? parsed.data : emptyState();
    } catch {
      this.data = emptyState();
    }
    return this;
  }

  async save(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await atomicWrite(this.file, JSON.stringify(this.data, null, 2) + '\n');
  }

  private manifestPath(url: string): string {
    return join(this.dir, 'manifests', createHash('sha256').update(url).digest('hex').slice(0, 40));
  }

  /** Cached body of a manifest, only if it is the exact one recorded in the state. */
  async cachedManifest(
    url: string,
  ): Promise<{ body: Buffer; etag?: string | undefined; lastModified?: string | undefined; verifiedBy?: string | undefined } | null> {
    const meta = this.data.manifests[url];
    if (!meta) return null;
    try {
      const body = await readFile(this.manifestPath(url));
      if (createHash('sha256').update(body).digest('hex') !== meta.sha256) return null;
      return { body, etag: meta.etag, lastModified: meta.lastModified, verifiedBy: meta.verifiedBy };
    } catch {
      return null;
    }
  }

  async storeManifest(url: string, body: Buffer, etag: string | undefined, lastModified: string | undefined): Promise<void> {
    await mkdir(join(this.dir, 'manifests'), { recursive: true });
    await atomicWrite(this.manifestPath(url), body, false);
    const meta: z.infer<typeof manifestMetaSchema> = { url, sha256: createHash('sha256').update(body).digest('hex') };
    if (etag) meta.etag = etag;
    if (lastModified) meta.lastModified = lastModified;
    this.data.manifests[url] = meta;
  }

  markVerified(url: string, by: string): void {
    const meta = this.data.manifests[url];
    if (meta) meta.verifiedBy = by;
  }
}

/** Process-level lock so two `pxe sync` runs never switch the same links at once. */
export async function acquireLock(stateDir: string): Promise<() => Promise<void>> {
  const dir = join(stateDir, 'sync');
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'lock');
  for (let i = 0; i < 2; i++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pidAlive(pid))
        throw new Error(`another pxe sync is running (pid ${pid}, lock ${path})`, { cause: e });
      // The holder died (kill -9 mid-sync): its lock is stale.
      await rm(path, { force: true });
    }
  }
  throw new Error(`cannot take sync lock ${path}`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
