/**
 * `pxe sync`: download, verify and atomically install every catalog target
 * (entry x version x arch).
 *
 * Order of trust, per target:
 *   1. manifests (InRelease / SHA256SUMS / .treeinfo / CHECKSUMS / *.sha256) are
 *      fetched conditionally and, where the upstream signs them, verified with
 *      OpenPGP against the keyring pxe.yaml names;
 *   2. each boot file is streamed into a private staging directory while its
 *      SHA-256 is computed, and compared with the manifest;
 *   3. only a complete, verified pair is renamed into the store and published by one
 *      atomic symlink switch (store.ts). Anything else leaves the served pair as it was.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { loadConfiguredCatalog } from '../catalog/load.js';
import { expandCatalog, type Catalog, type ExpandedFile, type ExpandedTarget, type SiteMirrors } from '../catalog/schema.js';
import { extractTarGz, extractZip } from './archive.js';
import { provisionBootloaders, type BootloaderFile, type BootloaderResult } from './bootloaders.js';
import { lookupChecksum, parseChecksums, parseReleaseSha256, stripClearsignEnvelope } from './checksums.js';
import { fetchBuffer, fetchToFile, FetchError, type FetchOptions } from './fetch.js';
import { loadKeyring, verifyClearsigned, verifyDetached, type PublicKey } from './pgp.js';
import type { RenderContext } from '../catalog/render.js';
import { renderMenusAfterSync } from './menus.js';
import { formatBytes, makeReporter, type SyncReporter } from './progress.js';
import { acquireLock, SyncState, type EntryState, type Trust } from './state.js';
import { newSnapshotId, sameFilesystem, Store, syncFileData, unitName, type UnitKey } from './store.js';

/** The parts of pxe.yaml sync reads (a full `Config` fits). */
export interface SyncConfig {
  tftp: { root: string };
  stateDir: string;
  catalogDir: string;
  /** site catalog layers read after catalogDir (pxe.yaml `catalogDirs`) */
  catalogDirs?: string[] | undefined;
  mirrors: SiteMirrors;
  keyrings: Record<string, string>;
  /** for the static menus' HTTP URLs (menus.ts); optional */
  serverAddress?: string | undefined;
  http?: { port: number } | undefined;
  templatesDir?: string | undefined;
  /** pxe.yaml `menu` (title, timeout, UI, default entry) for the static menus */
  menu?: RenderContext['menu'];
}

export interface SyncOptions {
  config: SyncConfig;
  /** only this catalog entry id */
  only?: string | undefined;
  /** provision the bootloaders only, no catalog entry (first setup, no upstream needed) */
  bootloadersOnly?: boolean | undefined;
  /** report what would change; write nothing */
  dryRun?: boolean | undefined;
  /** downloads in flight at once (default 4) */
  concurrency?: number | undefined;
  /** where progress goes (default process.stdout) */
  out?: NodeJS.WritableStream | undefined;
  progress?: 'auto' | 'bars' | 'plain' | 'none' | undefined;
  logger?: Logger | undefined;
  fetch?: Pick<FetchOptions, 'timeoutMs' | 'retries' | 'backoffMs' | 'dnsLookup'> | undefined;
  /** false: skip bootloaders; a list: provision these instead of the syslinux defaults */
  bootloaders?: boolean | BootloaderFile[] | undefined;
  /** render the menus after a change to check they still render (default true) */
  render?: boolean | undefined;
  /** also write them as static files into tftproot (needs serverAddress); see menus.ts */
  writeMenus?: boolean | undefined;
  /** use this catalog instead of loading config.catalogDir */
  catalog?: Catalog | undefined;
}

export type TargetStatus = 'installed' | 'unchanged' | 'failed' | 'would-install' | 'would-update';

export interface TargetResult {
  id: string;
  version: string;
  arch: string;
  unit: string;
  status: TargetStatus;
  trust?: Trust;
  snapshot?: string;
  previous?: string;
  error?: string;
  /** body bytes downloaded for this target (manifests excluded) */
  bytes: number;
  files: Array<{ relPath: string; action: 'downloaded' | 'reused' | 'would-fetch'; bytes: number }>;
}

export interface SyncResult {
  ok: boolean;
  /** 0 every target succeeded, 1 some failed */
  exitCode: 0 | 1;
  targets: TargetResult[];
  bootloaders: BootloaderResult[];
  /** what the menu hook did */
  menus: string;
  bytes: number;
  elapsedMs: number;
}

class ChecksumMismatch extends Error {
  override name = 'ChecksumMismatch';
}

/**
 * Bounded concurrency shared by every target of a run. Waiters with a higher priority
 * go first (FIFO within a priority): archives are queued ahead of plain files because
 * their extraction runs after the download, and an archive that starts last puts its
 * whole extraction on the run's critical path.
 */
class Semaphore {
  private active = 0;
  private readonly queue: Array<{ prio: number; go: () => void }> = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>, prio = 0): Promise<T> {
    if (this.active >= this.max) {
      await new Promise<void>((go) => {
        const at = this.queue.findIndex((w) => w.prio < prio);
        this.queue.splice(at < 0 ? this.queue.length : at, 0, { prio, go });
      });
    }
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.go();
    }
  }
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface Manifest {
  body: Buffer;
  /** came from the local cache after a 304 */
  cached: boolean;
  verifiedBy?: string | undefined;
}

/** Resolves `done` once `n` parties have arrived. */
class Barrier {
  private left: number;
  private open!: () => void;
  readonly done = new Promise<void>((r) => (this.open = r));
  constructor(n: number) {
    this.left = n;
    if (n <= 0) this.open();
  }
  arrive(): void {
    if (--this.left === 0) this.open();
  }
}

class RunContext {
  private readonly manifests = new Map<string, Promise<Manifest>>();
  private readonly keyrings = new Map<string, Promise<{ keys: PublicKey[]; id: string }>>();
  private readonly verifications = new Map<string, Promise<Buffer>>();
  private readonly releases = new Map<string, Promise<string>>();
  readonly sem: Semaphore;
  barrier: Barrier = new Barrier(0);

  constructor(
    readonly opts: SyncOptions,
    readonly state: SyncState,
    readonly store: Store,
    readonly reporter: SyncReporter,
    readonly dryRun: boolean,
  ) {
    this.sem = new Semaphore(Math.max(1, opts.concurrency ?? 4));
  }

  /** errors a file line already printed: the target's line does not repeat them */
  readonly reported = new WeakSet<object>();
  /** mirror host names that did not resolve -> the entries that use them */
  readonly unresolved = new Map<string, Set<string>>();

  get fetchOpts(): FetchOptions {
    return { ...this.opts.fetch, onRetry: (n, e) => this.opts.logger?.warn({ attempt: n, err: e.message }, 'sync: retrying') };
  }

  /** A manifest, fetched once per run, conditionally against the cached copy. */
  manifest(url: string): Promise<Manifest> {
    let p = this.manifests.get(url);
    if (!p) {
      p = (async () => {
        const cached = await this.state.cachedManifest(url);
        const r = await fetchBuffer(url, { ...this.fetchOpts, validators: cached ?? undefined });
        if (r.status === 'not-modified') {
          if (!cached) throw new FetchError(`${url}: 304 without a cached copy`, url, false);
          return { body: cached.body, cached: true, verifiedBy: cached.verifiedBy };
        }
        const body = r.body ?? Buffer.alloc(0);
        if (!this.dryRun) await this.state.storeManifest(url, body, r.etag, r.lastModified);
        return { body, cached: false };
      })();
      this.manifests.set(url, p);
    }
    return p;
  }

  keyring(name: string): Promise<{ keys: PublicKey[]; id: string }> {
    let p = this.keyrings.get(name);
    if (!p) {
      const path = this.opts.config.keyrings[name];
      p = (async () => {
        // Fail closed: a "signed" entry is never installed on a weaker check than it promises.
        if (!path) throw new Error(`keyring "${name}" is not configured (add pxe.yaml keyrings: { ${name}: <path to the archive key> })`);
        const raw = await readFile(path).catch((e: NodeJS.ErrnoException) => {
          throw new Error(
            e.code === 'ENOENT'
              ? `keyring "${name}": ${path} does not exist (install the archive keyring package, e.g. debian-archive-keyring, or set keyrings.${name} in pxe.yaml)`
              : `keyring "${name}": cannot read ${path}: ${e.message}`,
          );
        });
        // The keyring's hash is part of "verified by": replacing the keyring (a revoked
        // key) forces every cached manifest to be verified again.
        return { keys: await loadKeyring(path), id: `${name}:${sha256(raw)}` };
      })();
      this.keyrings.set(name, p);
    }
    return p;
  }

  /**
   * The signed text of a clearsigned InRelease. Memoised per (url, keyring): every
   * installer-<arch> SHA256SUMS of a suite hangs off one InRelease, and an OpenPGP
   * pass is the most expensive CPU step of a manifest; one per document is enough.
   */
  verifiedRelease(url: string, keyring: string): Promise<string> {
    const memo = `release ${url} ${keyring}`;
    let p = this.releases.get(memo);
    if (!p) {
      p = (async () => {
        const [ring, inrel] = await Promise.all([this.keyring(keyring), this.manifest(url)]);
        if (inrel.cached && inrel.verifiedBy === ring.id) return stripClearsignEnvelope(inrel.body.toString('utf8'));
        const release = await verifyClearsigned(inrel.body.toString('utf8'), ring.keys);
        if (!this.dryRun) this.state.markVerified(url, ring.id);
        return release;
      })();
      this.releases.set(memo, p);
    }
    return p;
  }

  /**
   * The body of a signed checksum file, after checking the signature chain.
   * Memoised: amd64 and arm64 targets share one InRelease and one verification.
   */
  verifiedChecksumFile(t: ExpandedTarget, checksumUrl: string): Promise<Buffer> {
    const sig = t.signature!;
    const memo = `${sig.kind} ${sig.url} ${sig.keyring} ${checksumUrl}`;
    let p = this.verifications.get(memo);
    if (!p) {
      p = (async () => {
        const ring = await this.keyring(sig.keyring);
        if (sig.kind === 'debian-release') {
          // Debian: InRelease (clearsigned) lists SHA256 + size of the SHA256SUMS file.
          // Fetch the SHA256SUMS while the signature is checked (nothing is trusted
          // before both are in and the hash matches).
          const [release, sums] = await Promise.all([this.verifiedRelease(sig.url, sig.keyring), this.manifest(checksumUrl)]);
          const entry = parseReleaseSha256(release).get(sig.key);
          if (!entry) throw new ChecksumMismatch(`${sig.url} does not list ${sig.key}`);
          const got = sha256(sums.body);
          if (got !== entry.sha256 || sums.body.length !== entry.size)
            throw new ChecksumMismatch(
              `${checksumUrl}: sha256 ${got} (${sums.body.length} bytes) does not match the signed ${sig.url} (${entry.sha256}, ${entry.size} bytes)`,
            );
          return sums.body;
        }
        // Detached signature over the checksum file (openSUSE CHECKSUMS.asc, Ubuntu SHA256SUMS.gpg).
        const [sigBody, sums] = await Promise.all([this.manifest(sig.url), this.manifest(checksumUrl)]);
        const by = `${ring.id}:${sha256(sigBody.body)}`;
        if (!(sums.cached && sums.verifiedBy === by)) {
          await verifyDetached(new Uint8Array(sums.body), new Uint8Array(sigBody.body), ring.keys);
          if (!this.dryRun) this.state.markVerified(checksumUrl, by);
        }
        return sums.body;
      })();
      this.verifications.set(memo, p);
    }
    return p;
  }
}

interface Download {
  url: string;
  files: ExpandedFile[];
  expected: string | undefined;
  archive?: 'tar.gz' | 'zip';
}

/** Expected SHA-256 per download URL, and the trust level actually achieved. */
async function resolveChecksums(ctx: RunContext, t: ExpandedTarget): Promise<{ downloads: Download[]; trust: Trust }> {
  let signedBody: Buffer | undefined;
  let trust: Trust = 'checksum';
  const checksumUrls = [...new Set(t.files.flatMap((f) => (f.checksum.kind === 'none' ? [] : [f.checksum.url])))];
  if (t.signature) {
    const configured = ctx.opts.config.keyrings[t.signature.keyring] !== undefined;
    if (configured || t.trust === 'signed') {
      // the schema guarantees one checksum file when there is a signature
      signedBody = await ctx.verifiedChecksumFile(t, checksumUrls[0]!);
      trust = 'signed';
    }
  }
  const byUrl = new Map<string, Download>();
  for (const f of t.files) {
    let expected: string | undefined;
    if (f.checksum.kind === 'none') {
      trust = 'unverified';
    } else {
      const body = signedBody && f.checksum.url === checksumUrls[0] ? signedBody : (await ctx.manifest(f.checksum.url)).body;
      expected = lookupChecksum(parseChecksums(f.checksum.kind, body.toString('utf8'), f.checksum.key), f.checksum.key);
      if (!expected) throw new ChecksumMismatch(`${f.checksum.url} has no sha256 for "${f.checksum.key}"`);
    }
    const d = byUrl.get(f.url);
    if (d) {
      if (d.expected !== expected) throw new ChecksumMismatch(`${f.url}: conflicting checksums`);
      d.files.push(f);
    } else {
      byUrl.set(f.url, { url: f.url, files: [f], expected, ...(f.extract ? { archive: f.extract.format } : {}) });
    }
  }
  const rank: Record<Trust, number> = { unverified: 0, checksum: 1, signed: 2 };
  if (rank[trust] < rank[t.trust]) throw new Error(`catalog requires trust "${t.trust}" but only "${trust}" could be established`);
  return { downloads: [...byUrl.values()], trust };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** The host name a download failed to resolve (DNS: no such name, or no resolver reachable). */
function unresolvedHost(e: unknown): string | undefined {
  if (!(e instanceof FetchError) || !['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL'].includes(e.code ?? '')) return undefined;
  try {
    return new URL(e.url).hostname;
  } catch {
    return undefined;
  }
}

async function syncTarget(ctx: RunContext, t: ExpandedTarget): Promise<TargetResult> {
  const unit: UnitKey = { id: t.entryId, version: t.version, arch: t.arch };
  const name = unitName(unit);
  const label = `${t.entryId} ${t.version} ${t.arch}`;
  const { state, store, reporter } = ctx;
  const prev: EntryState | undefined = state.data.entries[name];
  const result: TargetResult = { id: t.entryId, version: t.version, arch: t.arch, unit: name, status: 'failed', bytes: 0, files: [] };
  let staging: string | undefined;
  let arrived = false;
  const snap = newSnapshotId();
  try {
    const { downloads, trust } = await resolveChecksums(ctx, t);
    result.trust = trust;
    const current = await store.currentSnapshot(unit);
    const newFiles: Record<string, string> = {};
    /** url -> sha256 of the download each file of the new snapshot came from */
    const sources: Record<string, string> = {};
    const reused: Array<{ base: string; from: string }> = [];
    const downloaded: Array<{ url: string; etag: string | undefined; lastModified: string | undefined; sha256: string; size: number }> = [];

    const ensureStaging = async () => {
      staging ??= await store.createStaging(unit, snap);
      return staging;
    };

    // Snapshots kept on disk that may already hold a download: the served one first, then
    // the rollback target (after `pxe rollback`, the newer pair is still there).
    const kept: string[] = [];
    for (const s of [current, prev?.previous]) {
      if (s !== undefined && !kept.includes(s) && prev?.snapshots[s] && (await store.snapshotExists(unit, s))) kept.push(s);
    }
    /** a kept snapshot holding every file of `d`, built from the download with this sha256 */
    const holder = async (d: Download, sha: string | undefined, candidates: string[]): Promise<string | undefined> => {
      if (sha === undefined) return undefined;
      for (const s of candidates) {
        const rec = prev!.snapshots[s]!;
        const bases = d.files.map((f) => basename(f.relPath));
        if (rec.sources?.[d.url] !== sha || !bases.every((b) => rec.files[b] !== undefined)) continue;
        if ((await Promise.all(bases.map((b) => exists(join(store.snapshotDir(unit, s), b))))).every(Boolean)) return s;
      }
      return undefined;
    };

    await Promise.all(
      downloads.map(async (d, i) => {
        const bases = d.files.map((f) => basename(f.relPath));
        const urlState = state.data.urls[d.url];
        const reuse = (from: string, sha: string) => {
          const rec = prev!.snapshots[from]!;
          for (const b of bases) {
            newFiles[b] = rec.files[b]!;
            reused.push({ base: b, from });
          }
          sources[d.url] = sha;
          for (const f of d.files) result.files.push({ relPath: f.relPath, action: 'reused', bytes: 0 });
        };
        // Verified content that a kept snapshot already holds needs no request at all
        // (content addressing, as MAAS does): the manifest is the authority.
        const from = await holder(d, d.expected, kept);
        if (from !== undefined) {
          reuse(from, d.expected!);
          return;
        }
        // Unverified files: only the upstream's validators can say "unchanged", and only
        // when the served snapshot holds exactly the download those validators describe.
        const servedHolder =
          d.expected === undefined && current !== undefined
            ? await holder(
                d,
                urlState?.sha256,
                [current].filter((s) => kept.includes(s)),
              )
            : undefined;
        const validators =
          servedHolder !== undefined && urlState ? { etag: urlState.etag, lastModified: urlState.lastModified } : undefined;
        const key = `${name}#${i}`;
        const flabel = `${label} ${d.archive ? basename(new URL(d.url).pathname) : bases.join('+')}`;
        if (ctx.dryRun) {
          const r = validators ? await ctx.sem.run(() => fetchBuffer(d.url, { ...ctx.fetchOpts, validators, headOnly: true })) : null;
          if (r?.status === 'not-modified') reuse(servedHolder!, urlState!.sha256);
          else
            for (const f of d.files)
              result.files.push({ relPath: f.relPath, action: 'would-fetch', bytes: r?.status === 'ok' ? r.size : 0 });
          return;
        }
        const dir = await ensureStaging();
        const target = d.archive ? join(dir, `.download-${i}`) : join(dir, bases[0]!);
        const r = await ctx.sem.run(
          async () => {
            reporter.fileStart(key, flabel, undefined);
            try {
              return await fetchToFile(d.url, target, {
                ...ctx.fetchOpts,
                validators,
                // made durable below, after the download slot is released (so the next
                // download starts while the disk flushes); an archive never needs it, it is
                // deleted after extraction and its members are synced instead
                onProgress: (done, total) => reporter.fileProgress(key, done, total),
              });
            } catch (e) {
              const host = unresolvedHost(e);
              reporter.fileDone(key, flabel, `failed: ${host !== undefined ? `mirror ${host} does not resolve` : (e as Error).message}`);
              if (e instanceof Error) ctx.reported.add(e);
              throw e;
            }
          },
          d.archive ? 1 : 0,
        );
        if (r.status === 'not-modified') {
          reporter.fileDone(key, flabel, 'not modified');
          reuse(servedHolder!, urlState!.sha256);
          return;
        }
        result.bytes += r.size;
        if (d.expected !== undefined && r.sha256 !== d.expected) {
          reporter.fileDone(key, flabel, 'CHECKSUM MISMATCH');
          throw new ChecksumMismatch(`${d.url}: sha256 ${r.sha256} does not match the expected ${d.expected}`);
        }
        reporter.fileDone(key, flabel, `${formatBytes(r.size)} ${d.expected ? 'sha256 ok' : 'unverified'}`);
        downloaded.push({ url: d.url, etag: r.etag, lastModified: r.lastModified, sha256: r.sha256, size: r.size });
        sources[d.url] = r.sha256;
        if (d.archive) {
          const wanted = new Map(d.files.map((f) => [f.extract!.member, join(dir, basename(f.relPath))]));
          // members are hashed as they are written (no second read) and made durable
          const digests = d.archive === 'tar.gz' ? await extractTarGz(target, wanted) : await extractZip(target, wanted);
          await rm(target, { force: true });
          for (const f of d.files) newFiles[basename(f.relPath)] = digests.get(join(dir, basename(f.relPath)))!;
        } else {
          // fdatasync now, overlapping the downloads still running (see Store.seal)
          await syncFileData(target);
          newFiles[bases[0]!] = r.sha256;
        }
        for (const f of d.files) result.files.push({ relPath: f.relPath, action: 'downloaded', bytes: d.archive ? 0 : r.size });
      }),
    );

    const onlyCurrent = reused.every((r) => r.from === current);
    if (downloaded.length === 0 && onlyCurrent && !result.files.some((f) => f.action === 'would-fetch') && current !== undefined) {
      // Nothing changed upstream: the served pair stays, no new snapshot.
      if (staging) await rm(staging, { recursive: true, force: true });
      result.status = 'unchanged';
      result.snapshot = current;
      if (prev?.previous) result.previous = prev.previous;
      if (!ctx.dryRun) {
        const snaps = { ...(prev?.snapshots ?? {}) };
        if (snaps[current]) snaps[current] = { ...snaps[current], trust };
        state.data.entries[name] = {
          ...(prev ?? { snapshots: {} }),
          status: 'synced',
          trust,
          current,
          snapshots: snaps,
          lastAttempt: new Date().toISOString(),
          lastSuccess: new Date().toISOString(),
        };
        delete state.data.entries[name].lastError;
        // no save here: nothing on disk changed, the end-of-run save records the timestamps
      }
      reporter.line(`${label}: unchanged ${current} [trust: ${trust}]`);
      return result;
    }
    if (ctx.dryRun) {
      result.status = current ? 'would-update' : 'would-install';
      const n = result.files.filter((f) => f.action === 'would-fetch').length;
      reporter.line(`${label}: would ${current ? 'update' : 'install'} (${n} file(s) to fetch) [trust: ${trust}]`);
      return result;
    }

    // Assemble the full pair: reused files are hard links into the new snapshot.
    const dir = await ensureStaging();
    for (const r of reused) await store.carryOver(unit, r.from, r.base, dir);
    await store.seal(dir);
    // Group commit: every target publishes once all are verified and sealed (MAAS-style
    // snapshot of the whole catalog; the fsyncs of all targets overlap instead of queueing).
    arrived = true;
    ctx.barrier.arrive();
    await ctx.barrier.done;
    await store.commit(unit, snap, dir);
    staging = undefined;

    const snapshots: EntryState['snapshots'] = { [snap]: { files: newFiles, trust, sources } };
    if (current && prev?.snapshots[current]) snapshots[current] = prev.snapshots[current];
    const now = new Date().toISOString();
    const entry: EntryState = { current: snap, status: 'synced', trust, lastAttempt: now, lastSuccess: now, snapshots };
    if (current) entry.previous = current;
    state.data.entries[name] = entry;
    for (const d of downloaded) {
      state.data.urls[d.url] = {
        sha256: d.sha256,
        size: d.size,
        ...(d.etag ? { etag: d.etag } : {}),
        ...(d.lastModified ? { lastModified: d.lastModified } : {}),
      };
    }
    // (state is saved once at the end of the run; if the process dies before that, the
    // links are the truth and the next run re-downloads what the state does not know)
    // Keep exactly current + previous (rollback target); older snapshots go.
    await store.prune(unit, [snap, current]);
    result.status = 'installed';
    result.snapshot = snap;
    if (current) result.previous = current;
    reporter.line(`${label}: installed ${snap} [trust: ${trust}] (${formatBytes(result.bytes)} downloaded)`);
    return result;
  } catch (e) {
    if (staging) await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    const msg = (e as Error).message;
    result.status = 'failed';
    result.error = msg;
    const current = await store.currentSnapshot(unit);
    if (current) result.snapshot = current;
    if (!ctx.dryRun) {
      state.data.entries[name] = {
        ...(prev ?? { snapshots: {} }),
        status: 'failed',
        lastError: msg,
        lastAttempt: new Date().toISOString(),
        ...(current ? { current } : {}),
      };
    }
    const host = unresolvedHost(e);
    if (host !== undefined) {
      const ids = ctx.unresolved.get(host) ?? new Set<string>();
      ids.add(t.entryId);
      ctx.unresolved.set(host, ids);
    }
    // One line per failure: when a file line already said why, the target line only says it failed.
    const why = e instanceof Error && ctx.reported.has(e) ? '' : host !== undefined ? `: mirror ${host} does not resolve` : `: ${msg}`;
    reporter.line(`${label}: FAILED${why}${current ? ` (previous kept: ${current})` : ''}`);
    ctx.opts.logger?.warn({ target: name, err: msg }, 'sync: target failed');
    return result;
  } finally {
    // every target passes the publish barrier exactly once, whatever path it took
    if (!arrived) ctx.barrier.arrive();
  }
}

/**
 * Staging must be on tftproot's filesystem (rename(2) is atomic only within one) and
 * outside the served tree: stateDir's staging if it qualifies, else a hidden sibling of
 * tftproot, and only when tftproot is itself a mount point, `.store/.staging` inside it
 * (reachable by name over TFTP while a download runs, hence the warning).
 */
async function pickStaging(cfg: SyncConfig, stateStaging: string, logger: Logger | undefined): Promise<string> {
  if (await sameFilesystem(cfg.stateDir, cfg.tftp.root)) return stateStaging;
  const root = cfg.tftp.root.replace(/\/+$/, '');
  const sibling = join(dirname(root), `.${basename(root)}.pxe-staging`);
  await mkdir(sibling, { recursive: true, mode: 0o700 }).catch(() => undefined);
  if (await sameFilesystem(sibling, root)) return sibling;
  logger?.warn({ tftpRoot: root }, 'sync: tftproot is a mount point; staging inside it (.store/.staging)');
  return join(root, '.store', '.staging');
}

export async function runSync(opts: SyncOptions): Promise<SyncResult> {
  const started = Date.now();
  const cfg = opts.config;
  const dryRun = opts.dryRun === true;
  const out = opts.out ?? process.stdout;
  const catalog = opts.catalog ?? loadConfiguredCatalog(cfg);
  if (opts.only !== undefined && !catalog.entries.some((e) => e.id === opts.only)) throw new Error(`no catalog entry "${opts.only}"`);
  const targets = opts.bootloadersOnly
    ? []
    : expandCatalog(catalog, { mirrors: cfg.mirrors, ...(opts.only !== undefined ? { only: opts.only } : {}) });

  if (!dryRun) {
    await mkdir(cfg.stateDir, { recursive: true });
    await mkdir(cfg.tftp.root, { recursive: true });
  }
  const release = dryRun ? async () => undefined : await acquireLock(cfg.stateDir);
  const reporter = makeReporter(opts.progress ?? 'auto', out);
  try {
    const state = await new SyncState(cfg.stateDir).load();
    // Staging must share tftproot's filesystem (rename(2) is only atomic within one);
    // stateDir is preferred because it is not served at all.
    const stateStaging = join(cfg.stateDir, 'sync', 'staging');
    const stagingRoot = dryRun ? stateStaging : await pickStaging(cfg, stateStaging, opts.logger);
    const store = new Store(cfg.tftp.root, stagingRoot);
    if (!dryRun) {
      const n = await store.cleanStaging();
      if (n > 0) opts.logger?.info({ removed: n }, 'sync: removed staging left by an interrupted run');
    }
    const ctx = new RunContext(opts, state, store, reporter, dryRun);
    reporter.line(`sync: ${targets.length} target(s)${dryRun ? ' (dry run)' : ''}`);
    ctx.barrier = new Barrier(targets.length);
    const results = await Promise.all(targets.map((t) => syncTarget(ctx, t)));

    let bootloaders: BootloaderResult[] = [];
    if (opts.bootloaders !== false && opts.only === undefined) {
      bootloaders = await provisionBootloaders(
        cfg.tftp.root,
        stagingRoot,
        Array.isArray(opts.bootloaders) ? opts.bootloaders : undefined,
        dryRun,
      );
      const changed = bootloaders.filter((b) => b.status !== 'unchanged');
      for (const b of changed) reporter.line(`bootloader ${b.dest}: ${b.status}${b.detail ? ` (${b.detail})` : ''}`);
      if (changed.length === 0 && bootloaders.length > 0) reporter.line(`bootloaders: ${bootloaders.length} unchanged`);
    }
    let menus = 'unchanged';
    const changedAny = results.some((r) => r.status === 'installed') || bootloaders.some((b) => b.status === 'installed');
    if (!dryRun && opts.render !== false && changedAny) {
      menus = await renderMenusAfterSync(cfg, catalog, stagingRoot, opts.writeMenus === true).catch(
        (e: unknown) => `render failed: ${(e as Error).message}`,
      );
    }
    if (menus !== 'unchanged') reporter.line(`menus: ${menus}`);
    // one state write, after every target finished
    if (!ctx.dryRun) await ctx.state.save();

    // An offline site or a typo in a host name: one line per host, naming the pxe.yaml key to set.
    for (const [host, ids] of ctx.unresolved)
      reporter.line(
        `sync: mirror ${host} is unreachable (its name does not resolve); point ${[...ids]
          .sort()
          .map((id) => `mirrors.${id}`)
          .join(', ')} in pxe.yaml at a reachable (local) mirror`,
      );
    const failed = results.filter((r) => r.status === 'failed').length;
    const bytes = results.reduce((a, r) => a + r.bytes, 0);
    const elapsedMs = Date.now() - started;
    reporter.line(
      `sync: ${results.length - failed} ok, ${failed} failed; ${formatBytes(bytes)} downloaded in ${(elapsedMs / 1000).toFixed(1)} s`,
    );
    return { ok: failed === 0, exitCode: failed === 0 ? 0 : 1, targets: results, bootloaders, menus, bytes, elapsedMs };
  } finally {
    reporter.finish();
    await release();
  }
}
