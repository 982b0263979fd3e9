/** Public surface of `src/sync` (wired into the CLI by ./commands.ts). */
export { runSync, type SyncConfig, type SyncOptions, type SyncResult, type TargetResult } from './engine.js';
export { listEntries, formatList, rollback, type ListRow, type ListOptions, type RollbackOptions, type RollbackResult } from './list.js';
export { registerSyncCommands } from './commands.js';
export { installedChecker, renderMenusAfterSync } from './menus.js';
