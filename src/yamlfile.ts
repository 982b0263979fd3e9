import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node } from 'yaml';
import type { z } from 'zod';

/**
 * A configuration or catalog error that names the file, line, column and field, so
 * that a user who mistyped one key is pointed at it instead of at a stack trace.
 */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly column: number | undefined,
    readonly field: string | undefined,
    readonly detail: string,
  ) {
    const where = line === undefined ? file : `${file}:${line}:${column ?? 1}`;
    super(field ? `${where}: field "${field}": ${detail}` : `${where}: ${detail}`);
    this.name = 'ConfigError';
  }
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

/** Walks the YAML AST along a zod issue path; returns the deepest node that exists. */
function nodeAt(root: Node | null | undefined, path: ReadonlyArray<PropertyKey>): { node: Node | null; keyNode: Node | null } {
  let node: Node | null = root ?? null;
  let keyNode: Node | null = null;
  for (const key of path) {
    if (node && isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(key));
      if (!pair) return { node, keyNode };
      keyNode = (pair.key as Node) ?? keyNode;
      node = (pair.value as Node | null) ?? (pair.key as Node);
    } else if (node && isSeq(node) && typeof key === 'number') {
      const item = node.items[key] as Node | undefined;
      if (!item) return { node, keyNode };
      node = item;
      keyNode = null;
    } else {
      return { node, keyNode };
    }
  }
  return { node, keyNode };
}

/** Line/column of the value at `path` in YAML text (or of the deepest part of the path that exists). */
export function positionOf(text: string, path: ReadonlyArray<PropertyKey>): { line: number; col: number } | undefined {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  const { node, keyNode } = nodeAt(doc.contents as Node | null, path);
  const range = node?.range ?? keyNode?.range;
  return range ? lineCounter.linePos(range[0]) : undefined;
}

/** Parses YAML text and validates it; throws ConfigError naming file, line and field. */
export function parseYaml<T>(file: string, text: string, schema: z.ZodType<T>): T {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const firstError = doc.errors[0];
  if (firstError) {
    const pos = lineCounter.linePos(firstError.pos[0]);
    throw new ConfigError(file, pos?.line, pos?.col, undefined, `YAML syntax: ${firstError.message.split('\n')[0]}`);
  }
  const data: unknown = doc.toJS() ?? {};
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  // An unknown key is reported on its parent object; point at the key itself.
  const path = issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined ? [...issue.path, issue.keys[0]] : issue.path;
  const { node, keyNode } = nodeAt(doc.contents as Node | null, path);
  const range = issue.code === 'unrecognized_keys' ? (keyNode?.range ?? node?.range) : (node?.range ?? keyNode?.range);
  const pos = range ? lineCounter.linePos(range[0]) : undefined;
  const field = path.length > 0 ? formatPath(path) : undefined;
  throw new ConfigError(file, pos?.line, pos?.col, field, issue.message);
}

/** Reads and validates a YAML file; a missing or unreadable file is a ConfigError too. */
export function loadYamlFile<T>(file: string, schema: z.ZodType<T>): T {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, undefined, undefined, undefined, `cannot read: ${(err as Error).message}`);
  }
  return parseYaml(file, text, schema);
}
