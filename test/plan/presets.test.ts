import { describe, it, expect } from 'vitest';
import {
  PlanError,
  PRESET_NAMES,
  parsePlan,
  planViolations,
  presetPlan,
  slidingRunLengths,
  type LayerPlan,
} from '../../lib/plan/index.js';
import { globalLayers, ownerLayers, range, slidingRuns, slidingStretches } from './helpers.js';

const COUNTS = range(1, 40);
const MA_FAMILY = ['ma', 'ma-endslide', 'ma-offset', 'ma-pairs', 'characterai'] as const;

/** Runs every check for every layer count 1..40. */
const forAll = (name: string, check: (p: LayerPlan, L: number) => void) => {
  for (const L of COUNTS) check(presetPlan(name, L), L);
};

describe('every preset', () => {
  it.each(PRESET_NAMES)('%s is valid for 1..40 layers, with the requested window', (name) => {
    for (const L of COUNTS) {
      for (const window of [undefined, 1, 512, 4096]) {
        const p = presetPlan(name, L, { window });
        expect(p.name).toBe(name);
        expect(p.layers).toHaveLength(L);
        expect(planViolations(p)).toEqual([]);
        for (const l of p.layers) {
          if (l.attention.kind === 'sliding') expect(l.attention.window).toBe(window ?? 1024);
          expect(l.kvRank).toBeUndefined();
        }
      }
    }
  });
});

describe('sliding runs of the MixAttention family', () => {
  it('splits a stretch into runs of 2-3, 2-runs first', () => {
    expect(slidingRunLengths(0)).toEqual([]);
    expect(slidingRunLengths(1)).toEqual([1]);
    expect(slidingRunLengths(5)).toEqual([2, 3]);
    for (let n = 2; n <= 50; n++) {
      const runs = slidingRunLengths(n);
      expect(runs.reduce((a, b) => a + b, 0)).toBe(n);
      expect(runs.every((r) => r === 2 || r === 3)).toBe(true);
      expect([...runs].sort()).toEqual(runs);
    }
  });

  it.each(MA_FAMILY)('%s: each sliding stretch is cut into runs of 2-3 owned by their first layer', (name) => {
    forAll(name, (p) => {
      for (const [start, len] of slidingStretches(p)) {
        const runs = slidingRuns(p).filter((r) => r[0] >= start && r[0] < start + len);
        expect(runs.map((r) => r.length)).toEqual(slidingRunLengths(len));
        for (const run of runs) for (const i of run) expect(p.layers[i].kvSource).toBe(run[0]);
      }
    });
  });

  it.each(MA_FAMILY.filter((n) => n !== 'characterai'))('%s: no lone sliding layer once there are 8 layers or more', (name) => {
    for (const L of range(8, 40)) {
      expect(slidingStretches(presetPlan(name, L)).every(([, len]) => len >= 2), `L=${L}`).toBe(true);
    }
  });
});

describe('standard, sliding, gemma3, cla2', () => {
  it('standard: all global, each owns its cache', () => {
    forAll('standard', (p, L) => {
      expect(globalLayers(p)).toEqual(range(0, L - 1));
      expect(ownerLayers(p)).toEqual(range(0, L - 1));
    });
  });

  it('sliding: all sliding, each owns its cache', () => {
    forAll('sliding', (p, L) => {
      expect(globalLayers(p)).toEqual([]);
      expect(ownerLayers(p)).toEqual(range(0, L - 1));
    });
  });

  it('gemma3: global where (i+1) % 6 == 0, every layer owns', () => {
    forAll('gemma3', (p, L) => {
      expect(globalLayers(p)).toEqual(range(0, L - 1).filter((i) => (i + 1) % 6 === 0));
      expect(ownerLayers(p)).toEqual(range(0, L - 1));
    });
    expect(globalLayers(presetPlan('gemma3', 26))).toEqual([5, 11, 17, 23]);
  });

  it('cla2: all global, adjacent pairs share the first one, an odd last layer owns its own', () => {
    forAll('cla2', (p, L) => {
      expect(globalLayers(p)).toHaveLength(L);
      expect(p.layers.map((l) => l.kvSource)).toEqual(range(0, L - 1).map((i) => i - (i % 2)));
      if (L % 2 === 1) expect(p.layers[L - 1].kvSource).toBe(L - 1);
    });
  });
});

describe('characterai', () => {
  it('matches the LLM Foundry 13-layer encoding exactly', () => {
    const p = presetPlan('characterai', 13);
    const G = (src: number) => ({ attention: { kind: 'global' }, kvSource: src });
    const S = (src: number) => ({ attention: { kind: 'sliding', window: 1024 }, kvSource: src });
    expect(p.layers).toEqual([G(0), S(1), S(1), S(3), S(3), S(3), G(0), S(7), S(7), S(9), S(9), S(9), G(0)]);
  });

  it('is global at 0, 6, 12, ..., all reading layer 0', () => {
    forAll('characterai', (p, L) => {
      expect(globalLayers(p)).toEqual(range(0, L - 1).filter((i) => i % 6 === 0));
      for (const g of globalLayers(p)) expect(p.layers[g].kvSource).toBe(0);
    });
  });
});

describe('ma', () => {
  it('has global layers spread through the depth, including the first and last', () => {
    forAll('ma', (p, L) => {
      const g = globalLayers(p);
      expect(g[0]).toBe(0);
      expect(g[g.length - 1]).toBe(L - 1);
      for (let k = 1; k < g.length; k++) expect(g[k] - g[k - 1]).toBeLessThanOrEqual(8);
      if (L >= 20) expect(g.length).toBeGreaterThanOrEqual(Math.floor(L / 6));
      for (const i of g) expect(p.layers[i].kvSource).toBe(0);
    });
    expect(globalLayers(presetPlan('ma', 24))).toEqual([0, 6, 12, 18, 23]);
  });
});

describe('ma-endslide', () => {
  it("is ma with the last layer sliding and layer 0 still global", () => {
    forAll('ma-endslide', (p, L) => {
      const ma = globalLayers(presetPlan('ma', L));
      expect(globalLayers(p)).toEqual(L === 1 ? [0] : ma.slice(0, -1));
      if (L > 1) expect(p.layers[L - 1].attention.kind).toBe('sliding');
      for (const i of globalLayers(p)) expect(p.layers[i].kvSource).toBe(0);
    });
  });

  it('coincides with characterai exactly when L <= 6 or L % 6 is 0, 4 or 5', () => {
    forAll('ma-endslide', (p, L) => {
      const same = JSON.stringify(p.layers) === JSON.stringify(presetPlan('characterai', L).layers);
      expect(same, `L=${L}`).toBe(L <= 6 || [0, 4, 5].includes(L % 6));
    });
  });
});

describe('ma-offset', () => {
  it('computes the global cache near L/4, read by every global layer, with sliding layers before it', () => {
    forAll('ma-offset', (p, L) => {
      const g = globalLayers(p);
      const owner = g[0];
      expect(Math.abs(owner - L / 4)).toBeLessThanOrEqual(0.5);
      expect(p.layers[owner].kvSource).toBe(owner);
      for (const i of g) expect(p.layers[i].kvSource).toBe(owner);
      expect(range(0, owner - 1).every((i) => p.layers[i].attention.kind === 'sliding')).toBe(true);
      expect(g[g.length - 1]).toBe(L - 1);
      if (L > 1) expect(p.layers[0].attention.kind).toBe('sliding');
    });
    expect(globalLayers(presetPlan('ma-offset', 24))).toEqual([6, 12, 18, 23]);
  });
});

describe('ma-pairs', () => {
  it('has exactly two global caches, each read by half of the global layers', () => {
    forAll('ma-pairs', (p, L) => {
      const g = globalLayers(p);
      expect(g).toEqual(globalLayers(presetPlan('ma', L)));
      const owners = g.filter((i) => p.layers[i].kvSource === i);
      if (L === 1) {
        expect(owners).toEqual([0]);
        return;
      }
      expect(owners).toHaveLength(2);
      expect(owners[0]).toBe(0);
      const readers = owners.map((o) => g.filter((i) => p.layers[i].kvSource === o));
      expect(readers[0].length + readers[1].length).toBe(g.length);
      expect(Math.abs(readers[0].length - readers[1].length)).toBeLessThanOrEqual(1);
      expect(Math.max(...readers[0])).toBeLessThan(Math.min(...readers[1])); // halves, in depth order
    });
    const p24 = presetPlan('ma-pairs', 24);
    expect(globalLayers(p24).map((i) => [i, p24.layers[i].kvSource])).toEqual([[0, 0], [6, 0], [12, 12], [18, 12], [23, 12]]);
  });

  it("matches the 22-layer MixAttention-Pairs port except for ma's global last layer", () => {
    const port = parsePlan('0 1s 1s 3s 3s 3s 0 7s 7s 9s 9s 9s 12 13s 13s 15s 15s 15s 12 19s 19s 19s');
    const ours = presetPlan('ma-pairs', 22);
    expect(ours.layers.slice(0, 21)).toEqual(port.layers.slice(0, 21));
    expect(ours.layers[21]).toEqual({ attention: { kind: 'global' }, kvSource: 12 });
  });
});

describe('preset errors', () => {
  it('names an unknown preset and lists the valid ones', () => {
    expect(() => presetPlan('mixattention', 24)).toThrow(PlanError);
    expect(() => presetPlan('mixattention', 24)).toThrow(/'mixattention'/);
    for (const n of PRESET_NAMES) expect(() => presetPlan('nope', 4)).toThrow(new RegExp(`\\b${n}\\b`));
  });

  it.each([0, -1, 2.5, Number.NaN])('rejects layer count %s', (L) => {
    expect(() => presetPlan('ma', L)).toThrow(/layer count/);
  });

  it.each([0, 1.5, -8])('rejects window %s', (window) => {
    expect(() => presetPlan('sliding', 4, { window })).toThrow(/window/);
  });
});
