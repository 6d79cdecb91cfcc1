/**
 * Compact text notation for layer plans, extending DESIGN.md's `0 1s 1s 3s ...`.
 *
 *   plan    := [header SEP] entry (SEP entry)*
 *   header  := 'w=' INT                     default sliding window (1024 when absent)
 *   entry   := SRC ['s' [WINDOW]] [':k' INT 'v' INT]
 *   SEP     := one or more spaces, tabs, newlines or commas
 *   INT     := decimal, no leading zeros
 *
 * Entry i describes layer i. SRC is the layer whose KV cache layer i uses (i itself when it
 * owns its cache). Without `s` the layer is global; `s` makes it sliding with the default
 * window, `s512` with window 512. `:k32v48` keeps cached keys in rank 32 and values in rank 48
 * (Eigen Attention); without it the cache is full head width.
 *
 * Examples: `0 1s 1s 3s 3s 3s 0` (Character.AI-style, window 1024);
 *           `w=4096 0s 1 2s 3` (Gemma-2-style alternation);  `0:k32v32 0:k32v32 2s512`.
 *
 * Canonical form (what formatPlan writes): entries separated by one space; the default window
 * is the most frequent sliding window (ties: 1024, then the earliest), the header is written
 * only when that default is not 1024, and only windows different from it get a suffix.
 */
import { PlanError, type KvRank, type LayerPlan, type LayerSpec } from './types.js';
import { DEFAULT_WINDOW, isPresetName, PRESET_NAMES, presetPlan } from './presets.js';
import { validatePlan } from './validate.js';

const INT = '(0|[1-9][0-9]*)';
const ENTRY = new RegExp(`^${INT}(?:(s)${INT}?)?(?::k${INT}v${INT})?$`);
const HEADER = new RegExp(`^w=${INT}$`);
const GRAMMAR = 'expected SRC[s[WINDOW]][:kKvV], e.g. 3, 1s, 1s512 or 0:k32v48';

export interface ParseOptions {
  /** Checked against kvRank widths, as in validatePlan. */
  readonly headDim?: number;
  /** Name given to the parsed plan (default 'custom'). */
  readonly name?: string;
}

/** The window written as the default: most frequent, ties to 1024 then the earliest seen. */
function defaultWindow(layers: readonly LayerSpec[]): number {
  const counts = new Map<number, number>();
  for (const l of layers) {
    if (l.attention.kind === 'sliding') counts.set(l.attention.window, (counts.get(l.attention.window) ?? 0) + 1);
  }
  let best = DEFAULT_WINDOW;
  let bestCount = counts.get(DEFAULT_WINDOW) ?? 0;
  for (const [w, c] of counts) if (c > bestCount) [best, bestCount] = [w, c];
  return best;
}

const formatRank = (r: KvRank | undefined): string => (r ? `:k${r.k}v${r.v}` : '');

/** The plan in canonical notation (see the grammar at the top of this file). */
export function formatPlan(plan: LayerPlan): string {
  const dw = defaultWindow(plan.layers);
  const entries = plan.layers.map((l) => {
    const a = l.attention;
    const att = a.kind === 'global' ? '' : a.window === dw ? 's' : `s${a.window}`;
    return `${l.kvSource}${att}${formatRank(l.kvRank)}`;
  });
  return [...(dw === DEFAULT_WINDOW ? [] : [`w=${dw}`]), ...entries].join(' ');
}

/** Parses the notation into a validated plan; errors name the entry and its text. */
export function parsePlan(text: string, opts: ParseOptions = {}): LayerPlan {
  const tokens = text.split(/[\s,]+/).filter((t) => t.length > 0);
  let window = DEFAULT_WINDOW;
  const header = tokens.length > 0 ? HEADER.exec(tokens[0]) : null;
  if (header) {
    window = Number(header[1]);
    tokens.shift();
  }
  if (tokens.length === 0) throw new PlanError('plan notation has no layer entries');
  const layers = tokens.map((tok, i): LayerSpec => {
    const m = ENTRY.exec(tok);
    if (!m) {
      const why = HEADER.test(tok) ? 'a window header is only allowed before the first entry' : GRAMMAR;
      throw new PlanError(`plan notation: entry ${i} '${tok}' is not valid (${why})`, i);
    }
    const [, src, s, w, k, v] = m;
    return {
      attention: s ? { kind: 'sliding', window: w === undefined ? window : Number(w) } : { kind: 'global' },
      kvSource: Number(src),
      ...(k === undefined ? {} : { kvRank: { k: Number(k), v: Number(v) } }),
    };
  });
  return validatePlan({ name: opts.name ?? 'custom', layers }, { headDim: opts.headDim });
}

export interface ResolveOptions {
  /** Sliding window for presets (default 1024); the notation carries its own windows. */
  readonly window?: number;
  readonly headDim?: number;
}

/** A preset name or a plan in notation, checked to have numLayers layers. */
export function resolvePlan(spec: string, numLayers: number, opts: ResolveOptions = {}): LayerPlan {
  const s = spec.trim();
  if (isPresetName(s)) return validatePlan(presetPlan(s, numLayers, { window: opts.window }), opts);
  if (!/^(w=)?[0-9]/.test(s)) {
    throw new PlanError(
      `'${spec}' is neither a plan preset (${PRESET_NAMES.join(', ')}) nor a plan in notation (e.g. '0 1s 1s 3s')`,
    );
  }
  const plan = parsePlan(s, { headDim: opts.headDim });
  if (plan.layers.length !== numLayers) {
    throw new PlanError(`plan '${spec}' describes ${plan.layers.length} layers but the model has ${numLayers}`);
  }
  return plan;
}
