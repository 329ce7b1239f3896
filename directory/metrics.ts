import { Counter as PromCounter, Gauge, Histogram as PromHistogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The Prometheus registry of one process, on prom-client: counters and histograms with labels,
 * families read at scrape time from numbers kept elsewhere, and (for `mailmesh serve`) the
 * process and runtime metrics and `mailmesh_build_info`. Rendered in the text exposition format
 * 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats). docs/observability.md lists the families.
 */
type Labels = Record<string, string>;

/** A labelled counter; `get` reads a value back without a scrape (tests, the timers' retries). */
export class Counter {
  readonly #values = new Map<string, number>();
  constructor(readonly prom: PromCounter) {}
  inc(labels: Labels = {}, by = 1): void {
    this.prom.inc(labels, by);
    const key = JSON.stringify(Object.entries(labels).sort());
    this.#values.set(key, (this.#values.get(key) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.#values.get(JSON.stringify(Object.entries(labels).sort())) ?? 0;
  }
}

export interface Histogram {
  observe(v: number): void;
}

/** One sample of a family read at scrape time. */
export interface Sample {
  labels?: Labels;
  value: number;
}

/** A collected family's samples, in place of the last scrape's. */
function refill(family: { reset(): void }, samples: Sample[], put: (labels: Labels, value: number) => void): void {
  family.reset();
  for (const s of samples) put(s.labels ?? {}, s.value);
}

export interface MetricsOptions {
  /** Process and runtime metrics (prom-client's defaults: `process_*`, `nodejs_*`) and `mailmesh_build_info{version,node}` = 1. */
  runtime?: { version: string };
}

export class Metrics {
  readonly registry = new Registry();
  readonly #counters = new Map<string, Counter>();

  constructor(o: MetricsOptions = {}) {
    // Every registry has the faults family, so a reader that asks for it first (a test) finds its labels.
    this.faults();
    if (!o.runtime) return;
    collectDefaultMetrics({ register: this.registry });
    const info = new Gauge({ name: 'mailmesh_build_info', help: 'Always 1; the labels name the mailmesh version and the Node.js runtime', labelNames: ['version', 'node'], registers: [this.registry] });
    info.set({ version: o.runtime.version, node: process.version }, 1);
  }

  /**
   * The counter of this name: one family however many modules ask for it (e.g. mailmesh_faults_total,
   * one label per face). The first caller names the labels; a caller that only reads may leave them out.
   */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    const known = this.#counters.get(name);
    if (known) return known;
    const c = new Counter(new PromCounter({ name, help, labelNames: [...labelNames], registers: [this.registry] }));
    this.#counters.set(name, c);
    return c;
  }

  /** `mailmesh_faults_total{face}`: faults a face (or a periodic task) contained. */
  faults(): Counter {
    return this.counter('mailmesh_faults_total', 'Faults contained, by face or periodic task', ['face']);
  }

  histogram(name: string, help: string, buckets: number[]): Histogram {
    return new PromHistogram({ name, help, buckets, registers: [this.registry] });
  }

  /** A family whose samples are read when scraped (numbers another module keeps); `read` may be async. */
  collect(name: string, help: string, type: 'counter' | 'gauge', read: () => Sample[] | Promise<Sample[]>, labelNames: readonly string[] = []): void {
    // A second reader of the same name (a face started again on one registry) replaces the first.
    this.registry.removeSingleMetric(name);
    const options = { name, help, labelNames: [...labelNames], registers: [this.registry] };
    if (type === 'gauge') new Gauge({ ...options, async collect() { refill(this, await read(), (l, v) => this.set(l, v)); } });
    else new PromCounter({ ...options, async collect() { refill(this, await read(), (l, v) => this.inc(l, v)); } });
  }

  /** The text exposition format (the body of GET /metrics). */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Its media type: `text/plain; version=0.0.4; charset=utf-8`. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
