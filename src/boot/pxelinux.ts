/**
 * pxelinux's configuration-file search order (syslinux doc/pxelinux.txt):
 *   1. pxelinux.cfg/<client UUID, lower-case, dashed>      (only when the client sent one)
 *   2. pxelinux.cfg/01-<MAC, lower-case hex, dash-separated> (01 = ARP hardware type Ethernet)
 *   3. pxelinux.cfg/<IPv4 in upper-case hex>, then that name shortened one digit at a time
 *   4. pxelinux.cfg/default
 */

export type LookupKind = 'uuid' | 'mac' | 'ip' | 'default';

export interface LookupStep {
  path: string;
  kind: LookupKind;
}

/** Normalises a MAC in any common notation (aa:bb.., aa-bb-.., aabb.ccdd.eeff, aabbcc..) to "aa:bb:cc:dd:ee:ff". */
export function normalizeMac(input: string): string | null {
  const hex = input.toLowerCase().replace(/[^0-9a-f]/g, '');
  if (hex.length !== 12 || !/^[0-9a-f:.\-\s]+$/i.test(input)) return null;
  return hex.match(/../g)!.join(':');
}

/** "52:54:00:12:34:56" -> "01-52-54-00-12-34-56" */
export function pxelinuxMacName(mac: string): string {
  return `01-${mac.toLowerCase().replace(/:/g, '-')}`;
}

/** "10.77.0.111" -> "0A4D006F" (upper-case, as pxelinux asks for it) */
export function ipToHex(ip: string): string | null {
  const parts = ip.split('.');
  if (parts.length !== 4) return null;
  let out = '';
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out += n.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function normalizeUuid(input: string): string | null {
  const u = input.trim().toLowerCase();
  return UUID_RE.test(u) ? u : null;
}

/** The exact sequence of TFTP requests pxelinux makes for this client. */
export function pxelinuxLookupSequence(client: { mac: string; ip?: string; uuid?: string }, dir = 'pxelinux.cfg'): LookupStep[] {
  const steps: LookupStep[] = [];
  if (client.uuid) steps.push({ path: `${dir}/${client.uuid}`, kind: 'uuid' });
  steps.push({ path: `${dir}/${pxelinuxMacName(client.mac)}`, kind: 'mac' });
  const hex = client.ip ? ipToHex(client.ip) : null;
  if (hex) {
    for (let len = hex.length; len >= 1; len--) steps.push({ path: `${dir}/${hex.slice(0, len)}`, kind: 'ip' });
  }
  steps.push({ path: `${dir}/default`, kind: 'default' });
  return steps;
}

/** Parses "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff" back to a MAC, or null. */
export function macFromPxelinuxPath(relPath: string): string | null {
  const m = /^(?:.*\/)?pxelinux\.cfg\/01-([0-9a-f]{2}(?:-[0-9a-f]{2}){5})$/i.exec(relPath);
  return m ? m[1]!.toLowerCase().replace(/-/g, ':') : null;
}
