/**
 * What the server reports about the engine under it: sequences running and waiting, and KV
 * pages per cache class. Read from the Model's engine and block manager; the sequence counts
 * are derived (running = live KV sequences, waiting = the server's generations not yet
 * holding one) until the scheduler (lib/serve/) exposes its own counts.
 */
import type { Model } from '../api/index.js';

export interface KvClassStats {
  readonly id: number;
  /** 'global' or 'sliding'. */
  readonly retention: string;
  /** Window in tokens (0 for global). */
  readonly window: number;
  /** Pages this class's blocks hold across all sequences. */
  readonly pagesUsed: number;
}

export interface EngineStats {
  readonly running: number;
  readonly waiting: number;
  readonly kvPagesTotal: number;
  readonly kvPagesUsed: number;
  readonly kvPagesFree: number;
  readonly kvClasses: readonly KvClassStats[];
}

/** `inFlight`: generations the server has started and not yet seen end. */
export function engineStats(model: Model, inFlight: number): EngineStats {
  const { blocks, layout } = model.engine;
  const running = blocks.liveSequences;
  return {
    running,
    waiting: Math.max(0, inFlight - running),
    kvPagesTotal: blocks.numPages,
    kvPagesUsed: blocks.usedPages,
    kvPagesFree: blocks.freePages,
    kvClasses: layout.classes.map((c) => ({
      id: c.id,
      retention: c.retention.kind,
      window: c.window,
      pagesUsed: blocks.blocksInUse(c.id) * c.pagesPerBlock,
    })),
  };
}
