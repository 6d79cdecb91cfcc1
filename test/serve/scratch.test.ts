import { it, expect } from 'vitest';
import { loadModel } from '../../lib/api/index.js';
import { fixture } from '../api/helpers.js';
it('stress', async () => {
  const model = await loadModel(fixture('llama3'), { threads: 2 });
  let rs = 1;
  const rand = () => ((rs = (rs * 1103515245 + 12345) % 2147483648) / 2147483648);
  const jobs = Array.from({ length: 200 }, async (_, i) => {
    const ac = new AbortController();
    const abort = i % 5 === 0 ? (i % 10 === 0 ? { events: 1 + Math.floor(rand() * 12) } : { ms: Math.floor(rand() * 200) }) : undefined;
    const t = abort && 'ms' in abort ? setTimeout(() => ac.abort(), abort.ms) : undefined;
    let n = 0; let fin;
    for await (const c of model.generate('hello world cat', { temperature: 0, maxTokens: 8 + Math.floor(rand() * 25), signal: ac.signal })) {
      n++; fin = c.finishReason;
      if (abort && 'events' in abort && n >= abort.events) ac.abort();
    }
    clearTimeout(t);
    return fin;
  });
  const timer = setInterval(() => console.log(JSON.stringify({ ...model.scheduler.metrics(), timeToFirstToken: 0, requestLatency: 0, classes: 0 })), 2000);
  const r = await Promise.all(jobs);
  clearInterval(timer);
  console.log(r.filter((x) => x === 'abort').length, model.engine.blocks.usedPages);
  model.dispose();
});
