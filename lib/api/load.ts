/**
 * loadModel: a Hugging Face model directory → a Model ready to generate. The tokenizer is
 * read before the weights, so a broken tokenizer fails before anything heavy is loaded.
 */
import { loadEngine, readModelDir } from '../hf/index.js';
import { Tokenizer } from '../tokenizer/index.js';
import { Model } from './model.js';
import type { LoadModelOptions } from './types.js';

export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<Model> {
  const { plan, backend, threads, kvBudgetBytes, kvDtype, prefixCache, onProgress, prefillChunk, maxBatchTokens, maxRunningSequences, deviceSampling } = options;
  const md = await readModelDir(dir);
  const tokenizer = md.hasTokenizer ? await Tokenizer.fromDir(dir) : undefined;
  const engine = await loadEngine(md, { plan, backend, threads, kvBudgetBytes, kvDtype, prefixCache, onProgress });
  try {
    const limits = { prefillChunk, maxBatchTokens, maxRunningSequences, deviceSampling };
    return new Model(engine, { tokenizer, generation: md.generation, ...limits, dir: md.dir, architecture: md.architecture });
  } catch (e) {
    engine.dispose();
    throw e;
  }
}
