import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isMap, isScalar, parseDocument, Scalar, YAMLMap, type Document } from 'yaml';
import type { Catalog } from '../catalog/schema.js';
import { readEvents } from '../events.js';
import { ConfigError } from '../yamlfile.js';
import { loadHosts, parseHosts } from './load.js';
import { normalizeMacKey } from './schema.js';
import { InstallState } from './state.js';
import { DEFAULT_TOKEN_TTL_MINUTES, startInstall } from './tokens.js';

/**
 * Host lifecycle without editing YAML by hand: `pxe host add|rm|reinstall|list` and
 * the dashboard's actions call these. hosts.yaml is edited through the `yaml`
 * Document API, so its comments, key order and the other hosts stay as written;
 * the new text is validated like `pxe serve` validates it (schema + catalog) before
 * it replaces the file, by a temp file + rename in the same directory (a crash
 * leaves the old file or the new one, never half of one). A running `pxe serve`
 * watches the file and reloads (serve.ts), so no restart or signal is needed.
 */

export type HostEditError =
  | { ok: false; code: 'bad-mac'; message: string }
  | { ok: false; code: 'exists'; message: string }
  | { ok: false; code: 'not-found'; message: string }
  | { ok: false; code: 'invalid'; message: string };
export type HostEditResult<T> = { ok: true; value: T } | HostEditError;

export interface AddHostRequest {
  mac: string;
  entry: string;
  hostname?: string;
  version?: string;
  installOnce?: boolean;
}

const MAC_RE = /^[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}$/i;

function parseMac(mac: string): string | undefined {
  return MAC_RE.test(mac) ? normalizeMacKey(mac) : undefined;
}

function readDoc(file: string): { doc: Document; text: string } {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    throw new ConfigError(file, doc.errors[0]!.linePos?.[0]?.line, doc.errors[0]!.linePos?.[0]?.col, undefined, doc.errors[0]!.message);
  return { doc, text };
}

/** The `hosts:` map of the document, created when the file has none. */
function hostsMap(doc: Document): YAMLMap {
  let m = doc.get('hosts', true);
  if (!isMap(m)) {
    if (!isMap(doc.contents)) doc.contents = doc.createNode({});
    m = new YAMLMap();
    doc.set('hosts', m);
  }
  return m as YAMLMap;
}

function pairIndex(m: YAMLMap, mac: string): number {
  return m.items.findIndex((p) => isScalar(p.key) && normalizeMacKey(String(p.key.value)) === mac);
}

/** Validates the new text as pxe serve would, then replaces the file atomically. */
function validateAndWrite(file: string, text: string, catalog: Catalog): HostEditResult<void> {
  try {
    parseHosts(file, text, catalog);
  } catch (err) {
    return { ok: false, code: 'invalid', message: (err as Error).message };
  }
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const mode = existsSync(file) ? statSync(file).mode & 0o777 : 0o644;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, file);
  return { ok: true, value: undefined };
}

export function addHost(file: string, catalog: Catalog, req: AddHostRequest): HostEditResult<{ mac: string; hostname: string }> {
  const mac = parseMac(req.mac);
  if (!mac) return { ok: false, code: 'bad-mac', message: `not a MAC address: ${req.mac}` };
  const { doc } = readDoc(file);
  const m = hostsMap(doc);
  if (pairIndex(m, mac) >= 0) return { ok: false, code: 'exists', message: `${mac} is already in ${file} (pxe host rm it first)` };
  const hostname = req.hostname ?? `host-${mac.replace(/:/g, '')}`;
  const value: Record<string, unknown> = { hostname, entry: req.entry };
  if (req.version !== undefined) value.version = req.version;
  if (req.installOnce) value.install_once = true;
  const key = new Scalar(mac);
  key.type = Scalar.QUOTE_DOUBLE;
  m.add(doc.createPair(key, value));
  const written = validateAndWrite(file, doc.toString(), catalog);
  return written.ok ? { ok: true, value: { mac, hostname } } : written;
}

export function removeHost(file: string, catalog: Catalog, macArg: string): HostEditResult<{ mac: string }> {
  const mac = parseMac(macArg);
  if (!mac) return { ok: false, code: 'bad-mac', message: `not a MAC address: ${macArg}` };
  const { doc } = readDoc(file);
  const m = doc.get('hosts', true);
  const i = isMap(m) ? pairIndex(m, mac) : -1;
  if (!isMap(m) || i < 0) return { ok: false, code: 'not-found', message: `${mac} is not in ${file}` };
  m.items.splice(i, 1);
  const written = validateAndWrite(file, doc.toString(), catalog);
  return written.ok ? { ok: true, value: { mac } } : written;
}

/**
 * A new install for a host in hosts.yaml: its install-once marker is cleared and a
 * new install token replaces the old one (through the install state API,
 * hosts/tokens.ts `startInstall`), so its next boot installs again.
 */
export function reinstallHost(
  file: string,
  catalog: Catalog,
  stateDir: string,
  macArg: string,
  ttlMinutes = DEFAULT_TOKEN_TTL_MINUTES,
): HostEditResult<{ mac: string; wasInstalled: boolean }> {
  const mac = parseMac(macArg);
  if (!mac) return { ok: false, code: 'bad-mac', message: `not a MAC address: ${macArg}` };
  if (!loadHosts(file, catalog).byMac.has(mac)) return { ok: false, code: 'not-found', message: `${mac} is not in ${file}` };
  const { wasInstalled } = startInstall(stateDir, mac, ttlMinutes);
  return { ok: true, value: { mac, wasInstalled } };
}

export interface HostSummary {
  mac: string;
  hostname: string;
  entry: string;
  /** undefined: the entry's first version */
  version: string | undefined;
  installOnce: boolean;
  /** install-once hosts: installed (boots its disk) or not yet; others: always-install */
  install: 'installed' | 'pending' | 'always';
  installedAt?: string;
  /** the newest boot event of this MAC (DHCP, TFTP or HTTP) */
  lastSeen?: { time: string; what: string };
}

/** Every host of hosts.yaml with its install state and the last boot event seen. */
export async function listHosts(file: string, catalog: Catalog, stateDir: string): Promise<HostSummary[]> {
  const hosts = loadHosts(file, catalog);
  const state = InstallState.inDir(stateDir);
  const events = await readEvents(join(stateDir, 'boot-events.jsonl'));
  const last = new Map<string, { time: string; what: string }>();
  for (const e of events) if (e.mac) last.set(normalizeMacKey(e.mac), { time: e.time, what: `${e.proto} ${e.what}` });
  return [...hosts.byMac.values()].map((h) => {
    const rec = state.get(h.mac);
    const seen = last.get(h.mac);
    return {
      mac: h.mac,
      hostname: h.hostname,
      entry: h.entry,
      version: h.version,
      installOnce: h.install_once,
      install: !h.install_once ? 'always' : rec ? 'installed' : 'pending',
      ...(rec ? { installedAt: rec.at } : {}),
      ...(seen ? { lastSeen: seen } : {}),
    };
  });
}

export function formatHostList(rows: HostSummary[]): string {
  if (rows.length === 0) return 'no hosts (pxe host add MAC --entry ID)\n';
  const head = ['MAC', 'HOSTNAME', 'ENTRY', 'INSTALL', 'LAST SEEN'];
  const body = rows.map((r) => [
    r.mac,
    r.hostname,
    `${r.entry}${r.version ? ` ${r.version}` : ''}`,
    r.install === 'installed' ? `installed ${r.installedAt ?? ''}`.trim() : r.install === 'pending' ? 'once, pending' : 'every boot',
    r.lastSeen ? `${r.lastSeen.time} ${r.lastSeen.what}` : 'never',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return `${[line(head), ...body.map(line)].join('\n')}\n`;
}
