import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  PlanError,
  PRESET_NAMES,
  formatPlan,
  parsePlan,
  planViolations,
  presetPlan,
  resolvePlan,
  type AttentionKind,
  type KvRank,
  type LayerPlan,
  type LayerSpec,
} from '../../lib/plan/index.js';
import { globalLayers, ownerLayers, range } from './helpers.js';

const PAIRS_22 = '0 1s 1s 3s 3s 3s 0 7s 7s 9s 9s 9s 12 13s 13s 15s 15s 15s 12 19s 19s 19s';

/** The PlanError thrown by fn. */
function planError(fn: () => unknown): PlanError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PlanError);
    return e as PlanError;
  }
  throw new Error('expected a PlanError');
}

/**
 * Random valid plans, built layer by layer: each layer either owns a cache (any attention,
 * optional rank) or reads an earlier owner with compatible attention and the same rank.
 */
const layerChoice = fc.record({
  own: fc.boolean(),
  pick: fc.nat(),
  sliding: fc.boolean(),
  window: fc.constantFrom(1, 7, 64, 512, 1024, 4096, 131072),
  rank: fc.option(fc.record({ k: fc.integer({ min: 1, max: 256 }), v: fc.integer({ min: 1, max: 256 }) }), {
    nil: undefined,
  }),
});
const randomPlan = fc.array(layerChoice, { minLength: 1, maxLength: 48 }).map((choices): LayerPlan => {
  const layers: LayerSpec[] = [];
  const owners: number[] = [];
  choices.forEach((c, i) => {
    const sliding: AttentionKind = { kind: 'sliding', window: c.window };
    if (i === 0 || c.own) {
      owners.push(i);
      const rank: { kvRank?: KvRank } = c.rank ? { kvRank: c.rank } : {};
      layers.push({ attention: c.sliding ? sliding : { kind: 'global' }, kvSource: i, ...rank });
      return;
    }
    const src = owners[c.pick % owners.length];
    const s = layers[src];
    const attention: AttentionKind =
      s.attention.kind === 'sliding'
        ? { kind: 'sliding', window: Math.min(c.window, s.attention.window) }
        : c.sliding
          ? sliding
          : { kind: 'global' };
    layers.push({ attention, kvSource: src, ...(s.kvRank ? { kvRank: s.kvRank } : {}) });
  });
  return { name: 'custom', layers };
});

describe('notation round-trips', () => {
  it('for every preset at 1..40 layers and several windows', () => {
    for (const name of PRESET_NAMES) {
      for (const L of range(1, 40)) {
        for (const window of [1024, 512, 4096]) {
          const p = presetPlan(name, L, { window });
          const text = formatPlan(p);
          expect(parsePlan(text).layers).toEqual(p.layers);
          expect(formatPlan(parsePlan(text))).toBe(text);
        }
      }
    }
  });

  it('for random valid plans', () => {
    fc.assert(
      fc.property(randomPlan, (p) => {
        expect(planViolations(p)).toEqual([]);
        const text = formatPlan(p);
        expect(parsePlan(text).layers).toEqual(p.layers);
        expect(formatPlan(parsePlan(text))).toBe(text);
      }),
      { numRuns: 500 },
    );
  });
});

describe('formatPlan', () => {
  it('writes the DESIGN.md style for 1024-token windows', () => {
    expect(formatPlan(presetPlan('characterai', 13))).toBe('0 1s 1s 3s 3s 3s 0 7s 7s 9s 9s 9s 0');
  });

  it('writes a header for another common window and suffixes the rest', () => {
    const p = parsePlan('w=4096 0s 1 2s 3 4s1024 5s512');
    expect(formatPlan(p)).toBe('w=4096 0s 1 2s 3 4s1024 5s512');
    expect(formatPlan(presetPlan('gemma3', 6, { window: 512 }))).toBe('w=512 0s 1s 2s 3s 4s 5');
  });

  it('prefers 1024 as the default window on a tie', () => {
    expect(formatPlan(parsePlan('0s512 1s'))).toBe('0s512 1s');
  });

  it('writes ranks as :kKvV', () => {
    expect(formatPlan(parsePlan('0:k32v48 0:k32v48 2s:k8v8 2s:k8v8'))).toBe('0:k32v48 0:k32v48 2s:k8v8 2s:k8v8');
  });
});

describe('parsePlan', () => {
  it('parses the 22-layer MixAttention-Pairs encoding from DESIGN.md', () => {
    const p = parsePlan(PAIRS_22);
    expect(p.name).toBe('custom');
    expect(p.layers).toHaveLength(22);
    expect(globalLayers(p)).toEqual([0, 6, 12, 18]);
    expect(ownerLayers(p)).toEqual([0, 1, 3, 7, 9, 12, 13, 15, 19]);
    expect(p.layers[18]).toEqual({ attention: { kind: 'global' }, kvSource: 12 });
    expect(p.layers[21]).toEqual({ attention: { kind: 'sliding', window: 1024 }, kvSource: 19 });
    expect(formatPlan(p)).toBe(PAIRS_22);
  });

  it('reads windows, ranks and names', () => {
    const p = parsePlan('w=256 0:k16v24 1s 1s128 0:k16v24', { name: 'mine' });
    expect(p).toEqual({
      name: 'mine',
      layers: [
        { attention: { kind: 'global' }, kvSource: 0, kvRank: { k: 16, v: 24 } },
        { attention: { kind: 'sliding', window: 256 }, kvSource: 1 },
        { attention: { kind: 'sliding', window: 128 }, kvSource: 1 },
        { attention: { kind: 'global' }, kvSource: 0, kvRank: { k: 16, v: 24 } },
      ],
    });
  });

  it('accepts commas, newlines and repeated separators, and redundant window suffixes', () => {
    const want = parsePlan('0 1s 1s 0').layers;
    expect(parsePlan(' 0, 1s,\n1s\t 0 ,').layers).toEqual(want);
    expect(parsePlan('0 1s1024 1s 0').layers).toEqual(want);
    expect(parsePlan('w=1024 0 1s 1s 0').layers).toEqual(want);
    expect(formatPlan(parsePlan('w=1024 0 1s1024 1s 0'))).toBe('0 1s 1s 0');
  });

  it.each([
    ['0 1x', 1, '1x'],
    ['0 s', 1, 's'],
    ['0 1S', 1, '1S'],
    ['01', 0, '01'],
    ['0 0 -1', 2, '-1'],
    ['0 1s0512', 1, '1s0512'],
    ['0:k32', 0, '0:k32'],
    ['0:v32k32', 0, '0:v32k32'],
    ['0 1s w=512', 2, 'w=512'],
  ])('names the entry and its text for %j', (text, entry, tok) => {
    const e = planError(() => parsePlan(text));
    expect(e.message).toContain(`entry ${entry} '${tok}'`);
    expect(e.layer).toBe(entry);
  });

  it('explains a misplaced window header', () => {
    expect(planError(() => parsePlan('0 w=512 1s')).message).toMatch(/only allowed before the first entry/);
  });

  it.each(['', '   ', ',', 'w=512'])('rejects %j as having no entries', (text) => {
    expect(planError(() => parsePlan(text)).message).toMatch(/no layer entries/);
  });

  it('validates the parsed plan, naming the layer', () => {
    expect(planError(() => parsePlan('0 2s')).message).toMatch(/layer 1: kvSource 2 must be an earlier layer/);
    expect(planError(() => parsePlan('0s 0')).message).toMatch(/layer 1: a global layer cannot read the sliding cache/);
    expect(planError(() => parsePlan('0 1s512 1s')).message).toMatch(/layer 2: window 1024 exceeds the window 512/);
    expect(planError(() => parsePlan('0 1s0')).message).toMatch(/layer 1: sliding window 0/);
    expect(planError(() => parsePlan('w=0 0s')).message).toMatch(/layer 0: sliding window 0/);
    expect(planError(() => parsePlan('0:k0v8')).message).toMatch(/layer 0: kvRank.k 0/);
    expect(parsePlan('0:k96v96').layers).toHaveLength(1);
    expect(planError(() => parsePlan('0:k96v96', { headDim: 64 })).message).toMatch(/layer 0: kvRank.k 96 exceeds/);
  });
});

describe('resolvePlan', () => {
  it('resolves preset names with the window option', () => {
    expect(resolvePlan('ma', 24)).toEqual(presetPlan('ma', 24));
    expect(resolvePlan(' gemma3 ', 12, { window: 512 })).toEqual(presetPlan('gemma3', 12, { window: 512 }));
  });

  it('resolves notation and checks the layer count', () => {
    expect(resolvePlan(PAIRS_22, 22).layers).toEqual(parsePlan(PAIRS_22).layers);
    expect(resolvePlan('w=512 0s 1', 2).layers[0].attention).toEqual({ kind: 'sliding', window: 512 });
    const e = planError(() => resolvePlan(PAIRS_22, 24));
    expect(e.message).toMatch(/describes 22 layers but the model has 24/);
  });

  it('rejects an unknown name, listing the presets', () => {
    const e = planError(() => resolvePlan('mixattention', 24));
    expect(e.message).toContain("'mixattention'");
    for (const n of PRESET_NAMES) expect(e.message).toContain(n);
  });

  it('reports notation errors from parsePlan', () => {
    expect(planError(() => resolvePlan('0 1q', 2)).message).toContain("entry 1 '1q'");
    expect(planError(() => resolvePlan('0:k16v16', 1, { headDim: 8 })).message).toMatch(/layer 0: kvRank.k 16 exceeds/);
  });
});
