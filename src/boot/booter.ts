import type { Config } from '../config.js';
import { hostRefusal, type HostAccess } from './access.js';
import { resolvedBootFiles } from './chain.js';
import { FIRMWARE_LABEL } from './firmware.js';
import type { Booter, DhcpBootDecision, DhcpClient, FileClient, Firmware, VirtualFile, VirtualFileProvider } from './types.js';

export type { HostAccess } from './access.js';

export interface BooterDeps {
  /** Boot-file table, unknown-client rule, sname. */
  dhcp: Config['dhcp'];
  /** Looks a MAC up in the hosts file. Without one, every client is "unknown". */
  hostAccess?: (mac: string) => HostAccess;
  /** Virtual-file providers asked in order (per-host pxelinux configs, rendered menus…). */
  providers?: VirtualFileProvider[];
  /**
   * Port of the HTTP server that serves the TFTP root under /files/, when it runs and
   * `dhcp.ipxeHttp` is on: BIOS iPXE clients then get their boot file over HTTP.
   */
  ipxeHttpPort?: number;
}

/** The header `file` holds 127 bytes + NUL; pxelinux takes its path prefix from there. */
const MAX_HEADER_FILE = 127;

type BootFileKey = keyof Config['dhcp']['bootFiles'];

/**
 * The one policy: "what does this client get". The proxyDHCP asks `dhcpBoot`; TFTP
 * and HTTP ask `virtualFile`. Protocol modules never decide boot files themselves.
 */
export class PolicyBooter implements Booter {
  /** dhcp.bootFiles with efi-x64 resolved from dhcp.efiX64Chain when unset */
  private readonly files: ReturnType<typeof resolvedBootFiles>;

  constructor(private readonly deps: BooterDeps) {
    this.files = resolvedBootFiles(deps);
  }

  dhcpBoot(client: DhcpClient): DhcpBootDecision {
    const refused = hostRefusal(client.mac, this.deps.hostAccess?.(client.mac) ?? 'unknown', this.deps.dhcp.unknownClients);
    if (refused) return { action: 'ignore', reason: refused };
    if (client.firmware === 'unknown') {
      return { action: 'ignore', reason: `unsupported client architecture (option 93 = ${client.arch ?? 'absent'})` };
    }
    const files = this.files;
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
    const reason = `${FIRMWARE_LABEL[client.firmware]} -> bootFiles.${key}`;
    const url = this.ipxeHttpUrl(client);
    if (url) return this.bootDecision(client, url, `${reason} over HTTP (iPXE client, option 77)`);
    return this.bootDecision(client, file, reason);
  }

  /**
   * BIOS iPXE only: pxelinux.0 loaded over HTTP uses the URL's directory as its prefix
   * and reads every later file through iPXE's PXENV_FILE_* API (syslinux
   * core/fs/pxe/gpxeurl.c): one TCP stream per file instead of one round trip per
   * 1408-byte TFTP block, which a slow (or emulated) client pays for in full. UEFI
   * loaders keep TFTP: syslinux.efi under iPXE sees only the PXE base-code protocol,
   * whose MTFTP is TFTP. A name that is already a URL, or one whose URL would not fit
   * in the header `file` (pxelinux reads its prefix there), and every NBP other than
   * pxelinux, stays as it is.
   */
  private ipxeHttpUrl(client: DhcpClient): string | null {
    const port = this.deps.ipxeHttpPort;
    const file = this.deps.dhcp.bootFiles.bios;
    if (port === undefined || !file || !client.isIpxe || client.firmware !== 'bios') return null;
    // Per DHCP request: the URL depends only on the server address (bootFiles.bios and
    // the port are fixed for this policy), so it is built once per address, not per packet.
    let url = this.ipxeBiosUrls.get(client.serverAddress);
    if (url === undefined) {
      if (this.ipxeBiosUrls.size >= 256) this.ipxeBiosUrls.clear(); // addresses come from our interfaces: few
      url = ipxeHttpBootFile(file, client.serverAddress, port);
      this.ipxeBiosUrls.set(client.serverAddress, url);
    }
    return url;
  }

  /** server address -> the BIOS file's HTTP URL (null: stays on TFTP) */
  private readonly ipxeBiosUrls = new Map<string, string | null>();

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

/** The HTTP port BIOS iPXE clients fetch pxelinux from, or undefined when the hand-off is off (dhcp.ipxeHttp, or no HTTP server). */
export function ipxeHttpPort(config: Pick<Config, 'dhcp' | 'http'>): number | undefined {
  return config.http.enabled && config.dhcp.ipxeHttp ? config.http.port : undefined;
}

/**
 * `file` from the TFTP root as the URL the HTTP server serves it at (/files/…), or null
 * when it is not pxelinux or the URL would not fit in the header `file`. Shared with
 * `pxe dhcp-config`, which must print what the proxy answers.
 */
export function ipxeHttpBootFile(file: string, serverAddress: string, httpPort: number): string | null {
  // Only syslinux's pxelinux.0 (and lpxelinux.0/gpxelinux.0) is known to take its
  // prefix from an http:// boot file and read on through iPXE. Other NBPs (WDS's
  // wdsnbp.com, an iPXE .kpxe) derive TFTP paths from the name, or would chain back.
  if (!/(^|\/)[lg]?pxelinux\.0$/i.test(file) || /^[a-z][a-z0-9+.-]*:\/\//i.test(file)) return null;
  const url = `http://${serverAddress}:${httpPort}/files/${file.replace(/^\/+/, '')}`;
  return Buffer.byteLength(url, 'latin1') <= MAX_HEADER_FILE ? url : null;
}
