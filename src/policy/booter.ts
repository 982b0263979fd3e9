import type { Config } from '../config.js';
import { FIRMWARE_LABEL } from './firmware.js';
import type { Booter, DhcpBootDecision, DhcpClient, FileClient, Firmware, VirtualFile, VirtualFileProvider } from './types.js';

/** What the hosts file says about a MAC. */
export type HostAccess = 'allowed' | 'denied' | 'unknown';

export interface BooterDeps {
  /** Boot-file table, unknown-client rule, sname. */
  dhcp: Config['dhcp'];
  /** Looks a MAC up in the hosts file. Without one, every client is "unknown". */
  hostAccess?: (mac: string) => HostAccess;
  /** Virtual-file providers asked in order (per-host pxelinux configs, rendered menus…). */
  providers?: VirtualFileProvider[];
}

type BootFileKey = keyof Config['dhcp']['bootFiles'];

/**
 * The one policy: "what does this client get". The proxyDHCP asks `dhcpBoot`; TFTP
 * and HTTP ask `virtualFile`. Protocol modules never decide boot files themselves.
 */
export class PolicyBooter implements Booter {
  constructor(private readonly deps: BooterDeps) {}

  dhcpBoot(client: DhcpClient): DhcpBootDecision {
    const access = this.deps.hostAccess?.(client.mac) ?? 'unknown';
    if (access === 'denied') return { action: 'ignore', reason: `host ${client.mac} is denied in the hosts file` };
    if (access === 'unknown' && this.deps.dhcp.unknownClients === 'ignore') {
      return { action: 'ignore', reason: `host ${client.mac} is not in the hosts file and unknownClients is "ignore"` };
    }
    if (client.firmware === 'unknown') {
      return { action: 'ignore', reason: `unsupported client architecture (option 93 = ${client.arch ?? 'absent'})` };
    }
    const files = this.deps.dhcp.bootFiles;
    // iPXE already running (option 77 "iPXE"): a dedicated file/script if configured.
    // Otherwise the firmware's own file: pxelinux/syslinux.efi use iPXE's PXE API and
    // never chain back into iPXE, so no loop is possible.
    if (client.isIpxe && files.ipxe) {
      return this.bootDecision(client, files.ipxe, `iPXE client (option 77) -> bootFiles.ipxe`);
    }
    const key: BootFileKey = client.firmware satisfies Firmware;
    const file = files[key];
    if (!file) {
      return { action: 'ignore', reason: `no boot file configured for ${FIRMWARE_LABEL[client.firmware]} (dhcp.bootFiles.${key})` };
    }
    return this.bootDecision(client, file, `${FIRMWARE_LABEL[client.firmware]} -> bootFiles.${key}`);
  }

  private bootDecision(client: DhcpClient, bootFile: string, reason: string): DhcpBootDecision {
    const decision: DhcpBootDecision = { action: 'boot', bootFile, nextServer: client.serverAddress, reason };
    if (this.deps.dhcp.serverName) decision.serverName = this.deps.dhcp.serverName;
    return decision;
  }

  async virtualFile(relPath: string, client: FileClient): Promise<VirtualFile | null> {
    for (const provider of this.deps.providers ?? []) {
      const file = await provider.virtualFile(relPath, client);
      if (file) return file;
    }
    return null;
  }
}
