import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { z } from 'zod';

/**
 * A small JSON record file in the state directory (install-once markers, install
 * tokens), shared by `pxe serve` and the CLI: re-read when its mtime/size changes
 * (another process wrote it), written atomically (temp + rename) so a crash never
 * leaves a truncated file. A corrupt or missing file reads as empty.
 */
export class JsonStore<T extends Record<string, unknown>> {
  private cache: { mtimeMs: number; size: number; data: T } | undefined;

  constructor(
    readonly file: string,
    private readonly schema: z.ZodType<T>,
  ) {}

  read(): T {
    let st;
    try {
      st = statSync(this.file);
    } catch {
      return {} as T;
    }
    if (this.cache && this.cache.mtimeMs === st.mtimeMs && this.cache.size === st.size) return this.cache.data;
    let data = {} as T;
    try {
      const parsed = this.schema.safeParse(JSON.parse(readFileSync(this.file, 'utf8')));
      if (parsed.success) data = parsed.data;
    } catch {
      data = {} as T;
    }
    this.cache = { mtimeMs: st.mtimeMs, size: st.size, data };
    return data;
  }

  write(data: T): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.file);
    this.cache = undefined;
  }

  /** read, change a copy, write */
  update(change: (data: T) => void): void {
    const data = { ...this.read() };
    change(data);
    this.write(data);
  }
}
