/**
 * Plan validation (DESIGN.md section 2). Every rule is checked and every violation reported,
 * so a hand-written plan can be fixed in one pass.
 *
 * kvRank between reader and source: the reader must carry exactly the source's kvRank, and an
 * absent kvRank means full head width on both sides. A reader never inherits a rank silently,
 * because its Q/O projections are shaped by the width it reads.
 */
import { PlanError, type AttentionKind, type KvRank, type LayerPlan, type LayerSpec } from './types.js';

export interface PlanViolation {
  /** The offending layer; absent only for plan-wide problems (an empty plan). */
  readonly layer?: number;
  /** One line that names the layer, e.g. "layer 7: kvSource 9 must be an earlier layer (or 7 itself)". */
  readonly message: string;
}

export interface ValidateOptions {
  /** Full head width; when given, kvRank widths may not exceed it. */
  readonly headDim?: number;
}

const isPosInt = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 1;

/** Problems with a layer's own attention kind, or undefined when it is well-formed. */
function attentionProblem(a: AttentionKind | undefined): string | undefined {
  if (a === null || typeof a !== 'object') return 'attention is missing';
  if (a.kind === 'global') return undefined;
  if (a.kind === 'sliding') {
    return isPosInt(a.window) ? undefined : `sliding window ${String(a.window)} must be an integer >= 1`;
  }
  return `attention kind ${JSON.stringify((a as { kind?: unknown }).kind)} must be 'global' or 'sliding'`;
}

function rankProblem(r: KvRank, headDim: number | undefined): string | undefined {
  if (r === null || typeof r !== 'object') return 'kvRank must be an object {k, v}';
  for (const key of ['k', 'v'] as const) {
    if (!isPosInt(r[key])) return `kvRank.${key} ${String(r[key])} must be a positive integer`;
    if (headDim !== undefined && r[key] > headDim) {
      return `kvRank.${key} ${r[key]} exceeds the head dimension ${headDim}`;
    }
  }
  return undefined;
}

const rankText = (r: KvRank | undefined): string => (r ? `{k: ${r.k}, v: ${r.v}}` : 'full width');
const sameRank = (a: KvRank | undefined, b: KvRank | undefined): boolean =>
  a === undefined || b === undefined ? a === b : a.k === b.k && a.v === b.v;

/** Rules that involve a reader and the layer it reads; called only when both are well-formed. */
function readerProblems(i: number, me: LayerSpec, src: number, source: LayerSpec): string[] {
  const out: string[] = [];
  if (source.kvSource !== src) {
    out.push(`kvSource ${src} is itself a reader of layer ${source.kvSource}; read layer ${source.kvSource} directly (no chains)`);
    return out; // the source is not an owner, so comparing against it says nothing more
  }
  const a = me.attention;
  const b = source.attention;
  if (a.kind === 'global' && b.kind === 'sliding') {
    out.push(`a global layer cannot read the sliding cache of layer ${src} (window ${b.window} drops older tokens)`);
  } else if (a.kind === 'sliding' && b.kind === 'sliding' && a.window > b.window) {
    out.push(`window ${a.window} exceeds the window ${b.window} of its source layer ${src}`);
  }
  if (!sameRank(me.kvRank, source.kvRank)) {
    out.push(`kvRank ${rankText(me.kvRank)} differs from its source layer ${src} (${rankText(source.kvRank)})`);
  }
  return out;
}

/** Every rule violation in the plan, in layer order; empty when the plan is valid. */
export function planViolations(plan: LayerPlan, opts: ValidateOptions = {}): PlanViolation[] {
  const layers = plan.layers ?? [];
  if (layers.length === 0) return [{ message: 'a plan needs at least one layer' }];
  const out: PlanViolation[] = [];
  const add = (layer: number, what: string): void => {
    out.push({ layer, message: `layer ${layer}: ${what}` });
  };
  // A layer whose own fields are broken is not compared against its readers (its problem is
  // reported once, at the layer itself).
  const wellFormed = layers.map((spec, i) => {
    const problems = [
      attentionProblem(spec?.attention),
      spec?.kvRank === undefined ? undefined : rankProblem(spec.kvRank, opts.headDim),
    ].filter((p): p is string => p !== undefined);
    for (const p of problems) add(i, p);
    return problems.length === 0;
  });
  layers.forEach((spec, i) => {
    const src = spec?.kvSource;
    if (!Number.isInteger(src) || src < 0 || src > i) {
      add(i, `kvSource ${String(src)} must be an earlier layer (or ${i} itself)`);
      return;
    }
    if (src === i || !wellFormed[i] || !wellFormed[src]) return;
    for (const p of readerProblems(i, spec, src, layers[src])) add(i, p);
  });
  return out.sort((x, y) => (x.layer ?? -1) - (y.layer ?? -1));
}

/** Throws a PlanError listing every violation (first line a summary); returns the plan otherwise. */
export function validatePlan<P extends LayerPlan>(plan: P, opts: ValidateOptions = {}): P {
  const violations = planViolations(plan, opts);
  if (violations.length === 0) return plan;
  const n = violations.length;
  const summary = `invalid layer plan '${plan.name}': ${n} violation${n === 1 ? '' : 's'}`;
  const message = [summary, ...violations.map((v) => `  ${v.message}`)].join('\n');
  throw new PlanError(message, violations[0].layer);
}
