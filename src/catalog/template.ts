import nunjucks from 'nunjucks';

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
    const msg = (err as Error).message.replace(/^\(unknown path\)\s*/, '').replace(/\s+/g, ' ').trim();
    throw new TemplateError(name, msg);
  }
}
