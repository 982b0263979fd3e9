import { appendFile, mkdir, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The boot-event log: what each client asked, what it was offered, which files it
 * fetched, in one timeline per MAC. This answers "why didn't this machine boot".
 *
 * DHCP knows the MAC but often not the IP (a proxy never leases, and BIOS clients do
 * not come to 4011); TFTP and HTTP know the IP but not the MAC. `macFor` (the server's
 * ClientMemory, boot/clients.ts, which learns IP -> MAC: a 4011 request's ciaddr, a
 * pxelinux.cfg/01-<mac> request, an /unattended/<mac>/<token>/ URL with a valid token)
 * fills in the MAC of an event that only has an address, so one timeline per MAC
 * holds all three protocols.
 */
export interface BootEvent {
  time: string;
  proto: 'dhcp' | 'tftp' | 'http' | 'sync';
  mac?: string;
  ip?: string;
  what: string;
  detail?: Record<string, unknown>;
}

export class BootEventLog {
  private readonly ring: BootEvent[] = [];
  private writing: Promise<void> = Promise.resolve();
  private pending: string[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(ev: BootEvent) => void> = [];

  private readonly capacity: number;
  private readonly macFor: ((ip: string) => string | undefined) | undefined;
  private readonly maxBytes: number;
  /** bytes in the current file (undefined: not yet stat'ed) */
  private size: number | undefined;

  /**
   * `maxBytes`: the file is rotated to `<file>.1` (replacing the previous one) before it
   * would grow past this, so the log never takes more than 2 x maxBytes on disk
   * whatever a flood of forged clients records (`pxe events` reads both).
   */
  constructor(
    private readonly file: string | undefined,
    opts: { capacity?: number; macFor?: (ip: string) => string | undefined; maxBytes?: number } = {},
  ) {
    this.capacity = opts.capacity ?? 5000;
    this.macFor = opts.macFor;
    this.maxBytes = opts.maxBytes ?? DEFAULT_EVENT_LOG_BYTES;
  }

  record(ev: Omit<BootEvent, 'time'>): BootEvent {
    const full: BootEvent = { time: new Date().toISOString(), ...ev };
    if (!full.mac && full.ip) {
      const mac = this.macFor?.(full.ip);
      if (mac) full.mac = mac;
    }
    this.ring.push(full);
    for (const fn of this.listeners) fn(full);
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
    if (this.file) {
      // Batched: one append per 200 ms at most, not one per packet (a boot storm is
      // 1,000 DISCOVERs in 100 ms). At most 10,000 lines wait; beyond that they are
      // dropped rather than letting a stuck disk grow memory without bound.
      if (this.pending.length < 10_000) this.pending.push(`${JSON.stringify(full)}\n`);
      this.flushTimer ??= setTimeout(() => void this.writePending(), 200).unref();
    }
    return full;
  }

  private writePending(): Promise<void> {
    this.flushTimer = undefined;
    const file = this.file;
    if (!file || this.pending.length === 0) return this.writing;
    const chunk = this.pending.join('');
    this.pending = [];
    // Serialised appends; a full disk must not take the server down with it.
    const bytes = Buffer.byteLength(chunk);
    this.writing = this.writing
      .then(async () => {
        this.size ??= (await stat(file).catch(() => null))?.size ?? 0;
        if (this.size > 0 && this.size + bytes > this.maxBytes) {
          await rename(file, `${file}.1`);
          this.size = 0;
        }
        await appendFile(file, chunk);
        this.size += bytes;
      })
      .catch(async () => {
        this.size = undefined;
        await mkdir(dirname(file), { recursive: true }).catch(() => undefined);
        await appendFile(file, chunk).catch(() => undefined);
      });
    return this.writing;
  }

  /** Calls `fn` with every event recorded from now on (the dashboard's live view). */
  subscribe(fn: (ev: BootEvent) => void): void {
    this.listeners.push(fn);
  }

  /** Events for one MAC (or all), oldest first. */
  timeline(mac?: string): BootEvent[] {
    return mac ? this.ring.filter((e) => e.mac === mac) : [...this.ring];
  }

  async flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    await this.writePending();
  }
}

export const DEFAULT_EVENT_LOG_BYTES = 16 * 1024 * 1024;
/** A file larger than this is not read whole (it was not written by a bounded log). */
const MAX_READ_BYTES = 64 * 1024 * 1024;

export interface EventsRead {
  events: BootEvent[];
  /** files that exist but could not be read whole: say so rather than "no events" */
  problems: string[];
}

/**
 * Reads the persisted log for `pxe events`: the rotated `<file>.1`, then `<file>`. A
 * MAC filter also keeps events of the IP addresses that MAC was seen with, so
 * TFTP/HTTP lines join the DHCP ones.
 */
export async function readEventsReport(file: string, mac?: string, last?: number): Promise<EventsRead> {
  const { readFile } = await import('node:fs/promises');
  const all: BootEvent[] = [];
  const problems: string[] = [];
  for (const f of [`${file}.1`, file]) {
    const st = await stat(f).catch(() => null);
    if (!st) continue;
    if (st.size > MAX_READ_BYTES) {
      problems.push(`${f}: ${st.size} bytes, larger than ${MAX_READ_BYTES} (not read; it was not written by a bounded log)`);
      continue;
    }
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (err) {
      problems.push(`${f}: cannot read: ${(err as Error).message}`);
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        all.push(JSON.parse(line) as BootEvent);
      } catch {
        // a torn last line (crash mid-append) is skipped, not fatal
      }
    }
  }
  let out = all;
  if (mac) {
    const ips = new Set(all.filter((e) => e.mac === mac && e.ip).map((e) => e.ip!));
    out = all.filter((e) => e.mac === mac || (e.ip !== undefined && e.mac === undefined && ips.has(e.ip)));
  }
  return { events: last ? out.slice(-last) : out, problems };
}

export async function readEvents(file: string, mac?: string, last?: number): Promise<BootEvent[]> {
  return (await readEventsReport(file, mac, last)).events;
}

export function formatEvents(events: BootEvent[]): string {
  if (events.length === 0) return 'no boot events recorded\n';
  return `${events
    .map(
      (e) =>
        `${e.time}  ${e.proto.padEnd(4)}  ${(e.mac ?? '-').padEnd(17)}  ${(e.ip ?? '-').padEnd(15)}  ${e.what}${e.detail ? `  ${JSON.stringify(e.detail)}` : ''}`,
    )
    .join('\n')}\n`;
}
