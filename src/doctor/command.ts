/**
 * `pxe doctor`: finds what around the server would stop a machine from booting, before
 * one fails to: other DHCP/PXE servers on the segment, a site DHCP that gives no router
 * or name server, ports held by another program, firewall rules, missing bootloaders,
 * unreadable keyrings, unreachable mirrors, hosts pointing at entries never synced.
 * Bounded: two rounds of two DISCOVERs per interface and one listening window (4 s by
 * default); every command it runs has a 5 s deadline, every mirror a 3 s one.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { InvalidArgumentError } from 'commander';
import { CONFIG_OPTION_HELP, commandConfig, type Config } from '../config.js';
import { loadCatalog, findEntry } from '../catalog/load.js';
import { versionArches } from '../catalog/schema.js';
import { loadHosts } from '../hosts/load.js';
import { installedChecker } from '../sync/menus.js';
import { UserError } from '../errors.js';
import { exitCodeOf, formatFindings, type Finding } from './findings.js';
import { checkBootFiles, checkFirewall, checkKeyrings, checkMirrors, checkPorts, type NeededPort } from './local.js';
import { classify, probeInterfaces, type ProbeInterface } from './responders.js';

export function neededPorts(config: Config): NeededPort[] {
  const ports: NeededPort[] = [];
  if (config.dhcp.enabled) {
    ports.push({ proto: 'udp', port: config.dhcp.port, key: 'dhcp.port' });
    ports.push({ proto: 'udp', port: config.dhcp.pxePort, key: 'dhcp.pxePort' });
  }
  if (config.tftp.enabled) ports.push({ proto: 'udp', port: config.tftp.port, key: 'tftp.port' });
  if (config.http.enabled) ports.push({ proto: 'tcp', port: config.http.port, key: 'http.port' });
  return ports;
}

/** Non-loopback interfaces with an IPv4 address (or only the one asked for). */
export function probeTargets(only?: string): { targets: ProbeInterface[]; local: Set<string> } {
  const targets: ProbeInterface[] = [];
  const local = new Set<string>();
  for (const [name, list] of Object.entries(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family !== 'IPv4') continue;
      local.add(a.address);
      if (a.internal || (only !== undefined && name !== only)) continue;
      if (!targets.some((t) => t.name === name)) targets.push({ name, address: a.address, mac: a.mac });
    }
  }
  if (only !== undefined && targets.length === 0) throw new UserError(`--interface ${only}: no such interface with an IPv4 address`);
  return { targets, local };
}

function checkHosts(config: Config): Finding[] {
  if (!existsSync(config.hostsFile)) return [];
  try {
    const catalog = loadCatalog(config.catalogDir, { mirrors: config.mirrors });
    const hosts = loadHosts(config.hostsFile, catalog);
    const installed = installedChecker(config.tftp.root);
    const unsynced = new Map<string, string[]>();
    for (const h of hosts.byMac.values()) {
      const entry = findEntry(catalog, h.entry);
      if (!entry || entry.boot.method === 'localboot') continue;
      const versions = entry.versions.filter((v) => h.version === undefined || v.version === h.version);
      const ok = versions.some((v) =>
        versionArches(entry, v).some((a) => (h.arch === undefined || a === h.arch) && installed(entry.id, v.version, a)),
      );
      if (!ok) unsynced.set(entry.id, [...(unsynced.get(entry.id) ?? []), h.mac]);
    }
    const findings: Finding[] = [...unsynced].map(([id, macs]) => ({
      severity: 'error' as const,
      check: 'hosts',
      message: `entry ${id} is not synced, and ${macs.length} host(s) boot it (${macs.slice(0, 3).join(', ')}${macs.length > 3 ? ', …' : ''})`,
      fix: `pxe sync --only ${id}`,
    }));
    if (findings.length === 0)
      findings.push({
        severity: 'ok',
        check: 'hosts',
        message: `${hosts.byMac.size} host(s) in ${config.hostsFile}, every entry they boot is synced`,
      });
    return findings;
  } catch (err) {
    return [{ severity: 'error', check: 'hosts', message: (err as Error).message, fix: `edit ${config.hostsFile}` }];
  }
}

interface DoctorFlags {
  config?: string;
  interface?: string;
  timeout: number;
  json?: boolean;
  network: boolean;
}

export async function runDoctor(config: Config, flags: Omit<DoctorFlags, 'config'>): Promise<Finding[]> {
  const ports = neededPorts(config);
  const network = async (): Promise<Finding[]> => {
    if (!flags.network) return [];
    const { targets, local } = probeTargets(flags.interface);
    if (targets.length === 0) return [{ severity: 'warn', check: 'dhcp', message: 'no interface with an IPv4 address to probe' }];
    const { offers, errors } = await probeInterfaces(targets, { timeoutMs: flags.timeout });
    return [...errors.map((e): Finding => ({ severity: 'warn', check: 'dhcp', message: e })), ...classify(targets, offers, local)];
  };
  const results = await Promise.all([
    network(),
    checkPorts(ports),
    checkFirewall(ports),
    checkBootFiles(config.tftp.root, config.dhcp.bootFiles),
    checkKeyrings(config.keyrings),
    checkMirrors(config.mirrors),
  ]);
  return [...results.flat(), ...checkHosts(config)];
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('Find what on this host and network would stop a machine from booting (other DHCP/PXE servers, ports, firewall, files)')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .option('-i, --interface <name>', 'probe only this interface (default: every non-loopback IPv4 interface)')
    .option(
      '--timeout <ms>',
      'how long to listen for DHCP answers',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 300 || n > 30_000) throw new InvalidArgumentError('expected milliseconds, 300-30000');
        return n;
      },
      4000,
    )
    .option('--no-network', 'skip the DHCP probes (host checks only)')
    .option('--json', 'one JSON document: {findings, errors, warnings}')
    .action(async (flags: DoctorFlags) => {
      const config = commandConfig(flags.config);
      const findings = await runDoctor(config, flags);
      if (flags.json) {
        const count = (s: Finding['severity']): number => findings.filter((f) => f.severity === s).length;
        process.stdout.write(`${JSON.stringify({ findings, errors: count('error'), warnings: count('warn') }, null, 2)}\n`);
      } else {
        process.stdout.write(formatFindings(findings));
      }
      process.exitCode = exitCodeOf(findings);
    });
}
