/** `mixattn eval`: quality and cost of models through the engine (docs/eval.md). */
export { EvalInputError, parseRetrieval, readHeldout, readRetrieval, type RetrievalItem } from './inputs.js';
export { heldoutTokens, perplexity, scoreWindows, tokenNll, windowsOf, type PerplexityOptions, type PerplexityResult, type WindowsRun } from './perplexity.js';
export { argmax, checkSameTokenizer, compareWithReference, klFromLogProbs, logSoftmax64, type LockstepResult, type ReferenceComparison } from './reference.js';
export { kvRanks, type KvRanks, type RankStats } from './kv-ranks.js';
export { encodeRetrieval, isCorrect, retrieval, tallyRetrieval, type RetrievalCell, type RetrievalOptions, type RetrievalResult } from './retrieval.js';
export { speed, type SpeedOptions, type SpeedRun } from './speed.js';
export { kvCost, parameterCount, planInfo, type KvCost, type PlanInfo } from './cost.js';
export { evaluateModel, heldoutContext, loadReference, modelLabels, openModelDir, DEFAULT_CONTEXT_CAP, type EvalSettings, type LoadedReference, type ModelEval, type OpenedModel } from './model.js';
export { evalMarkdown, type EvalReport, type ReferenceInfo } from './report.js';
export { evalSvg } from './svg.js';
export { EvalProgress, type ProgressSink } from './progress.js';
