/** Sampling policy: parameters, penalties, the reductions (host and device), the sampler, stop strings. */
export {
  DEFAULT_MAX_TOKENS,
  MAX_TOP_LOGPROBS,
  NEUTRAL_SAMPLING,
  SamplingParamError,
  resolveSamplingParams,
  validateSamplingParams,
  type ResolvedSamplingParams,
  type SamplingParams,
} from './params.js';
export { TokenHistory, applyPenalties, penaltiesOf, type Penalties } from './processors.js';
export { SAMPLE_PARAMS_PER_ROW, UNREAD_ROW, packSampling, type DeviceSampling, type PackedSampling } from './device.js';
export { CpuReducer, argmax, type Reduced, type ReduceSpec, type RowReducer, type TokenLogprob } from './reduce.js';
export { Sampler, randomSeed, type SampleResult, type SamplerOptions } from './sampler.js';
export { StopMatcher, type StopPush } from './stop.js';
