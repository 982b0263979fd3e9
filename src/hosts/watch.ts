import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/**
 * Calls `onChange` after `file` changed, however it was written: in place (an
 * editor), or by rename over it (`pxe host add|rm`, the dashboard: hosts/edit.ts),
 * which a watch on the file itself would miss (it follows the old inode). So the
 * directory is watched (inotify) and events are filtered by name. Bursts (an editor
 * writes a swap file, the file, then renames) are folded into one call `debounceMs`
 * after the last event. Returns a function that stops watching. A directory that
 * cannot be watched (it does not exist) gives a no-op: SIGHUP still reloads.
 */
export function watchFileChanges(file: string, onChange: () => void, debounceMs = 300): () => void {
  const name = basename(file);
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed !== name) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        onChange();
      }, debounceMs);
    });
    watcher.on('error', () => undefined);
  } catch {
    return () => undefined;
  }
  return () => {
    if (timer) clearTimeout(timer);
    watcher.close();
  };
}
