/**
 * The host half of `pxe doctor`: who holds the ports pxe needs, firewall rules that
 * would drop them, and the files a boot needs (bootloaders, keyrings, synced entries,
 * reachable mirrors). Each check says what it could not read instead of guessing.
 */
import { access, readFile, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../proc.js';
import { UBOOT_SCRIPT_NAME } from '../catalog/uboot.js';
import type { Finding } from './findings.js';

export interface NeededPort {
  proto: 'udp' | 'tcp';
  port: number;
  /** the pxe.yaml key that moves it */
  key: string;
}

export interface Listener {
  proto: 'udp' | 'tcp';
  address: string;
  port: number;
  processes: Array<{ name: string; pid: number }>;
}

/** Parses `ss -H -lnp` lines: `UNCONN 0 0 0.0.0.0:69 0.0.0.0:* users:(("in.tftpd",pid=12,fd=4))`. */
export function parseSs(text: string, proto: 'udp' | 'tcp'): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const local = cols[3];
    if (!local) continue;
    const i = local.lastIndexOf(':');
    const port = Number(local.slice(i + 1));
    if (!Number.isInteger(port)) continue;
    const processes = [...line.matchAll(/\("([^"]*)",pid=(\d+)/g)].map((m) => ({ name: m[1] ?? '?', pid: Number(m[2]) }));
    out.push({
      proto,
      address: local
        .slice(0, i)
        .replace(/^\[|\]$/g, '')
        .replace(/%.*$/, ''),
      port,
      processes,
    });
  }
  return out;
}

/** A process is this pxe when its command line runs the CLI's `serve`. */
async function isPxeServe(pid: number): Promise<boolean> {
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'latin1')).split('\0');
    return argv.includes('serve') && argv.some((a) => /(^|\/)(pxe|cli\.js)$/.test(a));
  } catch {
    return false;
  }
}

export async function checkPorts(needed: NeededPort[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  const listeners: Listener[] = [];
  for (const proto of ['udp', 'tcp'] as const) {
    const r = await runCommand(['ss', '-H', '-lnp', proto === 'udp' ? '-u' : '-t'], { timeoutMs: 5000 });
    if (r.code !== 0) {
      findings.push({
        severity: 'info',
        check: 'port',
        message: `cannot list ${proto} listeners (ss: ${r.stderr.trim() || `exit ${r.code}`})`,
      });
      continue;
    }
    listeners.push(...parseSs(r.stdout, proto));
  }
  for (const n of needed) {
    const holders = listeners.filter((l) => l.proto === n.proto && l.port === n.port);
    const label = `${n.proto.toUpperCase()} ${n.port}`;
    if (holders.length === 0) {
      findings.push({ severity: 'ok', check: 'port', message: `${label} is free` });
      continue;
    }
    const procs = holders.flatMap((h) => h.processes);
    const foreign: Array<{ name: string; pid: number }> = [];
    for (const p of procs) if (!(await isPxeServe(p.pid))) foreign.push(p);
    if (procs.length > 0 && foreign.length === 0) {
      findings.push({
        severity: 'ok',
        check: 'port',
        message: `${label} is held by pxe serve (pid ${[...new Set(procs.map((p) => p.pid))].join(', ')})`,
      });
      continue;
    }
    const who = foreign.length
      ? [...new Map(foreign.map((p) => [p.pid, `${p.name} (pid ${p.pid})`])).values()].join(', ')
      : 'a process this user cannot see';
    findings.push({
      severity: 'error',
      check: 'port',
      message: `${label} is taken by ${who} on ${[...new Set(holders.map((h) => h.address))].join(', ')}: pxe cannot bind it`,
      fix: `stop that service, or move pxe with ${n.key}`,
    });
  }
  return findings;
}

/** Port numbers named in an nftables `dport` expression: `dport 69`, `dport { 67, 69 }`, `dport 60-70`. */
function nftPorts(line: string): Array<[number, number]> {
  const m = /dport\s+(\{[^}]*\}|\S+)/.exec(line);
  if (!m?.[1]) return [];
  return m[1]
    .replace(/[{}]/g, '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s): [number, number] => {
      const [a, b] = s.split('-').map(Number);
      return [a ?? Number.NaN, b ?? a ?? Number.NaN];
    })
    .filter(([a, b]) => Number.isInteger(a) && Number.isInteger(b));
}

const covers = (ranges: Array<[number, number]>, port: number): boolean => ranges.some(([a, b]) => port >= a && port <= b);

/**
 * Rules that would drop pxe's ports, from `nft list ruleset` text: a drop/reject rule
 * naming the port, or an input chain whose policy is drop with no accept for it.
 */
export function nftFindings(ruleset: string, needed: NeededPort[]): Finding[] {
  const findings: Finding[] = [];
  const lines = ruleset.split('\n');
  let inInput = false;
  let inputDrops = false;
  const accepted = new Set<string>();
  const dropped = new Map<string, string>();
  for (const raw of lines) {
    const line = raw.trim();
    if (/^chain\s/.test(line)) inInput = false;
    if (/type filter hook input/.test(line)) {
      inInput = true;
      if (/policy drop/.test(line)) inputDrops = true;
    }
    if (!inInput) continue;
    for (const n of needed) {
      if (!new RegExp(`\\b${n.proto}\\s+dport\\b`).test(line) || !covers(nftPorts(line), n.port)) continue;
      const id = `${n.proto}/${n.port}`;
      if (/\b(drop|reject)\b/.test(line)) dropped.set(id, line);
      else if (/\baccept\b/.test(line)) accepted.add(id);
    }
  }
  for (const n of needed) {
    const id = `${n.proto}/${n.port}`;
    const rule = dropped.get(id);
    if (rule) {
      findings.push({
        severity: 'error',
        check: 'firewall',
        message: `nftables drops ${id}: "${rule}"`,
        fix: `allow ${n.proto} dport ${n.port} in the input chain`,
      });
    } else if (inputDrops && !accepted.has(id)) {
      findings.push({
        severity: 'error',
        check: 'firewall',
        message: `nftables input policy is drop and no rule accepts ${id}`,
        fix: `nft add rule inet filter input ${n.proto} dport ${n.port} accept`,
      });
    }
  }
  return findings;
}

/** The same for `iptables-save` output. */
export function iptablesFindings(text: string, needed: NeededPort[]): Finding[] {
  const findings: Finding[] = [];
  const policyDrop = /^:INPUT (DROP|REJECT)/m.test(text);
  for (const n of needed) {
    const id = `${n.proto}/${n.port}`;
    const rules = text.split('\n').filter((l) => {
      if (!l.startsWith('-A INPUT') || !new RegExp(`-p ${n.proto}\\b`).test(l)) return false;
      const m = /--dports? (\S+)/.exec(l);
      if (!m?.[1]) return false;
      const ranges = m[1].split(',').map((s): [number, number] => {
        const [a, b] = s.split(':').map(Number);
        return [a ?? Number.NaN, b ?? a ?? Number.NaN];
      });
      return covers(ranges, n.port);
    });
    const drop = rules.find((l) => /-j (DROP|REJECT)\b/.test(l));
    if (drop)
      findings.push({
        severity: 'error',
        check: 'firewall',
        message: `iptables drops ${id}: "${drop}"`,
        fix: `iptables -I INPUT -p ${n.proto} --dport ${n.port} -j ACCEPT`,
      });
    else if (policyDrop && !rules.some((l) => /-j ACCEPT\b/.test(l))) {
      findings.push({
        severity: 'error',
        check: 'firewall',
        message: `iptables INPUT policy drops and no rule accepts ${id}`,
        fix: `iptables -I INPUT -p ${n.proto} --dport ${n.port} -j ACCEPT`,
      });
    }
  }
  return findings;
}

export async function checkFirewall(needed: NeededPort[]): Promise<Finding[]> {
  const nft = await runCommand(['nft', 'list', 'ruleset'], { timeoutMs: 5000 });
  const ipt = await runCommand(['iptables-save'], { timeoutMs: 5000 });
  const findings: Finding[] = [];
  if (nft.code === 0) findings.push(...nftFindings(nft.stdout, needed));
  if (ipt.code === 0) findings.push(...iptablesFindings(ipt.stdout, needed));
  if (nft.code !== 0 && ipt.code !== 0) {
    findings.push({
      severity: 'info',
      check: 'firewall',
      message: 'no firewall rules readable (neither nft nor iptables-save answered); not checked',
    });
  } else if (findings.length === 0) {
    findings.push({ severity: 'ok', check: 'firewall', message: `no rule drops ${needed.map((n) => `${n.proto}/${n.port}`).join(', ')}` });
  }
  return findings;
}

export async function checkBootFiles(tftpRoot: string, bootFiles: Record<string, string | null>): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const [firmware, file] of Object.entries(bootFiles)) {
    if (!file || /^[a-z]+:\/\//i.test(file)) continue;
    if (file === UBOOT_SCRIPT_NAME) {
      findings.push({ severity: 'ok', check: 'bootloader', message: `${firmware}: ${file} is rendered by pxe serve` });
      continue;
    }
    try {
      const s = await stat(join(tftpRoot, file));
      if (!s.isFile()) throw new Error('not a file');
      findings.push({ severity: 'ok', check: 'bootloader', message: `${firmware}: ${file} is present (${s.size} bytes)` });
    } catch {
      findings.push({
        severity: 'error',
        check: 'bootloader',
        message: `${firmware}: ${file} is missing from ${tftpRoot}: ${firmware} clients would get "file not found"`,
        fix: `pxe sync --bootloaders-only, or change dhcp.bootFiles.${firmware}`,
      });
    }
  }
  return findings;
}

export async function checkKeyrings(keyrings: Record<string, string>): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const [name, path] of Object.entries(keyrings)) {
    try {
      await access(path, constants.R_OK);
      findings.push({ severity: 'ok', check: 'keyring', message: `keyrings.${name}: ${path} is readable` });
    } catch (err) {
      findings.push({
        severity: 'error',
        check: 'keyring',
        message: `keyrings.${name}: ${path} is not readable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): pxe sync cannot verify entries signed with it`,
        fix: `keyrings.${name} in pxe.yaml`,
      });
    }
  }
  return findings;
}

/** One HEAD per configured mirror, 3 s each, all at once: any HTTP answer means reachable. */
export async function checkMirrors(mirrors: Record<string, string>, timeoutMs = 3000): Promise<Finding[]> {
  return Promise.all(
    Object.entries(mirrors).map(async ([key, url]): Promise<Finding> => {
      try {
        const res = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
        return { severity: 'ok', check: 'mirror', message: `mirrors.${key}: ${url} answers (HTTP ${res.status})` };
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } };
        const why = e.name === 'TimeoutError' ? `no answer in ${timeoutMs} ms` : (e.cause?.code ?? e.message);
        return {
          severity: 'warn',
          check: 'mirror',
          message: `mirrors.${key}: ${url} is unreachable (${why}): pxe sync of its entries fails`,
          fix: `mirrors.${key} in pxe.yaml`,
        };
      }
    }),
  );
}
