/**
 * Server-sent events for the dashboard: one long-lived response per open page, by topic.
 * Bounded: at most MAX_CLIENTS streams (more get 503), a machine that changes many times
 * in a burst is sent once per FLUSH_MS, and at most MAX_PENDING machines wait for a
 * flush (a flood beyond that sends one "reload" instead of thousands of rows). Timers run
 * only while a page is open, so an idle server without viewers does not wake up for it.
 */
import type { ServerResponse } from 'node:http';

export type Topic = 'machines' | 'sync' | 'server';
export const TOPICS: readonly Topic[] = ['machines', 'sync', 'server'];

const MAX_CLIENTS = 64;
const FLUSH_MS = 250;
const MAX_PENDING = 500;
const HEARTBEAT_MS = 20_000;

export class LiveHub {
  private readonly clients = new Map<Topic, Set<ServerResponse>>(TOPICS.map((t) => [t, new Set()]));
  private readonly pending = new Map<string, () => string>();
  private overflow = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private ticker: NodeJS.Timeout | undefined;

  constructor(private readonly onServerTick?: () => string) {}

  get count(): number {
    let n = 0;
    for (const s of this.clients.values()) n += s.size;
    return n;
  }

  has(topic: Topic): boolean {
    return (this.clients.get(topic)?.size ?? 0) > 0;
  }

  /** Takes over a raw response as an event stream; false when the hub is full. */
  attach(topic: Topic, res: ServerResponse): boolean {
    if (this.count >= MAX_CLIENTS) return false;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': connected\n\n');
    const set = this.clients.get(topic)!;
    set.add(res);
    res.on('close', () => {
      set.delete(res);
      this.timers();
    });
    this.timers();
    return true;
  }

  send(topic: Topic, event: string, data: unknown): void {
    const set = this.clients.get(topic);
    if (!set?.size) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of set) res.write(frame);
  }

  /** Queues a machine row; `render` runs at flush time, so a burst renders once. */
  queueMachine(key: string, render: () => string): void {
    if (!this.has('machines')) return;
    if (this.pending.size >= MAX_PENDING && !this.pending.has(key)) this.overflow = true;
    else this.pending.set(key, render);
    this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    this.flushTimer = undefined;
    if (this.overflow) this.send('machines', 'reload', {});
    else for (const [id, render] of this.pending) this.send('machines', 'machine', { id, html: render() });
    this.pending.clear();
    this.overflow = false;
  }

  private timers(): void {
    const any = this.count > 0;
    if (any && !this.heartbeat) {
      this.heartbeat = setInterval(() => {
        for (const set of this.clients.values()) for (const res of set) res.write(': ping\n\n');
      }, HEARTBEAT_MS);
    } else if (!any && this.heartbeat) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
    const server = this.has('server') && this.onServerTick;
    if (server && !this.ticker) {
      this.ticker = setInterval(() => this.send('server', 'server', { values: JSON.parse(this.onServerTick!()) as unknown }), 2000);
    } else if (!server && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = undefined;
    }
  }

  close(): void {
    for (const set of this.clients.values()) for (const res of set) res.end();
    for (const t of [this.flushTimer, this.heartbeat, this.ticker]) if (t) clearTimeout(t);
  }
}
