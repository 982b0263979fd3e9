import { join } from 'node:path';
import { z } from 'zod';
import { JsonStore } from './jsonstore.js';
import { normalizeMacKey } from './schema.js';

const stateSchema = z.record(z.string(), z.object({ entry: z.string(), version: z.string(), at: z.string() }).strict());
export type InstalledRecord = z.infer<typeof stateSchema>[string];

/**
 * "Install once, then boot locally" markers (`<stateDir>/installed.json`).
 * A host is marked when its installer reports that it finished (the done callback
 * each unattended template ends with, authenticated by the install token:
 * tokens.ts); fetching the answer file marks nothing. From then on its
 * pxelinux.cfg/01-<mac> and iPXE/GRUB configs boot the local disk. `startInstall`
 * (tokens.ts) undoes it. A corrupt state file reads as "nothing installed" (fail
 * towards reinstalling rather than towards never installing); the next write
 * replaces it.
 */
export class InstallState {
  private readonly store: JsonStore<Record<string, InstalledRecord>>;

  constructor(readonly file: string) {
    this.store = new JsonStore(file, stateSchema);
  }

  static inDir(stateDir: string): InstallState {
    return new InstallState(join(stateDir, 'installed.json'));
  }

  isInstalled(mac: string): boolean {
    return normalizeMacKey(mac) in this.store.read();
  }

  get(mac: string): InstalledRecord | undefined {
    return this.store.read()[normalizeMacKey(mac)];
  }

  markInstalled(mac: string, entry: string, version: string, at = new Date()): void {
    this.store.update((data) => {
      data[normalizeMacKey(mac)] = { entry, version, at: at.toISOString() };
    });
  }

  /** Returns whether there was a marker to remove. */
  clear(mac: string): boolean {
    const key = normalizeMacKey(mac);
    if (!(key in this.store.read())) return false;
    this.store.update((data) => {
      delete data[key];
    });
    return true;
  }

  list(): Record<string, InstalledRecord> {
    return { ...this.store.read() };
  }
}
