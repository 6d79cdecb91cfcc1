/**
 * A stand-in for the shipped model (models/mixattn-tiny, train/README.md): the same format (6
 * layers under `ma`, bf16 safetensors, the project's tokenizer and chat template, eos
 * <|endoftext|> and <|end|>) with random weights and small widths, written to a temp dir that
 * MIXATTN_DEFAULT_MODEL points the CLI at.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { llamaConfig } from '../../lib/model/config.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { checkpointTensors, tempRoot, writeModelDir } from '../hf/helpers.js';

export const TOKENIZER_DIR = fileURLToPath(new URL('../../train/tokenizer/', import.meta.url));
export const SHIPPED_MODEL_DIR = fileURLToPath(new URL('../../models/mixattn-tiny/', import.meta.url));

/** Window of the stand-in: small, so the demo's sequences outgrow it and sliding caches give blocks back. */
export const STAND_IN_WINDOW = 16;

export function writeStandInModel(dir: string): string {
  const cfg = llamaConfig({ vocabSize: 8192, hiddenSize: 32, intermediateSize: 64, numLayers: 6, numHeads: 4, numKvHeads: 2, headDim: 8, tieWordEmbeddings: true });
  const plan = presetPlan('ma', 6, { window: STAND_IN_WINDOW });
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    hidden_act: 'silu',
    max_position_embeddings: 1024,
    rms_norm_eps: 1e-5,
    rope_parameters: { rope_theta: 10000, rope_type: 'default' },
    tie_word_embeddings: true,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 0,
    eos_token_id: 0,
    pad_token_id: 0,
    dtype: 'bfloat16',
    layer_types: plan.layers.map((l) => (l.attention.kind === 'global' ? 'full_attention' : 'sliding_attention')),
    sliding_window: STAND_IN_WINDOW,
    kv_sources: plan.layers.map((l) => l.kvSource),
  };
  const { hf } = checkpointTensors(cfg, plan, { storage: 'BF16', gemma: false, seed: 11 });
  writeModelDir(dir, { config, tensors: hf, generation: { bos_token_id: 0, eos_token_id: [0, 3], pad_token_id: 0 } });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TOKENIZER_DIR, f), join(dir, f));
  writeFileSync(join(dir, 'train-log.json'), JSON.stringify({ params: 123456, tokens_seen: 4_200_000, final_heldout_loss: 3.21 }));
  return dir;
}

/** A temp dir holding the stand-in model; `cleanup` removes it. */
export function standInModel(): { dir: string; missing: string; cleanup: () => void } {
  const root = tempRoot();
  return { dir: writeStandInModel(root.dir('mixattn-tiny')), missing: root.dir('not-there'), cleanup: root.cleanup };
}
