import { readFileSync, existsSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isScalar, type Node } from 'yaml';
import { ConfigError, parseYaml } from '../yamlfile.js';
import type { Catalog } from '../catalog/schema.js';
import { HOST_DEFAULTS, hostsFileSchema, normalizeMacKey, type Host, type HostsFile } from './schema.js';

export interface Hosts {
  file: string;
  /** what to do with MACs not listed (undefined: pxe.yaml dhcp.unknownClients decides) */
  unknown: 'menu' | 'ignore' | undefined;
  /** by lower-case colon MAC */
  byMac: Map<string, Host>;
}

function locate(text: string, path: string[]): { line: number; col: number } | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  let node: Node | null = doc.contents;
  for (const key of path) {
    if (!node || !isMap(node)) break;
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
    if (!pair) break;
    node = (pair.value as Node | null) ?? (pair.key as Node);
  }
  return node?.range ? lc.linePos(node.range[0]) : undefined;
}

function resolveHosts(file: string, parsed: HostsFile): Hosts {
  const d = parsed.defaults ?? {};
  const byMac = new Map<string, Host>();
  for (const [key, h] of Object.entries(parsed.hosts)) {
    const mac = normalizeMacKey(key);
    const keys = [...(h.ssh_keys ?? d.ssh_keys ?? []), ...(h.ssh_key ? [h.ssh_key] : [])];
    byMac.set(mac, {
      mac,
      hostname: h.hostname,
      domain: h.domain ?? d.domain ?? '',
      entry: h.entry,
      version: h.version,
      arch: h.arch,
      allow: h.allow,
      install_once: h.install_once,
      disk: h.disk ?? d.disk ?? HOST_DEFAULTS.disk,
      user: h.user ?? d.user ?? HOST_DEFAULTS.user,
      password_hash: h.password_hash ?? d.password_hash ?? '',
      ssh_keys: keys,
      mirror: h.mirror ?? d.mirror ?? '',
      locale: h.locale ?? d.locale ?? HOST_DEFAULTS.locale,
      timezone: h.timezone ?? d.timezone ?? HOST_DEFAULTS.timezone,
      keyboard: h.keyboard ?? d.keyboard ?? HOST_DEFAULTS.keyboard,
      append: [d.append, h.append].filter((s): s is string => !!s).join(' '),
    });
  }
  return { file, unknown: parsed.unknown, byMac };
}

/**
 * Parses hosts.yaml text. With a catalog, also checks that every host names an
 * existing entry (and version/arch of it) that can boot: errors name file, line
 * and field like schema errors do.
 */
export function parseHosts(file: string, text: string, catalog?: Catalog): Hosts {
  const parsed = parseYaml(file, text, hostsFileSchema);
  if (catalog) {
    for (const [key, h] of Object.entries(parsed.hosts)) {
      const fail = (field: string, msg: string): never => {
        const p = locate(text, ['hosts', key, field]);
        throw new ConfigError(file, p?.line, p?.col, `hosts.${key}.${field}`, msg);
      };
      const entry = catalog.entries.find((e) => e.id === h.entry);
      if (!entry) fail('entry', `unknown catalog entry "${h.entry}" (known: ${catalog.entries.map((e) => e.id).join(', ')})`);
      else {
        const v = h.version === undefined ? entry.versions[0] : entry.versions.find((x) => x.version === h.version);
        if (h.version !== undefined && !v)
          fail('version', `entry "${entry.id}" has no version "${h.version}" (known: ${entry.versions.map((x) => x.version).join(', ')})`);
        const arches = v?.architectures ?? entry.architectures;
        if (h.arch && !arches.includes(h.arch)) fail('arch', `entry "${entry.id}" is not offered for ${h.arch}`);
      }
    }
  }
  return resolveHosts(file, parsed);
}

/** Loads the hosts file; a missing file means "no hosts" (every client is unknown). */
export function loadHosts(file: string, catalog?: Catalog): Hosts {
  if (!existsSync(file)) return { file, unknown: undefined, byMac: new Map() };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, undefined, undefined, undefined, `cannot read: ${(err as Error).message}`);
  }
  return parseHosts(file, text, catalog);
}

/** For the policy's `hostAccess`: allowed / denied / unknown. */
export function hostAccess(hosts: Hosts, mac: string): 'allowed' | 'denied' | 'unknown' {
  const h = hosts.byMac.get(normalizeMacKey(mac));
  if (!h) return 'unknown';
  return h.allow ? 'allowed' : 'denied';
}

export function findHost(hosts: Hosts, mac: string): Host | undefined {
  return hosts.byMac.get(normalizeMacKey(mac));
}
