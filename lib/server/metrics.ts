/**
 * The server's metrics and their /metrics text. Request counts are labelled by route (the
 * known routes only, so a scan of random URLs cannot grow the label set) and status; engine
 * figures are read when scraped.
 */
import type { EngineStats } from './engine-stats.js';
import { Family, Histogram, gaugeText } from './prometheus.js';

/** vLLM's TTFT buckets (seconds), so dashboards built for it read ours. */
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const E2E_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320];

export class ServerMetrics {
  readonly requests = new Family('mixattn_http_requests_total', 'HTTP requests by route and status (499: the client went away first).', 'counter');
  readonly promptTokens = new Family('mixattn_prompt_tokens_total', 'Prompt tokens of the generations started.', 'counter');
  readonly generationTokens = new Family('mixattn_generation_tokens_total', 'Tokens generated.', 'counter');
  readonly finished = new Family('mixattn_generations_finished_total', 'Generations ended, by finish reason (abort: client gone or shutdown).', 'counter');
  readonly ttft = new Histogram('mixattn_time_to_first_token_seconds', 'From the request arriving to its first token.', TTFT_BUCKETS);
  readonly e2e = new Histogram('mixattn_request_duration_seconds', 'From a generation request arriving to its last token.', E2E_BUCKETS);
  private readonly started = performance.now();

  render(inFlightHttp: number, stats: EngineStats | undefined): string {
    const parts = [
      this.requests.render(),
      gaugeText('mixattn_http_requests_in_flight', 'HTTP requests being served now.', [{ value: inFlightHttp }]),
      this.promptTokens.render(),
      this.generationTokens.render(),
      gaugeText('mixattn_generation_tokens_per_second', 'Tokens generated per second since the server started.', [
        { value: this.generationTokens.get() / Math.max(1e-3, (performance.now() - this.started) / 1000) },
      ]),
      this.finished.render(),
      this.ttft.render(),
      this.e2e.render(),
    ];
    if (stats) {
      parts.push(
        gaugeText('mixattn_sequences_running', 'Sequences holding KV blocks and taking part in steps.', [{ value: stats.running }]),
        gaugeText('mixattn_sequences_waiting', 'Accepted generations not yet running (the queue).', [{ value: stats.waiting }]),
        gaugeText('mixattn_kv_pages_total', 'Pages in the KV pool (one pool shared by every cache class).', [{ value: stats.kvPagesTotal }]),
        gaugeText('mixattn_kv_pages_free', 'Free pages in the KV pool.', [{ value: stats.kvPagesFree }]),
        gaugeText(
          'mixattn_kv_pages_used',
          'Pages held, by cache class.',
          stats.kvClasses.map((c) => ({ labels: { class: c.id, retention: c.retention, window: c.window }, value: c.pagesUsed })),
        ),
      );
    }
    return parts.join('');
  }
}
