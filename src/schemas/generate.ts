/**
 * JSON Schemas for pxe.yaml, a distros file and hosts.yaml, and the field reference
 * docs/catalog.md / docs/hosts.md, all generated from the zod schemas the loaders
 * validate with (types, defaults, enums, patterns) plus the field notes in
 * ./notes.ts. `npm run gen` writes them; test/unit/schemas.test.ts fails when the
 * committed files differ from what this produces, and when a field has no note.
 *
 * Editors pick the schemas up through the yaml-language-server comment on the first
 * line of each shipped file (`# yaml-language-server: $schema=../schemas/….json`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { catalogFileSchema } from '../catalog/schema.js';
import { configSchema, PACKAGE_DIR } from '../config.js';
import { hostsFileSchema } from '../hosts/schema.js';
import { CATALOG_NOTES, HOSTS_NOTES, type FieldNote } from './notes.js';

type Json = { [k: string]: unknown };

/** The JSON Schema of what a user writes (zod's input side: defaults are optional). */
function jsonSchema(schema: z.ZodType, title: string): Json {
  const j = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Json;
  return { $schema: j.$schema, title, ...j };
}

export interface Field {
  /** e.g. entries[].boot.kernel */
  path: string;
  type: string;
  required: boolean;
  default?: unknown;
  /** enum values, pattern, bounds */
  constraint: string;
  /** "method: linux" when only some variants of a union have it */
  when: string;
  node: Json;
}

function typeOf(n: Json): string {
  if (Array.isArray(n.enum)) return (n.enum as unknown[]).map((v) => JSON.stringify(v)).join(' | ');
  if (n.const !== undefined) return JSON.stringify(n.const);
  const variants = (n.anyOf ?? n.oneOf) as Json[] | undefined;
  if (variants) return [...new Set(variants.map(typeOf))].join(' or ');
  if (n.type === 'array') return `list of ${typeOf((n.items as Json | undefined) ?? {})}`;
  if (n.type === 'object' && !n.properties && n.additionalProperties) return `map of ${typeOf(n.additionalProperties as Json)}`;
  if (n.type === 'integer') return 'integer';
  return typeof n.type === 'string' ? n.type : Array.isArray(n.type) ? (n.type as string[]).join(' or ') : 'any';
}

function constraintOf(n: Json): string {
  const c: string[] = [];
  if (typeof n.pattern === 'string') c.push(`pattern \`${n.pattern}\``);
  if (typeof n.minLength === 'number' && n.minLength > 0) c.push(`non-empty`);
  if (typeof n.minItems === 'number') c.push(`at least ${n.minItems}`);
  if (typeof n.minimum === 'number' && n.minimum > -1e15) c.push(`>= ${n.minimum}`);
  if (typeof n.maximum === 'number' && n.maximum < 1e15) c.push(`<= ${n.maximum}`);
  if (n.format === 'uri') c.push('URL');
  return c.join(', ');
}

/** Every field of a JSON Schema, depth first, objects inside lists as `list[]`, union variants merged. */
export function fieldsOf(root: Json): Field[] {
  const out = new Map<string, Field>();
  const walk = (node: Json, path: string, when: string): void => {
    const variants = (node.anyOf ?? node.oneOf) as Json[] | undefined;
    if (variants && variants.every((v) => v.type === 'object' && v.properties)) {
      for (const v of variants) {
        const props = v.properties as Record<string, Json>;
        const disc = Object.entries(props).find(([, p]) => p.const !== undefined);
        walk(v, path, disc ? `${disc[0]}: ${String(disc[1].const)}` : when);
      }
      return;
    }
    if (node.type === 'array' && node.items) return walk(node.items as Json, `${path}[]`, when);
    const values = node.additionalProperties as Json | undefined;
    if (node.type === 'object' && !node.properties && typeof values === 'object' && values.properties)
      return walk(values, `${path}.*`, when);
    if (node.type !== 'object' || !node.properties) return;
    const required = new Set((node.required as string[] | undefined) ?? []);
    for (const [key, child] of Object.entries(node.properties as Record<string, Json>)) {
      const p = path ? `${path}.${key}` : key;
      const prev = out.get(p);
      const isDiscriminator = child.const !== undefined;
      if (prev) {
        if (isDiscriminator) prev.type = `${prev.type} | ${typeOf(child)}`;
        else if (when && prev.when && !prev.when.split(', ').includes(when)) prev.when = `${prev.when}, ${when}`;
        else if (!when) prev.when = '';
      } else {
        out.set(p, {
          path: p,
          type: typeOf(child),
          required: required.has(key) && child.default === undefined,
          ...(child.default !== undefined ? { default: child.default } : {}),
          constraint: constraintOf(child),
          when: isDiscriminator ? '' : when,
          node: child,
        });
      }
      walk(child, p, '');
    }
  };
  walk(root, '', '');
  return [...out.values()];
}

/** Puts each note's text into the schema as `description` (shown by editors on hover). */
function describe(schema: Json, notes: Record<string, FieldNote>): Json {
  for (const f of fieldsOf(schema)) {
    const note = notes[f.path];
    if (note) f.node.description = note.doc;
  }
  return schema;
}

function missingNotes(fields: Field[], notes: Record<string, FieldNote>, what: string): void {
  const paths = new Set(fields.map((f) => f.path));
  const missing = fields.filter((f) => !notes[f.path]).map((f) => f.path);
  const stale = Object.keys(notes).filter((p) => !paths.has(p));
  if (missing.length || stale.length)
    throw new Error(
      `${what} notes (src/schemas/notes.ts): ${missing.length ? `no note for ${missing.join(', ')}` : ''}${stale.length ? ` notes for fields that do not exist: ${stale.join(', ')}` : ''}`,
    );
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function markdown(title: string, intro: string, schema: Json, notes: Record<string, FieldNote>): string {
  const fields = fieldsOf(schema);
  missingNotes(fields, notes, title);
  const lines = [
    `# ${title}`,
    '',
    '<!-- generated by `npm run gen` (src/schemas/generate.ts) from the zod schema and src/schemas/notes.ts: edit those, not this file -->',
    '',
    intro,
    '',
    '| field | type | default | description | example |',
    '|---|---|---|---|---|',
  ];
  for (const f of fields) {
    const n = notes[f.path]!;
    const type = [f.type, f.constraint].filter(Boolean).join('; ');
    const def = f.required ? '**required**' : f.default !== undefined ? `\`${JSON.stringify(f.default)}\`` : '–';
    const when = f.when ? ` (${f.when})` : '';
    lines.push(
      `| \`${f.path}\`${cell(when)} | ${cell(type)} | ${cell(def)} | ${cell(n.doc)} | ${n.example ? `\`${cell(n.example)}\`` : ''} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

const CATALOG_INTRO = `A catalog file (\`distros/*.yaml\`, or a file in a site directory named by pxe.yaml \`catalogDirs\`) holds
\`entries:\` and/or \`disable:\`. Path fields are relative to the entry's mirror and are
nunjucks templates with the variables of [templates/README.md](../templates/README.md)
(\`{{ version }}\`, \`{{ arch }}\`, \`{{ uarch }}\`, …): quote a value that starts with \`{{\`.
Versions are strings (\`version: "24.10"\`: unquoted, YAML reads the number 24.1).
JSON Schema: [schemas/catalog.schema.json](../schemas/catalog.schema.json); check an entry
with \`pxe catalog check FILE|ID [--online]\`.`;

const HOSTS_INTRO = `\`hosts.yaml\` (pxe.yaml \`hostsFile\`): per-MAC boot decisions and installer answers. Every
answer ends up inside preseed/kickstart/XML/YAML/JSON files, so values are single-line and
constrained per field. A host inherits every answer it does not set from \`defaults\`.
JSON Schema: [schemas/hosts.schema.json](../schemas/hosts.schema.json).`;

/** relative path -> content, for everything `npm run gen` writes. */
export function generatedFiles(): Record<string, string> {
  const catalog = describe(jsonSchema(catalogFileSchema, 'pxe distro catalog file (distros/*.yaml)'), CATALOG_NOTES);
  const hosts = describe(jsonSchema(hostsFileSchema, 'pxe hosts.yaml'), HOSTS_NOTES);
  const config = jsonSchema(configSchema, 'pxe.yaml');
  const json = (j: Json) => `${JSON.stringify(j, null, 2)}\n`;
  return {
    'schemas/catalog.schema.json': json(catalog),
    'schemas/hosts.schema.json': json(hosts),
    'schemas/pxe.schema.json': json(config),
    'docs/catalog.md': markdown('Catalog entry fields', CATALOG_INTRO, catalog, CATALOG_NOTES),
    'docs/hosts.md': markdown('hosts.yaml fields', HOSTS_INTRO, hosts, HOSTS_NOTES),
  };
}

if (process.argv[1]?.endsWith('schemas/generate.js')) {
  for (const [rel, text] of Object.entries(generatedFiles())) {
    const file = join(PACKAGE_DIR, rel);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    process.stdout.write(`wrote ${rel}\n`);
  }
}
