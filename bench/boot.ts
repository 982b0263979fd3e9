/**
 * Real-boot benchmark: SeaBIOS + iPXE ROM -> pxelinux.0 -> per-MAC config -> kernel +
 * initrd -> marker, through `pxe serve` and through dnsmasq (proxy + TFTP) on the same
 * lab in the same run. Runs are interleaved, the order rotating per round, so load
 * from other work on the shared host hits every server alike.
 *
 * Three servers boot the same client from the same files:
 * - dnsmasq (proxy + TFTP), the peer;
 * - `pxe serve` as shipped: the iPXE ROM says so (option 77), so it gets pxelinux.0 as
 *   an HTTP URL (dhcp.ipxeHttp) and pxelinux loads everything after it over HTTP;
 * - `pxe serve --no-http`: the same dance over TFTP only, protocol for protocol with
 *   dnsmasq (where the time goes when neither side can use HTTP).
 *
 * Measured: QEMU start -> marker on the serial console (the firmware, proxyDHCP dance,
 * ~9 MB of files and the kernel start are all inside; server start-up is not), with a
 * 95 % bootstrap interval for the ratio: single boots vary by seconds under TCG.
 * The site DHCP server runs with --no-ping here: its 3 s ping-check is a constant that
 * only dilutes the difference between the servers.
 *
 * Needs root, QEMU, dnsmasq and the e2e assets (scripts/e2e-assets.sh); run with
 * `npm run bench` or `node dist-bench/bench/boot.js [runs]`.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  dnsmasqProxyArgs,
  ensureAssets,
  FAIL_FAST,
  MARKER,
  pxeServeArgs,
  PXE_UDP_PORTS,
  REPO_ROOT,
  startLab,
  writeTftpRoot,
  type Lab,
} from './lab.js';
import { bootstrapRatioOfMedians, cpuSeconds, median } from './peers.js';

export type BootServer = 'dnsmasq' | 'pxe' | 'pxe-tftp';

export interface BootBenchResult {
  runs: number;
  /** QEMU start -> marker, per server, per run */
  seconds: Record<BootServer, number[]>;
  /** CPU seconds (user + system, all threads) each server used during each boot */
  cpuSeconds: Record<BootServer, number[]>;
  /** QEMU start -> pxelinux has kernel + initrd ("Loading initrd.gz... ok") */
  loadedSeconds: Record<BootServer, number[]>;
  /** QEMU start -> the kernel's set-up code runs ("Probing EDD"): the part of the boot a server decides */
  kernelSeconds: Record<BootServer, number[]>;
  dnsmasqMedian: number;
  pxeMedian: number;
  /** pxe (as shipped) / dnsmasq, medians; target <= 1.0 */
  ratio: number;
  /** 95 % bootstrap interval of `ratio` */
  ratioCi: [number, number];
  /** pxe --no-http / dnsmasq, medians: TFTP against TFTP */
  tftpOnlyRatio: number;
}

const HTTP_PORT = 8080;

const MAC = '52:54:00:be:0c:01';

/**
 * Serial-console milestones, to see where the time goes: the iPXE ROM is up, the NBP
 * arrived over TFTP (iPXE prints its size), pxelinux runs (after the config file), and
 * then kernel + initrd transfer and Linux start until the marker.
 */
const PHASES: Record<string, RegExp> = {
  ipxe: /iPXE/,
  nbp: /pxelinux\.0 : \d+ bytes/,
  pxelinux: /PXELINUX \d/,
  // pxelinux has the kernel and the initrd (the last file): what follows is the guest's
  // own work (kernel set-up, decompression, Linux start), the same whatever served it
  loaded: /Loading initrd\.gz\.*\s*ok/,
  // the kernel's real-mode set-up code runs (arch/x86/boot/edd.c prints this through the
  // BIOS console). pxelinux has unloaded the PXE stack by then. Over HTTP that unload
  // costs iPXE ~1 s: its tcp_shutdown() waits TCP_FINISH_TIMEOUT for a FIN exchange it
  // cannot complete, because pxelinux has already closed the NIC (PXENV_UNDI_SHUTDOWN
  // before PXENV_UNLOAD_STACK). What follows is the guest alone.
  kernel: /Probing EDD/,
};
let phaseLog: (l: string) => void = () => undefined;

async function startServer(lab: Lab, server: BootServer, tftpRoot: string, i: number) {
  switch (server) {
    case 'dnsmasq':
      return lab.runServer('dnsmasq', dnsmasqProxyArgs(lab, tftpRoot), { name: `bench-dnsmasq-${i}`, udpPorts: [67, 4011, 69] });
    case 'pxe':
      return lab.runServer('node', pxeServeArgs(lab, tftpRoot, { logLevel: 'warn', http: true, httpPort: HTTP_PORT }), {
        name: `bench-pxe-${i}`,
        udpPorts: PXE_UDP_PORTS,
        tcpPorts: [HTTP_PORT],
        readyTimeoutMs: 30_000,
      });
    case 'pxe-tftp':
      return lab.runServer('node', pxeServeArgs(lab, tftpRoot, { logLevel: 'warn' }), {
        name: `bench-pxe-tftp-${i}`,
        udpPorts: PXE_UDP_PORTS,
        readyTimeoutMs: 30_000,
      });
  }
}

/** One boot: QEMU start -> marker, the server's CPU during it, QEMU start -> files loaded and -> kernel entered (seconds). */
interface BootRun {
  seconds: number;
  cpuSeconds: number;
  loadedSeconds: number;
  kernelSeconds: number;
}

async function oneBoot(lab: Lab, server: BootServer, tftpRoot: string, i: number): Promise<BootRun> {
  const p = await startServer(lab, server, tftpRoot, i);
  try {
    // the server's CPU during the boot (its start-up, e.g. pxe's proxyDHCP warm-up, is
    // before this): on 2 vCPUs, whatever it burns is taken from QEMU's threads
    const cpu0 = cpuSeconds(p.pid);
    const r = await lab.bootVm({
      firmware: 'bios',
      mac: MAC,
      expect: MARKER,
      failFast: FAIL_FAST,
      timeoutMs: 120_000,
      name: `bench-${server}-${i}`,
      phases: PHASES,
    });
    if (!r.ok || r.markerMs === undefined || r.match?.[1] !== 'mac' || r.phaseMs.loaded === undefined || r.phaseMs.kernel === undefined) {
      throw new Error(`${server} boot ${i} failed: ${r.reason} (cfg=${r.match?.[1]})\n${r.serialLog.slice(-2000)}`);
    }
    // each row measures what it says: iPXE prints the boot file it was given
    const overHttp = /Filename: http:\/\//.test(r.serialLog);
    if (overHttp !== (server === 'pxe'))
      throw new Error(`${server} boot ${i}: the boot file came ${overHttp ? '' : 'not '}over HTTP\n${r.serialLog.slice(-2000)}`);
    const ph = Object.entries(r.phaseMs)
      .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`)
      .join(', ');
    const cpu = cpuSeconds(p.pid) - cpu0;
    phaseLog(
      `boot: ${server} run ${i + 1} milestones (s from QEMU start): ${ph}, marker ${(r.markerMs / 1000).toFixed(1)}; server CPU ${cpu.toFixed(2)} s`,
    );
    return { seconds: r.markerMs / 1000, cpuSeconds: cpu, loadedSeconds: r.phaseMs.loaded / 1000, kernelSeconds: r.phaseMs.kernel / 1000 };
  } finally {
    await p.stop();
  }
}

/** Every ordering of `xs`. */
function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
}

export async function runBootBench(
  opts: { runs?: number; log?: (line: string) => void; out?: (text: string) => void } = {},
): Promise<BootBenchResult> {
  const runs = Math.max(1, opts.runs ?? 3);
  // progress on stderr; the result (markdown, as bench/index.ts expects) on stdout
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  phaseLog = log;
  if (!existsSync(join(REPO_ROOT, 'dist', 'cli.js'))) throw new Error('dist/cli.js missing: npm run build');
  const assets = await ensureAssets();
  const lab = await startLab({ sitePing: false });
  const servers: BootServer[] = ['dnsmasq', 'pxe', 'pxe-tftp'];
  // Every order of the three, in turn (a Williams design): over 6 rounds each server
  // boots in each position twice and right after each other server equally often. A
  // rotation of one order (d,p,t / p,t,d / t,d,p) kept pxe after dnsmasq in 2 rounds
  // of 3, so whatever a boot leaves for the next one fell on one server more than the
  // others.
  const orders = permutations(servers);
  const runsOf: Record<BootServer, BootRun[]> = { dnsmasq: [], pxe: [], 'pxe-tftp': [] };
  try {
    const tftpRoot = writeTftpRoot(join(lab.runDir, 'tftproot'), assets, [MAC]);
    for (let i = 0; i < runs; i++) {
      for (const server of orders[i % orders.length]!) {
        const r = await oneBoot(lab, server, tftpRoot, i);
        runsOf[server].push(r);
        log(`boot: ${server.padEnd(8)} run ${i + 1}/${runs}: ${r.seconds.toFixed(2)} s`);
      }
    }
  } finally {
    await lab.stop();
  }
  const column = (k: keyof BootRun) =>
    Object.fromEntries(servers.map((s) => [s, runsOf[s].map((r) => r[k])])) as Record<BootServer, number[]>;
  const seconds = column('seconds');
  const cpu = column('cpuSeconds');
  const loaded = column('loadedSeconds');
  const kernel = column('kernelSeconds');
  const med = (s: BootServer) => median(seconds[s]);
  const best = (s: BootServer) => Math.min(...seconds[s]);
  const ratio = med('pxe') / med('dnsmasq');
  const ratioCi = bootstrapRatioOfMedians(seconds.pxe, seconds.dnsmasq);
  const tftpCi = bootstrapRatioOfMedians(seconds['pxe-tftp'], seconds.dnsmasq);
  const tftpOnlyRatio = med('pxe-tftp') / med('dnsmasq');
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' / ');
  const row = (label: string, server: BootServer): string =>
    `| ${label} | ${fmt(seconds[server])} | ${med(server).toFixed(2)} | ${best(server).toFixed(2)} | ${median(loaded[server]).toFixed(1)} | ${median(kernel[server]).toFixed(1)} | ${median(cpu[server]).toFixed(2)} |`;
  const ci = ([lo, hi]: [number, number]): string => `95 % bootstrap interval ${lo.toFixed(3)}-${hi.toFixed(3)}`;
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  out(
    [
      `### Real PXE boot: SeaBIOS + iPXE -> pxelinux.0 -> per-MAC config -> kernel + initrd (QEMU TCG, QEMU start to marker)`,
      '',
      // best-of is printed too: on a shared 2-core host, load from other work inflates
      // single runs by 2-3x, and the minimum is the least disturbed one.
      '| server | runs (s) | median (s) | best (s) | kernel + initrd loaded at, median (s) | kernel entered at, median (s) | server CPU during the boot, median (s) |',
      '|---|---|---|---|---|---|---|',
      row('dnsmasq (proxy + TFTP)', 'dnsmasq'),
      row('pxe serve (defaults: iPXE gets pxelinux.0 over HTTP, pxelinux then fetches over HTTP)', 'pxe'),
      row('pxe serve --no-http (proxy + TFTP, like dnsmasq)', 'pxe-tftp'),
      '',
      `ratio pxe/dnsmasq: **${ratio.toFixed(3)}** (medians; target <= 1.0; ${ci(ratioCi)}; ${runs} runs each, interleaved, every order in turn; best-of ratio ${(best('pxe') / best('dnsmasq')).toFixed(3)})`,
      '',
      `ratio pxe --no-http/dnsmasq (TFTP against TFTP): ${tftpOnlyRatio.toFixed(3)} (${ci(tftpCi)}; best-of ${(best('pxe-tftp') / best('dnsmasq')).toFixed(3)})`,
      '',
      // after "loaded" the guest works alone (kernel set-up, decompression, Linux start
      // under TCG: 7-11 s that vary by seconds from boot to boot): the loaded column is
      // the part of the boot a server decides, without that noise
      `kernel + initrd loaded, pxe/dnsmasq: ${(median(loaded.pxe) / median(loaded.dnsmasq)).toFixed(3)}; pxe --no-http/dnsmasq: ${(median(loaded['pxe-tftp']) / median(loaded.dnsmasq)).toFixed(3)} (medians of QEMU start -> "Loading initrd.gz... ok")`,
      '',
      // the server's whole share of the boot, iPXE's unload wait included; after it the
      // guest runs alone and its time varies by seconds from boot to boot
      `kernel entered, pxe/dnsmasq: ${(median(kernel.pxe) / median(kernel.dnsmasq)).toFixed(3)} (${ci(bootstrapRatioOfMedians(kernel.pxe, kernel.dnsmasq))}); pxe --no-http/dnsmasq: ${(median(kernel['pxe-tftp']) / median(kernel.dnsmasq)).toFixed(3)} (medians of QEMU start -> "Probing EDD")`,
      '',
    ].join('\n'),
  );
  return {
    runs,
    seconds,
    cpuSeconds: cpu,
    loadedSeconds: loaded,
    kernelSeconds: kernel,
    dnsmasqMedian: med('dnsmasq'),
    pxeMedian: med('pxe'),
    ratio,
    ratioCi,
    tftpOnlyRatio,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const runs = Number(process.argv[2] ?? 3);
  runBootBench({ runs: Number.isInteger(runs) && runs > 0 ? runs : 3 }).catch((err: unknown) => {
    process.stderr.write(`boot bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
