import { it } from 'vitest';
import { kvReport } from '../../lib/kv/report.js';
import { presetPlan } from '../../lib/plan/presets.js';
it('perf', () => {
  for (const name of ['standard', 'sliding', 'ma', 'ma-pairs', 'cla2', 'gemma3', 'characterai']) {
    for (const chunk of [2048, 256, 1]) {
      const t = performance.now();
      const r = kvReport(presetPlan(name, 24), { numKvHeads: 8, headDim: 128, dtypeBytes: 2, context: 32768, budgetBytes: '40GiB', chunk });
      console.log(name, chunk, r.totalPages, r.pagesPerSequence, r.maxConcurrentSequences, r.allocatorReached, (performance.now() - t).toFixed(0) + 'ms');
    }
  }
});
