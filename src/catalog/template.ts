import nunjucks from 'nunjucks';
import { closest } from '../closest.js';

/**
 * String templates of the catalog (paths, append lines). `throwOnUndefined` makes
 * a typo in a variable an error instead of an empty string that would produce a
 * wrong URL or an installer booting without its answers.
 */
const env = new nunjucks.Environment(null, { autoescape: false, throwOnUndefined: true, trimBlocks: true, lstripBlocks: true });

export class TemplateError extends Error {
  constructor(
    readonly template: string,
    message: string,
  ) {
    super(`${template}: ${message}`);
    this.name = 'TemplateError';
  }
}

export function renderInline(name: string, src: string, vars: Record<string, unknown>): string {
  try {
    return env.renderString(src, vars);
  } catch (err) {
    // nunjucks prefixes messages with "(unknown path)" and a newline; keep the useful line.
    let msg = (err as Error).message
      .replace(/^\(unknown path\)\s*/, '')
      .replace(/\s+/g, ' ')
      .trim();
    // throwOnUndefined does not say which variable: name it, and the closest known one.
    if (/null or undefined/.test(msg)) {
      const unknown = [...src.matchAll(/\{\{-?\s*([A-Za-z_]\w*)/g)]
        .map((m) => m[1]!)
        .find((v) => vars[v] === undefined || vars[v] === null);
      if (unknown) {
        const guess = closest(unknown, Object.keys(vars));
        msg = `unknown variable "${unknown}"${guess ? ` (did you mean "${guess}"?)` : ''}; ${msg}`;
      }
    }
    throw new TemplateError(name, msg);
  }
}
