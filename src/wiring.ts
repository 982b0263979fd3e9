import type { Config } from './config.js';
import { buildApp, type App } from './app.js';

/**
 * Loads what the policy needs from disk (hosts file, catalog, templates) and builds
 * the App. Separate from app.ts so that app.ts stays pure and testable.
 */
export async function loadApp(config: Config): Promise<App> {
  return buildApp(config);
}
