import { describe, it, expect } from 'vitest';
import { PlanError, planViolations, validatePlan, type LayerPlan, type LayerSpec } from '../../lib/plan/index.js';

const G = (kvSource: number, kvRank?: { k: number; v: number }): LayerSpec => ({
  attention: { kind: 'global' },
  kvSource,
  ...(kvRank ? { kvRank } : {}),
});
const S = (kvSource: number, window = 1024, kvRank?: { k: number; v: number }): LayerSpec => ({
  attention: { kind: 'sliding', window },
  kvSource,
  ...(kvRank ? { kvRank } : {}),
});
const plan = (...layers: LayerSpec[]): LayerPlan => ({ name: 'test', layers });

/** The single violation of a plan that breaks exactly one rule. */
function onlyViolation(p: LayerPlan, opts?: { headDim?: number }) {
  const v = planViolations(p, opts);
  expect(v).toHaveLength(1);
  return v[0];
}

describe('planViolations', () => {
  it('accepts valid plans', () => {
    expect(planViolations(plan(G(0)))).toEqual([]);
    expect(planViolations(plan(G(0), S(1), S(1), G(0), S(4, 512), S(4, 256), S(1, 1024)))).toEqual([]);
    // A sliding reader may read a global cache, and equal windows may share.
    expect(planViolations(plan(G(0), S(0, 64), S(2, 64), S(2, 64)))).toEqual([]);
    const r = { k: 32, v: 48 };
    expect(planViolations(plan(G(0, r), G(0, r), S(2), S(2)), { headDim: 64 })).toEqual([]);
  });

  it('needs at least one layer', () => {
    const v = onlyViolation(plan());
    expect(v.layer).toBeUndefined();
    expect(v.message).toMatch(/at least one layer/);
  });

  it('rejects an unknown attention kind', () => {
    const bad = { attention: { kind: 'local' }, kvSource: 1 } as unknown as LayerSpec;
    const v = onlyViolation(plan(G(0), bad));
    expect(v.layer).toBe(1);
    expect(v.message).toMatch(/^layer 1: attention kind "local"/);
  });

  it.each([0, -4, 1.5, Number.NaN])('rejects sliding window %s', (w) => {
    const v = onlyViolation(plan(G(0), G(1), S(2, w)));
    expect(v.layer).toBe(2);
    expect(v.message).toMatch(/^layer 2: sliding window .* must be an integer >= 1$/);
  });

  it('rejects a kvSource that is not an earlier layer', () => {
    const layers = [0, 1, 2, 3, 4, 5, 6].map((i) => G(i));
    const v = onlyViolation(plan(...layers, G(9)));
    expect(v).toEqual({ layer: 7, message: 'layer 7: kvSource 9 must be an earlier layer (or 7 itself)' });
    for (const src of [-1, 0.5, 3]) {
      expect(onlyViolation(plan(G(0), G(src))).message).toMatch(/^layer 1: kvSource .* must be an earlier layer/);
    }
  });

  it('rejects chains: a source must own its cache', () => {
    const v = onlyViolation(plan(G(0), G(0), G(1)));
    expect(v.layer).toBe(2);
    expect(v.message).toMatch(/^layer 2: kvSource 1 is itself a reader of layer 0/);
  });

  it('rejects a global layer reading a sliding cache', () => {
    const v = onlyViolation(plan(S(0), G(0)));
    expect(v.layer).toBe(1);
    expect(v.message).toMatch(/^layer 1: a global layer cannot read the sliding cache of layer 0/);
  });

  it('rejects a sliding reader with a wider window than its sliding source', () => {
    const v = onlyViolation(plan(G(0), S(1, 512), S(1, 1024)));
    expect(v.layer).toBe(2);
    expect(v.message).toBe('layer 2: window 1024 exceeds the window 512 of its source layer 1');
  });

  it('requires reader and source ranks to agree (absent = full width on both)', () => {
    const r = { k: 32, v: 32 };
    expect(onlyViolation(plan(G(0, r), G(0))).message).toMatch(/^layer 1: kvRank full width differs from its source layer 0/);
    expect(onlyViolation(plan(G(0), G(0, r))).message).toMatch(/^layer 1: kvRank \{k: 32, v: 32\} differs/);
    expect(onlyViolation(plan(G(0, r), G(0, { k: 32, v: 16 }))).layer).toBe(1);
  });

  it('rejects ranks that are not positive integers or exceed headDim', () => {
    expect(onlyViolation(plan(G(0, { k: 0, v: 8 }))).message).toBe('layer 0: kvRank.k 0 must be a positive integer');
    expect(onlyViolation(plan(G(0), G(1, { k: 8, v: 2.5 }))).message).toMatch(/^layer 1: kvRank.v 2.5/);
    const wide = plan(G(0), G(1, { k: 64, v: 128 }));
    expect(planViolations(wide)).toEqual([]);
    expect(onlyViolation(wide, { headDim: 64 }).message).toBe('layer 1: kvRank.v 128 exceeds the head dimension 64');
  });

  it('reports every violation in layer order', () => {
    const v = planViolations(plan(S(0, 0), G(0), G(5), S(1, 2048)));
    expect(v.map((x) => x.layer)).toEqual([0, 2, 3]);
    for (const x of v) expect(x.message.startsWith(`layer ${x.layer}: `)).toBe(true);
  });
});

describe('validatePlan', () => {
  it('returns a valid plan unchanged', () => {
    const p = plan(G(0), S(1));
    expect(validatePlan(p)).toBe(p);
  });

  it('throws one PlanError listing every violation under a summary line', () => {
    let err: unknown;
    try {
      validatePlan(plan(G(0), S(0), G(1), G(7)));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlanError);
    const e = err as PlanError;
    const lines = e.message.split('\n');
    expect(lines[0]).toBe("invalid layer plan 'test': 2 violations");
    expect(lines.slice(1).map((l) => l.trim())).toEqual([
      'layer 2: kvSource 1 is itself a reader of layer 0; read layer 0 directly (no chains)',
      'layer 3: kvSource 7 must be an earlier layer (or 3 itself)',
    ]);
    expect(e.layer).toBe(2);
  });

  it('passes headDim through', () => {
    expect(() => validatePlan(plan(G(0, { k: 80, v: 80 })), { headDim: 64 })).toThrow(/exceeds the head dimension 64/);
  });
});
