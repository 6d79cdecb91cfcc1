/**
 * The few Prometheus metric kinds the server needs (text exposition format 0.0.4), without a
 * client library: counters and gauges with labels, and a histogram with fixed buckets.
 */
export type Labels = Readonly<Record<string, string | number>>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function header(name: string, help: string, type: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

/** A counter or gauge family: one value per label set. */
export class Family {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const cur = this.values.get(key);
    if (cur) cur.value += by;
    else this.values.set(key, { labels, value: by });
  }

  set(labels: Labels, value: number): void {
    this.values.set(labelText(labels), { labels, value });
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels))?.value ?? 0;
  }

  render(): string {
    let out = header(this.name, this.help, this.type);
    for (const { labels, value } of this.values.values()) out += `${this.name}${labelText(labels)} ${num(value)}\n`;
    return out;
  }
}

/** A histogram without labels: cumulative buckets, _sum and _count. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    this.counts = buckets.map(() => 0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) this.counts[i]++;
  }

  get observations(): number {
    return this.count;
  }

  render(): string {
    let out = header(this.name, this.help, 'histogram');
    this.buckets.forEach((le, i) => (out += `${this.name}_bucket{le="${num(le)}"} ${this.counts[i]}\n`));
    out += `${this.name}_bucket{le="+Inf"} ${this.count}\n${this.name}_sum ${num(this.sum)}\n${this.name}_count ${this.count}\n`;
    return out;
  }
}

/** A family whose values are read when scraped (gauges, or totals kept elsewhere as counters). */
export function scrapedText(name: string, help: string, type: 'gauge' | 'counter', samples: readonly { labels?: Labels; value: number }[]): string {
  let out = header(name, help, type);
  for (const s of samples) out += `${name}${labelText(s.labels ?? {})} ${num(s.value)}\n`;
  return out;
}
