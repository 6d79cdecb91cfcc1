/** The evaluation report: its JSON shape and its markdown tables. */
import type { ModelEval, EvalSettings } from './model.js';

export interface EvalReport {
  readonly eval: 'quality';
  readonly date: string;
  readonly commit: string;
  readonly command: string;
  readonly device: string;
  readonly backend: string;
  readonly node: string;
  readonly heldoutFile: string;
  readonly retrievalFile: string;
  readonly retrievalItems: number;
  readonly settings: EvalSettings;
  readonly models: ModelEval[];
}

const MiB = 1024 * 1024;

export const fixed = (x: number | undefined, d: number): string => (x !== undefined && Number.isFinite(x) ? x.toFixed(d) : '–');
const pct = (x: number | undefined): string => (x !== undefined && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '–');

export function formatParams(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** The longest context_tokens of the retrieval set: the "acc @N" column. */
export function longestContext(r: EvalReport): number | undefined {
  const all = r.models.flatMap((m) => m.retrieval.byContext.map((c) => c.contextTokens));
  return all.length > 0 ? Math.max(...all) : undefined;
}

export const accuracyAt = (m: ModelEval, context: number | undefined): number | undefined =>
  m.retrieval.byContext.find((c) => c.contextTokens === context)?.accuracy;

export const decodeAt = (m: ModelEval, batch: number): number | undefined => m.speed.find((s) => s.batch === batch)?.decodeTokensPerS;

const planCell = (m: ModelEval): string => `${m.plan.preset}${m.plan.lowRank ? ' (low-rank)' : ''}`;

function table(header: string[], rows: string[][], align: string[]): string[] {
  return [`| ${header.join(' | ')} |`, `|${align.join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

export function evalMarkdown(r: EvalReport): string {
  const L: string[] = [];
  const longest = longestContext(r);
  const batches = r.settings.speedBatches;
  L.push(`# Quality and cost per plan, ${r.date}`);
  L.push('');
  L.push(`Commit ${r.commit}; ${r.device}; backend ${r.backend}; node ${r.node}.`);
  L.push(`Command: \`${r.command}\``);
  L.push('');
  L.push(
    table(
      ['model', 'plan', 'params', 'held-out ppl', 'retrieval acc', `acc @${longest ?? '–'}`, 'KV MiB/seq @1024', 'KV vs standard', ...batches.map((b) => `decode tok/s b${b}`)],
      r.models.map((m) => [
        m.label,
        planCell(m),
        formatParams(m.params),
        fixed(m.heldout.ppl, 3),
        pct(m.retrieval.accuracy),
        pct(accuracyAt(m, longest)),
        fixed(m.kv.bytesAt1024 / MiB, 3),
        pct(m.kv.vsStandardAt1024),
        ...batches.map((b) => fixed(decodeAt(m, b), 1)),
      ]),
      ['---', '---', '---:', '---:', '---:', '---:', '---:', '---:', ...batches.map(() => '---:')],
    ).join('\n'),
  );
  L.push('');
  L.push(
    `Held-out: the first ${r.settings.maxHeldoutTokens} tokens of \`${r.heldoutFile}\` (each model's own tokenizer), non-overlapping windows ` +
      `(each a fresh sequence; its first token is not scored); ppl = exp(mean NLL), log-softmax in float64 on the host. ` +
      `Retrieval: ${r.retrievalItems} prompts of \`${r.retrievalFile}\`, greedy for the answer's tokens + 2; correct iff the output starts with the answer. ` +
      `KV: bytes one sequence holds at 1024 tokens (bf16, blocks of 16, sliding classes keep only their window), from lib/kv's memory model; ` +
      `"vs standard" is against the \`standard\` plan on the same config. Decode: ${r.settings.speedPrompt}-token prompts, ${r.settings.speedTokens} greedy steps, argmax on the device.`,
  );
  L.push('');
  L.push('## Details');
  L.push('');
  L.push(
    table(
      ['model', 'layout', 'held-out window', 'tokens scored', 'mean NLL', 'KV B/token', `KV MiB/seq @max`, 'vs standard @max', 'prefill tok/s b1', 'eval s'],
      r.models.map((m) => [
        m.label,
        `\`${m.plan.notation}\``,
        String(m.heldout.context),
        String(m.heldout.scoredTokens),
        fixed(m.heldout.meanNll, 4),
        String(m.kv.bytesPerToken),
        `${fixed(m.kv.bytesAtMax / MiB, 3)} (@${m.kv.maxContext})`,
        pct(m.kv.vsStandardAtMax),
        fixed(m.speed[0]?.prefillTokensPerS, 0),
        fixed(m.seconds, 1),
      ]),
      ['---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:'],
    ).join('\n'),
  );
  for (const m of r.models) {
    const contexts = m.retrieval.byContext.map((c) => c.contextTokens);
    const depths = [...new Set(m.retrieval.byCell.map((c) => c.depth!))].sort((a, b) => a - b);
    L.push('');
    L.push(`## Retrieval accuracy of ${m.label} (${planCell(m)}): context tokens × needle depth`);
    L.push('');
    L.push(
      table(
        ['context', ...depths.map((d) => `depth ${d}`), 'all'],
        contexts.map((ctx) => [
          String(ctx),
          ...depths.map((d) => pct(m.retrieval.byCell.find((c) => c.contextTokens === ctx && c.depth === d)?.accuracy)),
          pct(accuracyAt(m, ctx)),
        ]),
        ['---:', ...depths.map(() => '---:'), '---:'],
      ).join('\n'),
    );
  }
  return L.join('\n') + '\n';
}
