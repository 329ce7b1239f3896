/**
 * A small Prometheus registry: counters and histograms with labels, and collectors that
 * read numbers kept elsewhere at scrape time. Rendered in the text exposition format 0.0.4
 * (prometheus.io/docs/instrumenting/exposition_formats).
 */
type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  lines(): string[];
}

export class Counter {
  readonly #values = new Map<string, { labels: Labels; value: number }>();
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const v = this.#values.get(key) ?? { labels, value: 0 };
    v.value += by;
    this.#values.set(key, v);
  }
  get(labels: Labels = {}): number {
    return this.#values.get(labelText(labels))?.value ?? 0;
  }
  lines(name: string): string[] {
    return [...this.#values.values()].map((v) => `${name}${labelText(v.labels)} ${v.value}`);
  }
}

export class Histogram {
  readonly #buckets: number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(buckets: number[]) {
    this.#buckets = [...buckets].sort((a, b) => a - b);
    this.#counts = this.#buckets.map(() => 0);
  }
  observe(v: number): void {
    this.#sum += v;
    this.#count++;
    this.#buckets.forEach((b, i) => {
      if (v <= b) this.#counts[i]!++;
    });
  }
  lines(name: string): string[] {
    return [
      ...this.#buckets.map((b, i) => `${name}_bucket{le="${b}"} ${this.#counts[i]}`),
      `${name}_bucket{le="+Inf"} ${this.#count}`,
      `${name}_sum ${this.#sum}`,
      `${name}_count ${this.#count}`,
    ];
  }
}

export class Metrics {
  readonly #families: Family[] = [];
  readonly #counters = new Map<string, Counter>();

  /** The counter of this name: one family however many modules ask for it (e.g. mailmesh_faults_total, one label per face). */
  counter(name: string, help: string): Counter {
    const known = this.#counters.get(name);
    if (known) return known;
    const c = new Counter();
    this.#counters.set(name, c);
    this.#families.push({ name, help, type: 'counter', lines: () => c.lines(name) });
    return c;
  }

  histogram(name: string, help: string, buckets: number[]): Histogram {
    const h = new Histogram(buckets);
    this.#families.push({ name, help, type: 'histogram', lines: () => h.lines(name) });
    return h;
  }

  /** A family whose samples are read when scraped (numbers another module keeps). */
  collect(name: string, help: string, type: 'counter' | 'gauge', read: () => { labels?: Labels; value: number }[]): void {
    this.#families.push({ name, help, type, lines: () => read().map((s) => `${name}${labelText(s.labels ?? {})} ${s.value}`) });
  }

  render(): string {
    return this.#families.map((f) => [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.lines()].join('\n')).join('\n') + '\n';
  }
}
