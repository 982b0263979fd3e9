/**
 * The dashboard's view of machines: one summary per MAC seen in the boot-event log,
 * with the timeline of its latest boot (DISCOVER -> offer -> boot file -> config ->
 * kernel/initrd -> answer file -> install done). Built incrementally from the same
 * events `pxe events` prints, so the page and the CLI cannot disagree.
 *
 * Bounded: at most `maxMachines` MACs (the least recently seen is forgotten first) and
 * `MAX_STEPS` steps per boot, so a forged-MAC flood costs a fixed amount of memory.
 */
import type { BootEvent } from '../events.js';

export type StepKind = 'dhcp' | 'bootfile' | 'config' | 'config-miss' | 'kernel' | 'initrd' | 'file' | 'answer' | 'done' | 'failed';

export interface Step {
  time: string;
  kind: StepKind;
  proto: BootEvent['proto'];
  /** one line for the page: the file, the offer, the reason */
  text: string;
  bytes?: number;
  ms?: number;
}

export interface Machine {
  mac: string;
  ip?: string;
  /** firmware class the proxy saw: bios, efi-x64, efi-arm64… */
  firmware?: string;
  ipxe?: boolean;
  firstSeen: string;
  lastSeen: string;
  /** the furthest milestone of the latest boot */
  stage: 'dhcp' | 'bootfile' | 'config' | 'kernel' | 'answer' | 'done' | 'failed';
  /** the reason the server logged for the latest failure of this boot */
  failure?: string;
  steps: Step[];
}

const MAX_STEPS = 60;
/** A DHCP request this long after the previous boot's last step starts a new boot. */
const NEW_BOOT_AFTER_MS = 120_000;
const STAGE_ORDER: Machine['stage'][] = ['dhcp', 'bootfile', 'config', 'kernel', 'answer', 'done'];

const BOOTLOADER = /(^|\/)([^/]*\.(0|efi|kpxe|pxe|c32|e64|e32|lkrn)|ldlinux\.[ce]\d*|grubx64\.efi|grubaa64\.efi)$/i;
const CONFIG = /(^|\/)(pxelinux\.cfg\/|grub\/|grub\.cfg|boot\.ipxe|[^/]*\.ipxe)/i;
const KERNEL = /(^|\/)(vmlinuz[^/]*|linux|bzImage|kernel[^/]*|Image|memtest[^/]*\.(bin|efi)?|memdisk)$/i;
const INITRD = /(^|\/)(initrd[^/]*|initramfs[^/]*|core\.gz|[^/]*\.img|[^/]*\.cpio(\.\w+)?)$/i;

/** Turns one boot event into a timeline step (undefined: not part of a boot, e.g. metrics). */
export function stepOf(ev: BootEvent): Step | undefined {
  const base = { time: ev.time, proto: ev.proto };
  const d = ev.detail ?? {};
  const bytes = typeof d.bytes === 'number' ? d.bytes : undefined;
  const ms = typeof d.ms === 'number' ? d.ms : undefined;
  const sized = { ...(bytes === undefined ? {} : { bytes }), ...(ms === undefined ? {} : { ms }) };
  if (ev.proto === 'dhcp') {
    const m = /^no reply: (.*)$/.exec(ev.what);
    if (m) return { ...base, kind: 'failed', text: `no DHCP answer: ${m[1]}` };
    return { ...base, kind: 'dhcp', text: ev.what.trim() };
  }
  let file: string;
  let ok: boolean;
  let why: string | undefined;
  if (ev.proto === 'tftp') {
    const m = /^(fetched|failed \(([^)]*)\)) (.*)$/.exec(ev.what);
    if (!m) return undefined;
    file = m[3] ?? '';
    ok = m[1] === 'fetched';
    why = typeof d.reason === 'string' ? d.reason : m[2];
  } else if (ev.proto === 'http') {
    // the installer's done callback (the install token's last use), recorded by serve
    if (ev.what.startsWith('install finished')) return { ...base, kind: 'done', text: ev.what };
    const m = /^(\w+) (\S+) -> (\d+)$/.exec(ev.what);
    if (!m) return undefined;
    const url = (m[2] ?? '').split('?')[0] ?? '';
    const status = Number(m[3]);
    ok = status < 400;
    why = typeof d.reason === 'string' ? d.reason : `HTTP ${status}`;
    if (url.startsWith('/unattended/')) {
      if (/\/(done|installed)$/.test(url) && ok) return { ...base, kind: 'done', text: 'installer reported done' };
      return ok ? { ...base, kind: 'answer', text: `answer file ${url}` } : { ...base, kind: 'failed', text: `answer file ${url}: ${why}` };
    }
    if (url === '/boot.ipxe' || url.startsWith('/boot.ipxe')) file = 'boot.ipxe';
    else if (url.startsWith('/files/')) file = url.slice('/files/'.length);
    else return undefined;
  } else {
    return undefined;
  }
  const isConfig = CONFIG.test(file);
  if (!ok) {
    // pxelinux walks 01-<mac>, hex-IP prefixes, default: the misses before the hit are normal
    if (isConfig) return { ...base, kind: 'config-miss', text: `tried ${file}` };
    return { ...base, kind: 'failed', text: `${file}: ${why ?? 'failed'}`, ...sized };
  }
  if (isConfig) return { ...base, kind: 'config', text: file, ...sized };
  if (KERNEL.test(file)) return { ...base, kind: 'kernel', text: file, ...sized };
  if (INITRD.test(file)) return { ...base, kind: 'initrd', text: file, ...sized };
  if (BOOTLOADER.test(file)) return { ...base, kind: 'bootfile', text: file, ...sized };
  return { ...base, kind: 'file', text: file, ...sized };
}

function stageOf(step: Step): Machine['stage'] | undefined {
  switch (step.kind) {
    case 'dhcp':
      return 'dhcp';
    case 'bootfile':
      return 'bootfile';
    case 'config':
      return 'config';
    case 'kernel':
    case 'initrd':
      return 'kernel';
    case 'answer':
      return 'answer';
    case 'done':
      return 'done';
    default:
      return undefined;
  }
}

export class MachineBook {
  /** insertion order = least recently seen first (re-inserted on every event) */
  private readonly machines = new Map<string, Machine>();

  constructor(private readonly maxMachines = 20_000) {}

  get size(): number {
    return this.machines.size;
  }

  /** Applies one event; returns the machine it changed (undefined: no MAC, or not a boot step). */
  observe(ev: BootEvent): Machine | undefined {
    if (!ev.mac) return undefined;
    const step = stepOf(ev);
    if (!step) return undefined;
    let m = this.machines.get(ev.mac);
    if (m) this.machines.delete(ev.mac);
    else m = { mac: ev.mac, firstSeen: ev.time, lastSeen: ev.time, stage: 'dhcp', steps: [] };
    this.machines.set(ev.mac, m);
    if (this.machines.size > this.maxMachines) {
      const oldest = this.machines.keys().next().value;
      if (oldest !== undefined) this.machines.delete(oldest);
    }
    const last = m.steps[m.steps.length - 1];
    const idle = last ? Date.parse(ev.time) - Date.parse(last.time) : Infinity;
    // A PXE DHCP request after the kernel was loaded (or after a failure) is the next
    // boot; before that it is the same boot's next stage (4011 after 67, iPXE after a ROM).
    const finished = m.stage === 'kernel' || m.stage === 'answer' || m.stage === 'done' || m.stage === 'failed';
    if ((step.kind === 'dhcp' || (step.kind === 'failed' && step.proto === 'dhcp')) && (idle > NEW_BOOT_AFTER_MS || finished)) {
      m.steps = [];
      m.stage = 'dhcp';
      delete m.failure;
    }
    m.lastSeen = ev.time;
    if (ev.ip) m.ip = ev.ip;
    const fw = ev.detail?.firmware;
    if (typeof fw === 'string') m.firmware = fw;
    if (typeof ev.detail?.ipxe === 'boolean') m.ipxe = ev.detail.ipxe;
    if (m.steps.length < MAX_STEPS) m.steps.push(step);
    if (step.kind === 'failed') {
      m.failure = step.text;
      m.stage = 'failed';
    } else {
      const s = stageOf(step);
      if (s && (m.stage === 'failed' || STAGE_ORDER.indexOf(s) > STAGE_ORDER.indexOf(m.stage))) {
        m.stage = s;
        if (s !== 'dhcp') delete m.failure;
      }
    }
    return m;
  }

  get(mac: string): Machine | undefined {
    return this.machines.get(mac);
  }

  /** Newest first, at most `limit`. */
  list(limit = 500): Machine[] {
    const out: Machine[] = [];
    const all = [...this.machines.values()];
    for (let i = all.length - 1; i >= 0 && out.length < limit; i--) out.push(all[i]!);
    return out;
  }
}
