/** `pxe catalog check`, registered on the main program by src/cli.ts. */
import { Command, Option } from 'commander';
import { loadConfig } from '../config.js';
import { makeReporter } from '../sync/progress.js';
import { loadConfiguredCatalog } from './load.js';
import { checkSubjects, probeOnline, renderChecks } from './readiness.js';

export function registerCatalogCommands(program: Command): void {
  const catalog = program.command('catalog').description('Work on the distro catalog');
  catalog
    .command('check')
    .description(
      'Validate a catalog file or entry, print the URLs it expands to, and with --online ask the mirror whether they exist (exit 0: ready to sync)',
    )
    .argument('[file-or-id]', 'a catalog YAML file, or an entry id of the configured catalog (default: every entry)')
    .addOption(new Option('-c, --config <file>', 'pxe.yaml to use (default: ./pxe.yaml if present, else embedded defaults)'))
    .option('--online', 'ask the mirror: HEAD each file, GET each checksum manifest and look the files up in it')
    .option('--concurrency <n>', 'parallel requests', (v) => Math.max(1, Math.min(32, Number.parseInt(v, 10) || 4)), 4)
    .option('--timeout <ms>', 'per request', (v) => Math.max(100, Number.parseInt(v, 10) || 10_000), 10_000)
    .option('--no-progress', 'plain lines even on a terminal')
    .action(
      async (
        arg: string | undefined,
        o: { config?: string; online?: boolean; concurrency: number; timeout: number; progress: boolean },
      ) => {
        const config = loadConfig(o.config);
        const subjects = checkSubjects(arg, () => loadConfiguredCatalog(config));
        const print = (line: string) => process.stdout.write(`${line}\n`);
        const { probes, problems } = renderChecks(subjects, config.mirrors, print);
        if (o.online && probes.length > 0) {
          print(`asking the mirror about ${probes.length} URL(s), ${o.concurrency} at a time`);
          const reporter = makeReporter(o.progress ? 'auto' : 'plain', process.stdout);
          try {
            problems.push(...(await probeOnline(probes, reporter, { concurrency: o.concurrency, timeoutMs: o.timeout })));
          } finally {
            reporter.finish();
          }
        }
        for (const p of problems) process.stderr.write(`pxe: ${p}\n`);
        const n = subjects.length;
        print(
          problems.length === 0
            ? `${n} entr${n === 1 ? 'y' : 'ies'}: ready to sync${o.online ? '' : ' (templates render; not asked the mirror: --online)'}`
            : `${problems.length} problem(s): not ready to sync`,
        );
        // 0: ready; 1: a template or the mirror says no (ConfigError: 2, from the main program)
        process.exitCode = problems.length === 0 ? 0 : 1;
      },
    );
}
