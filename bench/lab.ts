/**
 * Real-firmware PXE lab: network namespaces + a bridge + QEMU (SeaBIOS/OVMF, iPXE or
 * OVMF's own PXE). Used by the end-to-end tests (test/e2e/) and the boot benchmark
 * (bench/boot.ts); like them it is not part of the product and never ships in dist/.
 *
 * Topology (every name carries process.pid so concurrent runs never collide):
 *
 *   <p>-site: site0 10.77.0.2  dnsmasq, addresses only (+ DNS option 6, + IPv6 RA)
 *                 |  veth
 *   <p>-lan:  br0 10.77.0.1 ---- tap0 ---- QEMU
 *                 |  veth
 *   <p>-pxe:  pxe0 10.77.0.10 (default route dev pxe0)  server under test
 *
 * Traps handled here (each one cost a failed boot once):
 *  - Linux bridge STP/forward delay: the port is not forwarding yet when iPXE sends its
 *    first DISCOVER, so stp_state 0, forward_delay 0 (and mcast_snooping 0).
 *  - iPXE waits ~16 s for IPv6 autoconfiguration on a LAN without router advertisements,
 *    so the site dnsmasq sends RA for a ULA prefix (--enable-ra, ra-only).
 *  - A 0.0.0.0-bound socket sending to 255.255.255.255 fails with ENETUNREACH in a
 *    namespace without a default route, so pxe0 carries `default dev pxe0`.
 *  - QEMU has to run in the bridge's namespace because the tap lives there.
 *
 * Nothing is created in the root namespace: veth pairs are created directly inside the
 * namespaces. Every wait is bounded. stop() (also run on exit/SIGINT/SIGTERM) kills every
 * process by pid, then whatever `ip netns pids` still lists, then deletes the namespaces.
 */
import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  rmSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  copyFileSync,
  writeFileSync,
  readdirSync,
  type WriteStream,
} from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { REPO_ROOT } from './repo.js';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export { REPO_ROOT };

export const LAB_NET = {
  prefix: 24,
  bridge: '10.77.0.1',
  site: '10.77.0.2',
  server: '10.77.0.10',
  rangeStart: '10.77.0.100',
  rangeEnd: '10.77.0.150',
  ra6Prefix: 'fd77::',
  serverIface: 'pxe0',
} as const;

/** 'uboot': Debian's U-Boot (u-boot-qemu qemu_arm64) on qemu-system-aarch64 -M virt */
export type FirmwareKind = 'bios' | 'uefi' | 'uboot';
export type NicKind = 'ipxe' | 'native';

export interface LabOptions {
  /** site dnsmasq sends IPv6 RAs so iPXE does not wait for autoconfiguration (default true) */
  siteRa?: boolean;
  /**
   * site dnsmasq ping-checks an address before offering it (default true): that delays
   * the real offer ~3 s behind the proxy offer, which is the realistic ordering a
   * proxyDHCP server must survive (the client has to wait for an address).
   */
  sitePing?: boolean;
  /** directory for logs, serial output and per-VM OVMF vars (default: a fresh temp dir) */
  runDir?: string;
  /** bound for each setup command (ms) */
  commandTimeoutMs?: number;
  /**
   * more site dnsmasq options (`--dhcp-boot=…`): a site configured with what
   * `pxe dhcp-config --format dnsmasq` prints, for clients no proxy reaches (U-Boot)
   */
  siteDhcpArgs?: string[];
  /** keep runDir (serial logs, server logs) after stop(); default: env E2E_KEEP=1 */
  keepRunDir?: boolean;
  /** extra dnsmasq configuration for the site DHCP server (e.g. `pxe dhcp-config --format dnsmasq` output) */
  siteConfig?: string;
}

export interface ServerOptions {
  /** friendly name for log files (default: basename of cmd) */
  name?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** UDP ports that must be bound before the server counts as ready */
  udpPorts?: number[];
  /** TCP ports that must be listening before the server counts as ready */
  tcpPorts?: number[];
  readyTimeoutMs?: number;
}

export interface LabProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** everything written to stdout so far */
  stdout(): string;
  stderr(): string;
  /** stdout and stderr lines that parse as JSON objects (pino log lines) */
  jsonLines(): Record<string, unknown>[];
  /** true once the process has exited */
  exited(): boolean;
  exitCode(): number | null;
  stop(): Promise<void>;
}

export interface BootVmOptions {
  firmware: FirmwareKind;
  /** 'ipxe': the NIC's iPXE option ROM (BIOS and UEFI); 'native': no option ROM, OVMF's own PXE (UEFI only) */
  nic?: NicKind;
  /** QEMU NIC model (default virtio-net-pci) */
  model?: string;
  /**
   * UEFI only: OVMF with Microsoft's keys enrolled and Secure Boot on (OVMF_CODE_4M.ms.fd,
   * a copy of OVMF_VARS_4M.ms.fd); that build needs SMM, so the machine is q35 with
   * secure pflash.
   */
  secureBoot?: boolean;
  mac: string;
  memoryMb?: number;
  /** success condition: a regexp on the serial console, or a predicate polled until true */
  expect: RegExp | ((serial: string) => boolean);
  /** any of these on the serial console ends the boot at once as a failure */
  failFast?: RegExp[];
  timeoutMs: number;
  /** after `expect`, QEMU must exit by itself (poweroff -f + -no-reboot) within this bound (default 30 s) */
  selfExitTimeoutMs?: number;
  /** false: success does not need QEMU to exit by itself; it is killed (default true) */
  requireSelfExit?: boolean;
  /** name for the serial log file */
  name?: string;
  extraArgs?: string[];
  /** milestones to time on the serial console (first appearance, 100 ms resolution) */
  phases?: Record<string, RegExp>;
}

export interface BootResult {
  ok: boolean;
  /** why it ended: 'marker', 'fail-fast: <re>', 'timeout', 'qemu exited before marker', 'no self exit' */
  reason: string;
  serialLog: string;
  serialPath: string;
  /** QEMU start to QEMU exit (or kill) */
  durationMs: number;
  /** QEMU start to `expect` (undefined when not seen) */
  markerMs: number | undefined;
  exitedByItself: boolean;
  match: RegExpMatchArray | null;
  /** ms from QEMU start to the first appearance of each `phases` regexp seen */
  phaseMs: Record<string, number>;
}

export interface Lab {
  readonly id: string;
  readonly ns: { lan: string; site: string; pxe: string };
  readonly runDir: string;
  readonly serverAddress: string;
  readonly serverIface: string;
  /** start a process inside the pxe namespace and wait (bounded) until its ports are bound */
  runServer(cmd: string, args: string[], opts?: ServerOptions): Promise<LabProcess>;
  bootVm(opts: BootVmOptions): Promise<BootResult>;
  /** the site DHCP server's log so far */
  siteLog(): string;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------
// process bookkeeping and emergency cleanup

const liveLabs = new Set<LabImpl>();
let exitHooksInstalled = false;

/** Synchronous last-resort cleanup: the process is going away (exit, SIGINT, SIGTERM). */
function cleanupAllSync(): void {
  for (const lab of [...liveLabs]) lab.stopSync();
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.once('exit', cleanupAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      cleanupAllSync();
      // Re-raise with the default disposition so the exit status still says "signal".
      process.removeListener(sig, handler);
      process.kill(process.pid, sig);
    };
    process.once(sig, handler);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

function runSync(cmd: string, args: string[], timeoutMs = 5_000): string {
  const r = spawnSync(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' });
  return r.stdout ?? '';
}

const NS_PREFIX = 'pxe-e2e-';

/**
 * Namespaces of our own earlier runs whose process no longer exists (SIGKILLed test
 * workers cannot clean up). Only names with our prefix and a dead pid are touched, so
 * concurrent runs of other engineers/tests are safe.
 */
export function reapStaleLabs(): string[] {
  const names = runSync('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(NS_PREFIX));
  const reaped: string[] = [];
  for (const name of names) {
    const pid = Number(name.slice(NS_PREFIX.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
    killNamespacePidsSync(name);
    runSync('ip', ['netns', 'del', name]);
    reaped.push(name);
  }
  return reaped;
}

function netnsPidsSync(ns: string): number[] {
  return runSync('ip', ['netns', 'pids', ns])
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

function killNamespacePidsSync(ns: string): void {
  for (const pid of netnsPidsSync(ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/** Local ports in `ss` output (-H -n -l), e.g. "0.0.0.0:67" -> 67. */
export function parseListeningPorts(ssOutput: string): Set<number> {
  const ports = new Set<number>();
  for (const line of ssOutput.split('\n')) {
    const cols = line.trim().split(/\s+/);
    // State Recv-Q Send-Q Local Peer (UNCONN 0 0 0.0.0.0:67 0.0.0.0:*)
    const local = cols[3];
    if (!local) continue;
    const m = /:(\d+)$/.exec(local);
    if (m?.[1]) ports.add(Number(m[1]));
  }
  return ports;
}

// ---------------------------------------------------------------------------------

let labCounter = 0;

class LabProcessImpl implements LabProcess {
  private out: string[] = [];
  private err: string[] = [];
  private code: number | null = null;
  private done = false;
  readonly exitPromise: Promise<void>;
  readonly pid: number;
  private readonly file: WriteStream;

  constructor(
    readonly name: string,
    readonly logPath: string,
    readonly child: ChildProcess,
    private readonly owner: LabImpl,
  ) {
    if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
    this.pid = child.pid;
    this.file = createWriteStream(logPath);
    // A log file that cannot be written (run dir removed early) must not crash the test run.
    this.file.on('error', () => undefined);
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => {
      this.out.push(d);
      this.file.write(d);
    });
    child.stderr?.on('data', (d: string) => {
      this.err.push(d);
      this.file.write(d);
    });
    // 'close' (not 'exit'): stdout/stderr may still deliver data after the exit event.
    child.once('close', () => this.file.end());
    this.exitPromise = new Promise((res) => {
      child.once('exit', (code, signal) => {
        this.code = code ?? (signal ? 128 : null);
        this.done = true;
        res();
      });
      child.once('error', () => {
        this.done = true;
        res();
      });
    });
  }

  stdout(): string {
    return this.out.join('');
  }
  stderr(): string {
    return this.err.join('');
  }
  jsonLines(): Record<string, unknown>[] {
    const lines: Record<string, unknown>[] = [];
    for (const line of `${this.stdout()}\n${this.stderr()}`.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const v: unknown = JSON.parse(line);
        if (v && typeof v === 'object' && !Array.isArray(v)) lines.push(v as Record<string, unknown>);
      } catch {
        /* a partial line or plain text */
      }
    }
    return lines;
  }
  exited(): boolean {
    return this.done;
  }
  exitCode(): number | null {
    return this.code;
  }
  async stop(): Promise<void> {
    await this.owner.killProcess(this);
  }
}

class LabImpl implements Lab {
  readonly id: string;
  readonly ns: { lan: string; site: string; pxe: string };
  readonly runDir: string;
  readonly serverAddress = LAB_NET.server;
  readonly serverIface = LAB_NET.serverIface;
  private readonly procs = new Set<LabProcessImpl>();
  private site: LabProcessImpl | undefined;
  private stopped = false;
  private vmCounter = 0;

  constructor(private readonly opts: LabOptions) {
    this.id = `${NS_PREFIX}${process.pid}-${labCounter++}`;
    this.ns = { lan: `${this.id}-lan`, site: `${this.id}-site`, pxe: `${this.id}-pxe` };
    this.runDir = opts.runDir ?? mkdtempSync(join(tmpdir(), `${this.id}-`));
    mkdirSync(this.runDir, { recursive: true });
  }

  private ip(args: string[]): Promise<string> {
    return run('ip', args, this.opts.commandTimeoutMs ?? 10_000);
  }

  async setup(): Promise<void> {
    const { lan, site, pxe } = this.ns;
    for (const n of [lan, site, pxe]) await this.ip(['netns', 'add', n]);
    // Bridge without STP/forward delay/snooping: see the header comment.
    await this.ip(['-n', lan, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0']);
    await this.ip(['-n', lan, 'addr', 'add', `${LAB_NET.bridge}/${LAB_NET.prefix}`, 'dev', 'br0']);
    // Veth pairs are created with both ends already inside namespaces: nothing ever
    // appears in the root namespace.
    await this.ip(['link', 'add', 'site0', 'netns', site, 'type', 'veth', 'peer', 'name', 'vsite', 'netns', lan]);
    await this.ip(['link', 'add', 'pxe0', 'netns', pxe, 'type', 'veth', 'peer', 'name', 'vpxe', 'netns', lan]);
    // Persistent tap, up before QEMU attaches (script=no): carrier comes with QEMU.
    await run('ip', ['netns', 'exec', lan, 'ip', 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
    for (const dev of ['vsite', 'vpxe', 'tap0']) {
      await this.ip(['-n', lan, 'link', 'set', dev, 'master', 'br0']);
      await this.ip(['-n', lan, 'link', 'set', dev, 'up']);
    }
    await this.ip(['-n', lan, 'link', 'set', 'br0', 'up']);
    await this.ip(['-n', lan, 'link', 'set', 'lo', 'up']);

    await this.ip(['-n', site, 'link', 'set', 'lo', 'up']);
    await this.ip(['-n', site, 'addr', 'add', `${LAB_NET.site}/${LAB_NET.prefix}`, 'dev', 'site0']);
    // nodad: the RA daemon needs a usable address in the prefix right away.
    await this.ip(['-n', site, 'addr', 'add', `${LAB_NET.ra6Prefix}2/64`, 'dev', 'site0', 'nodad']);
    await this.ip(['-n', site, 'link', 'set', 'site0', 'up']);

    await this.ip(['-n', pxe, 'link', 'set', 'lo', 'up']);
    await this.ip(['-n', pxe, 'addr', 'add', `${LAB_NET.server}/${LAB_NET.prefix}`, 'dev', 'pxe0']);
    await this.ip(['-n', pxe, 'link', 'set', 'pxe0', 'up']);
    // Without a default route, sending to 255.255.255.255 from a 0.0.0.0 socket gets ENETUNREACH.
    await this.ip(['-n', pxe, 'route', 'add', 'default', 'dev', 'pxe0']);

    await this.startSiteDhcp();
  }

  private async startSiteDhcp(): Promise<void> {
    const d = this.runDir;
    const args = [
      '--no-daemon',
      '--conf-file=/dev/null',
      '--port=0', // no DNS service; option 6 below only has to exist (d-i asks otherwise)
      '--interface=site0',
      '--bind-interfaces',
      '--user=root',
      '--group=root',
      `--pid-file=${join(d, 'site-dhcp.pid')}`,
      `--dhcp-leasefile=${join(d, 'site-dhcp.leases')}`,
      `--dhcp-range=${LAB_NET.rangeStart},${LAB_NET.rangeEnd},255.255.255.0,10m`,
      '--dhcp-authoritative',
      `--dhcp-option=6,${LAB_NET.site}`,
      '--log-dhcp',
      '--log-facility=-',
    ];
    if (this.opts.siteConfig) {
      const extra = join(d, 'site-dhcp.conf');
      writeFileSync(extra, this.opts.siteConfig);
      args.push(`--conf-file=${extra}`);
    }
    if (this.opts.siteRa ?? true) args.push('--enable-ra', `--dhcp-range=${LAB_NET.ra6Prefix},ra-only,64`);
    if (!(this.opts.sitePing ?? true)) args.push('--no-ping');
    args.push(...(this.opts.siteDhcpArgs ?? []));
    this.site = this.spawnIn(this.ns.site, 'site-dhcp', 'dnsmasq', args, {});
    await this.waitPorts(this.site, this.ns.site, [67], [], 10_000);
  }

  private spawnIn(ns: string, name: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string }): LabProcessImpl {
    if (this.stopped) throw new Error('lab is stopped');
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const p = new LabProcessImpl(name, join(this.runDir, `${name}.log`), child, this);
    this.procs.add(p);
    return p;
  }

  private async waitPorts(p: LabProcessImpl, ns: string, udp: number[], tcp: number[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (p.exited()) {
        throw new Error(`${p.name} exited (code ${p.exitCode()}) before binding its ports:\n${(p.stdout() + p.stderr()).slice(-4000)}`);
      }
      const udpBound = udp.length
        ? parseListeningPorts(await run('ip', ['netns', 'exec', ns, 'ss', '-H', '-n', '-u', '-l']))
        : new Set<number>();
      const tcpBound = tcp.length
        ? parseListeningPorts(await run('ip', ['netns', 'exec', ns, 'ss', '-H', '-n', '-t', '-l']))
        : new Set<number>();
      if (udp.every((x) => udpBound.has(x)) && tcp.every((x) => tcpBound.has(x))) return;
      if (Date.now() > deadline) {
        throw new Error(
          `${p.name}: UDP ${udp.join(',')} / TCP ${tcp.join(',')} not bound within ${timeoutMs} ms:\n${(p.stdout() + p.stderr()).slice(-4000)}`,
        );
      }
      await sleep(100);
    }
  }

  async runServer(cmd: string, args: string[], opts: ServerOptions = {}): Promise<LabProcess> {
    const name = opts.name ?? cmd.split('/').pop() ?? 'server';
    const p = this.spawnIn(this.ns.pxe, name, cmd, args, { env: opts.env, cwd: opts.cwd });
    try {
      await this.waitPorts(p, this.ns.pxe, opts.udpPorts ?? [], opts.tcpPorts ?? [], opts.readyTimeoutMs ?? 15_000);
    } catch (err) {
      await this.killProcess(p);
      throw err;
    }
    return p;
  }

  siteLog(): string {
    return this.site ? this.site.stdout() + this.site.stderr() : '';
  }

  async killProcess(p: LabProcessImpl, graceMs = 3_000): Promise<void> {
    if (!p.exited()) {
      try {
        process.kill(p.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      await Promise.race([p.exitPromise, sleep(graceMs)]);
      if (!p.exited()) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await Promise.race([p.exitPromise, sleep(2_000)]);
      }
    }
    this.procs.delete(p);
  }

  async bootVm(o: BootVmOptions): Promise<BootResult> {
    const nic = o.nic ?? 'ipxe';
    const model = o.model ?? 'virtio-net-pci';
    const name = o.name ?? `vm${this.vmCounter++}-${o.firmware}-${nic}`;
    const serialPath = join(this.runDir, `${name}.serial.log`);
    writeFileSync(serialPath, '');
    const uboot = o.firmware === 'uboot';
    const args = [
      '-accel',
      process.env.E2E_ACCEL ?? 'tcg', // KVM here is nested without VMX: the guest kernel never boots
      '-m',
      String(o.memoryMb ?? 512),
      '-smp',
      '1',
      '-nographic',
      '-monitor',
      'none',
      '-serial',
      `file:${serialPath}`,
      '-no-reboot', // a reboot (pxelinux failure, kernel panic with panic=-1) ends the run at once
      '-netdev',
      'tap,id=n0,ifname=tap0,script=no,downscript=no',
      '-device',
      `${model},netdev=n0,mac=${o.mac}${nic === 'native' ? ',romfile=' : ''}`,
    ];
    if (uboot) {
      // U-Boot is the machine's firmware (-bios); its distro boot tries disks, then DHCP.
      args.unshift('-M', 'virt', '-cpu', 'cortex-a57');
      args.push('-bios', UBOOT_QEMU_ARM64);
    } else {
      args.push('-boot', 'n');
    }
    if (o.firmware === 'uefi') {
      // OVMF split into read-only code + per-run writable variables (boot order is stored there).
      const fw = o.secureBoot ? OVMF_SECURE_BOOT : OVMF;
      const vars = join(this.runDir, `${name}.OVMF_VARS.fd`);
      copyFileSync(fw.vars, vars);
      if (o.secureBoot) args.push('-machine', 'q35,smm=on', '-global', 'driver=cfi.pflash01,property=secure,value=on');
      args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${fw.code}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
    }
    args.push(...(o.extraArgs ?? []));
    const qemu = uboot ? 'qemu-system-aarch64' : 'qemu-system-x86_64';
    writeFileSync(join(this.runDir, `${name}.qemu.cmd`), [qemu, ...args].join(' ') + '\n');

    const started = Date.now();
    const vm = this.spawnIn(this.ns.lan, `${name}.qemu`, qemu, args, {});
    const readSerial = (): string => {
      try {
        return readFileSync(serialPath, 'latin1');
      } catch {
        return '';
      }
    };
    const deadline = started + o.timeoutMs;
    let reason = 'timeout';
    let markerMs: number | undefined;
    let match: RegExpMatchArray | null = null;
    let serial = '';
    const seen = (s: string): boolean => {
      if (typeof o.expect === 'function') return o.expect(s);
      match = o.expect.exec(s);
      return match !== null;
    };
    const phaseMs: Record<string, number> = {};
    for (;;) {
      // Read exit state before the serial file: a QEMU that exited right after printing
      // the marker is then judged on its complete output.
      const exitedNow = vm.exited();
      serial = readSerial();
      if (o.phases) {
        // SeaBIOS's serial console writes the VGA text screen: when it scrolls, cursor
        // escapes land in the middle of words ("Loadin\e[25;06H\e[25;07Hg initrd"), and
        // so do carriage returns ("L\r\e[25;02Hoading initrd.gz...ok")
        // eslint-disable-next-line no-control-regex -- ESC (0x1b) starts the escapes to strip
        const text = serial.replace(/\x1b(\[[0-9;?]*[A-Za-z]|c)/g, '').replace(/\r/g, '');
        for (const [k, re] of Object.entries(o.phases)) if (phaseMs[k] === undefined && re.test(text)) phaseMs[k] = Date.now() - started;
      }
      if (seen(serial)) {
        reason = 'marker';
        markerMs = Date.now() - started;
        break;
      }
      const ff = (o.failFast ?? []).find((re) => re.test(serial));
      if (ff) {
        reason = `fail-fast: ${ff.source}`;
        break;
      }
      if (exitedNow) {
        reason = `qemu exited (code ${vm.exitCode()}) before marker`;
        break;
      }
      if (Date.now() > deadline) break;
      await sleep(100);
    }

    let exitedByItself: boolean;
    if (reason === 'marker' && (o.requireSelfExit ?? true)) {
      const exitBy = Date.now() + (o.selfExitTimeoutMs ?? 30_000);
      while (!vm.exited() && Date.now() < exitBy) await sleep(100);
      exitedByItself = vm.exited();
      if (!exitedByItself) reason = 'no self exit';
    } else {
      exitedByItself = vm.exited();
    }
    await this.killProcess(vm, 1_000);
    const durationMs = Date.now() - started;
    serial = readSerial();
    const ok = reason === 'marker' && (exitedByItself || o.requireSelfExit === false);
    return { ok, reason, serialLog: serial, serialPath, durationMs, markerMs, exitedByItself, match, phaseMs };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([...this.procs].map((p) => this.killProcess(p)));
    this.teardownNamespacesSync();
    liveLabs.delete(this);
    if (!(this.opts.keepRunDir ?? process.env.E2E_KEEP === '1')) rmSync(this.runDir, { recursive: true, force: true });
  }

  /** exit-hook variant: no awaiting, SIGKILL only. */
  stopSync(): void {
    this.stopped = true;
    for (const p of this.procs) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.teardownNamespacesSync();
    liveLabs.delete(this);
    if (!(this.opts.keepRunDir ?? process.env.E2E_KEEP === '1')) rmSync(this.runDir, { recursive: true, force: true });
  }

  private teardownNamespacesSync(): void {
    const all = [this.ns.lan, this.ns.site, this.ns.pxe];
    // Anything still inside (children of servers, a qemu whose `ip netns exec` parent we lost).
    for (let i = 0; i < 3; i++) {
      const left = all.flatMap((n) => netnsPidsSync(n));
      if (left.length === 0) break;
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      spawnSync('sleep', ['0.2']);
    }
    for (const n of all) runSync('ip', ['netns', 'del', n]);
  }
}

/** Debian u-boot-qemu: U-Boot for qemu-system-aarch64 -M virt */
export const UBOOT_QEMU_ARM64 = '/usr/lib/u-boot/qemu_arm64/u-boot.bin';

export const OVMF = {
  code: '/usr/share/OVMF/OVMF_CODE_4M.fd',
  vars: '/usr/share/OVMF/OVMF_VARS_4M.fd',
};

/** OVMF with Microsoft's KEK/db enrolled and Secure Boot already enabled in its variables. */
export const OVMF_SECURE_BOOT = {
  code: '/usr/share/OVMF/OVMF_CODE_4M.ms.fd',
  vars: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
};

/** Creates the namespaces, bridge, tap and the site DHCP server. Always pair with `lab.stop()`. */
export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  installExitHooks();
  reapStaleLabs();
  const lab = new LabImpl(opts);
  liveLabs.add(lab);
  try {
    await lab.setup();
  } catch (err) {
    await lab.stop();
    throw err;
  }
  return lab;
}

// ---------------------------------------------------------------------------------
// assets and TFTP root

export interface E2eAssets {
  dir: string;
  vmlinuz: string;
  initrd: string;
  pxelinux: string;
  ldlinuxC32: string;
  syslinuxEfi: string;
  ldlinuxE64: string;
  /** only with { installer: true } */
  installer?: { linux: string; initrd: string };
  /** only with { arm64: true }: Debian's arm64 kernel (an uncompressed Image) and the marker initrd around busybox-static:arm64 */
  arm64?: { vmlinuz: string; initrd: string };
}

/** Runs scripts/e2e-assets.sh (idempotent, offline once cached) and returns the cached paths. */
export async function ensureAssets(opts: { installer?: boolean; arm64?: boolean; cacheDir?: string } = {}): Promise<E2eAssets> {
  const script = join(REPO_ROOT, 'scripts', 'e2e-assets.sh');
  const args = [
    script,
    ...(opts.installer ? ['--installer'] : []),
    ...(opts.arm64 ? ['--arm64'] : []),
    ...(opts.cacheDir ? [opts.cacheDir] : []),
  ];
  const out = await run('bash', args, 900_000);
  const dir = out.trim().split('\n').pop() ?? '';
  if (!dir || !existsSync(dir)) throw new Error(`e2e-assets.sh printed no cache directory: ${out}`);
  const a: E2eAssets = {
    dir,
    vmlinuz: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.gz'),
    pxelinux: join(dir, 'pxelinux.0'),
    ldlinuxC32: join(dir, 'ldlinux.c32'),
    syslinuxEfi: join(dir, 'syslinux.efi'),
    ldlinuxE64: join(dir, 'ldlinux.e64'),
  };
  if (opts.installer) a.installer = { linux: join(dir, 'd-i', 'linux'), initrd: join(dir, 'd-i', 'initrd.gz') };
  if (opts.arm64) a.arm64 = { vmlinuz: join(dir, 'arm64', 'vmlinuz'), initrd: join(dir, 'arm64', 'initrd.gz') };
  return a;
}

/** pxelinux.cfg file name for a MAC: ARP type 1 + dashed lower-case MAC (pxelinux doc). */
export function pxelinuxMacFile(mac: string): string {
  return `01-${mac.toLowerCase().replace(/:/g, '-')}`;
}

/** A pxelinux/syslinux config whose kernel command line carries `cfg=<tag>` for the marker. */
export function markerConfig(tag: string): string {
  return [
    'DEFAULT e2e',
    'PROMPT 0',
    'TIMEOUT 0',
    'LABEL e2e',
    '  KERNEL vmlinuz',
    // initrd= on the APPEND line (not INITRD) works the same for pxelinux.0 and syslinux.efi;
    // panic=-1 + QEMU -no-reboot turns a kernel panic into an immediate exit. loglevel=1
    // keeps the kernel as silent on the serial console as `quiet` did, while syslinux
    // (which looks for the word "quiet") still prints "Loading <file>... ok": the
    // boot bench times the end of the file transfers by it.
    `  APPEND initrd=initrd.gz console=ttyS0 panic=-1 loglevel=1 cfg=${tag}`,
    '',
  ].join('\n');
}

/**
 * Writes a TFTP root: both bootloaders with their ldlinux module, kernel, marker initrd,
 * `pxelinux.cfg/default` (cfg=default) and one `pxelinux.cfg/01-<mac>` (cfg=mac) per MAC.
 */
export function writeTftpRoot(dir: string, assets: E2eAssets, perMac: string[] = []): string {
  mkdirSync(join(dir, 'pxelinux.cfg'), { recursive: true });
  copyFileSync(assets.pxelinux, join(dir, 'pxelinux.0'));
  copyFileSync(assets.ldlinuxC32, join(dir, 'ldlinux.c32'));
  copyFileSync(assets.syslinuxEfi, join(dir, 'syslinux.efi'));
  copyFileSync(assets.ldlinuxE64, join(dir, 'ldlinux.e64'));
  copyFileSync(assets.vmlinuz, join(dir, 'vmlinuz'));
  copyFileSync(assets.initrd, join(dir, 'initrd.gz'));
  writeFileSync(join(dir, 'pxelinux.cfg', 'default'), markerConfig('default'));
  for (const mac of perMac) writeFileSync(join(dir, 'pxelinux.cfg', pxelinuxMacFile(mac)), markerConfig('mac'));
  return dir;
}

/** The boot marker printed by the initrd's /init. */
/** `fw`: bios, uefi, or on a device-tree machine without UEFI uboot (U-Boot's version in /chosen) or dt. */
export const MARKER = /PXE-E2E-OK cfg=(\S+) fw=(bios|uefi|uboot|dt)/;
/** The whole marker line, with sb= (the kernel saw UEFI Secure Boot on or off). */
export const MARKER_SB = /PXE-E2E-OK cfg=(\S+) fw=(bios|uefi|uboot|dt) sb=(on|off)/;

/** Serial output that means the boot cannot succeed any more (no need to wait for the timeout). */
export const FAIL_FAST = [/No bootable device/, /UEFI Interactive Shell/, /Kernel panic/, /Boot failed: not a bootable disk/];

/**
 * dnsmasq as a reference proxyDHCP + TFTP server (the harness self-check and the
 * benchmark baseline). `pxelinux` gets ".0" appended by dnsmasq for x86PC.
 */
export function dnsmasqProxyArgs(lab: Lab, tftpRoot: string): string[] {
  return [
    '--no-daemon',
    '--conf-file=/dev/null',
    '--port=0',
    `--interface=${lab.serverIface}`,
    '--bind-interfaces',
    '--user=root',
    '--group=root',
    `--pid-file=${join(lab.runDir, 'pxe-dnsmasq.pid')}`,
    `--dhcp-leasefile=${join(lab.runDir, 'pxe-dnsmasq.leases')}`,
    '--dhcp-range=10.77.0.0,proxy',
    '--pxe-service=x86PC,"Network boot",pxelinux',
    '--pxe-service=X86-64_EFI,"Network boot EFI",syslinux.efi',
    '--pxe-service=BC_EFI,"Network boot EFI",syslinux.efi',
    '--enable-tftp',
    `--tftp-root=${tftpRoot}`,
    '--log-dhcp',
    '--log-facility=-',
  ];
}

/** Lists files left in a directory (for debugging failures). */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export interface PxeServeOptions {
  /** serve HTTP too (installer tests fetch their preseed over HTTP) */
  http?: boolean;
  httpPort?: number;
  /** extra pxe.yaml content (YAML, appended) */
  extraConfig?: string;
  logLevel?: string;
}

/**
 * Arguments for `node dist/cli.js serve` inside the lab: a pxe.yaml in the run dir
 * keeps state/ and hosts out of the checkout (other runs share it); the flags carry
 * what the test varies. Returns [cli, ...args] for `lab.runServer('node', ...)`.
 */
export function pxeServeArgs(lab: Lab, tftpRoot: string, o: PxeServeOptions = {}): string[] {
  const cfgFile = join(lab.runDir, 'pxe.yaml');
  const yaml = [
    `stateDir: ${JSON.stringify(join(lab.runDir, 'state'))}`,
    `hostsFile: ${JSON.stringify(join(lab.runDir, 'hosts.yaml'))}`,
    `catalogDir: ${JSON.stringify(join(REPO_ROOT, 'distros'))}`,
    `templatesDir: ${JSON.stringify(join(REPO_ROOT, 'templates'))}`,
    o.extraConfig ?? '',
    '',
  ].join('\n');
  writeFileSync(cfgFile, yaml);
  const args = [
    join(REPO_ROOT, 'dist', 'cli.js'),
    'serve',
    '--config',
    cfgFile,
    '--tftp-root',
    tftpRoot,
    '--server-address',
    lab.serverAddress,
    '--log-level',
    o.logLevel ?? 'info',
  ];
  if (o.http) {
    if (o.httpPort !== undefined) args.push('--http-port', String(o.httpPort));
  } else {
    args.push('--no-http');
  }
  return args;
}

/** Ports `pxe serve` binds with the defaults: proxyDHCP 67, PXE boot server 4011, TFTP 69. */
export const PXE_UDP_PORTS = [67, 4011, 69];
