/**
 * `pxe catalog check [FILE|ID] [--online]`: is an entry ready to sync? (./check.ts is
 * the start-time check of every template file; this one is about one entry and its mirror.) Validates the
 * file (errors name file:line:column), renders every template string of the entry for
 * each version x arch (paths, checksum and signature paths, repo, append, and the
 * automation line as a host would get it) and prints the URLs they expand to. With
 * `online`, asks the mirror: a HEAD per file (a GET of the first byte when HEAD is
 * refused), and a GET of each checksum manifest, which must list the file's key.
 * Requests run `concurrency` at a time, each bounded by `timeoutMs`; a manifest body
 * is read up to MAX_MANIFEST_BYTES. Outcomes are reported like `pxe sync`'s files.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Host } from '../hosts/schema.js';
import { UserError } from '../errors.js';
import { ConfigError, parseYaml } from '../yamlfile.js';
import { lookupChecksum, parseChecksums, stripClearsignEnvelope, parseReleaseSha256 } from '../sync/checksums.js';
import type { SyncReporter } from '../sync/progress.js';
import { locateEntryField } from './load.js';
import { buildItem, type RenderContext } from './render.js';
import {
  CatalogExpandError,
  catalogFileSchema,
  expandTarget,
  versionArches,
  type Catalog,
  type CatalogEntry,
  type ExpandedTarget,
  type SiteMirrors,
} from './schema.js';

export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

export interface CheckSubject {
  entry: CatalogEntry;
  file: string;
  /** the entry's index in its file (for line numbers) */
  index: number;
  text: string;
}

/** FILE (a path that exists or ends in .yaml/.yml) -> its entries; ID -> that entry of the catalog; nothing -> every entry. */
export function checkSubjects(arg: string | undefined, catalog: () => Catalog): CheckSubject[] {
  if (arg !== undefined && (existsSync(arg) || /\.ya?ml$/.test(arg))) {
    const file = resolve(arg);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(file, undefined, undefined, undefined, `cannot read: ${(err as Error).message}`);
    }
    return parseYaml(file, text, catalogFileSchema).entries.map((entry, index) => ({ entry, file, index, text }));
  }
  const c = catalog();
  const entries = arg === undefined ? c.entries : c.entries.filter((e) => e.id === arg);
  if (arg !== undefined && entries.length === 0)
    throw new UserError(`no catalog entry "${arg}" (known: ${c.entries.map((e) => e.id).join(', ')})`);
  return entries.map((entry) => {
    const file = c.sources.get(entry.id)!;
    const text = readFileSync(file, 'utf8');
    const index = parseYaml(file, text, catalogFileSchema).entries.findIndex((e) => e.id === entry.id);
    return { entry, file, index, text };
  });
}

/** A URL to ask the mirror about, and what it must hold. */
interface Probe {
  label: string;
  url: string;
  /** a manifest: GET it and look these keys up (checksum kind) */
  manifest?: { kind: 'sha256sums' | 'treeinfo' | 'suse-checksums' | 'sha256-per-file' | 'inrelease'; keys: Set<string> };
}

export interface CheckResult {
  ok: boolean;
  problems: string[];
}

const SAMPLE_HOST: Host = {
  mac: '52:54:00:00:00:01',
  hostname: 'check',
  domain: '',
  entry: '',
  version: undefined,
  arch: undefined,
  allow: true,
  install_once: false,
  disk: '/dev/sda',
  user: 'admin',
  password_hash: '',
  ssh_keys: [],
  mirror: '',
  locale: 'en_US.UTF-8',
  timezone: 'Etc/UTC',
  keyboard: 'us',
  append: '',
};

/** Where a render error of `entry.<field>` is in the file. */
function at(s: CheckSubject, field: string): string {
  const p = locateEntryField(s.text, s.index, field);
  return `${s.file}${p ? `:${p.line}:${p.col}` : ''}: field "entries[${s.index}].${field}"`;
}

/** Renders every template of the subjects; prints the URLs; returns the probes and the problems found. */
export function renderChecks(
  subjects: CheckSubject[],
  mirrors: SiteMirrors,
  out: (line: string) => void,
): { probes: Probe[]; problems: string[] } {
  const problems: string[] = [];
  const probes = new Map<string, Probe>();
  const probe = (label: string, url: string, manifest?: Probe['manifest']) => {
    const p = probes.get(url);
    if (!p) probes.set(url, { label, url, ...(manifest ? { manifest: { kind: manifest.kind, keys: new Set(manifest.keys) } } : {}) });
    else if (manifest) for (const k of manifest.keys) p.manifest?.keys.add(k);
  };
  for (const s of subjects) {
    const e = s.entry;
    out(`${e.id} (${s.file})`);
    if (e.boot.method === 'localboot') {
      out('  localboot: nothing to sync');
      continue;
    }
    const ctx: RenderContext = {
      catalog: { entries: [e], sources: new Map() },
      serverAddress: '192.0.2.1',
      httpPort: 8080,
      mirrors,
      isInstalled: () => true,
    };
    for (const v of e.versions) {
      for (const arch of versionArches(e, v)) {
        let t: ExpandedTarget;
        try {
          t = expandTarget(e, v, arch, { mirrors });
          buildItem(ctx, e, v, arch);
          if (e.automation) buildItem(ctx, e, v, arch, { ...SAMPLE_HOST, entry: e.id });
        } catch (err) {
          const msg = (err as Error).message;
          const field =
            err instanceof CatalogExpandError && err.field
              ? err.field
              : (/^[a-z0-9-]+\.(append|automation|repo)\b/.exec(msg.replace(/^entry "[^"]+": /, ''))?.[1] ?? 'boot');
          const problem = `${at(s, field)}: ${msg}`;
          if (!problems.includes(problem)) problems.push(problem);
          out(`  ${v.version} ${arch}: template error: ${msg}`);
          continue;
        }
        out(`  ${v.version} ${arch} -> ${t.dir}${e.boot.method === 'memdisk' ? ' (BIOS only: memdisk)' : ''}`);
        for (const f of t.files) {
          out(`    ${f.name.padEnd(9)} ${f.url}${f.extract ? ` (member ${f.extract.member})` : ''}`);
          probe(`${e.id} ${v.version} ${arch} ${f.name}`, f.url);
          if (f.checksum.kind !== 'none') {
            out(`    ${'checksum'.padEnd(9)} ${f.checksum.url} [${f.checksum.kind}: ${f.checksum.key}]`);
            probe(`${e.id} ${v.version} ${arch} checksum`, f.checksum.url, { kind: f.checksum.kind, keys: new Set([f.checksum.key]) });
          }
        }
        if (t.signature) {
          out(`    ${'signature'.padEnd(9)} ${t.signature.url} [${t.signature.kind}, keyring ${t.signature.keyring}]`);
          probe(
            `${e.id} ${v.version} ${arch} signature`,
            t.signature.url,
            t.signature.kind === 'debian-release' ? { kind: 'inrelease', keys: new Set([t.signature.key]) } : undefined,
          );
        }
      }
    }
  }
  return { probes: [...probes.values()], problems };
}

async function ask(p: Probe, timeoutMs: number): Promise<string | undefined> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    if (!p.manifest) {
      let res = await fetch(p.url, { method: 'HEAD', signal, redirect: 'follow' });
      // some servers refuse HEAD: ask for the first byte instead
      if (res.status === 405 || res.status === 501) {
        res = await fetch(p.url, { headers: { range: 'bytes=0-0' }, signal, redirect: 'follow' });
        await res.body?.cancel();
      }
      return res.ok ? undefined : `HTTP ${res.status}`;
    }
    const res = await fetch(p.url, { signal, redirect: 'follow' });
    if (!res.ok) {
      await res.body?.cancel();
      return `HTTP ${res.status}`;
    }
    const size = Number(res.headers.get('content-length') ?? 0);
    if (size > MAX_MANIFEST_BYTES) {
      await res.body?.cancel();
      return `manifest larger than ${MAX_MANIFEST_BYTES} bytes`;
    }
    const text = await res.text();
    if (text.length > MAX_MANIFEST_BYTES) return `manifest larger than ${MAX_MANIFEST_BYTES} bytes`;
    const missing: string[] = [];
    for (const key of p.manifest.keys) {
      const found =
        p.manifest.kind === 'inrelease'
          ? parseReleaseSha256(stripClearsignEnvelope(text)).has(key)
          : lookupChecksum(parseChecksums(p.manifest.kind, text, key), key) !== undefined;
      if (!found) missing.push(key);
    }
    return missing.length ? `does not list ${missing.map((k) => `"${k}"`).join(', ')}` : undefined;
  } catch (err) {
    return (err as Error).name === 'TimeoutError' ? `no answer in ${timeoutMs} ms` : (err as Error).message;
  }
}

/** Asks the mirror about every probe, `concurrency` at a time; returns one problem line per failure. */
export async function probeOnline(
  probes: Probe[],
  reporter: SyncReporter,
  opts: { concurrency: number; timeoutMs: number },
): Promise<string[]> {
  const problems: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < probes.length) {
      const p = probes[next++]!;
      reporter.fileStart(p.url, p.label, undefined);
      const err = await ask(p, opts.timeoutMs);
      reporter.fileDone(p.url, p.label, err ? `FAILED ${err}: ${p.url}` : `ok ${p.url}`);
      if (err) problems.push(`${p.label}: ${p.url}: ${err}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, probes.length) }, worker));
  return problems;
}
