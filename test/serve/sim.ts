/**
 * A simulated engine for scheduler tests: a real KvBlockManager (the same reserve / commit /
 * release the real engine does) and fake logits that depend on a sequence's whole token
 * history, so a scheduler that fed a wrong token after a preemption would change the output.
 * Steps resolve on setImmediate, as a native step resolves on the event loop.
 */
import type { StepEntry } from '../../lib/engine/engine.js';
import { KvBlockManager, type AddSequenceOptions } from '../../lib/kv/block-manager.js';
import { kvLayout, type KvLayout } from '../../lib/kv/layout.js';
import { presetPlan } from '../../lib/plan/presets.js';
import type { NextToken, RequestEnd, RequestHandle, SchedulerClient, SchedulerEngine } from '../../lib/serve/index.js';

export const SIM_VOCAB = 50;

/** The token the simulated model predicts after `history` (FNV-1a of the ids, mod vocab). */
export function simNext(history: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const t of history) h = Math.imul(h ^ t, 0x01000193) >>> 0;
  return h % SIM_VOCAB;
}

/** What the simulated model generates greedily after `prompt`, unpreempted and alone. */
export function simReference(prompt: readonly number[], maxTokens: number, stopToken = -1): number[] {
  const h = [...prompt];
  const out: number[] = [];
  while (out.length < maxTokens) {
    const t = simNext(h);
    out.push(t);
    h.push(t);
    if (t === stopToken) break;
  }
  return out;
}

/** Small layouts of both kinds: all-global, and MixAttention (global + sliding classes, shared layers). */
export function simLayout(kind: 'standard' | 'ma', blockSize = 4, window = 6): KvLayout {
  return kvLayout(presetPlan(kind, 6, { window }), { numKvHeads: 1, headDim: 4, blockSize, dtypeBytes: 2 });
}

export class SimEngine implements SchedulerEngine {
  readonly blocks: KvBlockManager;
  /** Sequences added and not released (the block manager has no listing of its own). */
  readonly live = new Set<number>();
  private readonly history = new Map<number, number[]>();
  private readonly maxSteps: number;
  steps = 0;

  constructor(
    layout: KvLayout,
    numPages: number,
    opts: { prefixCache?: boolean; maxSteps?: number } = {},
  ) {
    this.maxSteps = opts.maxSteps ?? 200_000;
    const blocks = new KvBlockManager(layout, numPages, { prefixCache: opts.prefixCache ?? false, hashSeed: 1 });
    const add = blocks.addSequence.bind(blocks);
    const release = blocks.release.bind(blocks);
    blocks.addSequence = (o: AddSequenceOptions = {}) => {
      const s = add(o);
      this.live.add(s);
      // A prefix hit starts the sequence past its cached tokens: those of its prompt.
      this.history.set(s, Array.from(o.promptTokens ?? []).slice(0, blocks.length(s)));
      return s;
    };
    blocks.release = (s: number) => {
      release(s);
      this.live.delete(s);
      this.history.delete(s);
    };
    this.blocks = blocks;
  }

  async step(entries: readonly StepEntry[]): Promise<Float32Array[]> {
    if (++this.steps > this.maxSteps) throw new Error(`sim: more than ${this.maxSteps} steps (starvation or livelock?)`);
    // As Engine.step: all or nothing, before anything runs.
    this.blocks.reserveBatch(entries.map((e) => e.seq), entries.map((e) => e.tokens.length));
    await new Promise((r) => setImmediate(r));
    return entries.map((e) => {
      const h = this.history.get(e.seq)!;
      if (h.length !== this.blocks.length(e.seq)) throw new Error(`sim: history of seq ${e.seq} out of step with its KV length`);
      for (let i = 0; i < e.tokens.length; i++) h.push(e.tokens[i]);
      this.blocks.commit(e.seq, e.tokens.length, e.tokens); // as Engine.step: full blocks are published
      const row = new Float32Array(SIM_VOCAB);
      row[simNext(h)] = 1;
      return row;
    });
  }
}

/** A greedy client: argmax of the row, up to maxTokens or a stop token. */
export class SimClient implements SchedulerClient {
  readonly tokens: number[] = [];
  end: RequestEnd | undefined;
  startedAt = -1;
  handle: RequestHandle | undefined;

  constructor(
    readonly promptIds: readonly number[],
    readonly maxTokens: number,
    readonly stopToken = -1,
  ) {}

  nextToken(row: Float32Array): NextToken {
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    this.tokens.push(best);
    if (best === this.stopToken) return { token: best, finish: 'stop' };
    return this.tokens.length >= this.maxTokens ? { token: best, finish: 'length' } : { token: best };
  }

  onStart(now: number): void {
    this.startedAt = now;
  }

  onEnd(end: RequestEnd): void {
    if (this.end) throw new Error('onEnd called twice');
    this.end = end;
  }
}

/**
 * The block manager's invariants over the live sequences: every held table entry is a page;
 * a page appears in two sequences only as the same block of the same class, shared by a
 * prefix hit (its reference count says how many hold it), never twice in one sequence; and
 * the distinct pages held are exactly the pool's used pages.
 */
export function checkBlocks(engine: SimEngine): void {
  const kv = engine.blocks;
  const where = new Map<number, { cls: number; block: number; holders: number; refs: number }>();
  for (const s of engine.live) {
    const mine = new Set<number>();
    kv.layout.classes.forEach((c) => {
      const t = kv.table(s, c.id);
      const from = kv.firstHeldBlock(s, c.id) * c.pagesPerBlock;
      const to = kv.tableLength(s, c.id);
      for (let i = 0; i < t.length; i++) {
        const inRange = i >= from && i < to;
        if (!inRange && t[i] !== -1) throw new Error(`seq ${s} class ${c.id}: entry ${i} outside its held range holds a page`);
        if (!inRange) continue;
        const p = t[i];
        if (p < 0 || p >= kv.numPages) throw new Error(`seq ${s} class ${c.id}: entry ${i} holds no page`);
        if (mine.has(p)) throw new Error(`page ${p} is held twice by seq ${s}`);
        mine.add(p);
        const block = Math.floor(i / c.pagesPerBlock);
        const w = where.get(p);
        if (!w) {
          where.set(p, { cls: c.id, block, holders: 1, refs: kv.blockRefCount(s, c.id, block) });
          continue;
        }
        if (w.cls !== c.id || w.block !== block) throw new Error(`page ${p} is in two different places (seq ${s} class ${c.id})`);
        w.holders++;
      }
    });
  }
  for (const [p, w] of where) {
    if (w.holders !== w.refs) throw new Error(`page ${p} is held by ${w.holders} sequences but counts ${w.refs} references`);
    if (w.holders > 1 && !kv.prefixCaching) throw new Error(`page ${p} is shared without prefix caching`);
  }
  if (where.size !== kv.usedPages) throw new Error(`live sequences hold ${where.size} pages but the pool has ${kv.usedPages} in use`);
  if (kv.liveSequences !== engine.live.size) throw new Error('live sequence count mismatch');
}
