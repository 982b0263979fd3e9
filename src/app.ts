import type { Config } from './config.js';
import { ipxeHttpPort, PolicyBooter, type HostAccess } from './boot/booter.js';
import type { Booter, VirtualFileProvider } from './boot/types.js';
import { resolvedBootFiles } from './boot/chain.js';

/**
 * Builds the policy for a loaded config: hosts file, catalog renderers and the
 * boot-file table. `pxe serve`, `pxe which` (boot/explain.ts) and the tests all build
 * it here so they agree on what a client gets.
 */
export interface App {
  config: Config;
  booter: Booter;
}

export interface AppParts {
  hostAccess?: (mac: string) => HostAccess;
  providers?: VirtualFileProvider[];
}

export function buildApp(config: Config, parts: AppParts = {}): App {
  // efi-x64 resolved here, where tftproot is known (dhcp.efiX64Chain `auto`)
  const deps: ConstructorParameters<typeof PolicyBooter>[0] = { dhcp: { ...config.dhcp, bootFiles: resolvedBootFiles(config) } };
  if (parts.hostAccess) deps.hostAccess = parts.hostAccess;
  if (parts.providers) deps.providers = parts.providers;
  const port = ipxeHttpPort(config);
  if (port !== undefined) deps.ipxeHttpPort = port;
  return { config, booter: new PolicyBooter(deps) };
}
