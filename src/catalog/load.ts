import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node } from 'yaml';
import { ConfigError, parseYaml } from '../yamlfile.js';
import { catalogFileSchema, expandEntry, type Catalog, type CatalogEntry, type ExpandOptions } from './schema.js';

/** Line/column of `entries[index].<key>` in a catalog file, for errors found after validation. */
export function locateEntryField(text: string, index: number, key: string): { line: number; col: number } | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const entries = isMap(doc.contents) ? doc.contents.get('entries', true) : undefined;
  if (!isSeq(entries)) return undefined;
  const item = entries.items[index] as Node | undefined;
  if (!item || !isMap(item)) return undefined;
  const pair = item.items.find((p) => isScalar(p.key) && p.key.value === key);
  const node = (pair?.value as Node | undefined) ?? item;
  return node.range ? lc.linePos(node.range[0]) : undefined;
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
export function loadCatalog(dir: string, opts: ExpandOptions = {}): Catalog {
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
        const p = locateEntryField(text, i, 'boot');
        throw new ConfigError(file, p?.line, p?.col, `entries[${i}]`, (err as Error).message);
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
