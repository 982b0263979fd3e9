import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from './config.js';
import { ipxeHttpPort, PolicyBooter, type HostAccess } from './boot/booter.js';
import { pxelinuxLookupSequence, type LookupStep } from './boot/pxelinux.js';
import type { Booter, VirtualFileProvider } from './boot/types.js';

/**
 * Builds the policy for a loaded config: hosts file, catalog renderers and the
 * boot-file table. `pxe serve`, `pxe which` and the tests all build it here so they
 * agree on what a client gets.
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
  const deps: ConstructorParameters<typeof PolicyBooter>[0] = { dhcp: config.dhcp };
  if (parts.hostAccess) deps.hostAccess = parts.hostAccess;
  if (parts.providers) deps.providers = parts.providers;
  const port = ipxeHttpPort(config);
  if (port !== undefined) deps.ipxeHttpPort = port;
  return { config, booter: new PolicyBooter(deps) };
}

export interface WhichStep extends LookupStep {
  /** what TFTP would do for this request */
  result: 'virtual' | 'file' | 'missing';
  detail: string;
}

export interface WhichReport {
  steps: WhichStep[];
  /** the first step that would be served: the config pxelinux uses */
  served: WhichStep | undefined;
}

/** Replays pxelinux's lookup sequence against the policy and the TFTP root, without a network. */
export async function whichConfig(app: App, client: { mac: string; ip?: string; uuid?: string }): Promise<WhichReport> {
  const steps: WhichStep[] = [];
  for (const step of pxelinuxLookupSequence(client)) {
    const fileClient = client.ip ? { address: client.ip, mac: client.mac } : { address: '0.0.0.0', mac: client.mac };
    const virtual = await app.booter.virtualFile(step.path, fileClient);
    if (virtual) {
      steps.push({ ...step, result: 'virtual', detail: virtual.origin });
      continue;
    }
    const onDisk = join(app.config.tftp.root, step.path);
    const st = await stat(onDisk).catch(() => null);
    if (st?.isFile()) steps.push({ ...step, result: 'file', detail: `static file ${onDisk} (${st.size} bytes)` });
    else steps.push({ ...step, result: 'missing', detail: 'not found: pxelinux tries the next name' });
  }
  return { steps, served: steps.find((s) => s.result !== 'missing') };
}
