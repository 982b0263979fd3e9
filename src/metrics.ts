import { Registry, Gauge, collectDefaultMetrics } from 'prom-client';

/**
 * /metrics in the Prometheus text format. The protocol servers keep plain counter
 * objects (cheap to bump per packet); this module reads them at scrape time, so the
 * hot paths never call into prom-client.
 *
 * A stats object is flat numbers (`{ offers: 3 }` -> pxe_dhcp_offers) or one level of
 * labelled numbers (`{ drops: { malformed: 2 } }` -> pxe_dhcp_drops{reason="malformed"}).
 */
export type StatsShape = Record<string, number | Record<string, number>>;

export class Metrics {
  readonly registry = new Registry();
  private readonly sources = new Map<string, () => StatsShape>();
  private readonly gauges = new Map<string, Gauge>();

  constructor(defaultMetrics = true) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'pxe_process_' });
  }

  /** Adds (or replaces, on reload) a stats source under a subsystem name such as "tftp". */
  addSource(subsystem: string, read: () => StatsShape): void {
    this.sources.set(subsystem, read);
  }

  private gauge(name: string, labelNames: string[]): Gauge {
    let g = this.gauges.get(name);
    if (!g) {
      g = new Gauge({ name, help: `pxe ${name.replace(/^pxe_/, '').replace(/_/g, ' ')}`, labelNames, registers: [this.registry] });
      this.gauges.set(name, g);
    }
    return g;
  }

  private refresh(): void {
    for (const [subsystem, read] of this.sources) {
      let stats: StatsShape;
      try {
        stats = read();
      } catch {
        continue;
      }
      for (const [key, value] of Object.entries(stats)) {
        const name = `pxe_${subsystem}_${key.replace(/([a-z])([A-Z])/g, '$1_$2').replace(/[^a-zA-Z0-9_]/g, '_').toLowerCase()}`;
        if (typeof value === 'number') {
          this.gauge(name, []).set(value);
        } else {
          const g = this.gauge(name, ['reason']);
          for (const [label, n] of Object.entries(value)) g.set({ reason: label }, n);
        }
      }
    }
  }

  async render(): Promise<{ contentType: string; body: string }> {
    this.refresh();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
