import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { normalizeMacKey } from './schema.js';

const stateSchema = z.record(
  z.string(),
  z.object({ entry: z.string(), version: z.string(), at: z.string() }).strict(),
);
export type InstalledRecord = z.infer<typeof stateSchema>[string];

/**
 * "Install once, then boot locally" markers (`<stateDir>/installed.json`).
 * The HTTP layer marks a host when its installer fetched the unattended answers
 * (`renderUnattended` returns `marksInstalled: true` for that file); from then on
 * its pxelinux.cfg/01-<mac> and iPXE/GRUB configs boot the local disk.
 * `pxe reinstall <mac>` (clear) undoes it. Writes are atomic (temp + rename), so a
 * crash never leaves a truncated JSON that would make every host reinstall.
 */
export class InstallState {
  private cache: { mtimeMs: number; size: number; data: Record<string, InstalledRecord> } | undefined;

  constructor(readonly file: string) {}

  static inDir(stateDir: string): InstallState {
    return new InstallState(join(stateDir, 'installed.json'));
  }

  private read(): Record<string, InstalledRecord> {
    let st;
    try {
      st = statSync(this.file);
    } catch {
      return {};
    }
    if (this.cache && this.cache.mtimeMs === st.mtimeMs && this.cache.size === st.size) return this.cache.data;
    let data: Record<string, InstalledRecord> = {};
    try {
      const parsed = stateSchema.safeParse(JSON.parse(readFileSync(this.file, 'utf8')));
      // A corrupt state file reads as "nothing installed" (fail towards reinstalling
      // rather than towards never installing); the next write replaces it.
      if (parsed.success) data = parsed.data;
    } catch {
      data = {};
    }
    this.cache = { mtimeMs: st.mtimeMs, size: st.size, data };
    return data;
  }

  private write(data: Record<string, InstalledRecord>): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
    renameSync(tmp, this.file);
    this.cache = undefined;
  }

  isInstalled(mac: string): boolean {
    return normalizeMacKey(mac) in this.read();
  }

  get(mac: string): InstalledRecord | undefined {
    return this.read()[normalizeMacKey(mac)];
  }

  markInstalled(mac: string, entry: string, version: string, at = new Date()): void {
    const data = { ...this.read() };
    data[normalizeMacKey(mac)] = { entry, version, at: at.toISOString() };
    this.write(data);
  }

  /** Returns whether there was a marker to remove. */
  clear(mac: string): boolean {
    const data = { ...this.read() };
    const key = normalizeMacKey(mac);
    if (!(key in data)) return false;
    delete data[key];
    this.write(data);
    return true;
  }

  list(): Record<string, InstalledRecord> {
    return { ...this.read() };
  }
}
