import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';

/**
 * /metrics in the Prometheus text format (exposition format 0.0.4). The protocol
 * servers keep plain counter objects (cheap to bump per packet); this module reads
 * them at scrape time, so the hot paths never call into prom-client.
 *
 * A stats object is flat numbers (`{ offers: 3 }` -> pxe_dhcp_offers_total) or one
 * level of labelled numbers (`{ drops: { malformed: 2 } }` ->
 * pxe_tftp_drops_total{reason="malformed"}). Every value is a counter (monotonic,
 * so `rate()` works and gets the `_total` suffix Prometheus naming asks for) except
 * the keys listed in GAUGES (values that go down, like transfers in flight).
 * prom-client only supplies the process_* metrics (CPU, memory, event-loop lag).
 */
export type StatsShape = Record<string, number | Record<string, number>>;

/** stats keys that are levels, not counts */
const GAUGES = new Set(['active', 'cachedBytes', 'inFlight']);

const HELP: Record<string, string> = {
  pxe_tftp_requests_total: 'TFTP read/write requests received on the listening ports',
  pxe_tftp_transfers_started_total: 'TFTP transfers started',
  pxe_tftp_transfers_ok_total: 'TFTP transfers completed (last block acknowledged)',
  pxe_tftp_transfers_failed_total: 'TFTP requests refused or transfers that ended in error/timeout/abort',
  pxe_tftp_bytes_sent_total: 'TFTP payload bytes sent, retransmissions included',
  pxe_tftp_errors_sent_total: 'TFTP ERROR packets sent',
  pxe_tftp_active: 'TFTP transfers in flight',
  pxe_tftp_drops_total: 'TFTP datagrams dropped, by reason (denied = outside the allow list)',
  pxe_dhcp_received_total: 'DHCP datagrams received on 67 and 4011',
  pxe_dhcp_offers_total: 'proxyDHCP OFFERs sent',
  pxe_dhcp_acks_total: 'proxyDHCP ACKs sent (port 4011)',
  pxe_dhcp_denied_total: 'DHCP requests dropped because the source is outside the allow list',
  pxe_dhcp_rate_limited_total: 'DHCP requests dropped by the per-MAC rate limit',
  pxe_dhcp_malformed_total: 'DHCP datagrams that did not decode',
  pxe_http_requests_total: 'HTTP requests answered',
  pxe_http_denied_total: 'HTTP connections dropped because the client is outside the allow list',
};

const snake = (key: string): string =>
  key
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .replace(/[^a-zA-Z0-9_]/g, '_')
    .toLowerCase();
const escLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const num = (n: number): string => (Number.isFinite(n) ? String(n) : n > 0 ? '+Inf' : n < 0 ? '-Inf' : 'NaN');

/** Sampling interval of the default event-loop lag histogram (pxe_nodejs_eventloop_lag_*). */
const EVENT_LOOP_SAMPLE_MS = 100;

export class Metrics {
  readonly registry = new Registry();
  private readonly sources = new Map<string, () => StatsShape>();
  private stateDir: string | undefined;

  constructor(defaultMetrics = true) {
    // Event-loop lag sampled every 100 ms, not prom-client's 10: its timer woke the
    // idle daemon 100 times a second (strace), ~2.6 % of a CPU with nothing to serve,
    // taken from whatever else runs on the host (a QEMU boot in the boot bench).
    if (defaultMetrics)
      collectDefaultMetrics({ register: this.registry, prefix: 'pxe_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /** Adds (or replaces, on reload) a stats source under a subsystem name such as "tftp". */
  addSource(subsystem: string, read: () => StatsShape): void {
    this.sources.set(subsystem, read);
  }

  /** The current value of every stats source, by subsystem (the dashboard's server view). */
  snapshot(): Record<string, StatsShape> {
    const out: Record<string, StatsShape> = {};
    for (const [subsystem, read] of this.sources) {
      try {
        out[subsystem] = read();
      } catch {
        // a broken source is left out, as in /metrics
      }
    }
    return out;
  }

  /** Where `pxe sync` keeps sync/state.json: its per-entry results are exported too. */
  setSyncStateDir(dir: string): void {
    this.stateDir = dir;
  }

  private renderSources(): string {
    const out: string[] = [];
    for (const [subsystem, read] of this.sources) {
      let stats: StatsShape;
      try {
        stats = read();
      } catch {
        continue; // a broken source must not take /metrics down
      }
      for (const [key, value] of Object.entries(stats)) {
        const gauge = GAUGES.has(key);
        const name = `pxe_${subsystem}_${snake(key)}${gauge ? '' : '_total'}`;
        out.push(`# HELP ${name} ${HELP[name] ?? `pxe ${subsystem} ${snake(key).replace(/_/g, ' ')}`}`);
        out.push(`# TYPE ${name} ${gauge ? 'gauge' : 'counter'}`);
        if (typeof value === 'number') out.push(`${name} ${num(value)}`);
        else for (const [label, n] of Object.entries(value)) out.push(`${name}{reason="${escLabel(snake(label))}"} ${num(n)}`);
      }
    }
    return out.length ? `${out.join('\n')}\n` : '';
  }

  /**
   * Last sync result per catalog entry, read from the state `pxe sync` writes
   * (write-temp + rename, so a scrape never sees half a file). Missing state: nothing.
   */
  private renderSync(): string {
    if (!this.stateDir) return '';
    let entries: Record<string, { status?: string; lastAttempt?: string; lastSuccess?: string }>;
    try {
      const data = JSON.parse(readFileSync(join(this.stateDir, 'sync', 'state.json'), 'utf8')) as { entries?: typeof entries };
      entries = data.entries ?? {};
    } catch {
      return '';
    }
    const ok: string[] = [];
    const attempt: string[] = [];
    const success: string[] = [];
    const ts = (s: string | undefined): number | null => {
      const t = s ? Date.parse(s) : NaN;
      return Number.isFinite(t) ? t / 1000 : null;
    };
    for (const [entry, e] of Object.entries(entries)) {
      // state keys are sync units "<id>/<version>/<arch>"
      const [id, version, arch] = entry.split('/');
      const l =
        version !== undefined && arch !== undefined
          ? `{entry="${escLabel(id ?? '')}",version="${escLabel(version)}",arch="${escLabel(arch)}"}`
          : `{entry="${escLabel(entry)}"}`;
      ok.push(`pxe_sync_entry_ok${l} ${e.status === 'synced' ? 1 : 0}`);
      const a = ts(e.lastAttempt);
      if (a !== null) attempt.push(`pxe_sync_last_attempt_timestamp_seconds${l} ${a}`);
      const s = ts(e.lastSuccess);
      if (s !== null) success.push(`pxe_sync_last_success_timestamp_seconds${l} ${s}`);
    }
    if (ok.length === 0) return '';
    return [
      '# HELP pxe_sync_entry_ok 1 if the last pxe sync of the entry succeeded, 0 if it failed (the previous files are still served)',
      '# TYPE pxe_sync_entry_ok gauge',
      ...ok,
      '# HELP pxe_sync_last_attempt_timestamp_seconds Unix time of the last sync attempt per entry',
      '# TYPE pxe_sync_last_attempt_timestamp_seconds gauge',
      ...attempt,
      '# HELP pxe_sync_last_success_timestamp_seconds Unix time of the last successful sync per entry',
      '# TYPE pxe_sync_last_success_timestamp_seconds gauge',
      ...success,
      '',
    ].join('\n');
  }

  async render(): Promise<{ contentType: string; body: string }> {
    const body = this.renderSources() + this.renderSync() + (await this.registry.metrics());
    return { contentType: this.registry.contentType, body };
  }
}
