#!/usr/bin/env python3
"""Builds test/fixtures/trained-tiny/<name>/: one tiny model per trained plan (standard, ma,
ma-endslide, ma-offset, ma-pairs, sliding at 12 layers, and tiny = ma at 6 layers), each made by
the real pipeline at toy widths: train/model.py (random init), train/train.py's training step
(a few dozen AdamW steps on a synthetic task, in lockstep, so weights are not symmetric and
greedy paths are not flat) and train/export.py (HF directory: bf16, tiny in f32). Beside each
model: reference.json + logits.f32, what test/train/parity.test.ts checks our engine against.

    /tmp/hfvenv/bin/python train/make-fixtures.py            # writes the fixtures
    /tmp/hfvenv/bin/python train/make-fixtures.py --check    # rebuilds in a temp dir, compares

Toy sizes: hidden 32, 4 query heads x 8, 2 KV heads, intermediate 16, vocab 96, window 8 (so
prompts run far past the window); layer count and kv_sources from train/configs/<name>.json,
i.e. from our lib/plan presets. Every fixture directory stays under ~150 KB.

Reference (reference.json, format 1): PlanLM (train/model.py) in float64 on the weights read
back from the exported model.safetensors, for two prompts (40 and 11 random non-special ids):
  prompts[k].ids          the prompt
  prompts[k].greedy       16 greedy tokens (full re-forward per token)
  prompts[k].logits_row   rows [r, r + len(ids) + 15) of logits.f32: logits at every prompt
                          position and along the greedy path (teacher-forced), i.e. the
                          forward over ids + greedy[:-1]
  prompts[k].min_margin   smallest top1 - top2 gap on the greedy path (prompts are drawn until
                          it is >= 1e-3 x max |logit|, so rounding cannot flip a token)
logits.f32: little-endian float32, logits_rows x vocab_size.
Self-checks (all must pass, values recorded under "checks"): PlanLM float32 with the SDPA mask
and with FlexAttention equals the float64 reference; the independent MixAttnReference of
scripts/hf_fixtures.py equals it; standard equals HF LlamaForCausalLM and sliding equals HF
MistralForCausalLM (transformers, eager attention) on the same weights.
"""
from __future__ import annotations

import argparse
import filecmp
import importlib.util
import json
import platform
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import export as E  # noqa: E402
import model as M  # noqa: E402
import train as TR  # noqa: E402

OUT = ROOT / "test" / "fixtures" / "trained-tiny"
NAMES = ["standard", "ma", "ma-endslide", "ma-offset", "ma-pairs", "sliding", "tiny"]
F32_NAMES = {"tiny"}  # exported in float32 (the --dtype f32 path); the rest in bf16
SIZES = dict(hidden_size=32, num_attention_heads=4, head_dim=8, num_key_value_heads=2, intermediate_size=16,
             vocab_size=96, max_position_embeddings=128)
WINDOW = 8
FIRST_PLAIN = 4  # ids 0..3 are the special tokens
PROMPT_LENGTHS = (40, 11)
NEW_TOKENS = 16
MARGIN_REL = 1e-3
TRAIN = dict(steps=40, rows=8, seq=48, lr=1e-2)

warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")


def fixture_config(name: str) -> M.ModelConfig:
    base = json.loads((HERE / "configs" / f"{name}.json").read_text())
    sliding = "sliding_attention" in base["layer_types"]
    return M.ModelConfig.from_hf({**base, **SIZES, "sliding_window": WINDOW if sliding else None})


def synthetic_batch(rng: np.random.Generator, rows: int, seq: int, vocab: int, perm: np.ndarray) -> torch.Tensor:
    """Rows mixing a local rule (next = perm[cur], 70%) with a long-range one (the row's first 6
    tokens repeated past the window), so both sliding and global layers have something to learn."""
    x = np.empty((rows, seq + 1), dtype=np.int64)
    for r in range(rows):
        x[r, 0] = rng.integers(FIRST_PLAIN, vocab)
        for t in range(1, seq + 1):
            x[r, t] = perm[x[r, t - 1]] if rng.random() < 0.7 else rng.integers(FIRST_PLAIN, vocab)
        at = int(rng.integers(WINDOW + 8, seq - 6))
        x[r, at:at + 6] = x[r, :6]
    return torch.from_numpy(x)


def train_models(names: list[str]) -> dict[str, TR.Trainee]:
    a = SimpleNamespace(seed=7, attn="mask", lr=TRAIN["lr"], weight_decay=0.1, micro_batch=0, grad_clip=1.0,
                        warmup_steps=5, min_lr_frac=0.1)
    dev = torch.device("cpu")
    trainees = {n: TR.Trainee(n, fixture_config(n), a, dev) for n in names}
    rng = np.random.default_rng(11)
    vocab = SIZES["vocab_size"]
    perm = np.concatenate([np.arange(FIRST_PLAIN), FIRST_PLAIN + rng.permutation(vocab - FIRST_PLAIN)])
    for step in range(TRAIN["steps"]):
        x = synthetic_batch(rng, TRAIN["rows"], TRAIN["seq"], vocab, perm)
        for t in trainees.values():
            TR.train_step(t, x[:, :-1], x[:, 1:], TR.lr_at(step, TRAIN["steps"], a), a, dev)
    return trainees


def load_exported(d: Path) -> M.PlanLM:
    cfg = M.load_config(d / "config.json")
    m = M.PlanLM(cfg)
    m.load_state_dict({k: v.float() for k, v in load_file(str(d / "model.safetensors")).items()}, strict=True)
    return m.eval()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def hf_fixtures_module():
    if "hf_fixtures" not in sys.modules:
        spec = importlib.util.spec_from_file_location("hf_fixtures", ROOT / "scripts" / "hf_fixtures.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["hf_fixtures"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["hf_fixtures"]


@torch.no_grad()
def cross_checks(name: str, d: Path, m64: M.PlanLM, ids: list[int], ref: torch.Tensor, checks: dict) -> None:
    x = torch.tensor([ids])
    m32 = load_exported(d)
    for impl in ("mask", "flex"):
        m32.set_attention_impl(impl)
        checks[f"planlm_f32_{impl}_rel"] = max(checks.get(f"planlm_f32_{impl}_rel", 0.0), rel(m32(x)[0], ref))
    tensors = load_file(str(d / "model.safetensors"))
    cfg = json.loads((d / "config.json").read_text())
    other = hf_fixtures_module().MixAttnReference(cfg, {k: v.float() for k, v in tensors.items()})
    checks["hf_fixtures_MixAttnReference_rel"] = max(checks.get("hf_fixtures_MixAttnReference_rel", 0.0),
                                                     rel(other.forward(ids, other.new_cache()), ref))
    if name in ("standard", "sliding"):
        from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

        cls, cfg_cls = (LlamaForCausalLM, LlamaConfig) if name == "standard" else (MistralForCausalLM, MistralConfig)
        hf_cfg = {k: v for k, v in cfg.items() if k not in ("kv_sources", "layer_types", "architectures", "model_type")}
        hf = cls(cfg_cls(**hf_cfg, attn_implementation="eager")).double().eval()
        missing, unexpected = hf.load_state_dict({k: v.double() for k, v in tensors.items()}, strict=False)
        if unexpected or any(k != "lm_head.weight" for k in missing):
            raise AssertionError(f"{name}: HF {cls.__name__} state dict: missing {missing}, unexpected {unexpected}")
        hf.tie_weights()
        checks[f"hf_{cls.__name__}_rel"] = max(checks.get(f"hf_{cls.__name__}_rel", 0.0), rel(hf(x).logits[0], ref))
    for k, v in checks.items():
        if not k.startswith("sensitivity") and v > 1e-5:
            raise AssertionError(f"{name}: self-check {k} = {v:.2e} > 1e-5")


@torch.no_grad()
def sensitivity(m64: M.PlanLM, ids: list[int], ref: torch.Tensor, checks: dict) -> None:
    """The test can fail: a window one wider, or a reader reading another owner, moves the
    logits by far more than the parity tolerance (1e-4)."""
    x = torch.tensor([ids])
    cfg = m64.cfg
    attns = [b.self_attn for b in m64.model.layers]
    found = {}
    if any(a.window for a in attns):
        for a in attns:
            a.window = a.window and a.window + 1
        found["sensitivity_window_plus_1_rel"] = rel(m64(x)[0], ref)
        for a in attns:
            a.window = a.window and a.window - 1
    readers = [a for a in attns if a.source != a.layer]
    if readers:
        moved = []
        for a in readers:
            others = [s for s in range(a.layer) if cfg.is_owner(s) and s != a.source
                      and (a.window is not None or cfg.window(s) is None)]
            if others:
                moved.append((a, a.source))
                a.source = others[-1]
        found["sensitivity_other_kv_source_rel"] = rel(m64(x)[0], ref)
        for a, s in moved:
            a.source = s
    assert rel(m64(x)[0], ref) == 0.0
    for k, v in found.items():
        if v < 1e-2:
            raise AssertionError(f"{k} = {v:.2e}: the logits hardly depend on the plan; the parity test would be weak")
        checks[k] = min(checks.get(k, 1.0), v)


def pick_prompts(m64: M.PlanLM, seed: int, eos: set[int]) -> list[dict]:
    rng = np.random.default_rng(seed)
    vocab = m64.cfg.vocab_size
    out = []
    for n in PROMPT_LENGTHS:
        for attempt in range(200):
            ids = [int(i) for i in rng.integers(FIRST_PLAIN, vocab, n)]
            greedy, logits = m64.greedy(ids, NEW_TOKENS)
            path = logits[n - 1:]
            top2 = path.topk(2, dim=-1).values
            margin = (top2[:, 0] - top2[:, 1]).min().item()
            scale = logits.abs().max().item()
            if margin >= MARGIN_REL * scale and not eos & set(greedy):
                out.append({"ids": ids, "greedy": greedy, "logits": logits, "min_margin": margin, "max_abs_logit": scale})
                break
        else:
            raise AssertionError(f"no prompt of {n} tokens with greedy margins >= {MARGIN_REL} x max|logit| in 200 draws")
    return out


def build(dest: Path) -> None:
    trainees = train_models(NAMES)
    for i, name in enumerate(NAMES):
        t = trainees[name]
        d = dest / name
        if d.exists():
            shutil.rmtree(d)
        state = {k: v.detach() for k, v in t.model.state_dict().items()}
        log = {"name": name, "note": "test fixture: toy widths, synthetic data (train/make-fixtures.py)",
               "params": t.model.num_params(), "steps": TRAIN["steps"], "tokens_seen": TRAIN["steps"] * TRAIN["rows"] * TRAIN["seq"]}
        E.export(t.model.cfg, state, d, dtype="f32" if name in F32_NAMES else "bf16", train_log=log)
        m64 = load_exported(d).double()
        cfg = json.loads((d / "config.json").read_text())
        eos = {cfg["eos_token_id"]} if isinstance(cfg["eos_token_id"], int) else set(cfg["eos_token_id"])
        prompts = pick_prompts(m64, 100 + i, eos)
        checks: dict = {}
        rows, row = [], 0
        for p in prompts:
            seq = p["ids"] + p["greedy"][:-1]
            cross_checks(name, d, m64, seq, p["logits"], checks)
            sensitivity(m64, seq, p["logits"], checks)
            rows.append(p["logits"].float().numpy())
            p.update(logits_row=row, rows=len(seq))
            row += len(seq)
        logits = np.concatenate(rows).astype("<f4")
        logits.tofile(d / "logits.f32")
        plan_name = "ma" if name == "tiny" else name
        ref = {
            "format": 1,
            "name": name,
            "plan": plan_name,
            "plan_notation": t.model.cfg.notation(),
            "num_layers": t.model.cfg.num_layers,
            "sliding_window": t.model.cfg.sliding_window,
            "weights_dtype": cfg["dtype"],
            "vocab_size": t.model.cfg.vocab_size,
            "reference": "train/model.py PlanLM in float64 on the weights read back from model.safetensors",
            "new_tokens": NEW_TOKENS,
            "logits_file": "logits.f32",
            "logits_layout": "little-endian float32, logits_rows rows of vocab_size values",
            "logits_rows": row,
            "prompts": [{k: p[k] for k in ("ids", "greedy", "logits_row", "rows", "min_margin", "max_abs_logit")} for p in prompts],
            "checks": {k: float(f"{v:.3e}") for k, v in sorted(checks.items())},
            "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()},
        }
        (d / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
        size = sum(f.stat().st_size for f in d.iterdir())
        print(f"{name}: {t.model.num_params():,} params, {cfg['dtype']}, {size / 1024:.0f} KB, plan {t.model.cfg.notation()}, "
              f"margins {min(p['min_margin'] for p in prompts):.3f}, checks {ref['checks']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare with the committed fixtures")
    a = ap.parse_args()
    torch.set_num_threads(1)  # deterministic reductions
    if not a.check:
        OUT.mkdir(parents=True, exist_ok=True)
        build(OUT)
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        bad = [f"{n}/{f}" for n in NAMES for f in sorted(p.name for p in (Path(tmp) / n).iterdir())
               if not (OUT / n / f).exists() or not filecmp.cmp(Path(tmp) / n / f, OUT / n / f, shallow=False)]
    if bad:
        sys.exit(f"make-fixtures --check: differ from the committed fixtures: {', '.join(bad)}")
    print("make-fixtures --check: the committed fixtures are what this script makes")


if __name__ == "__main__":
    main()
