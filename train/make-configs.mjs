#!/usr/bin/env node
/**
 * Writes train/configs/<name>.json: the HF LlamaForCausalLM config of every trained model
 * (contract A in the project notes), with the MixAttention extension (layer_types,
 * sliding_window, kv_sources; docs/hf.md) taken from our own plan presets (lib/plan), so the
 * trained layouts are by construction the ones the engine names.
 *
 *   npx tsc -p tsconfig.json && node train/make-configs.mjs          # writes the files
 *   node train/make-configs.mjs --check                               # fails if they differ
 *
 * Vocabulary and special ids come from train/tokenizer/tokenizer.json when it exists
 * (it must have 8192 entries with <|endoftext|> = 0); without it, the contract's values.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const PLAN_JS = join(ROOT, 'dist', 'lib', 'plan', 'index.js');
if (!existsSync(PLAN_JS)) {
  console.error(`make-configs: ${PLAN_JS} is missing; run 'npx tsc -p tsconfig.json' first`);
  process.exit(1);
}
const { presetPlan } = await import(pathToFileURL(PLAN_JS).href);

const VOCAB = 8192;
const EOT = '<|endoftext|>';
const CONTEXT = 1024;
const WINDOW = 128;

const PLAN_MODEL = { layers: 12, hidden: 384, heads: 6, kvHeads: 2, headDim: 64, intermediate: 1024 };
const TINY_MODEL = { layers: 6, hidden: 256, heads: 4, kvHeads: 2, headDim: 64, intermediate: 768 };

/** name -> [plan preset, sizes] */
const MODELS = {
  standard: ['standard', PLAN_MODEL],
  ma: ['ma', PLAN_MODEL],
  'ma-endslide': ['ma-endslide', PLAN_MODEL],
  'ma-offset': ['ma-offset', PLAN_MODEL],
  'ma-pairs': ['ma-pairs', PLAN_MODEL],
  sliding: ['sliding', PLAN_MODEL],
  tiny: ['ma', TINY_MODEL],
};

function tokenizerFacts() {
  const file = join(HERE, 'tokenizer', 'tokenizer.json');
  if (!existsSync(file)) {
    console.error(`make-configs: ${file} not found; using the contract's vocab ${VOCAB} and ${EOT} = 0`);
    return { vocab: VOCAB, eot: 0 };
  }
  const t = JSON.parse(readFileSync(file, 'utf8'));
  const ids = [...Object.values(t.model.vocab), ...(t.added_tokens ?? []).map((a) => a.id)];
  const vocab = Math.max(...ids) + 1;
  const eot = (t.added_tokens ?? []).find((a) => a.content === EOT)?.id;
  if (vocab !== VOCAB) throw new Error(`${file}: vocabulary has ${vocab} ids, the contract says ${VOCAB}`);
  if (eot !== 0) throw new Error(`${file}: ${EOT} has id ${eot}, the contract says 0`);
  return { vocab, eot };
}

function config(preset, m, tok) {
  const plan = presetPlan(preset, m.layers, { window: WINDOW });
  const types = plan.layers.map((l) => (l.attention.kind === 'sliding' ? 'sliding_attention' : 'full_attention'));
  const sliding = plan.layers.find((l) => l.attention.kind === 'sliding');
  // Keys sorted, as transformers writes config.json.
  const c = {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: tok.eot,
    dtype: 'bfloat16',
    eos_token_id: tok.eot,
    head_dim: m.headDim,
    hidden_act: 'silu',
    hidden_size: m.hidden,
    initializer_range: 0.02,
    intermediate_size: m.intermediate,
    kv_sources: plan.layers.map((l) => l.kvSource),
    layer_types: types,
    max_position_embeddings: CONTEXT,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: m.heads,
    num_hidden_layers: m.layers,
    num_key_value_heads: m.kvHeads,
    pad_token_id: tok.eot,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_parameters: { rope_theta: 10000.0, rope_type: 'default' },
    sliding_window: sliding ? sliding.attention.window : null,
    tie_word_embeddings: true,
    use_cache: true,
    vocab_size: tok.vocab,
  };
  if (m.heads * m.headDim !== m.hidden) throw new Error(`heads x head_dim != hidden for ${preset}`);
  return c;
}

const check = process.argv.includes('--check');
const tok = tokenizerFacts();
const outDir = join(HERE, 'configs');
mkdirSync(outDir, { recursive: true });
let stale = 0;
for (const [name, [preset, sizes]] of Object.entries(MODELS)) {
  const file = join(outDir, `${name}.json`);
  const text = `${JSON.stringify(config(preset, sizes, tok), null, 2)}\n`;
  if (check) {
    const same = existsSync(file) && readFileSync(file, 'utf8') === text;
    if (!same) {
      console.error(`make-configs: ${file} is not what this script writes`);
      stale++;
    }
  } else {
    writeFileSync(file, text);
    console.log(`wrote ${file}`);
  }
}
if (stale) process.exit(1);
