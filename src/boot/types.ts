/**
 * The one place that decides what a client boots. DHCP, TFTP and HTTP only speak
 * their wire formats and ask a `Booter` (the pixiecore shape: one policy, many
 * protocols).
 */

/** Firmware classes derived from DHCP option 93 (IANA "Processor Architecture Types") and 77/60. */
export type Firmware =
  | 'bios' //        93 = 0  x86 BIOS
  | 'efi-ia32' //    93 = 6
  | 'efi-x64' //     93 = 7 or 9 (9 is "EFI BC", which every x64 UEFI PXE stack actually means)
  | 'efi-arm64' //   93 = 11
  | 'efi-x64-http' // 93 = 16 (UEFI HTTP boot, vendor class HTTPClient)
  | 'efi-arm64-http' // 93 = 19
  | 'unknown';

/** What the DHCP layer knows about a client when it asks the policy. */
export interface DhcpClient {
  /** lower-case colon-separated MAC, e.g. "52:54:00:12:34:56" */
  mac: string;
  /** option 93 value, when sent */
  arch: number | undefined;
  firmware: Firmware;
  /** option 77 user class is "iPXE" (raw, as iPXE sends it) */
  isIpxe: boolean;
  /** option 60 */
  vendorClass: string;
  /** option 97 client UUID (lower-case dashed), when sent and well-formed */
  uuid: string | undefined;
  /** address the request came from (relay or client), for logs and allowlists */
  sourceAddress: string;
  /** giaddr when relayed, else undefined */
  relayAddress: string | undefined;
  /** the server address on the client's network (the address that should be next-server) */
  serverAddress: string;
}

export type DhcpBootDecision =
  | {
      action: 'boot';
      /** header `file` */
      bootFile: string;
      /** header `siaddr` (next-server); TFTP server address */
      nextServer: string;
      /** header `sname`, if configured */
      serverName?: string;
      /** why this file was chosen (for the boot-event log and `pxe which`) */
      reason: string;
    }
  | { action: 'ignore'; reason: string };

/** What TFTP/HTTP know about a client: its address, and its MAC when the boot-event log correlated it. */
export interface FileClient {
  address: string;
  mac?: string;
}

/** A file produced on demand instead of read from disk (pxelinux.cfg/01-<mac>, rendered menus, scripts). */
export interface VirtualFile {
  content: Buffer;
  /** human-readable origin, e.g. "rendered from templates/pxelinux-host.njk for host web1" */
  origin: string;
}

/** A file rendered for one client over HTTP (iPXE script, answer file). */
export interface RenderedFile {
  contentType: string;
  body: string | Buffer;
}

/** Why a rendered file could not be produced: 403 (no valid install token), 404 (unknown) or 500 (broken template). */
export class RenderError extends Error {
  constructor(
    message: string,
    readonly status: 403 | 404 | 500,
  ) {
    super(message);
    this.name = 'RenderError';
  }
}

/**
 * Gives TFTP (and HTTP) virtual files. Returns null when the path is not virtual or
 * has no content for this client, so the server falls back to the file on disk.
 * `relPath` is already normalised and root-relative (no leading '/', '/' separators).
 */
export interface VirtualFileProvider {
  virtualFile(relPath: string, client: FileClient): Promise<VirtualFile | null>;
}

export interface Booter extends VirtualFileProvider {
  /**
   * Must be free of side effects: the proxyDHCP also calls it with synthetic clients
   * (locally administered MACs, loopback) while it warms up before binding its ports.
   */
  dhcpBoot(client: DhcpClient): DhcpBootDecision;
}
