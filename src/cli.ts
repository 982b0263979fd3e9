#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { isIP } from 'node:net';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_OPTION_HELP, commandConfig, EMBEDDED_DEFAULTS, loadConfig, packageVersion, type Config } from './config.js';
import { ConfigError } from './yamlfile.js';
import { UserError } from './errors.js';
import { normalizeMac, normalizeUuid } from './boot/pxelinux.js';
import { loadApp } from './boot/load.js';
import { explainClient, formatExplanation, type ExplainedClient } from './boot/explain.js';
import { FIRMWARE_LABEL } from './boot/firmware.js';
import type { Firmware } from './boot/types.js';
import { renderDhcpConfig, renderNextServerOnly, type DhcpConfigFormat } from './dhcpconfig.js';
import { registerSyncCommands } from './sync/commands.js';
import { registerHostCommands } from './hosts/commands.js';
import { registerCatalogCommands } from './catalog/commands.js';
import { registerDoctorCommand } from './doctor/command.js';

const parsePort = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535');
  return n;
};
const parseIpv4 = (v: string): string => {
  if (isIP(v) !== 4) throw new InvalidArgumentError('expected an IPv4 address');
  return v;
};

interface ServeFlags {
  config?: string;
  listen?: string;
  serverAddress?: string;
  tftpPort?: number;
  tftpRoot?: string;
  dhcpPort?: number;
  pxePort?: number;
  httpPort?: number;
  dhcp: boolean;
  http: boolean;
  tftp: boolean;
  logLevel?: Config['logLevel'];
}

/** Command-line flags override the file (the tests and one-off runs need that). */
export function applyServeFlags(config: Config, f: ServeFlags): Config {
  const c: Config = structuredClone(config);
  if (f.listen) c.listen = f.listen;
  if (f.serverAddress) c.serverAddress = f.serverAddress;
  if (f.tftpPort !== undefined) c.tftp.port = f.tftpPort;
  if (f.tftpRoot) c.tftp.root = new URL(f.tftpRoot, `file://${process.cwd()}/`).pathname;
  if (f.dhcpPort !== undefined) c.dhcp.port = f.dhcpPort;
  if (f.pxePort !== undefined) c.dhcp.pxePort = f.pxePort;
  if (f.httpPort !== undefined) c.http.port = f.httpPort;
  if (!f.dhcp) c.dhcp.enabled = false;
  if (!f.http) c.http.enabled = false;
  if (!f.tftp) c.tftp.enabled = false;
  if (f.logLevel) c.logLevel = f.logLevel;
  return c;
}

export function buildProgram(): Command {
  const program = new Command('pxe')
    .description('Network-boot server: proxyDHCP, TFTP and HTTP, with a verified distro catalog and rendered menus')
    .version(packageVersion(), '-V, --version', 'print the version of pxe')
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: false });

  const configOption = () => new Option('-c, --config <file>', CONFIG_OPTION_HELP);

  program
    .command('serve')
    .description('Run the proxyDHCP (67, 4011), TFTP (69) and HTTP servers')
    .addOption(configOption())
    .option('--listen <addr>', 'IPv4 address to bind (default 0.0.0.0)', parseIpv4)
    .option('--server-address <addr>', 'next-server/HTTP address advertised to clients (default: derived from interfaces)', parseIpv4)
    .option('--tftp-port <n>', 'TFTP port', parsePort)
    .option('--tftp-root <dir>', 'directory served over TFTP')
    .option('--dhcp-port <n>', 'proxyDHCP port', parsePort)
    .option('--pxe-port <n>', 'PXE boot-server port', parsePort)
    .option('--http-port <n>', 'HTTP port', parsePort)
    .option('--no-dhcp', 'do not run the proxyDHCP')
    .option('--no-http', 'do not run the HTTP server')
    .option('--no-tftp', 'do not run the TFTP server')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (flags: ServeFlags) => {
      // serve names its configuration in its 'pxe serving' log line (config, configWhy):
      // stderr stays for the one line a startup error prints.
      const first = loadConfig(flags.config);
      const config = applyServeFlags(first, flags);
      const { serve } = await import('./serve.js');
      // A reload (SIGHUP) reads the file this run started with again.
      await serve(config, () => applyServeFlags(first.source === EMBEDDED_DEFAULTS ? first : loadConfig(first.source), flags));
    });

  program
    .command('which')
    .description("Print pxelinux's config lookup sequence for a client and which file would be served, and why")
    .argument('<mac>', 'client MAC address')
    .option('--ip <addr>', 'client IPv4 address (adds the hex-IP lookups)', parseIpv4)
    .option('--uuid <uuid>', 'client UUID (option 97), adds the UUID lookup')
    .addOption(
      new Option('--firmware <class>', 'firmware the config lookup is replayed for (an EFI client gets the EFI menu)')
        .choices(Object.keys(FIRMWARE_LABEL).filter((f) => f !== 'unknown'))
        .default('bios'),
    )
    .addOption(configOption())
    .option('--json', 'machine-readable output')
    .action(async (macArg: string, opts: { ip?: string; uuid?: string; firmware?: Firmware; config?: string; json?: boolean }) => {
      const mac = normalizeMac(macArg);
      if (!mac) throw new UserError(`not a MAC address: ${macArg}`);
      let uuid: string | undefined;
      if (opts.uuid !== undefined) {
        uuid = normalizeUuid(opts.uuid) ?? undefined;
        if (!uuid) throw new UserError(`not a UUID: ${opts.uuid}`);
      }
      const app = await loadApp(commandConfig(opts.config));
      const client: ExplainedClient = { mac };
      if (opts.ip) client.ip = opts.ip;
      if (uuid) client.uuid = uuid;
      if (opts.firmware) client.firmware = opts.firmware;
      const report = await explainClient(app, client);
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatExplanation(report));
    });

  program
    .command('events')
    .description('Print the boot-event log: what each client asked, was offered and fetched (DHCP, TFTP, HTTP)')
    .argument('[mac]', 'only this client')
    .addOption(configOption())
    .option('-n, --last <n>', 'only the last N events', (v) => Math.max(1, Number.parseInt(v, 10) || 50))
    .option('--json', 'raw JSON lines')
    .action(async (macArg: string | undefined, opts: { config?: string; last?: number; json?: boolean }) => {
      const config = commandConfig(opts.config);
      const mac = macArg === undefined ? undefined : normalizeMac(macArg);
      if (macArg !== undefined && !mac) throw new UserError(`not a MAC address: ${macArg}`);
      const { readEventsReport, formatEvents } = await import('./events.js');
      const { events, problems } = await readEventsReport(join(config.stateDir, 'boot-events.jsonl'), mac ?? undefined, opts.last);
      for (const p of problems) process.stderr.write(`pxe: ${p}\n`);
      if (problems.length > 0) process.exitCode = 1;
      process.stdout.write(opts.json ? events.map((e) => `${JSON.stringify(e)}\n`).join('') : formatEvents(events));
    });

  program
    .command('dhcp-config')
    .description('Print the equivalent next-server/filename configuration for your own DHCP server (then run `pxe serve --no-dhcp`)')
    .addOption(new Option('--format <format>', 'target DHCP server').choices(['isc', 'kea', 'dnsmasq']).makeOptionMandatory())
    .option('--server-address <addr>', 'TFTP server address to put in next-server (default: serverAddress from the config)', parseIpv4)
    .option('--next-server-only', 'only the setting the site DHCP server needs next to the proxy (GRUB takes its TFTP server from its ACK)')
    .addOption(configOption())
    .action(async (opts: { format: DhcpConfigFormat; serverAddress?: string; config?: string; nextServerOnly?: boolean }) => {
      const config = commandConfig(opts.config);
      const addr = opts.serverAddress ?? config.serverAddress;
      if (!addr) throw new UserError('dhcp-config needs --server-address or serverAddress in pxe.yaml');
      process.stdout.write(opts.nextServerOnly ? renderNextServerOnly(opts.format, addr) : renderDhcpConfig(config, opts.format, addr));
    });

  registerHostCommands(program); // host add/list/reinstall/rm, render (src/hosts/commands.ts)
  registerSyncCommands(program); // sync, list, rollback (src/sync/commands.ts)
  registerCatalogCommands(program); // catalog check (src/catalog/commands.ts)
  registerDoctorCommand(program); // src/doctor/

  return program;
}

export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      // help / version / usage: commander already printed what it had to say
      return e.exitCode ?? 2;
    }
    if (err instanceof ConfigError || err instanceof UserError) {
      process.stderr.write(`pxe: ${err.message}\n`);
      return err instanceof UserError ? err.exitCode : 2;
    }
    process.stderr.write(`pxe: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

/**
 * Run when node was started with this file (`node dist/cli.js`, or a symlink to it:
 * node resolves the main module's symlinks, argv[1] keeps the link's name, so both
 * are compared by their real path). The installed command is bin/pxe.js.
 */
function startedAsMain(): boolean {
  const arg = process.argv[1];
  if (!arg) return false;
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (startedAsMain()) {
  void main().then((code) => {
    if (code !== 0) process.exit(code);
  });
}
