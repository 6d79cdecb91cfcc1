/** `mixattn eval`: quality and cost of models through the engine (docs/eval.md). */
export { EvalInputError, parseRetrieval, readHeldout, readRetrieval, type RetrievalItem } from './inputs.js';
export { heldoutTokens, perplexity, tokenNll, windowsOf, type PerplexityOptions, type PerplexityResult } from './perplexity.js';
export { encodeRetrieval, isCorrect, retrieval, tallyRetrieval, type RetrievalCell, type RetrievalOptions, type RetrievalResult } from './retrieval.js';
export { speed, type SpeedOptions, type SpeedRun } from './speed.js';
export { kvCost, parameterCount, planInfo, type KvCost, type PlanInfo } from './cost.js';
export { evaluateModel, modelLabels, openModelDir, DEFAULT_CONTEXT_CAP, type EvalSettings, type ModelEval, type OpenedModel } from './model.js';
export { evalMarkdown, type EvalReport } from './report.js';
export { evalSvg } from './svg.js';
export { EvalProgress, type ProgressSink } from './progress.js';
