#!/usr/bin/env python3
"""Builds the HF-parity fixtures under test/fixtures/hf/: tiny random-initialised models of
every architecture mixattn loads, saved as Hugging Face model directories, with reference
logits and 32-token greedy continuations computed by HF transformers (PyTorch, CPU, float32).

Run (torch CPU + transformers from the local package index, see
scripts/requirements-fixtures.txt):

    python3 -m venv /tmp/hfvenv
    /tmp/hfvenv/bin/pip install -r scripts/requirements-fixtures.txt
    /tmp/hfvenv/bin/python scripts/hf_fixtures.py            # writes test/fixtures/hf/
    /tmp/hfvenv/bin/python scripts/hf_fixtures.py --check    # rebuilds in memory, compares

The output is deterministic for a given torch/transformers version (fixed seeds, CPU, one
thread); --check says whether the committed fixtures are what this script makes.

Fixtures (one directory each)
-----------------------------
  llama3        LlamaForCausalLM, llama3 RoPE scaling (all three frequency bands hit), GQA 4:2
  mistral       MistralForCausalLM, sliding_window 8 on every layer, MQA 4:1, bf16 weights
  qwen2         Qwen2ForCausalLM, q/k/v bias, tied embeddings, LEGACY config format (rope_theta;
                use_sliding_window=false next to a sliding_window value and max_window_layers,
                as Qwen2.5 ships: the window must be ignored)
  qwen3         Qwen3ForCausalLM, q/k RMSNorm, head_dim 24 != hidden/heads (16)
  gemma2        Gemma2ForCausalLM, attention + final soft-caps small enough to bite, sandwich
                norms, alternating sliding/full, query_pre_attn_scalar 24 != head_dim 32, GeGLU,
                embedding scale, bf16 weights
  gemma3        Gemma3ForCausalLM / Gemma3TextConfig, transformers-5 format: layer_types,
                rope_parameters keyed by layer type (local base 1e4, global 1e6), q/k norm
  gemma3-legacy the same family in the published (transformers 4.5x) format: rope_theta,
                rope_local_base_freq, rope_scaling {linear, factor 8} (global layers only),
                sliding_window_pattern 3, no layer_types, torch_dtype, eos_token_id a list.
                The script checks HF loads it exactly as the equivalent transformers-5 config.
  mixattn       a MixAttention checkpoint: Llama config plus per-layer KV sharing (format below),
                reference computed by an independent PyTorch implementation in this script.

Weights: every tensor is set explicitly (not HF's init) so that logits are O(1) and greedy
continuations are non-trivial: embeddings N(0, 1) (tied to the head: N(0, 0.2^2); Gemma:
N(0, 0.25^2 / hidden), as it scales them by sqrt(hidden) -- larger rows make the tied models
repeat one token forever), linear weights N(0, 0.2^2), biases N(0, 0.5^2),
RMSNorm weights uniform in [0.7, 1.3] -- for Gemma's zero-centred norms (y = x_hat * (1 + w))
w is uniform in [-0.3, 0.3], so the (1 + w) convention is actually tested (HF initialises those
to 0). Attention is "eager" everywhere (exact sliding-window masks).

For bf16 fixtures the float32 model is cast to bf16 and saved; every reference (bf16 or not) is
computed by the model RE-LOADED from the fixture directory as float32, so it sees exactly the
bytes on disk.

Greedy generation: model.generate(do_sample=False, max_new_tokens=32, use_cache=True) with a
GenerationConfig whose eos_token_id is None (nothing can stop it early and no logits processor
touches the scores: min_new_tokens is not used because it would mask EOS and change greedy).
The script then asserts argmax(output_logits[t]) == token t for every step, and that a full
no-cache forward over prompt + continuation gives the same tokens and logits (within 1e-4 of the
logit scale). The directories are complete checkpoints: config.json carries real special ids
(pad 0, bos 1, eos 2 = the tiny tokenizer's <|pad|> <|bos|> <|eos|>; gemma3-legacy lists eos
[2, 6] as Gemma 3 lists <eos> and <end_of_turn>), generation_config.json repeats them, and the
tiny tokenizer (test/fixtures/tokenizer/tiny: tokenizer.json, tokenizer_config.json) is copied
in; the vocabulary is the tokenizer's (300). The script finally re-loads each directory and
requires HF generate with its saved generation config to reproduce the continuations.

Prompts are random token ids (seeded, no special ids: 7 .. vocab-1) of lengths 6, 21 and 37
(window 8: one shorter than the window, two longer). Candidates are drawn until every greedy
step has a top-1/top-2 logit margin >= 1e-3 * max|logit| (float rounding cannot flip a token)
and the continuation holds no EOS id (a runner that honours EOS still emits all 32 tokens).

expected.json (format 1)
------------------------
{
  "format": 1,
  "name": "llama3",
  "architecture": "LlamaForCausalLM",
  "description": "...",
  "config_format": "transformers5" | "legacy",
  "weights_dtype": "float32" | "bfloat16",
  "vocab_size": 300,
  "versions": {"torch": "...", "transformers": "...", "python": "...", "numpy": "..."},
  "reference": "how the logits were computed (HF class + eager attention, or the mixattn impl)",
  "generation": {"max_new_tokens": 32, "call": "...", "eos": "..."},
  "tokenizer_sha256": "...",         // of the tokenizer.json copied in
  "logits_file": "logits.f32",
  "logits_layout": "little-endian float32, logits_rows rows of vocab_size values",
  "logits_rows": 160,
  "prompts": [
    {
      "ids": [...],                    // prompt token ids (no BOS added; use them as they are)
      "prompt_logits_row": 0,          // rows [r, r + len(ids)): logits at every prompt position
      "greedy": [... 32 ids ...],      // HF's greedy continuation
      "greedy_logits_row": 6,          // rows [r, r + 32): logits generate() produced at step t,
                                       // i.e. at position len(ids) - 1 + t (step 0 = last prompt
                                       // position, same values as the prompt row up to ~1e-6)
      "min_margin": 0.12,              // smallest top1 - top2 logit gap over the greedy steps
      "max_abs_logit": 6.3
    }, ...
  ],
  "checks": {                          // self-checks the script ran (all passed, or it aborts)
    "generate_vs_full_forward_max_abs": 1e-6,
    ...
  }
}

MixAttention config extension (fixture "mixattn")
--------------------------------------------------
A Llama config ("architectures": ["LlamaForCausalLM"], "model_type": "llama") with
  "layer_types":  ["full_attention" | "sliding_attention", ...]   one per layer
  "sliding_window": W                                              window of the sliding layers:
                                                                   position p attends p-W+1 .. p
  "kv_sources":   [s_0, s_1, ...]                                  s_i = the layer whose KV cache
                                                                   layer i reads; s_i == i: it
                                                                   computes its own, s_i < i: it
                                                                   reads layer s_i's cache
Layers with s_i != i have no self_attn.k_proj / v_proj tensors. Keys are cached after RoPE (the
source's own positions), so a reader uses the source's K/V as they are; the reader applies its
own q_proj, RoPE on its queries, its own window/causal mask, o_proj, MLP and norms.
This is the format lib/hf/architectures.ts reads (documented there and in docs/hf.md).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import transformers
from safetensors.torch import load_file
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

transformers.utils.logging.disable_progress_bar()

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "test" / "fixtures" / "hf"

# Every fixture carries the tiny byte-level BPE tokenizer committed for the tokenizer tests
# (test/fixtures/tokenizer/tiny), so the directories are complete models a user can prompt
# with text; the vocabulary is the tokenizer's, its special ids are the config's.
TOKENIZER_DIR = ROOT / "test" / "fixtures" / "tokenizer" / "tiny"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def tokenizer_vocab() -> int:
    t = json.loads((TOKENIZER_DIR / "tokenizer.json").read_text())
    ids = list(t["model"]["vocab"].values()) + [a["id"] for a in t.get("added_tokens", [])]
    return max(ids) + 1


VOCAB = tokenizer_vocab()
PAD, BOS, EOS, END = 0, 1, 2, 6  # <|pad|> <|bos|> <|eos|> <|end|> in the tiny tokenizer
FIRST_PLAIN_TOKEN = 7  # prompts use no special token
HIDDEN = 64
INTERMEDIATE = 128
WINDOW = 8
PROMPT_LENGTHS = (6, 21, 37)
MAX_NEW_TOKENS = 32
MARGIN_REL = 1e-3  # required top1-top2 gap at every greedy step, relative to max |logit|
SELF_CHECK_REL = 1e-4  # HF cached generate vs HF full forward, relative to max |logit|

# Canonical HF RoPE/RMSNorm conventions (shared by every family here).
STD_EMBED = 1.0
STD_EMBED_GEMMA = 0.25  # times 1/sqrt(hidden): after Gemma's sqrt(hidden) scale, N(0, 0.25^2)
STD_LINEAR = 0.2
STD_BIAS = 0.5
NORM_SPREAD = 0.3


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------

def zero_centred_norm(module: torch.nn.Module) -> bool:
    """Gemma's RMSNorms compute x_hat * (1 + w); everyone else's x_hat * w."""
    return module.__class__.__name__.startswith("Gemma") and "RMSNorm" in module.__class__.__name__


def is_tied(model: torch.nn.Module) -> bool:
    head = getattr(model, "lm_head", None)
    return head is not None and head.weight is model.get_input_embeddings().weight


@torch.no_grad()
def randomise(model: torch.nn.Module, seed: int) -> None:
    """Sets every parameter explicitly (see the module docstring for why these scales)."""
    g = torch.Generator().manual_seed(seed)
    done: set[int] = set()  # a tied lm_head is the embedding: set it once, by the embedding rule
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}"
            if id(p) in done:
                continue
            done.add(id(p))
            if "RMSNorm" in module.__class__.__name__:
                u = torch.rand(p.shape, generator=g) * 2 - 1
                p.copy_(u * NORM_SPREAD if zero_centred_norm(module) else 1 + u * NORM_SPREAD)
            elif isinstance(module, torch.nn.Embedding):
                std = STD_EMBED
                if "ScaledWordEmbedding" in module.__class__.__name__:
                    # Gemma multiplies embeddings by sqrt(hidden) and ties the head: with larger
                    # rows the greedy continuations collapse into repeating one or two tokens.
                    std = STD_EMBED_GEMMA / math.sqrt(p.shape[1])
                elif is_tied(model):
                    std = STD_LINEAR  # the head: keeps logits O(1) as an untied head does
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif isinstance(module, torch.nn.Linear):
                std = STD_BIAS if p_name == "bias" else STD_LINEAR
                p.copy_(torch.randn(p.shape, generator=g) * std)
            else:
                raise RuntimeError(f"no init rule for {full} ({module.__class__.__name__})")


# ----------------------------------------------------------------------------------------------
# Architectures: one function each, returning (config, model class, notes)
# ----------------------------------------------------------------------------------------------

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    intermediate_size=INTERMEDIATE,
    max_position_embeddings=256,
    bos_token_id=BOS,
    pad_token_id=PAD,
    eos_token_id=EOS,
)


@dataclass
class Spec:
    name: str
    architecture: str
    description: str
    make_config: Callable[[], Any]
    model_cls: Any
    seed: int
    dtype: str = "float32"  # storage dtype of the saved weights
    legacy: Callable[[dict], dict] | None = None  # rewrites config.json into the published format


def llama3_config() -> LlamaConfig:
    # head_dim 16, theta 5e5: wavelengths 2*pi*5e5^(i/8) = 6.3, 33, 169, ...; with
    # original_max_position_embeddings 64, low/high freq factors 1/4 the bands are
    # wavelen < 16 (kept), 16..64 (smoothed), > 64 (divided by factor): all three are used.
    return LlamaConfig(
        **COMMON,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        attn_implementation="eager",
    )


def mistral_config() -> MistralConfig:
    return MistralConfig(
        **COMMON,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        rms_norm_eps=1e-5,
        sliding_window=WINDOW,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        attn_implementation="eager",
    )


def qwen2_config() -> Qwen2Config:
    # Qwen2 always has q/k/v bias (no o bias). Global attention on every layer as the published
    # Qwen2/2.5 checkpoints run (use_sliding_window false); the legacy config below keeps their
    # misleading sliding_window / max_window_layers values.
    return Qwen2Config(
        **COMMON,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        use_sliding_window=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        attn_implementation="eager",
    )


def qwen2_legacy(cfg: dict) -> dict:
    """The published Qwen2.5 format: rope_theta at top level, sliding_window set but unused."""
    out = legacy_common(cfg)
    out["rope_theta"] = cfg["rope_parameters"]["rope_theta"]
    out["rope_scaling"] = None
    out["use_sliding_window"] = False
    out["sliding_window"] = WINDOW  # a trap: must be ignored since use_sliding_window is false
    out["max_window_layers"] = 1
    return out


def qwen3_config() -> Qwen3Config:
    return Qwen3Config(
        **COMMON,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,  # != hidden / heads = 16: q_proj is 64 -> 96, o_proj 96 -> 64
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        attention_bias=False,
        use_sliding_window=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        attn_implementation="eager",
    )


def gemma2_config() -> Gemma2Config:
    # Soft-caps chosen so tanh is well inside its non-linear range: attention scores reach
    # ~|5| and logits ~|6| with these weights.
    return Gemma2Config(
        **COMMON,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,  # 4 * 32 = 128 != hidden 64
        query_pre_attn_scalar=24,  # scale 24^-0.5, not head_dim^-0.5
        rms_norm_eps=1e-6,
        sliding_window=WINDOW,
        layer_types=["sliding_attention", "full_attention"] * 2,
        attn_logit_softcapping=4.0,
        final_logit_softcapping=1.0,
        hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        attn_implementation="eager",
    )


def gemma3_config() -> Gemma3TextConfig:
    return Gemma3TextConfig(
        **COMMON,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        rms_norm_eps=1e-6,
        sliding_window=WINDOW,
        layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
        },
        hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        attn_implementation="eager",
    )


def gemma3_legacy_base_config() -> Gemma3TextConfig:
    # What the legacy file below means, said in the transformers-5 format; the script checks
    # that HF reads the rewritten legacy file into the same layer types and RoPE parameters.
    return Gemma3TextConfig(
        **COMMON,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=16,
        rms_norm_eps=1e-6,
        sliding_window=WINDOW,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
        },
        hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        attn_implementation="eager",
    )


def gemma3_legacy(cfg: dict) -> dict:
    """The format of published Gemma 3 checkpoints (transformers 4.50-4.57)."""
    out = legacy_common(cfg)
    # transformers 5 also writes its private _sliding_window_pattern (6, whatever layer_types
    # says) and use_bidirectional_attention; published checkpoints have neither.
    for k in ("layer_types", "_sliding_window_pattern", "use_bidirectional_attention"):
        out.pop(k)
    out["sliding_window_pattern"] = 3  # layer i is full iff (i + 1) % 3 == 0
    rp = cfg["rope_parameters"]
    out["rope_theta"] = rp["full_attention"]["rope_theta"]
    out["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
    out["rope_scaling"] = {"rope_type": "linear", "factor": rp["full_attention"]["factor"]}
    out["cache_implementation"] = "hybrid"
    out["eos_token_id"] = [EOS, END]  # as Gemma 3 lists <eos> and <end_of_turn>
    return out


def legacy_common(cfg: dict) -> dict:
    out = {k: v for k, v in cfg.items() if k not in ("rope_parameters", "dtype")}
    out["torch_dtype"] = cfg["dtype"]
    out["transformers_version"] = "4.50.0"
    return out


# The MixAttention layer layout: entry i = the layer whose cache layer i reads, "s" = sliding.
#   0 1s 1s 0 4s 4s   (6 layers: a global owner, a global reader of it, two sliding caches
#                      each read by the next layer; readers of a sliding source are sliding)
MIXATTN_LAYER_TYPES = ["full_attention", "sliding_attention", "sliding_attention",
                       "full_attention", "sliding_attention", "sliding_attention"]
MIXATTN_KV_SOURCES = [0, 1, 1, 0, 4, 4]


def mixattn_config() -> LlamaConfig:
    return LlamaConfig(
        **COMMON,
        num_hidden_layers=len(MIXATTN_KV_SOURCES),
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        attn_implementation="eager",
    )


def mixattn_extend(cfg: dict) -> dict:
    """Adds the MixAttention extension (see the module docstring) to a saved Llama config."""
    out = dict(cfg)
    out["layer_types"] = MIXATTN_LAYER_TYPES
    out["sliding_window"] = WINDOW
    out["kv_sources"] = MIXATTN_KV_SOURCES
    return out


SPECS = [
    Spec("llama3", "LlamaForCausalLM", "Llama with llama3 RoPE scaling, GQA 4:2, untied head",
         llama3_config, LlamaForCausalLM, seed=101),
    Spec("mistral", "MistralForCausalLM", "Mistral, sliding_window 8 on all layers, MQA, bf16 weights",
         mistral_config, MistralForCausalLM, seed=102, dtype="bfloat16"),
    Spec("qwen2", "Qwen2ForCausalLM", "Qwen2 with q/k/v bias, tied embeddings, published (legacy) config format",
         qwen2_config, Qwen2ForCausalLM, seed=103, legacy=qwen2_legacy),
    Spec("qwen3", "Qwen3ForCausalLM", "Qwen3 with q/k norm and head_dim 24 != hidden/heads",
         qwen3_config, Qwen3ForCausalLM, seed=104),
    Spec("gemma2", "Gemma2ForCausalLM",
         "Gemma 2: soft-caps, sandwich norms, alternating windows, query_pre_attn_scalar, bf16 weights",
         gemma2_config, Gemma2ForCausalLM, seed=105, dtype="bfloat16"),
    Spec("gemma3", "Gemma3ForCausalLM", "Gemma 3 text, transformers-5 config (layer_types, rope_parameters by layer type)",
         gemma3_config, Gemma3ForCausalLM, seed=106),
    Spec("gemma3-legacy", "Gemma3ForCausalLM",
         "Gemma 3 text, published config format (rope_local_base_freq, sliding_window_pattern, linear rope_scaling)",
         gemma3_legacy_base_config, Gemma3ForCausalLM, seed=107, legacy=gemma3_legacy),
]


# ----------------------------------------------------------------------------------------------
# Reference computations
# ----------------------------------------------------------------------------------------------

@dataclass
class PromptResult:
    ids: list[int]
    prompt_logits: torch.Tensor  # [n, V]
    greedy: list[int]
    greedy_logits: torch.Tensor  # [32, V]


def margins(logits: torch.Tensor) -> torch.Tensor:
    top = logits.topk(2, dim=-1).values
    return top[..., 0] - top[..., 1]


@torch.no_grad()
def hf_run(model, ids: list[int], checks: dict) -> PromptResult:
    inp = torch.tensor([ids])
    full = model(inp, use_cache=False).logits[0].float()
    gen_cfg = GenerationConfig(
        do_sample=False, max_new_tokens=MAX_NEW_TOKENS, use_cache=True,
        eos_token_id=None, pad_token_id=PAD, bos_token_id=None,
        output_logits=True, return_dict_in_generate=True,
    )
    # generate() fills unset fields of gen_cfg from the model's own generation config, whose
    # eos_token_id comes from config.json: clear it there too, or generation stops at EOS.
    model.generation_config.eos_token_id = None
    out = model.generate(inp, attention_mask=torch.ones_like(inp), generation_config=gen_cfg)
    greedy = out.sequences[0, len(ids):].tolist()
    glog = torch.stack([l[0] for l in out.logits]).float()
    assert len(greedy) == MAX_NEW_TOKENS, "generate stopped early"
    assert glog.argmax(-1).tolist() == greedy, "a logits processor changed greedy choices"
    # The cached generate path against a plain full forward over prompt + continuation.
    seq = torch.tensor([ids + greedy[:-1]])
    ref = model(seq, use_cache=False).logits[0].float()[len(ids) - 1:]
    scale = ref.abs().max().item()
    diff = (ref - glog).abs().max().item()
    assert ref.argmax(-1).tolist() == greedy, "cached generate and full forward disagree on tokens"
    assert diff <= SELF_CHECK_REL * scale, f"cached generate vs full forward: {diff} (scale {scale})"
    checks["generate_vs_full_forward_max_abs"] = max(checks.get("generate_vs_full_forward_max_abs", 0.0), diff)
    return PromptResult(ids, full, greedy, glog)


def pick_prompts(run: Callable[[list[int]], PromptResult], seed: int, eos: set[int]) -> list[PromptResult]:
    """Draws random prompts until each has a clear greedy path (see MARGIN_REL) that emits no
    EOS id (so a runner that honours EOS still produces all 32 tokens)."""
    g = torch.Generator().manual_seed(seed)
    results = []
    for n in PROMPT_LENGTHS:
        for attempt in range(50):
            ids = torch.randint(FIRST_PLAIN_TOKEN, VOCAB, (n,), generator=g).tolist()
            r = run(ids)
            scale = max(r.prompt_logits.abs().max().item(), r.greedy_logits.abs().max().item())
            if margins(r.greedy_logits).min().item() >= MARGIN_REL * scale and not eos & set(r.greedy):
                results.append(r)
                break
        else:
            raise RuntimeError(f"no prompt of length {n} with a clear greedy path")
    return results


# ----------------------------------------------------------------------------------------------
# MixAttention: an independent implementation of the plan semantics
# ----------------------------------------------------------------------------------------------

class MixAttnReference:
    """A Llama-family decoder with per-layer KV sources and windows, written from the plan's
    definition (DESIGN.md section 2) in float64, straight from the safetensors tensors.

    Each layer: h += o(attn(rope(q(norm1(h))), K_src, V_src)); h += down(silu(gate(x)) * up(x)),
    x = norm2(h). Owners cache K = rope(k(norm1(h))) and V = v(norm1(h)) at their positions;
    a layer whose source is j < i attends over layer j's cached K/V. Sliding layers (window W):
    query at p sees keys at p-W+1 .. p; global: 0 .. p. Incremental decoding keeps every
    owner's full K/V (masking does the windowing), so there is no cache eviction to get wrong.
    """

    def __init__(self, cfg: dict, tensors: dict[str, torch.Tensor]):
        self.cfg = cfg
        self.w = {k: v.to(torch.float64) for k, v in tensors.items()}
        self.L = cfg["num_hidden_layers"]
        self.H = cfg["num_attention_heads"]
        self.KH = cfg["num_key_value_heads"]
        self.D = cfg.get("head_dim") or cfg["hidden_size"] // self.H
        self.eps = cfg["rms_norm_eps"]
        self.src = cfg["kv_sources"]
        self.window = [cfg["sliding_window"] if t == "sliding_attention" else None for t in cfg["layer_types"]]
        rp = cfg["rope_parameters"]
        assert rp["rope_type"] == "default"
        d = self.D
        self.inv_freq = 1.0 / (rp["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        self.lm_head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])

    def norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, pos):  # x [T, heads, D], HF rotate-half convention
        ang = pos[:, None].to(torch.float64) * self.inv_freq[None, :]
        cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None, :]
        sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None, :]
        half = x.shape[-1] // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * cos + rot * sin

    def new_cache(self):
        return {i: (torch.zeros(0, self.KH, self.D, dtype=torch.float64),) * 2 for i in range(self.L) if self.src[i] == i}

    @torch.no_grad()
    def forward(self, tokens: list[int], cache: dict) -> torch.Tensor:
        """Appends `tokens` after what `cache` holds; returns float64 logits [len(tokens), V]."""
        start = next(iter(cache.values()))[0].shape[0]
        T = len(tokens)
        pos = torch.arange(start, start + T)
        w = self.w
        h = w["model.embed_tokens.weight"][torch.tensor(tokens)]
        for i in range(self.L):
            p = f"model.layers.{i}."
            x = self.norm(h, w[p + "input_layernorm.weight"])
            q = self.rope((x @ w[p + "self_attn.q_proj.weight"].T).view(T, self.H, self.D), pos)
            if self.src[i] == i:
                k = self.rope((x @ w[p + "self_attn.k_proj.weight"].T).view(T, self.KH, self.D), pos)
                v = (x @ w[p + "self_attn.v_proj.weight"].T).view(T, self.KH, self.D)
                K, V = cache[i]
                cache[i] = (torch.cat([K, k]), torch.cat([V, v]))
            K, V = cache[self.src[i]]
            kpos = torch.arange(K.shape[0])
            allowed = kpos[None, :] <= pos[:, None]
            if self.window[i] is not None:
                allowed &= kpos[None, :] > pos[:, None] - self.window[i]
            group = self.H // self.KH
            Kh = K.repeat_interleave(group, dim=1)  # [S, H, D]
            Vh = V.repeat_interleave(group, dim=1)
            scores = torch.einsum("thd,shd->hts", q, Kh) / math.sqrt(self.D)
            scores = scores.masked_fill(~allowed[None], float("-inf"))
            att = torch.einsum("hts,shd->thd", scores.softmax(-1), Vh).reshape(T, self.H * self.D)
            h = h + att @ w[p + "self_attn.o_proj.weight"].T
            x = self.norm(h, w[p + "post_attention_layernorm.weight"])
            g = torch.nn.functional.silu(x @ w[p + "mlp.gate_proj.weight"].T)
            h = h + (g * (x @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        return self.norm(h, w["model.norm.weight"]) @ self.lm_head.T

    def run(self, ids: list[int], checks: dict) -> PromptResult:
        full = self.forward(ids, self.new_cache())
        # Greedy with incremental decoding: prefill, then one token per call.
        cache = self.new_cache()
        last = self.forward(ids, cache)[-1]
        greedy, rows = [], []
        for _ in range(MAX_NEW_TOKENS):
            rows.append(last)
            greedy.append(int(last.argmax()))
            last = self.forward([greedy[-1]], cache)[-1]
        glog = torch.stack(rows)
        ref = self.forward(ids + greedy[:-1], self.new_cache())[len(ids) - 1:]
        diff = (ref - glog).abs().max().item()
        assert diff <= 1e-9 * ref.abs().max().item(), f"incremental vs full forward: {diff}"
        checks["incremental_vs_full_forward_max_abs"] = max(checks.get("incremental_vs_full_forward_max_abs", 0.0), diff)
        return PromptResult(ids, full.float(), greedy, glog.float())


@torch.no_grad()
def check_mixattn_reference_against_hf(checks: dict) -> None:
    """The hand-written forward, with every layer its own source, must equal HF Llama (all
    global) and HF Mistral (all sliding) on the same weights: validates norms/RoPE/GQA/masks."""
    for kind, cls, cfg_cls in (("full_attention", LlamaForCausalLM, LlamaConfig),
                               ("sliding_attention", MistralForCausalLM, MistralConfig)):
        cfg = cfg_cls(**{**COMMON, "eos_token_id": None}, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      sliding_window=WINDOW if kind == "sliding_attention" else None,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                      attn_implementation="eager")
        torch.manual_seed(0)
        model = cls(cfg).eval()
        randomise(model, 999)
        d = cfg.to_dict()
        d.update(layer_types=[kind] * 2, sliding_window=WINDOW, kv_sources=[0, 1])
        ref = MixAttnReference(d, dict(model.state_dict()))
        ids = list(range(5, 5 + 30))
        a = model(torch.tensor([ids])).logits[0].double()
        b = ref.forward(ids, ref.new_cache())
        diff = (a - b).abs().max().item() / a.abs().max().item()
        assert diff < 1e-5, f"MixAttnReference vs HF {cls.__name__}: {diff}"
        checks[f"reference_vs_hf_{cls.__name__}_rel"] = diff


# ----------------------------------------------------------------------------------------------
# Building fixtures
# ----------------------------------------------------------------------------------------------

def versions() -> dict:
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def eos_ids(dirpath: Path) -> set[int]:
    e = json.loads((dirpath / "config.json").read_text())["eos_token_id"]
    return set(e) if isinstance(e, list) else {e}


def finish_dir(dirpath: Path) -> None:
    """generation_config.json as a checkpoint ships it (special ids from config.json, nothing
    that changes greedy decoding), and the tokenizer files."""
    cfg = json.loads((dirpath / "config.json").read_text())
    gen = {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
           "pad_token_id": cfg["pad_token_id"], "transformers_version": cfg["transformers_version"]}
    (dirpath / "generation_config.json").write_text(json.dumps(gen, indent=2, sort_keys=True) + "\n")
    for f in TOKENIZER_FILES:
        shutil.copyfile(TOKENIZER_DIR / f, dirpath / f)


def write_expected(dirpath: Path, spec_info: dict, results: list[PromptResult], checks: dict) -> None:
    generation_call = spec_info.pop("generation_call")
    rows, prompts = [], []
    for r in results:
        scale = max(r.prompt_logits.abs().max().item(), r.greedy_logits.abs().max().item())
        p = {"ids": r.ids, "prompt_logits_row": sum(x.shape[0] for x in rows)}
        rows.append(r.prompt_logits)
        p["greedy"] = r.greedy
        p["greedy_logits_row"] = sum(x.shape[0] for x in rows)
        rows.append(r.greedy_logits)
        p["min_margin"] = round(margins(r.greedy_logits).min().item(), 6)
        p["max_abs_logit"] = round(scale, 6)
        prompts.append(p)
    logits = torch.cat(rows).to(torch.float32).contiguous().numpy().astype("<f4")
    (dirpath / "logits.f32").write_bytes(logits.tobytes())
    expected = {
        "format": 1,
        **spec_info,
        "vocab_size": VOCAB,
        "versions": versions(),
        "generation": {
            "max_new_tokens": MAX_NEW_TOKENS,
            "call": generation_call,
            "eos": "eos_token_id=None while generating (nothing stops it early); prompts whose "
                   "continuation contains an EOS id of config.json are not used",
        },
        "tokenizer_sha256": hashlib.sha256((dirpath / "tokenizer.json").read_bytes()).hexdigest(),
        "logits_file": "logits.f32",
        "logits_layout": "little-endian float32, logits_rows rows of vocab_size values",
        "logits_rows": int(logits.shape[0]),
        "prompts": prompts,
        "checks": {k: (float(f"{v:.3g}") if isinstance(v, float) else v) for k, v in checks.items()},
    }
    (dirpath / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def tidy_config(dirpath: Path) -> None:
    p = dirpath / "config.json"
    p.write_text(json.dumps(json.loads(p.read_text()), indent=2, sort_keys=True) + "\n")


def build_hf(spec: Spec, out: Path) -> None:
    torch.manual_seed(spec.seed)
    cfg = spec.make_config()
    model = spec.model_cls(cfg).eval()
    randomise(model, spec.seed)
    checks: dict = {}
    if spec.dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink()  # finish_dir writes the one a checkpoint ships
    if spec.legacy is not None:
        # Reference model from the transformers-5 file first, then rewrite the file into the
        # published format and require HF to read it into the same model.
        v5_cfg = json.loads((out / "config.json").read_text())
        v5 = spec.model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
        (out / "config.json").write_text(json.dumps(spec.legacy(v5_cfg), indent=2, sort_keys=True) + "\n")
        model = spec.model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
        a, b = v5.config, model.config
        assert a.layer_types == b.layer_types, (a.layer_types, b.layer_types)
        assert a.rope_parameters == b.rope_parameters, (a.rope_parameters, b.rope_parameters)
        assert getattr(a, "sliding_window", None) == getattr(b, "sliding_window", None)
        probe = torch.tensor([list(range(3, 3 + 40))])
        with torch.no_grad():
            same = torch.equal(v5(probe).logits, model(probe).logits)
        assert same, "legacy config does not load into the same model"
        checks["legacy_config_loads_identically"] = True
    else:
        tidy_config(out)
        model = spec.model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    assert model.config._attn_implementation == "eager"
    torch.manual_seed(0)
    finish_dir(out)
    results = pick_prompts(lambda ids: hf_run(model, ids, checks), spec.seed, eos_ids(out))
    # The saved directory, with its EOS and generation config, reproduces the continuations.
    reloaded = spec.model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    for r in results:
        inp = torch.tensor([r.ids])
        seq = reloaded.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        assert seq[0, len(r.ids):].tolist() == r.greedy, "saved generation config changes the continuation"
    checks["saved_dir_generate_reproduces"] = True
    write_expected(out, {
        "name": spec.name,
        "architecture": spec.architecture,
        "description": spec.description,
        "config_format": "legacy" if spec.legacy else "transformers5",
        "weights_dtype": spec.dtype,
        "reference": f"transformers {spec.model_cls.__name__}, attn_implementation=eager, float32 "
                     "(weights re-loaded from this directory as float32)",
        "generation_call": "model.generate(input_ids, attention_mask=ones, generation_config="
                           "GenerationConfig(do_sample=False, max_new_tokens=32, use_cache=True, "
                           "eos_token_id=None, output_logits=True, return_dict_in_generate=True))",
    }, results, checks)


def build_mixattn(out: Path) -> None:
    checks: dict = {}
    check_mixattn_reference_against_hf(checks)
    torch.manual_seed(108)
    cfg = mixattn_config()
    model = LlamaForCausalLM(cfg).eval()
    randomise(model, 108)
    for i, s in enumerate(MIXATTN_KV_SOURCES):
        if s != i:  # readers have no K/V projections of their own
            del model.model.layers[i].self_attn.k_proj
            del model.model.layers[i].self_attn.v_proj
    model.save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(mixattn_extend(saved), indent=2, sort_keys=True) + "\n")
    # The reference reads back exactly what was written.
    tensors = load_file(out / "model.safetensors")
    for i, s in enumerate(MIXATTN_KV_SOURCES):
        assert (f"model.layers.{i}.self_attn.k_proj.weight" in tensors) == (s == i)
    ref = MixAttnReference(json.loads((out / "config.json").read_text()), tensors)
    finish_dir(out)
    results = pick_prompts(lambda ids: ref.run(ids, checks), 108, eos_ids(out))
    write_expected(out, {
        "name": "mixattn",
        "architecture": "LlamaForCausalLM",
        "description": "MixAttention checkpoint: Llama config + layer_types/sliding_window/kv_sources "
                       "(plan 0 1s 1s 0 4s 4s, window 8); no k/v projections on reader layers",
        "config_format": "transformers5+mixattn",
        "weights_dtype": "float32",
        "reference": "MixAttnReference in scripts/hf_fixtures.py (float64, written from the plan "
                     "definition; checked against HF Llama/Mistral with every layer its own source)",
        "generation_call": "MixAttnReference: prefill, then one token per forward with its KV cache "
                           "(greedy argmax); checked against full forwards",
    }, results, checks)


def build_all(dest: Path, only: list[str] | None) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    names = [s.name for s in SPECS] + ["mixattn"]
    for name in names:
        if only and name not in only:
            continue
        out = dest / name
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        print(f"building {name} ...", flush=True)
        if name == "mixattn":
            build_mixattn(out)
        else:
            build_hf(next(s for s in SPECS if s.name == name), out)
        size = sum(f.stat().st_size for f in out.iterdir())
        print(f"  {name}: {size / 1024:.0f} KiB", flush=True)


def digest(d: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(d.iterdir())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--only", nargs="*", help="fixture names to build")
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare with --out")
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic reductions
    torch.use_deterministic_algorithms(True)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            build_all(Path(tmp), args.only)
            bad = []
            for d in sorted(Path(tmp).iterdir()):
                if digest(d) != digest(args.out / d.name):
                    bad.append(d.name)
            print("differs: " + ", ".join(bad) if bad else "fixtures are up to date")
            sys.exit(1 if bad else 0)
    build_all(args.out, args.only)


if __name__ == "__main__":
    main()
