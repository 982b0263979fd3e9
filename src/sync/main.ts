#!/usr/bin/env node
/**
 * `pxe-sync`: the sync/list/rollback commands alone, without the server code paths.
 * Same command definitions as `pxe sync` (./commands.ts); used by the kill -9
 * integration test and handy on a mirror host that never serves.
 */
import { Command } from 'commander';
import { registerSyncCommands } from './commands.js';

const program = new Command('pxe').exitOverride();
registerSyncCommands(program);
program.parseAsync(process.argv).then(
  () => {
    if (process.exitCode) process.exit(process.exitCode);
  },
  (err: unknown) => {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) process.exit(e.exitCode ?? 2);
    process.stderr.write(`pxe: ${e.message ?? String(err)}\n`);
    process.exit(2);
  },
);
