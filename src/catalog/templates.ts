import nunjucks from 'nunjucks';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../yamlfile.js';

/**
 * The template files of one load (start or SIGHUP), all compiled up front. Each load
 * builds a fresh set from the directory, so an edited template is picked up by the
 * next reload and nothing (compiled code or a failure) outlives it; a set that does
 * not compile is refused with file:line and the running one stays in force. Every
 * `*.njk` is compiled at load, so the loader's cache holds all of them: a file edited
 * or broken on disk afterwards cannot leak into the running set.
 */
export interface TemplateSet {
  dir: string;
  /** text/JSON/YAML templates: values go through explicit filters (dump, grubq) */
  text: nunjucks.Environment;
  /** XML templates (*.xml.njk): autoescaped */
  xml: nunjucks.Environment;
  /** every template name, relative to dir */
  names: string[];
}

export type FilterSet = Record<string, (s: unknown) => string>;

/** Where nunjucks says an error is: the innermost "(path) [Line L, Column C]". */
export function templateErrorPosition(message: string): {
  file: string | undefined;
  line: number | undefined;
  col: number | undefined;
  detail: string;
} {
  const all = [...message.matchAll(/\(([^()]*)\) \[Line (\d+), Column (\d+)\]/g)];
  const last = all.at(-1);
  const detail = (last ? message.slice(last.index + last[0].length) : message)
    .replace(/Template render error:?/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  if (!last) return { file: undefined, line: undefined, col: undefined, detail };
  return { file: last[1] === 'unknown path' ? undefined : last[1], line: Number(last[2]), col: Number(last[3]), detail };
}

function listTemplates(dir: string, sub = ''): string[] {
  const out: string[] = [];
  for (const d of readdirSync(join(dir, sub), { withFileTypes: true })) {
    const rel = sub ? `${sub}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...listTemplates(dir, rel));
    else if (d.name.endsWith('.njk')) out.push(rel);
  }
  return out.sort();
}

export function loadTemplateSet(dir: string, filters: FilterSet): TemplateSet {
  if (!existsSync(dir)) throw new ConfigError(dir, undefined, undefined, 'templatesDir', 'templates directory does not exist');
  const make = (autoescape: boolean) => {
    const e = new nunjucks.Environment(new nunjucks.FileSystemLoader(dir, { noCache: false }), {
      autoescape,
      throwOnUndefined: true,
      trimBlocks: true,
      lstripBlocks: true,
    });
    for (const [name, fn] of Object.entries(filters)) e.addFilter(name, fn);
    return e;
  };
  const set: TemplateSet = { dir, text: make(false), xml: make(true), names: [] };
  let names: string[];
  try {
    names = listTemplates(dir);
  } catch (err) {
    throw new ConfigError(dir, undefined, undefined, 'templatesDir', `cannot read: ${(err as Error).message}`);
  }
  for (const name of names) {
    // macros files are imported by the others; compiled in both sets (import resolves per set)
    const envs = name.endsWith('.xml.njk') ? [set.xml] : name.includes('macros') ? [set.text, set.xml] : [set.text];
    for (const e of envs) {
      try {
        e.getTemplate(name, true);
      } catch (err) {
        const p = templateErrorPosition((err as Error).message);
        throw new ConfigError(join(dir, name), p.line, p.col, undefined, `template does not compile: ${p.detail}`);
      }
    }
  }
  set.names = names;
  return set;
}

/**
 * A render error (renderFile's "template <name>: (path) [Line L, Column C] …") as a
 * ConfigError at the template's file:line; `what`: which file was rendered, for whom.
 */
export function templateRenderError(dir: string, err: unknown, what: string): ConfigError {
  const msg = (err as Error).message;
  const named = /^template (\S+): /.exec(msg);
  const p = templateErrorPosition(named ? msg.slice(named[0].length) : msg);
  const file = p.file ?? (named ? join(dir, named[1]!) : dir);
  return new ConfigError(file, p.line, p.col, undefined, `${p.detail} (test-rendering ${what})`);
}
