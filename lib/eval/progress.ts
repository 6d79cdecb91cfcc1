/**
 * The evaluation's progress on stderr: on a terminal one line redrawn in place (at most ~10
 * times a second); elsewhere (logs, pipes) only the finished lines, so logs stay readable.
 */
export interface ProgressSink {
  readonly write: (text: string) => void;
  readonly isTTY: boolean;
  /** Terminal width, to keep the redrawn line on one row. */
  readonly columns?: number;
}

export class EvalProgress {
  private last = -Infinity;
  private drawn = false;

  constructor(
    private readonly sink: ProgressSink,
    private readonly now: () => number = Date.now,
    private readonly intervalMs = 100,
  ) {}

  /** The running line, e.g. "[2/6 ma] perplexity 12288/65536 tokens (18%)". */
  update(text: string, done: number, total: number): void {
    if (!this.sink.isTTY) return;
    const t = this.now();
    if (done < total && t - this.last < this.intervalMs) return;
    this.last = t;
    const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    const cols = (this.sink.columns ?? 80) - 1;
    this.sink.write(`\r${`${text} ${done}/${total} (${pct}%)`.slice(0, cols)}\x1b[K`);
    this.drawn = true;
  }

  /** A finished line (replacing the running one on a terminal). */
  line(text: string): void {
    this.sink.write(`${this.drawn ? '\r\x1b[K' : ''}${text}\n`);
    this.drawn = false;
  }
}
