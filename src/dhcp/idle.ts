/**
 * Work kept out of the proxy's request path, done from a timer once requests pause
 * for QUIET_MS (a boot storm is bursty: a rack powers on, then quiet):
 *   - the interface list is re-read (see interfaces.ts for why not in the request
 *     path). In a flood that never pauses it is re-read after IF_MAX_AGE_MS.
 *   - a V8 young-generation collection (scavenge) when the burst left it more than
 *     IDLE_SCAVENGE_FILL full: otherwise the next burst fills the young generation
 *     and pays a 1-4 ms scavenge in the middle of its replies (--trace-gc on the
 *     storm bench: one inside nearly every second storm).
 */
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from 'pino';
import type { ServerAddresses } from './interfaces.js';

/** timer period (ms), and the pause in requests that counts as idle */
const QUIET_MS = 50;
/** interface list refresh period (ms) while idle */
const IF_REFRESH_MS = 2_000;
/** past this age the list is refreshed even in the middle of a flood */
const IF_MAX_AGE_MS = 10_000;
/** young-generation fill above which an idle pause is used for a scavenge */
const IDLE_SCAVENGE_FILL = 0.25;

type MinorGc = (opts: { type: 'minor' }) => void;

/**
 * V8's gc(), for the idle-time scavenge, without --expose-gc on the command line: the
 * flag is set at run time and the function taken from a new context, where V8 installs
 * it. Undefined if this V8 refuses (the proxy then simply scavenges when V8 decides).
 */
let minorGcCached: { fn: MinorGc | undefined } | undefined;
function minorGcFunction(): MinorGc | undefined {
  // once per process: the flag is process-wide (a `gc` global in every context created
  // after this, worker threads included; nothing here relies on it elsewhere)
  if (minorGcCached) return minorGcCached.fn;
  minorGcCached = { fn: undefined };
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    if (typeof gc === 'function') minorGcCached.fn = gc as MinorGc;
  } catch {
    // the proxy then scavenges when V8 decides
  }
  return minorGcCached.fn;
}

export class IdleWork {
  // Both hold performance.now() values (doubles). They start as a double too (-Infinity,
  // not 0): V8 stores a field that only ever held small integers as a Smi, and the
  // first double written into it changes the representation and with it the hidden
  // class of the object. When that happened after the warm-up (the first idle
  // scavenge sets scavengedAfter), every function optimised during the warm-up
  // deoptimised ("wrong map") on the first request of the first boot storm, and
  // TurboFan recompiled them during it.
  /** performance.now() of the last request; the proxy writes it for every datagram */
  lastRequestAt = Number.NEGATIVE_INFINITY;
  /** lastRequestAt of the burst the idle-time scavenge last ran after */
  private scavengedAfter = Number.NEGATIVE_INFINITY;
  private readonly minorGc = minorGcFunction();
  // null, not undefined, before start(): see ProxyDhcpServer's socket fields
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly addresses: ServerAddresses,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), QUIET_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const now = performance.now();
    const quiet = now - this.lastRequestAt >= QUIET_MS;
    const age = this.addresses.cacheAge(now);
    if (age >= IF_MAX_AGE_MS || (quiet && age >= IF_REFRESH_MS)) {
      try {
        this.addresses.interfaces(0);
      } catch (err) {
        this.log.warn({ err }, 'cannot list network interfaces');
      }
    }
    if (quiet && this.lastRequestAt > this.scavengedAfter && this.minorGc) {
      this.scavengedAfter = this.lastRequestAt;
      const young = v8.getHeapSpaceStatistics().find((sp) => sp.space_name === 'new_space');
      if (young && young.space_used_size > young.space_size * IDLE_SCAVENGE_FILL) this.minorGc({ type: 'minor' });
    }
  }
}
