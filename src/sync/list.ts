/**
 * `pxe list` and `pxe rollback`: what the catalog offers and what is installed.
 * The served symlink is the truth for "what clients get"; the state file adds
 * trust, errors and the rollback target.
 */
import { basename, dirname, join } from 'node:path';
import { PACKAGE_DIR } from '../config.js';
import { loadConfiguredCatalog } from '../catalog/load.js';
import { expandEntry, type Catalog } from '../catalog/schema.js';
import type { SyncConfig } from './engine.js';
import { acquireLock, SyncState, type Trust } from './state.js';
import { Store, unitName, type UnitKey } from './store.js';

export type ListState = 'missing' | 'synced' | 'failed' | 'failed (previous kept)' | 'n/a';

export interface ListRow {
  id: string;
  label: string;
  version: string;
  arch: string;
  state: ListState;
  /** trust of the installed snapshot (or the catalog's declared level when nothing is installed) */
  trust: Trust | undefined;
  declaredTrust: Trust;
  /** the catalog file the entry comes from ("shipped: debian.yaml" for the catalog shipped with pxe) */
  from: string;
  snapshot?: string;
  previous?: string;
  lastSuccess?: string;
  lastError?: string;
}

export interface ListOptions {
  config: SyncConfig;
  catalog?: Catalog;
  only?: string;
}

function storeFor(config: SyncConfig): Store {
  return new Store(config.tftp.root, join(config.stateDir, 'sync', 'staging'));
}

const SHIPPED_DIR = join(PACKAGE_DIR, 'distros');

/** "shipped: debian.yaml", or the site file's path; "(replaces …)" when it overrides an earlier layer's entry. */
export function entryOrigin(catalog: Catalog, id: string): string {
  const name = (file: string) => (dirname(file) === SHIPPED_DIR ? `shipped: ${basename(file)}` : file);
  const file = catalog.sources.get(id);
  if (file === undefined) return '-';
  const over = catalog.replaced?.get(id);
  return over === undefined ? name(file) : `${name(file)} (replaces ${name(over)})`;
}

export async function listEntries(opts: ListOptions): Promise<ListRow[]> {
  const cfg = opts.config;
  const catalog = opts.catalog ?? loadConfiguredCatalog(cfg);
  const state = await new SyncState(cfg.stateDir).load();
  const store = storeFor(cfg);
  const rows: ListRow[] = [];
  for (const e of catalog.entries) {
    if (opts.only !== undefined && e.id !== opts.only) continue;
    if (e.boot.method === 'localboot') {
      rows.push({
        id: e.id,
        label: e.label,
        version: '-',
        arch: '-',
        state: 'n/a',
        trust: undefined,
        declaredTrust: e.trust,
        from: entryOrigin(catalog, e.id),
      });
      continue;
    }
    for (const t of expandEntry(e, { mirrors: cfg.mirrors })) {
      const unit: UnitKey = { id: t.entryId, version: t.version, arch: t.arch };
      const s = state.data.entries[unitName(unit)];
      const current = await store.currentSnapshot(unit);
      const live = current !== undefined && (await store.snapshotExists(unit, current));
      let st: ListState;
      if (s?.status === 'failed') st = live ? 'failed (previous kept)' : 'failed';
      else st = live ? 'synced' : 'missing';
      const row: ListRow = {
        id: e.id,
        label: e.label,
        version: t.version,
        arch: t.arch,
        state: st,
        trust: live && current ? (s?.snapshots[current]?.trust ?? s?.trust) : undefined,
        declaredTrust: e.trust,
        from: entryOrigin(catalog, e.id),
      };
      if (live && current) row.snapshot = current;
      if (s?.previous) row.previous = s.previous;
      if (s?.lastSuccess) row.lastSuccess = s.lastSuccess;
      if (s?.lastError && s.status === 'failed') row.lastError = s.lastError;
      rows.push(row);
    }
  }
  return rows;
}

export function formatList(rows: ListRow[], disabled?: Map<string, string>): string {
  const head = ['ID', 'VERSION', 'ARCH', 'STATE', 'TRUST', 'SNAPSHOT', 'FROM'];
  const body = rows.map((r) => [r.id, r.version, r.arch, r.state, r.trust ?? `(${r.declaredTrust})`, r.snapshot ?? '-', r.from]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const fmt = (cols: string[]) =>
    cols
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const lines = [fmt(head), ...body.map(fmt)];
  for (const r of rows) if (r.lastError) lines.push(`  ${r.id} ${r.version} ${r.arch}: last error: ${r.lastError}`);
  for (const [id, file] of disabled ?? []) lines.push(`disabled: ${id} (by ${file})`);
  return lines.join('\n') + '\n';
}

export interface RollbackOptions {
  config: SyncConfig;
  catalog?: Catalog;
  version?: string;
  arch?: string;
}

export interface RollbackResult {
  unit: string;
  from: string | undefined;
  to: string;
}

/**
 * Point every matching version/arch of entry `id` back at its previous snapshot
 * (atomic symlink switch). The snapshots swap roles, so a second rollback undoes
 * the first. Throws when nothing matching has a previous snapshot on disk.
 */
export async function rollback(id: string, opts: RollbackOptions): Promise<RollbackResult[]> {
  const cfg = opts.config;
  const catalog = opts.catalog ?? loadConfiguredCatalog(cfg);
  const entry = catalog.entries.find((e) => e.id === id);
  if (!entry) throw new Error(`no catalog entry "${id}"`);
  const release = await acquireLock(cfg.stateDir);
  try {
    const state = await new SyncState(cfg.stateDir).load();
    const store = storeFor(cfg);
    const out: RollbackResult[] = [];
    for (const t of expandEntry(entry, { mirrors: cfg.mirrors })) {
      if (opts.version !== undefined && t.version !== opts.version) continue;
      if (opts.arch !== undefined && t.arch !== opts.arch) continue;
      const unit: UnitKey = { id: t.entryId, version: t.version, arch: t.arch };
      const name = unitName(unit);
      const s = state.data.entries[name];
      if (!s?.previous || !(await store.snapshotExists(unit, s.previous))) continue;
      const from = await store.currentSnapshot(unit);
      const to = s.previous;
      await store.pointTo(unit, to);
      state.data.entries[name] = {
        ...s,
        current: to,
        status: 'synced',
        ...(from ? { previous: from } : {}),
        trust: s.snapshots[to]?.trust ?? s.trust,
      };
      if (!from) delete state.data.entries[name].previous;
      delete state.data.entries[name].lastError;
      out.push({ unit: name, from, to });
    }
    if (out.length === 0) throw new Error(`nothing to roll back for "${id}": no previous snapshot kept`);
    await state.save();
    return out;
  } finally {
    await release();
  }
}
