import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node } from 'yaml';
import { ConfigError, parseYaml, positionOf } from '../yamlfile.js';
import { closest } from '../closest.js';
import {
  CatalogExpandError,
  catalogFileSchema,
  expandEntry,
  NO_MIRRORS,
  type Catalog,
  type CatalogEntry,
  type ExpandOptions,
  type SiteMirrors,
} from './schema.js';

/**
 * Line/column of `entries[index].<field>` in a catalog file (field like "id" or
 * "boot.initrd[0]"), for errors found after schema validation. Falls back to the
 * deepest node that exists.
 */
export function locateEntryField(text: string, index: number, field: string): { line: number; col: number } | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const path: Array<string | number> = ['entries', index];
  for (const m of field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) path.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  let node: Node | null = doc.contents;
  for (const key of path) {
    let next: Node | null = null;
    if (node && isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
      next = (pair?.value as Node | null | undefined) ?? null;
    } else if (node && isSeq(node) && typeof key === 'number') {
      next = (node.items[key] as Node | undefined) ?? null;
    }
    if (!next) break;
    node = next;
  }
  return node?.range ? lc.linePos(node.range[0]) : undefined;
}

/** Parses one catalog file's text (exported for tests and `pxe catalog check`). */
export function parseCatalogFile(file: string, text: string): CatalogEntry[] {
  return parseYaml(file, text, catalogFileSchema).entries;
}

function readCatalogDir(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => /\.ya?ml$/.test(n))
      .sort()
      .map((n) => join(dir, n));
  } catch (err) {
    throw new ConfigError(dir, undefined, undefined, undefined, `cannot read catalog directory: ${(err as Error).message}`);
  }
}

/**
 * Reads catalog layers in order: the base catalog (the shipped `distros/`, or pxe.yaml
 * `catalogDir`), then each site directory (`catalogDirs`). Within a layer ids are unique
 * (a duplicate names both files); an entry of a later layer replaces the earlier entry of
 * the same id, whole and in its place; a file's `disable: [id]` removes an entry of an
 * earlier layer. Files of a directory are read sorted by name, so the menu order is
 * stable. Each entry is expanded once, so a template error in a path is reported at load
 * time (file, line, field) and not during a sync or a boot.
 */
export function loadCatalogLayers(dirs: string[], opts: ExpandOptions = { mirrors: NO_MIRRORS }): Catalog {
  const entries: CatalogEntry[] = [];
  const sources = new Map<string, string>();
  const replaced = new Map<string, string>();
  const disabled = new Map<string, string>();
  for (const dir of dirs) {
    const layerSources = new Map<string, string>();
    const layerEntries: CatalogEntry[] = [];
    const disables: Array<{ id: string; file: string; at: () => { line: number; col: number } | undefined; index: number }> = [];
    for (const file of readCatalogDir(dir)) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new ConfigError(file, undefined, undefined, undefined, `cannot read: ${(err as Error).message}`);
      }
      const parsed = parseYaml(file, text, catalogFileSchema);
      (parsed.disable ?? []).forEach((id, i) => disables.push({ id, file, index: i, at: () => positionOf(text, ['disable', i]) }));
      parsed.entries.forEach((entry, i) => {
        const first = layerSources.get(entry.id);
        if (first !== undefined) {
          const p = locateEntryField(text, i, 'id');
          throw new ConfigError(file, p?.line, p?.col, `entries[${i}].id`, `duplicate id "${entry.id}" (already defined in ${first})`);
        }
        try {
          expandEntry(entry, opts);
        } catch (err) {
          const field = err instanceof CatalogExpandError && err.field ? err.field : 'boot';
          const p = locateEntryField(text, i, field);
          throw new ConfigError(file, p?.line, p?.col, `entries[${i}].${field}`, (err as Error).message);
        }
        layerSources.set(entry.id, file);
        layerEntries.push(entry);
      });
    }
    for (const d of disables) {
      const at = entries.findIndex((e) => e.id === d.id);
      if (at < 0) {
        const p = d.at();
        const known = entries.map((e) => e.id);
        const hint = closest(d.id, known);
        throw new ConfigError(
          d.file,
          p?.line,
          p?.col,
          `disable[${d.index}]`,
          `no earlier catalog layer defines "${d.id}"${hint ? ` (did you mean "${hint}"?)` : ''}`,
        );
      }
      disabled.set(d.id, d.file);
      entries.splice(at, 1);
      sources.delete(d.id);
      replaced.delete(d.id);
    }
    for (const entry of layerEntries) {
      const at = entries.findIndex((e) => e.id === entry.id);
      if (at >= 0) {
        replaced.set(entry.id, sources.get(entry.id)!);
        entries[at] = entry;
      } else entries.push(entry);
      sources.set(entry.id, layerSources.get(entry.id)!);
      disabled.delete(entry.id);
    }
  }
  return { entries, sources, replaced, disabled, ...(dirs[0] !== undefined ? { baseDir: dirs[0] } : {}) };
}

/** One catalog directory (a single layer). */
export function loadCatalog(dir: string, opts: ExpandOptions = { mirrors: NO_MIRRORS }): Catalog {
  return loadCatalogLayers([dir], opts);
}

/** The catalog pxe.yaml describes: `catalogDir` (default: shipped) then every `catalogDirs` layer. */
export function loadConfiguredCatalog(config: { catalogDir: string; catalogDirs?: string[] | undefined; mirrors: SiteMirrors }): Catalog {
  return loadCatalogLayers([config.catalogDir, ...(config.catalogDirs ?? [])], { mirrors: config.mirrors });
}

export function findEntry(catalog: Catalog, id: string): CatalogEntry | undefined {
  return catalog.entries.find((e) => e.id === id);
}
