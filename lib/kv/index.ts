export { kvLayout, type KvClass, type KvLayout, type KvLayoutOptions, type KvPlacement } from './layout.js';
export {
  classBytesPerToken,
  classPageBytesPerToken,
  firstLiveBlock,
  heldBlocks,
  kvBytesAtContext,
  kvBytesPerToken,
  maxConcurrentSequences,
  pagesInBudget,
  pagesPerSequence,
  peakBlocks,
} from './memory-model.js';
export {
  KvBlockManager,
  KvCacheFullError,
  type AddSequenceOptions,
  type KvBlockManagerOptions,
} from './block-manager.js';
export type { PrefixCacheClassStats, PrefixCacheStats } from './prefix-cache.js';
export { growInLockstep, kvReport, type KvClassReport, type KvReport, type KvReportOptions } from './report.js';
export { formatBytes, parseBytes } from './bytes.js';
