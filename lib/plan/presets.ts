/**
 * Named layer plans for any layer count L >= 1 (DESIGN.md section 2). Our reading of the
 * MixAttention paper's variants (arXiv 2409.15012) and of its peers:
 *
 * - Global layers of the MixAttention family sit on Character.AI's grid, one layer in six
 *   (0, 6, 12, ...). `ma` also makes the last layer global; when the last grid layer is only
 *   1 or 2 layers before it, that grid layer is dropped so no sliding stretch is left 1 long.
 * - Every maximal stretch of consecutive sliding layers is cut into runs of 2-3 layers (the
 *   2-runs first: 5 -> 2+3, LLM Foundry's Character.AI encoding); the first layer of a run owns
 *   the cache and the others read it. A stretch of exactly 1 layer (tiny L) owns its own cache.
 * - `ma-offset` puts round(L/4) sliding layers first and then the `ma` layout of the remaining
 *   layers, so the global cache is computed at layer round(L/4) (the paper: global KV computed
 *   deeper matters more than in the first layer).
 * - `ma-pairs`: `ma`'s global layers split in two groups, the first floor(G/2) reading the first
 *   global layer and the rest reading the first of theirs, which lands near mid-depth. The
 *   22-layer port in DESIGN.md is this layout with its last layer sliding.
 * - `ma-endslide` keeps layer 0 global, so for L = 1 it equals `ma`. For L <= 6 and whenever
 *   L % 6 is 0, 4 or 5 it coincides with `characterai` (the grid without `ma`'s last global).
 */
import { PlanError, type LayerPlan, type LayerSpec } from './types.js';
import { validatePlan } from './validate.js';

export const PRESET_NAMES = [
  'standard',
  'sliding',
  'ma',
  'ma-endslide',
  'ma-offset',
  'ma-pairs',
  'characterai',
  'gemma3',
  'cla2',
] as const;

export type PresetName = (typeof PRESET_NAMES)[number];

export const DEFAULT_WINDOW = 1024;

/** One line per preset, for docs and CLI listings. */
export const PRESET_SUMMARIES: Readonly<Record<PresetName, string>> = {
  standard: 'Every layer global and owning its cache (a plain transformer).',
  sliding: 'Every layer sliding and owning its cache (Mistral 7B v0.1 style).',
  ma: 'MixAttention: global layers at 0, 6, 12, ... and the last layer, all reading layer 0; sliding layers in runs of 2-3 sharing one cache.',
  'ma-endslide': 'As ma, but the last layer is sliding (it joins the last sliding stretch).',
  'ma-offset': 'The first round(L/4) layers sliding, then the ma layout: the global cache is computed at layer round(L/4) and read by every later global layer.',
  'ma-pairs': "As ma, with two global caches: the first half of the global layers read layer 0, the second half read their half's first layer.",
  characterai: 'Character.AI: global layers at 0, 6, 12, ... all reading layer 0; sliding layers in runs of 2-3 sharing one cache.',
  gemma3: 'Gemma 3: global where (i+1) % 6 == 0, the rest sliding; every layer owns its cache.',
  cla2: "Cross-layer attention: all global; adjacent pairs (0,1), (2,3), ... share the first one's cache; an odd last layer owns its own.",
};

/** Character.AI's ratio: one global layer in six. */
const GLOBAL_PERIOD = 6;

export interface PresetOptions {
  /** Sliding window in tokens (default 1024). */
  readonly window?: number;
}

export const isPresetName = (s: string): s is PresetName => (PRESET_NAMES as readonly string[]).includes(s);

/** Run lengths (each 2 or 3, 2-runs first) covering a sliding stretch of n layers. */
export function slidingRunLengths(n: number): number[] {
  if (n <= 1) return n === 1 ? [1] : [];
  const runs = Math.ceil(n / 3);
  const twos = 3 * runs - n; // 0..2, and never more than `runs` for n >= 2
  return [...Array<number>(twos).fill(2), ...Array<number>(runs - twos).fill(3)];
}

/**
 * Layers for L layers given the global ones (layer -> the global layer whose cache it reads);
 * every other layer is sliding, grouped into runs by slidingRunLengths.
 */
function assemble(numLayers: number, globals: ReadonlyMap<number, number>, window: number): LayerSpec[] {
  const layers: LayerSpec[] = [];
  let i = 0;
  while (i < numLayers) {
    const src = globals.get(i);
    if (src !== undefined) {
      layers.push({ attention: { kind: 'global' }, kvSource: src });
      i++;
      continue;
    }
    let end = i;
    while (end < numLayers && !globals.has(end)) end++;
    for (const len of slidingRunLengths(end - i)) {
      for (let j = 0; j < len; j++) layers.push({ attention: { kind: 'sliding', window }, kvSource: i });
      i += len;
    }
  }
  return layers;
}

/** Global layers of `ma`: the 1-in-6 grid plus the last layer (see the header comment). */
export function maGlobalLayers(numLayers: number): number[] {
  const g: number[] = [];
  for (let i = 0; i < numLayers; i += GLOBAL_PERIOD) g.push(i);
  const last = numLayers - 1;
  if (g[g.length - 1] !== last) {
    if (g.length > 1 && last - g[g.length - 1] <= 2) g.pop();
    g.push(last);
  }
  return g;
}

/** Map every listed global layer to one cache owner. */
const readAll = (globals: readonly number[], owner: number): Map<number, number> =>
  new Map(globals.map((g) => [g, owner]));

function layout(name: PresetName, L: number, window: number): LayerSpec[] {
  const sliding = { kind: 'sliding', window } as const;
  switch (name) {
    case 'standard':
      return Array.from({ length: L }, (_, i) => ({ attention: { kind: 'global' }, kvSource: i }));
    case 'sliding':
      return Array.from({ length: L }, (_, i) => ({ attention: sliding, kvSource: i }));
    case 'gemma3':
      return Array.from({ length: L }, (_, i) => ({
        attention: (i + 1) % GLOBAL_PERIOD === 0 ? { kind: 'global' } : sliding,
        kvSource: i,
      }));
    case 'cla2':
      return Array.from({ length: L }, (_, i) => ({ attention: { kind: 'global' }, kvSource: i - (i % 2) }));
    case 'characterai': {
      const grid = Array.from({ length: Math.ceil(L / GLOBAL_PERIOD) }, (_, k) => k * GLOBAL_PERIOD);
      return assemble(L, readAll(grid, 0), window);
    }
    case 'ma':
      return assemble(L, readAll(maGlobalLayers(L), 0), window);
    case 'ma-endslide': {
      const g = maGlobalLayers(L);
      return assemble(L, readAll(g.length > 1 ? g.slice(0, -1) : g, 0), window);
    }
    case 'ma-offset': {
      const offset = Math.round(L / 4);
      const g = maGlobalLayers(L - offset).map((p) => p + offset);
      return assemble(L, readAll(g, offset), window);
    }
    case 'ma-pairs': {
      const g = maGlobalLayers(L);
      const half = Math.floor(g.length / 2);
      const owners = new Map(g.map((p, k) => [p, k < half ? g[0] : g[half]]));
      return assemble(L, owners, window);
    }
  }
}

/** The named preset's validated plan for numLayers layers. */
export function presetPlan(name: string, numLayers: number, opts: PresetOptions = {}): LayerPlan {
  if (!isPresetName(name)) {
    throw new PlanError(`unknown plan preset '${name}'; valid presets: ${PRESET_NAMES.join(', ')}`);
  }
  if (!Number.isInteger(numLayers) || numLayers < 1) {
    throw new PlanError(`preset '${name}' needs a layer count that is an integer >= 1, got ${numLayers}`);
  }
  const window = opts.window ?? DEFAULT_WINDOW;
  if (!Number.isInteger(window) || window < 1) {
    throw new PlanError(`preset '${name}': sliding window ${window} must be an integer >= 1`);
  }
  return validatePlan({ name, layers: layout(name, numLayers, window) });
}
