/**
 * The server's metrics and their /metrics text. HTTP request counts are labelled by route
 * (the known routes only, so a scan of random URLs cannot grow the label set) and status;
 * time to first token and request duration are measured from the HTTP request's arrival
 * (parsing and tokenization included). The engine's figures come from the scheduler's
 * metrics() (lib/serve), read when scraped.
 */
import type { SchedulerMetrics } from '../serve/index.js';
import { Family, Histogram, scrapedText } from './prometheus.js';

/** vLLM's TTFT buckets (seconds), so dashboards built for it read ours. */
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const E2E_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320];

export class ServerMetrics {
  readonly requests = new Family('mixattn_http_requests_total', 'HTTP requests by route and status (499: the client went away first).', 'counter');
  readonly promptTokens = new Family('mixattn_prompt_tokens_total', 'Prompt tokens of the generations served.', 'counter');
  readonly generationTokens = new Family('mixattn_generation_tokens_total', 'Tokens generated for the generations served.', 'counter');
  readonly finished = new Family('mixattn_generations_finished_total', 'Generations ended, by finish reason (abort: client gone or shutdown).', 'counter');
  readonly ttft = new Histogram('mixattn_time_to_first_token_seconds', 'From the HTTP request arriving to its first token.', TTFT_BUCKETS);
  readonly e2e = new Histogram('mixattn_request_duration_seconds', 'From a generation request arriving to its last token (finished ones).', E2E_BUCKETS);

  render(inFlightHttp: number, s: SchedulerMetrics | undefined): string {
    const parts = [
      this.requests.render(),
      scrapedText('mixattn_http_requests_in_flight', 'HTTP requests being served now.', 'gauge', [{ value: inFlightHttp }]),
      this.promptTokens.render(),
      this.generationTokens.render(),
      this.finished.render(),
      this.ttft.render(),
      this.e2e.render(),
    ];
    if (s) parts.push(schedulerText(s));
    return parts.join('');
  }
}

function schedulerText(s: SchedulerMetrics): string {
  const gauge = (name: string, help: string, value: number) => scrapedText(name, help, 'gauge', [{ value }]);
  const counter = (name: string, help: string, value: number) => scrapedText(name, help, 'counter', [{ value }]);
  const classLabels = (c: SchedulerMetrics['classes'][number]) => ({ class: c.classId, window: c.window });
  return [
    gauge('mixattn_sequences_running', 'Requests holding KV blocks and taking part in steps.', s.running),
    gauge('mixattn_sequences_waiting', 'Requests waiting for admission (the queue; preempted ones included).', s.waiting),
    gauge('mixattn_kv_pages_total', 'Pages in the KV pool (one pool shared by every cache class).', s.pages.total),
    gauge('mixattn_kv_pages_used', 'Pages held by live sequences.', s.pages.used),
    gauge('mixattn_kv_pages_free', 'Pages on the free list.', s.pages.free),
    gauge('mixattn_kv_pages_cached', 'Pages held only by the prefix cache (evictable).', s.pages.cached),
    scrapedText('mixattn_kv_class_pages_used', 'Pages held by live sequences, by cache class (window 0: global).', 'gauge', s.classes.map((c) => ({ labels: classLabels(c), value: c.pages }))),
    scrapedText('mixattn_kv_class_blocks_used', 'Blocks held by live sequences, by cache class.', 'gauge', s.classes.map((c) => ({ labels: classLabels(c), value: c.blocks }))),
    scrapedText('mixattn_tokens_per_second', `Tokens per second over the last ${s.tokensPerSecond.windowSeconds} s, prompt (computed) or generated.`, 'gauge', [
      { labels: { kind: 'prompt' }, value: s.tokensPerSecond.prompt },
      { labels: { kind: 'generation' }, value: s.tokensPerSecond.generation },
    ]),
    counter('mixattn_scheduler_steps_total', 'Engine steps run.', s.totals.steps),
    counter('mixattn_scheduler_preemptions_total', 'Requests preempted (their KV freed, recomputed later).', s.totals.preemptions),
    counter('mixattn_scheduler_recomputed_tokens_total', 'Prompt tokens computed again after a preemption.', s.totals.recomputedTokens),
    counter('mixattn_prefix_cache_query_tokens_total', 'Prompt tokens of admitted sequences looked up in the prefix cache.', s.prefixCache.queryTokens),
    counter('mixattn_prefix_cache_hit_tokens_total', 'Prompt tokens found in the prefix cache (not computed).', s.prefixCache.hitTokens),
  ].join('');
}
