/**
 * Property tests of prefix caching: random plans, random interleavings of adding sequences
 * with prompts (from a tiny alphabet, so prefixes collide), reserving (alone and in batches),
 * committing with and without tokens, and releasing. A shadow model records, for every page,
 * the content last written into it — (class, salt, the writer's token prefix) — so a hit is
 * checked against what its blocks really hold, independently of the hashing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvBlockManager } from '../../lib/kv/block-manager.js';
import { kvLayout, type KvLayout } from '../../lib/kv/layout.js';
import { firstLiveBlock } from '../../lib/kv/memory-model.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { HEAD_DIM, planArb } from './plan-arb.js';

type Op =
  | { t: 'add'; base: number; len: number; tail: number[]; salt: number; prompt: boolean; run: number }
  | { t: 'reserve'; pick: number; k: number }
  | { t: 'batch'; picks: number[]; ks: number[] }
  | { t: 'commit'; pick: number; k: number; withTokens: boolean; fill: number[] }
  | { t: 'release'; pick: number };

const tokenArb = fc.integer({ min: 0, max: 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('add' as const), base: fc.nat(2), len: fc.nat(30), tail: fc.array(tokenArb, { maxLength: 6 }), salt: fc.constantFrom(0, 0, 0, 1), prompt: fc.boolean(), run: fc.nat(12) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('reserve' as const), pick: fc.nat(), k: fc.nat(12) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('batch' as const), picks: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), ks: fc.array(fc.nat(8), { minLength: 4, maxLength: 4 }) }) },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('commit' as const), pick: fc.nat(), k: fc.nat(12), withTokens: fc.boolean(), fill: fc.array(tokenArb, { minLength: 12, maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('release' as const), pick: fc.nat() }) },
);

/** The test's record of a sequence: the tokens it has computed, its prompt and salt. */
interface Seq {
  id: number;
  prompt: number[];
  salt: number;
  tokens: number[];
  /** prefixes[i]: the first i tokens as a string (labels without rebuilding them). */
  prefixes: string[];
  reservedEnd: number;
}

/** prefixes(t)[i] = the first i tokens of t as a string. */
function prefixStrings(t: readonly number[]): string[] {
  const out = [''];
  for (const x of t) out.push(out[out.length - 1] + String(x));
  return out;
}

/** A cheap assertion for the inner loops (vitest's expect costs microseconds per call). */
function same(got: unknown, want: unknown, what: string): void {
  if (got !== want) throw new Error(`${what}: got ${String(got)}, want ${String(want)}`);
}

class Model {
  readonly live: Seq[] = [];
  /** Page → content last written there: `class|salt|token prefix`. */
  readonly content = new Map<number, string>();
  constructor(readonly kv: KvBlockManager, readonly layout: KvLayout, readonly bases: number[][]) {}

  label(c: number, salt: number, prefix: string): string {
    return `${c}|${salt}|${prefix}`;
  }

  /** Held blocks of a sequence: [class, block, pages]. */
  *held(s: Seq): Generator<[number, number, number[]]> {
    for (const c of this.layout.classes) {
      const row = this.kv.table(s.id, c.id);
      const first = this.kv.firstHeldBlock(s.id, c.id);
      for (let b = first; b < first + this.kv.blocksHeld(s.id, c.id); b++) {
        yield [c.id, b, [...row.subarray(b * c.pagesPerBlock, (b + 1) * c.pagesPerBlock)]];
      }
    }
  }

  /**
   * Bounds on the hit, in blocks. Upper: the longest prefix that the content of live and
   * cached pages could serve. Lower: the same, counting only blocks surely in the key map —
   * cached ones, and live ones shared by two or more sequences (which came from the map).
   */
  bounds(prompt: readonly number[], salt: number): [number, number] {
    const B = this.layout.blockSize;
    const all = new Set<string>();
    const sure = new Set<string>();
    const cached = new Set(this.kv.pageIds().cached);
    for (const [page, label] of this.content) if (cached.has(page)) all.add(label), sure.add(label);
    for (const s of this.live) {
      for (const [c, b, pages] of this.held(s)) {
        const shared = this.kv.blockRefCount(s.id, c, b) > 1;
        for (const p of pages) {
          all.add(this.content.get(p) ?? '');
          if (shared) sure.add(this.content.get(p) ?? '');
        }
      }
    }
    const strs = prefixStrings(prompt);
    const longest = (have: Set<string>): number => {
      for (let n = prompt.length > 0 ? Math.floor((prompt.length - 1) / B) : 0; n > 0; n--) {
        const ok = this.layout.classes.every((c) => {
          for (let b = Math.min(n, firstLiveBlock(c.window, B, n * B)); b < n; b++) {
            if (!have.has(this.label(c.id, salt, strs[(b + 1) * B]))) return false;
          }
          return true;
        });
        if (ok) return n;
      }
      return 0;
    };
    return [longest(sure), longest(all)];
  }

  add(op: Extract<Op, { t: 'add' }>): Seq {
    const prompt = [...this.bases[op.base].slice(0, op.len), ...op.tail];
    const [lower, upper] = this.bounds(prompt, op.salt);
    const id = this.kv.addSequence(op.prompt ? { promptTokens: prompt, salt: op.salt } : { salt: op.salt });
    const cached = this.kv.length(id);
    const B = this.layout.blockSize;
    expect(cached % B).toBe(0);
    expect(cached).toBeLessThanOrEqual(Math.max(0, prompt.length - 1));
    expect(cached).toBeLessThanOrEqual(upper * B);
    if (op.prompt) expect(cached).toBeGreaterThanOrEqual(lower * B);
    const tokens = prompt.slice(0, cached);
    const s = { id, prompt: op.prompt ? prompt : [], salt: op.salt, tokens, prefixes: prefixStrings(tokens), reservedEnd: cached };
    this.live.push(s);
    return s;
  }

  /** Net pages of a batch, counting a shared block as freed when all its users return it. */
  batchNeed(seqs: Seq[], ks: number[]): number {
    const B = this.layout.blockSize;
    let net = 0;
    const returns = new Map<number, { n: number; ppb: number; refs: number }>();
    seqs.forEach((s, i) => {
      const p = s.tokens.length;
      for (const c of this.layout.classes) {
        const first = this.kv.firstHeldBlock(s.id, c.id);
        const end = first + this.kv.blocksHeld(s.id, c.id);
        const live = Math.max(first, firstLiveBlock(c.window, B, p));
        net += c.pagesPerBlock * Math.max(0, Math.ceil((p + ks[i]) / B) - Math.max(end, live));
        for (let b = first; b < Math.min(end, live); b++) {
          const head = this.kv.table(s.id, c.id)[b * c.pagesPerBlock];
          const r = returns.get(head) ?? { n: 0, ppb: c.pagesPerBlock, refs: this.kv.blockRefCount(s.id, c.id, b) };
          r.n++;
          returns.set(head, r);
        }
      }
    });
    for (const r of returns.values()) if (r.n === r.refs) net -= r.ppb;
    return net;
  }

  reserve(seqs: Seq[], ks: number[]): boolean {
    const need = this.batchNeed(seqs, ks);
    const avail = this.kv.availablePages;
    if (seqs.length === 1) expect(this.kv.pagesNeeded(seqs[0].id, ks[0])).toBe(need);
    const before = this.snapshot();
    const ok = seqs.length === 1 ? this.kv.tryReserve(seqs[0].id, ks[0]) : this.kv.tryReserveBatch(seqs.map((s) => s.id), ks);
    expect(ok).toBe(need <= avail);
    if (!ok) {
      expect(this.snapshot()).toEqual(before);
      return false;
    }
    expect(this.kv.availablePages).toBe(avail - need);
    seqs.forEach((s, i) => (s.reservedEnd = Math.max(s.reservedEnd, s.tokens.length + ks[i])));
    return true;
  }

  commit(s: Seq, op: Extract<Op, { t: 'commit' }>): void {
    const k = Math.min(op.k, s.reservedEnd - s.tokens.length);
    const p = s.tokens.length;
    const toks = Array.from({ length: k }, (_, j) => (p + j < s.prompt.length ? s.prompt[p + j] : (op.fill[j] ?? 0)));
    this.kv.commit(s.id, k, op.withTokens ? toks : undefined);
    s.tokens.push(...toks);
    for (const t of toks) s.prefixes.push(s.prefixes[s.prefixes.length - 1] + String(t));
    // The step wrote positions [p, p + k) into every class's blocks (the shadow's writes).
    const B = this.layout.blockSize;
    for (const [c, b, pages] of this.held(s)) {
      if ((b + 1) * B <= p || b * B >= p + k) continue;
      for (const page of pages) this.content.set(page, this.label(c, s.salt, s.prefixes[Math.min(p + k, (b + 1) * B)]));
    }
  }

  snapshot(): unknown {
    const { free, cached } = this.kv.pageIds();
    return { free: [...free], cached, stats: this.kv.prefixCacheStats(), seqs: this.live.map((s) => [...this.held(s)]) };
  }

  check(): void {
    const { kv, layout } = this;
    const B = layout.blockSize;
    const { free, cached } = kv.pageIds();
    const state = new Map<number, string>();
    for (const p of free) state.set(p, 'free');
    for (const p of cached) {
      same(state.has(p), false, `page ${p} both free and cached`);
      state.set(p, 'cached');
    }
    const blockOf = new Map<number, string>(); // page → the class block it belongs to
    const users = new Map<string, number>();
    for (const s of this.live) {
      const len = s.tokens.length;
      same(kv.length(s.id), len, `length of ${s.id}`);
      for (const [c, b, pages] of this.held(s)) {
        const id = `${c}:${pages.join(',')}`;
        users.set(id, (users.get(id) ?? 0) + 1);
        for (const p of pages) {
          same(state.get(p) ?? 'used', 'used', `page ${p} of seq ${s.id} is free or cached`);
          same(blockOf.get(p) ?? id, id, `page ${p} in two class blocks`);
          blockOf.set(p, id);
          state.set(p, 'used');
        }
        // What the sequence attends holds exactly its own prefix (shared blocks included).
        const written = Math.min(len, (b + 1) * B);
        if (written > b * B) {
          const want = this.label(c, s.salt, s.prefixes[written]);
          for (const p of pages) same(this.content.get(p), want, `content of page ${p}, block ${b} of seq ${s.id}`);
        }
      }
      for (const c of layout.classes) {
        // Nothing attendable is missing: positions [firstLive(len), reservedEnd) are held.
        const lo = Math.floor((c.window === 0 ? 0 : Math.max(0, len - c.window + 1)) / B);
        if (lo * B < s.reservedEnd) {
          const first = kv.firstHeldBlock(s.id, c.id);
          same(first <= lo && first + kv.blocksHeld(s.id, c.id) >= Math.ceil(s.reservedEnd / B), true, `seq ${s.id} class ${c.id} holds what it attends`);
        }
      }
    }
    for (const s of this.live) {
      for (const [c, b, pages] of this.held(s)) same(kv.blockRefCount(s.id, c, b), users.get(`${c}:${pages.join(',')}`), `refs of seq ${s.id} block ${b}`);
    }
    expect(state.size).toBe(kv.numPages);
    expect([free.length, cached.length, kv.usedPages]).toEqual([kv.freePages, kv.cachedPages, kv.numPages - free.length - cached.length]);
    for (const c of layout.classes) expect(kv.blocksInUse(c.id)).toBe([...users.keys()].filter((k) => k.startsWith(`${c.id}:`)).length);
  }
}

function run(plan: LayerPlan, blockSize: number, numPages: number, bases: number[][], ops: readonly Op[]): void {
  const layout = kvLayout(plan, { numKvHeads: 1, headDim: HEAD_DIM, dtypeBytes: 2, blockSize });
  const kv = new KvBlockManager(layout, numPages);
  const m = new Model(kv, layout, bases);
  for (const op of ops) {
    if (op.t === 'add') {
      // As a request would: add, then compute the prompt in chunks of `run` while it fits.
      const s = m.add(op);
      m.check();
      while (op.run > 0 && s.tokens.length < s.prompt.length && m.reserve([s], [op.run])) {
        m.commit(s, { t: 'commit', pick: 0, k: op.run, withTokens: op.run % 3 !== 0, fill: [] });
        m.check();
      }
    }
    else if (m.live.length > 0) {
      const s = m.live[(op.t === 'batch' ? op.picks[0] : op.pick) % m.live.length];
      if (op.t === 'reserve') m.reserve([s], [op.k]);
      else if (op.t === 'commit') m.commit(s, op);
      else if (op.t === 'release') {
        kv.release(s.id);
        m.live.splice(m.live.indexOf(s), 1);
      } else {
        const seqs = [...new Set(op.picks.map((i) => m.live[i % m.live.length]))];
        m.reserve(seqs, op.ks.slice(0, seqs.length));
      }
    }
    m.check();
  }
  for (const s of m.live) kv.release(s.id);
  expect(kv.usedPages).toBe(0);
  expect(kv.freePages + kv.cachedPages).toBe(numPages);
  for (const c of layout.classes) expect(kv.blocksInUse(c.id)).toBe(0);
}

describe('prefix caching properties', () => {
  it('shares only blocks holding exactly the prompt prefix, counts references, loses no page', () => {
    fc.assert(
      fc.property(
        planArb,
        fc.constantFrom(1, 2, 4),
        fc.integer({ min: 0, max: 300 }),
        fc.array(fc.array(tokenArb, { minLength: 30, maxLength: 30 }), { minLength: 3, maxLength: 3 }),
        fc.array(opArb, { minLength: 20, maxLength: 60 }),
        (plan, blockSize, numPages, bases, ops) => run(plan, blockSize, numPages, bases, ops),
      ),
      { numRuns: 300 },
    );
  });
});
