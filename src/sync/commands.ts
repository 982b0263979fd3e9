/**
 * The `sync`, `list` and `rollback` subcommands, registered on the main program by
 * src/cli.ts (`registerSyncCommands(program)`), kept here so the CLI file only
 * needs one line per feature.
 */
import { Command, Option } from 'commander';
import { CONFIG_OPTION_HELP, commandConfig } from '../config.js';
import { ConfigError } from '../yamlfile.js';
import { createLogger } from '../log.js';
import { runSync } from './engine.js';
import { loadConfiguredCatalog } from '../catalog/load.js';
import { formatList, listEntries, rollback } from './list.js';

/**
 * Operational errors (lock held, unknown entry, nothing to roll back) become one
 * `pxe: ...` line and exit code 2 instead of a stack trace; ConfigError is left to
 * the main program, which prints it with file:line.
 */
function friendly<A extends unknown[]>(fn: (...a: A) => Promise<void>): (...a: A) => Promise<void> {
  return async (...a: A) => {
    try {
      await fn(...a);
    } catch (e) {
      if (e instanceof ConfigError || !(e instanceof Error)) throw e;
      process.stderr.write(`pxe: ${e.message}\n`);
      process.exitCode = 2;
    }
  };
}

export function registerSyncCommands(program: Command): void {
  const configOption = () => new Option('-c, --config <file>', CONFIG_OPTION_HELP);

  program
    .command('sync')
    .description("Download, verify and atomically install the catalog's kernels and initrds, and the bootloaders")
    .addOption(configOption())
    .option('--only <id>', 'sync just this catalog entry')
    .option('--dry-run', 'show what would change without writing anything')
    .option('--bootloaders-only', 'only copy the bootloaders (pxelinux, syslinux.efi, modules, memdisk) into tftproot')
    .option('--concurrency <n>', 'parallel downloads', (v) => Math.max(1, Math.min(32, Number.parseInt(v, 10) || 4)), 4)
    .option('--no-progress', 'plain lines even on a terminal')
    .option('--write-menus', 'also write pxelinux.cfg/default (+ efi64/) as static files, for a plain tftpd (needs serverAddress)')
    .option('--json', 'print the result as JSON (no progress output)')
    .action(
      friendly(
        async (o: {
          config?: string;
          only?: string;
          dryRun?: boolean;
          concurrency: number;
          progress: boolean;
          json?: boolean;
          writeMenus?: boolean;
          bootloadersOnly?: boolean;
        }) => {
          const config = commandConfig(o.config);
          // Per-entry results are printed by the reporter; the JSON log only adds detail at debug.
          const logger = createLogger(config.logLevel === 'debug' || config.logLevel === 'trace' ? config.logLevel : 'error', false);
          const res = await runSync({
            config,
            only: o.only,
            bootloadersOnly: o.bootloadersOnly === true,
            dryRun: o.dryRun === true,
            concurrency: o.concurrency,
            progress: o.json ? 'none' : o.progress ? 'auto' : 'plain',
            writeMenus: o.writeMenus === true,
            logger,
          });
          if (o.json) process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
          // 0: every entry synced; 1: at least one failed (its previous pair is still served)
          process.exitCode = res.exitCode;
        },
      ),
    );

  program
    .command('list')
    .description('Every catalog entry with version, arch, sync state and trust level')
    .addOption(configOption())
    .option('--only <id>', 'just this entry')
    .option('--json', 'machine-readable output')
    .action(
      friendly(async (o: { config?: string; only?: string; json?: boolean }) => {
        const config = commandConfig(o.config);
        const catalog = loadConfiguredCatalog(config);
        const rows = await listEntries({ config, catalog, ...(o.only ? { only: o.only } : {}) });
        process.stdout.write(o.json ? `${JSON.stringify(rows, null, 2)}\n` : formatList(rows, o.only ? undefined : catalog.disabled));
      }),
    );

  program
    .command('rollback')
    .description('Serve the previous snapshot of an entry again (atomic switch; run twice to undo)')
    .argument('<id>', 'catalog entry id')
    .addOption(configOption())
    .option('--version <v>', 'only this version')
    .option('--arch <a>', 'only this architecture')
    .action(
      friendly(async (id: string, o: { config?: string; version?: string; arch?: string }) => {
        const res = await rollback(id, {
          config: commandConfig(o.config),
          ...(o.version ? { version: o.version } : {}),
          ...(o.arch ? { arch: o.arch } : {}),
        });
        for (const r of res) process.stdout.write(`${r.unit}: ${r.from ?? '(none)'} -> ${r.to}\n`);
      }),
    );
}
