import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isCollection, isMap, isSeq, isScalar, visit, type Node } from 'yaml';
import { closest } from './closest.js';
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
  const { node, keyNode } = nodeAt(doc.contents, path);
  const range = node?.range ?? keyNode?.range;
  return range ? lineCounter.linePos(range[0]) : undefined;
}

/**
 * `key: {{ x }}/linux` is a YAML flow mapping, not a template: the parser either fails
 * ("Unexpected scalar") or reads a map with a map as its key. Either way the fix is
 * to quote the value; this builds that hint from the source line.
 */
function quoteTemplateHint(lineText: string): string | undefined {
  const m =
    /^\s*(?:-\s+)?([^\s:#][^:#]*?)\s*:\s+(\{\{.*?)\s*(?:\s#.*)?$/.exec(lineText) ?? /^\s*-\s+(\{\{.*?)\s*(?:\s#.*)?$/.exec(lineText);
  if (!m) return undefined;
  const [key, value] = m.length === 3 && m[2] !== undefined ? [m[1]!, m[2]] : [undefined, m[1]!];
  const quoted = JSON.stringify(value);
  return `a value that starts with "{{" must be quoted: ${key === undefined ? `- ${quoted}` : `${key}: ${quoted}`}`;
}

function lineOf(text: string, line: number): string {
  return text.split('\n')[line - 1] ?? '';
}

/** The key a path ends with ("version" for entries[0].versions[1].version), for "quote it" hints. */
function lastKey(path: ReadonlyArray<PropertyKey>): string | undefined {
  for (let i = path.length - 1; i >= 0; i--) if (typeof path[i] === 'string') return path[i] as string;
  return undefined;
}

/** Parses YAML text and validates it; throws ConfigError naming file, line and field. */
export function parseYaml<T>(file: string, text: string, schema: z.ZodType<T>): T {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const firstError = doc.errors[0];
  if (firstError) {
    const pos = lineCounter.linePos(firstError.pos[0]);
    const hint = pos ? quoteTemplateHint(lineOf(text, pos.line)) : undefined;
    throw new ConfigError(
      file,
      pos?.line,
      pos?.col,
      undefined,
      `YAML syntax: ${firstError.message.split('\n')[0]}${hint ? `; ${hint}` : ''}`,
    );
  }
  // A map used as a key is never meant here: it is an unquoted "{{ … }}" that parsed.
  visit(doc, {
    Pair(_, pair) {
      if (!isCollection(pair.key)) return;
      const pos = pair.key.range ? lineCounter.linePos(pair.key.range[0]) : undefined;
      const hint = pos ? quoteTemplateHint(lineOf(text, pos.line)) : undefined;
      throw new ConfigError(
        file,
        pos?.line,
        pos?.col,
        undefined,
        hint ?? 'a map or list cannot be a key (quote a value that starts with "{" or "[")',
      );
    },
  });
  const data: unknown = doc.toJS() ?? {};
  // An unknown key: name the closest known key of the same object (the error map sees the object's shape).
  const result = schema.safeParse(data, {
    error: (iss) => {
      if (iss.code !== 'unrecognized_keys') return undefined;
      const shape = (iss.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
      const keys = iss.keys;
      const guess = shape && keys[0] !== undefined ? closest(keys[0], Object.keys(shape)) : undefined;
      return `unknown key "${keys.join('", "')}"${guess ? ` (did you mean "${guess}"?)` : ''}`;
    },
  });
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  // An unknown key is reported on its parent object; point at the key itself.
  const path = issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined ? [...issue.path, issue.keys[0]] : issue.path;
  const { node, keyNode } = nodeAt(doc.contents, path);
  const range = issue.code === 'unrecognized_keys' ? (keyNode?.range ?? node?.range) : (node?.range ?? keyNode?.range);
  const pos = range ? lineCounter.linePos(range[0]) : undefined;
  const field = path.length > 0 ? formatPath(path) : undefined;
  let message = issue.message;
  // `version: 24.10` is the number 24.1 to YAML: say so, with the quoted spelling of what was written.
  if (
    issue.code === 'invalid_type' &&
    issue.expected === 'string' &&
    node &&
    isScalar(node) &&
    node.range &&
    (typeof node.value === 'number' || typeof node.value === 'boolean')
  ) {
    const written = text.slice(node.range[0], node.range[1]).trim();
    const key = lastKey(path);
    message = `${message}: YAML reads ${written} as a ${typeof node.value}; quote it: ${key ? `${key}: ` : ''}"${written}"`;
  }
  throw new ConfigError(file, pos?.line, pos?.col, field, message);
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
