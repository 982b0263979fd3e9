import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The boot-event log: what each client asked, what it was offered, which files it
 * fetched, in one timeline per MAC. This answers "why didn't this machine boot".
 *
 * DHCP knows the MAC but often not the IP (a proxy never leases, and BIOS clients do
 * not come to 4011); TFTP and HTTP know the IP but not the MAC. The log correlates
 * them: a 4011 request carries ciaddr, a pxelinux request for pxelinux.cfg/01-<mac>
 * names the MAC, and an /unattended/<mac>/ URL does too.
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
  private readonly macByIp = new Map<string, string>();
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string | undefined,
    private readonly capacity = 5000,
  ) {}

  /** Learns that `ip` is `mac` (from a 4011 request's ciaddr, a 01-<mac> request, a URL). */
  learn(ip: string, mac: string): void {
    if (this.macByIp.size > this.capacity * 4) this.macByIp.clear();
    this.macByIp.set(ip, mac);
  }

  macFor(ip: string): string | undefined {
    return this.macByIp.get(ip);
  }

  record(ev: Omit<BootEvent, 'time'>): BootEvent {
    const full: BootEvent = { time: new Date().toISOString(), ...ev };
    if (!full.mac && full.ip) {
      const mac = this.macByIp.get(full.ip);
      if (mac) full.mac = mac;
    }
    this.ring.push(full);
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
    if (this.file) {
      const file = this.file;
      const line = `${JSON.stringify(full)}\n`;
      // Serialised appends; a full disk must not take the server down with it.
      this.writing = this.writing
        .then(() => appendFile(file, line))
        .catch(async () => {
          await mkdir(dirname(file), { recursive: true }).catch(() => undefined);
          await appendFile(file, line).catch(() => undefined);
        });
    }
    return full;
  }

  /** Events for one MAC (or all), oldest first. */
  timeline(mac?: string): BootEvent[] {
    return mac ? this.ring.filter((e) => e.mac === mac) : [...this.ring];
  }

  async flush(): Promise<void> {
    await this.writing;
  }
}
