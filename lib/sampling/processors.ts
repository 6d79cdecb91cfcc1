/**
 * Logits processors: cheap, sparse edits of a logits row that depend on the sequence's
 * history (penalties). They stay in TypeScript whatever the backend: they touch only the
 * tokens seen so far, so even on a device they are a small scatter, not a vocab-wide pass.
 * The vocab-wide reductions (max, softmax, top-k/top-p/min-p, the draw) are in reduce.ts.
 */

/** The tokens a sequence has seen: the prompt and what it generated, with counts. */
export class TokenHistory {
  /** Distinct prompt tokens. */
  readonly prompt = new Set<number>();
  /** Generated token → how many times. */
  readonly output = new Map<number, number>();
  private generated = 0;

  constructor(promptIds: Iterable<number> = []) {
    for (const t of promptIds) this.prompt.add(t);
  }

  push(token: number): void {
    this.output.set(token, (this.output.get(token) ?? 0) + 1);
    this.generated++;
  }

  get outputLength(): number {
    return this.generated;
  }
}

/** One in-place edit of a logits row (vocab fp32) given the history. */
export interface LogitsProcessor {
  process(row: Float32Array, history: TokenHistory): void;
}

/**
 * HF RepetitionPenaltyLogitsProcessor: every distinct token of prompt + output has its logit
 * divided by the penalty when positive, multiplied when negative (so penalty > 1 always
 * makes it less likely). Applied once per distinct token, however often it occurred.
 */
export class RepetitionPenalty implements LogitsProcessor {
  constructor(readonly penalty: number) {}

  process(row: Float32Array, h: TokenHistory): void {
    const p = this.penalty;
    const apply = (t: number) => {
      const x = row[t];
      row[t] = x < 0 ? x * p : x / p;
    };
    for (const t of h.prompt) if (t < row.length) apply(t);
    for (const t of h.output.keys()) if (t < row.length && !h.prompt.has(t)) apply(t);
  }
}

/**
 * OpenAI presence/frequency penalties over the generated tokens only:
 * logit[t] -= count(t) · frequency + (count(t) > 0 ? presence : 0).
 */
export class PresenceFrequencyPenalty implements LogitsProcessor {
  constructor(
    readonly presence: number,
    readonly frequency: number,
  ) {}

  process(row: Float32Array, h: TokenHistory): void {
    for (const [t, n] of h.output) if (t < row.length) row[t] -= n * this.frequency + this.presence;
  }
}

/** The processors the parameters ask for, in the order vLLM applies them. */
export function penaltyProcessors(p: {
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
}): LogitsProcessor[] {
  const out: LogitsProcessor[] = [];
  if (p.repetitionPenalty !== 1) out.push(new RepetitionPenalty(p.repetitionPenalty));
  if (p.presencePenalty !== 0 || p.frequencyPenalty !== 0) out.push(new PresenceFrequencyPenalty(p.presencePenalty, p.frequencyPenalty));
  return out;
}
