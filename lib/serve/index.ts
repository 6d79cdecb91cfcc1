/** Serving: the continuous-batching scheduler and its metrics. */
export { Scheduler, type SchedulerOptions, type StepInfo } from './scheduler.js';
export type { StepPlan } from './step-planner.js';
export {
  DEFAULT_MAX_BATCH_TOKENS,
  DEFAULT_MAX_RUNNING_SEQUENCES,
  DEFAULT_SCHEDULER_PREFILL_CHUNK,
  type EndReason,
  type NextToken,
  type RequestEnd,
  type RequestHandle,
  type SchedulerClient,
  type SchedulerEngine,
  type SchedulerLimits,
} from './types.js';
export { ITL_BUCKETS_S, LATENCY_BUCKETS_S, type ClassUsage, type HistogramSnapshot, type SchedulerMetrics } from './metrics.js';
