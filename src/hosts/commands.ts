/**
 * `pxe host add|list|reinstall|rm` and `pxe render`, registered by src/cli.ts. The
 * work is in hosts/edit.ts (shared with the dashboard); this file parses flags and
 * prints.
 */
import { Command, Option } from 'commander';
import { loadConfiguredCatalog } from '../catalog/load.js';
import {
  CatalogRenderError,
  renderGrubConfig,
  renderHostPxelinux,
  renderIpxeScript,
  renderMainMenu,
  renderUnattended,
  UNATTENDED_FILES,
  type FirmwareClass,
} from '../catalog/render.js';
import { ARCHES, type Arch } from '../catalog/schema.js';
import { CONFIG_OPTION_HELP, commandConfig } from '../config.js';
import { UserError } from '../errors.js';
import { findHost } from './load.js';
import { loadApp } from '../boot/load.js';
import { normalizeMac } from '../boot/pxelinux.js';
import { addHost, formatHostList, listHosts, reinstallHost, removeHost, type HostEditResult } from './edit.js';

function done<T>(r: HostEditResult<T>): T {
  if (!r.ok) throw new UserError(r.message, r.code === 'invalid' ? 2 : 1);
  return r.value;
}

const ANSWER_FILES = new Set(Object.values(UNATTENDED_FILES).flatMap((f) => [f.primary, ...f.others]));

export function registerHostCommands(program: Command): void {
  const configOption = () => new Option('-c, --config <file>', CONFIG_OPTION_HELP);
  const host = program
    .command('host')
    .description('Add, list, reinstall and remove hosts in hosts.yaml (comments and order kept; a running pxe serve picks changes up)');

  host
    .command('add')
    .description('Assign a MAC to a catalog entry')
    .argument('<mac>', 'client MAC address')
    .requiredOption('--entry <id>', 'catalog entry id')
    .option('--hostname <name>', 'host name (default host-<mac>)')
    .option('--version <v>', "the entry's version (default: its first)")
    .option('--install-once', 'install once, then boot the local disk')
    .addOption(configOption())
    .action((mac: string, o: { entry: string; hostname?: string; version?: string; installOnce?: boolean; config?: string }) => {
      const config = commandConfig(o.config);
      const v = done(
        addHost(config.hostsFile, loadConfiguredCatalog(config), {
          mac,
          entry: o.entry,
          ...(o.hostname !== undefined ? { hostname: o.hostname } : {}),
          ...(o.version !== undefined ? { version: o.version } : {}),
          installOnce: o.installOnce === true,
        }),
      );
      process.stdout.write(`added ${v.mac} (${v.hostname}) -> ${o.entry} in ${config.hostsFile}\n`);
    });

  host
    .command('list')
    .description('Every host: entry, install state, last boot event seen')
    .addOption(configOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { config?: string; json?: boolean }) => {
      const config = commandConfig(o.config);
      const rows = await listHosts(config.hostsFile, loadConfiguredCatalog(config), config.stateDir);
      process.stdout.write(o.json ? `${JSON.stringify(rows, null, 2)}\n` : formatHostList(rows));
    });

  host
    .command('reinstall')
    .description('Start a new install for a host: clears its install-once marker and issues a new install token')
    .argument('<mac>', 'client MAC address')
    .addOption(configOption())
    .action((mac: string, o: { config?: string }) => {
      const config = commandConfig(o.config);
      const v = done(reinstallHost(config.hostsFile, loadConfiguredCatalog(config), config.stateDir, mac, config.install.tokenTtlMinutes));
      process.stdout.write(`${v.mac}: ${v.wasInstalled ? 'was installed; ' : ''}installs again at its next network boot\n`);
    });

  host
    .command('rm')
    .description('Remove a host from hosts.yaml')
    .argument('<mac>', 'client MAC address')
    .addOption(configOption())
    .action((mac: string, o: { config?: string }) => {
      const config = commandConfig(o.config);
      const v = done(removeHost(config.hostsFile, loadConfiguredCatalog(config), mac));
      process.stdout.write(`removed ${v.mac} from ${config.hostsFile}\n`);
    });

  program
    .command('render')
    .description('Print a rendered file for a client, writing nothing (answer-file URLs carry no install token)')
    .argument('<mac>', 'client MAC address')
    .argument('<file>', `pxelinux | ipxe | grub | menu | ${[...ANSWER_FILES].join(' | ')}`)
    .addOption(new Option('--firmware <class>', 'client firmware').choices(['bios', 'efi']).default('bios'))
    .addOption(new Option('--arch <arch>', 'client architecture').choices([...ARCHES]))
    .addOption(configOption())
    .action(async (macArg: string, file: string, o: { firmware: FirmwareClass; arch?: Arch; config?: string }) => {
      const mac = normalizeMac(macArg);
      if (!mac) throw new UserError(`not a MAC address: ${macArg}`);
      const config = commandConfig(o.config);
      // Loaded as `pxe which` loads it (no issueTokens): nothing is written to the state directory.
      const app = await loadApp(config);
      const h = app.hosts ? (findHost(app.hosts, mac) ?? null) : null;
      const ctx = app.renderContext;
      const opts = { firmware: o.firmware, ...(o.arch ? { arch: o.arch } : {}) };
      try {
        let out: string;
        if (file === 'menu') out = renderMainMenu(ctx, opts);
        else if (file === 'pxelinux') out = h ? renderHostPxelinux(ctx, h, opts) : renderMainMenu(ctx, opts);
        else if (file === 'ipxe') out = renderIpxeScript(ctx, h, opts);
        else if (file === 'grub') out = renderGrubConfig(ctx, h, opts);
        else if (ANSWER_FILES.has(file)) out = renderUnattended(ctx, h ?? undefined, file).body;
        else throw new UserError(`unknown file "${file}" (pxelinux, ipxe, grub, menu, ${[...ANSWER_FILES].join(', ')})`);
        process.stdout.write(out);
      } catch (err) {
        if (err instanceof CatalogRenderError) throw new UserError(err.message, err.status === 404 ? 1 : 2);
        throw err;
      }
    });
}
