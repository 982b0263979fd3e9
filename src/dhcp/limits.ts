/**
 * What bounds the proxy's work per client and its log volume in a storm: a token
 * bucket per MAC (boot loops, spoofers) and the per-reply info lines (at most
 * REPLY_LOG_PER_SECOND a second, the rest summarised).
 */
import type { Logger } from 'pino';
import type { LogOutput } from '../log.js';

/** Buckets kept before the map is cleared: a spoofing flood must not grow memory. */
const MAX_BUCKETS = 50_000;

/** Token bucket per MAC, bounded in memory (MAX_BUCKETS). */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly rate: number) {}
  allow(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_BUCKETS) this.buckets.clear();
      b = { tokens: this.rate, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.rate, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/** One 'proxyDHCP OFFER/ACK' info line. */
export interface ReplyLogLine {
  mac: string;
  xid: number;
  firmware: string;
  arch: number | undefined;
  ipxe: boolean;
  reply: 'offer' | 'ack';
  file: string;
  nextServer: string;
  to: string;
}

/** Per-reply info log lines per second before the proxy summarises instead. */
export const REPLY_LOG_PER_SECOND = 50;

/**
 * One info line per reply is what an operator wants for a single machine, but in
 * a boot storm it costs about a third of the per-packet CPU and floods the
 * journal. Up to REPLY_LOG_PER_SECOND lines per second are written; beyond that
 * replies are counted and summarised in one line when the next second starts.
 * (Every reply still reaches the boot-event log.)
 *
 * Lines are written after the batch of datagrams their request came in with, not
 * at once: the first replies of every second are the logged ones, so in a boot
 * storm the JSON lines were written exactly while its first burst queued behind
 * them (the storm bench's slowest replies were the first 10, 0.5-0.9 ms; 0.4
 * without logging). The reply is already on the wire; the line follows within the
 * same turn of the event loop.
 */
export class ReplyLog {
  private readonly window = { sec: 0, lines: 0, suppressed: 0 };
  private readonly pending: ReplyLogLine[] = [];
  private flushScheduled = false;
  /** see ProxyDhcpServer.warmUp: while true, the output drops what the flush writes */
  discarding = false;

  constructor(
    /** read at each use: the warm-up swaps the server's logger */
    private readonly log: () => Logger,
    private readonly output: LogOutput | undefined,
  ) {}

  /** Queues the line if this second's budget allows it. */
  add(line: ReplyLogLine): void {
    if (!this.budgetAllows()) return;
    this.pending.push(line);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Forgets the queued lines and the current second's counts. */
  reset(): void {
    this.pending.length = 0;
    this.window.sec = 0;
    this.window.lines = 0;
    this.window.suppressed = 0;
  }

  /** Makes the next add() start a new second (the summary branch). */
  newSecond(): void {
    this.window.sec = 0;
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    this.output?.setDiscarding(this.discarding);
    const log = this.log();
    for (const line of this.pending) log.info(line, line.reply === 'offer' ? 'proxyDHCP OFFER' : 'proxyDHCP ACK');
    this.output?.setDiscarding(false);
    this.pending.length = 0;
  };

  private budgetAllows(): boolean {
    const w = this.window;
    const sec = Math.floor(Date.now() / 1000);
    if (sec !== w.sec) {
      if (w.suppressed > 0) {
        this.log().info(
          { suppressed: w.suppressed },
          `proxyDHCP: ${w.suppressed} more replies in the last busy second were not logged (see stats/boot events)`,
        );
      }
      // Fields updated in place: a new object literal here had another hidden class
      // than the field initializer's and deoptimised this (inlined) function.
      w.sec = sec;
      w.lines = 0;
      w.suppressed = 0;
    }
    if (w.lines < REPLY_LOG_PER_SECOND) {
      w.lines++;
      return true;
    }
    w.suppressed++;
    return false;
  }
}
