import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node } from 'yaml';
import { ConfigError, parseYaml } from '../yamlfile.js';
import { CatalogExpandError, catalogFileSchema, expandEntry, NO_MIRRORS, type Catalog, type CatalogEntry, type ExpandOptions } from './schema.js';

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
  let node: Node | null = doc.contents as Node | null;
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

/** Parses one catalog file's text (exported for tests and `pxe check`). */
export function parseCatalogFile(file: string, text: string): CatalogEntry[] {
  return parseYaml(file, text, catalogFileSchema).entries;
}

/**
 * Loads every `*.yaml`/`*.yml` in `dir` (sorted by name, so the menu order is
 * stable). Throws ConfigError naming file, line and field; a duplicate id names
 * both files. Each entry is also expanded once, so a template error in a path
 * is reported at load time and not during a sync or a boot.
 */
export function loadCatalog(dir: string, opts: ExpandOptions = { mirrors: NO_MIRRORS }): Catalog {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => /\.ya?ml$/.test(n))
      .sort();
  } catch (err) {
    throw new ConfigError(dir, undefined, undefined, undefined, `cannot read catalog directory: ${(err as Error).message}`);
  }
  const entries: CatalogEntry[] = [];
  const sources = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(file, undefined, undefined, undefined, `cannot read: ${(err as Error).message}`);
    }
    const fileEntries = parseCatalogFile(file, text);
    fileEntries.forEach((entry, i) => {
      const pos = () => locateEntryField(text, i, 'id');
      const first = sources.get(entry.id);
      if (first !== undefined) {
        const p = pos();
        throw new ConfigError(file, p?.line, p?.col, `entries[${i}].id`, `duplicate id "${entry.id}" (already defined in ${first})`);
      }
      try {
        expandEntry(entry, opts);
      } catch (err) {
        const field = err instanceof CatalogExpandError && err.field ? err.field : 'boot';
        const p = locateEntryField(text, i, field);
        throw new ConfigError(file, p?.line, p?.col, `entries[${i}].${field}`, (err as Error).message);
      }
      sources.set(entry.id, file);
      entries.push(entry);
    });
  }
  return { entries, sources };
}

export function findEntry(catalog: Catalog, id: string): CatalogEntry | undefined {
  return catalog.entries.find((e) => e.id === id);
}
