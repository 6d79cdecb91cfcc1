#!/usr/bin/env python3
"""Exports a trained model (train.py's <out>/<name>/: model.pt, config.json, train-log.json) as a
Hugging Face model directory (contract A in the project notes; docs/hf.md):

    config.json              LlamaForCausalLM config + layer_types / sliding_window / kv_sources
    model.safetensors        HF Llama tensor names, bf16 (--dtype f32 for float32); tied
                             embeddings, so no lm_head.weight; reader layers have no k/v_proj
    generation_config.json   bos = pad = <|endoftext|>, eos = <|endoftext|> and <|end|>
    tokenizer.json, tokenizer_config.json   copied from --tokenizer-dir
    train-log.json           copied from the run

    python3 train/export.py train/build/runs/plans/ma train/build/models/ma [--dtype f32]

Everything is checked before anything is written: the state dict must hold exactly the tensors
(names and shapes) that config.json implies. The safetensors file is read back and compared.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import model as M  # noqa: E402

DTYPES = {"bf16": (torch.bfloat16, "bfloat16"), "f32": (torch.float32, "float32")}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class ExportError(ValueError):
    pass


def expected_shapes(cfg: M.ModelConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        m = M.PlanLM(cfg)
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def special_ids(tokenizer_dir: Path | None, cfg: M.ModelConfig) -> dict:
    """bos/eos/pad for generation_config.json: from the tokenizer's added tokens when given."""
    eot = cfg.extra.get("eos_token_id", 0)
    eos = [eot]
    if tokenizer_dir is not None:
        added = {t["content"]: t["id"] for t in json.loads((tokenizer_dir / "tokenizer.json").read_text()).get("added_tokens", [])}
        if "<|endoftext|>" not in added:
            raise ExportError(f"{tokenizer_dir / 'tokenizer.json'}: no <|endoftext|> token")
        eot = added["<|endoftext|>"]
        eos = [eot] + ([added["<|end|>"]] if "<|end|>" in added else [])
        if eot != cfg.extra.get("eos_token_id", eot):
            raise ExportError(f"config.json eos_token_id {cfg.extra.get('eos_token_id')} != <|endoftext|> id {eot} of the tokenizer")
    return {"bos_token_id": eot, "eos_token_id": eos, "pad_token_id": eot}


def export(cfg: M.ModelConfig, state: dict[str, torch.Tensor], out: Path, *, dtype: str = "bf16",
           tokenizer_dir: Path | None = None, train_log: Path | dict | None = None) -> Path:
    """Writes the HF directory `out` (created; files in it are replaced). Returns `out`."""
    if dtype not in DTYPES:
        raise ExportError(f"--dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    want = expected_shapes(cfg)
    for name in state:
        if name not in want:
            raise ExportError(f"tensor '{name}' is not part of the model config.json describes")
    for name, shape in want.items():
        if name not in state:
            raise ExportError(f"tensor '{name}' is missing from the state dict")
        if tuple(state[name].shape) != shape:
            raise ExportError(f"tensor '{name}' has shape {list(state[name].shape)}, config.json implies {list(shape)}")
    if tokenizer_dir is not None:
        for f in TOKENIZER_FILES:
            if not (tokenizer_dir / f).exists():
                raise ExportError(f"{tokenizer_dir / f} is missing")
    torch_dtype, dtype_name = DTYPES[dtype]
    tensors = {k: state[k].detach().to("cpu", torch_dtype).contiguous().clone() for k in sorted(want)}
    for k, v in tensors.items():
        if not torch.isfinite(v.float()).all():
            raise ExportError(f"tensor '{k}' holds a non-finite value")

    out.mkdir(parents=True, exist_ok=True)
    config = cfg.to_hf()
    config["dtype"] = dtype_name
    config.pop("torch_dtype", None)
    generation = special_ids(tokenizer_dir, cfg)
    # config.json keeps one eos (<|endoftext|>); generation_config.json lists every stop id.
    config.update(bos_token_id=generation["bos_token_id"], eos_token_id=generation["eos_token_id"][0],
                  pad_token_id=generation["pad_token_id"])
    (out / "config.json").write_text(json.dumps(dict(sorted(config.items())), indent=2) + "\n")
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    if tokenizer_dir is not None:
        for f in TOKENIZER_FILES:
            shutil.copyfile(tokenizer_dir / f, out / f)
    if isinstance(train_log, Path):
        shutil.copyfile(train_log, out / "train-log.json")
    elif isinstance(train_log, dict):
        (out / "train-log.json").write_text(json.dumps(train_log, indent=1) + "\n")

    back = load_file(str(out / "model.safetensors"))
    if back.keys() != tensors.keys() or any(not torch.equal(back[k], tensors[k]) for k in tensors):
        raise ExportError(f"{out / 'model.safetensors'}: read back differs from what was written")
    return out


def check_engine(out: Path, n_prompt: int = 400, n_new: int = 16) -> str:
    """Greedy continuation by our engine (mixattn CLI, CPU backend) vs PlanLM (float32 on the
    exported weights) for a prompt longer than the sliding window. Needs node and dist/."""
    import subprocess

    cli = HERE.parent / "dist" / "lib" / "cli" / "main.js"
    if not cli.exists():
        raise ExportError(f"--check-engine needs {cli} (npx tsc -p tsconfig.json) and node")
    cfg = M.load_config(out / "config.json")
    m = M.PlanLM(cfg)
    m.load_state_dict({k: v.float() for k, v in load_file(str(out / "model.safetensors")).items()}, strict=True)
    m.eval()
    heldout = HERE / "build" / "data" / "heldout.bin"
    if heldout.exists():
        import numpy as np

        ids = [int(i) for i in np.fromfile(heldout, dtype="<u2")[1000:1000 + n_prompt]]
    else:
        ids = torch.randint(4, cfg.vocab_size, (n_prompt,), generator=torch.Generator().manual_seed(0)).tolist()
    want, logits = m.greedy(ids, n_new)
    top2 = logits[len(ids) - 1:].topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    cmd = ["node", str(cli), "generate", "--model", str(out), "--prompt-ids", ",".join(map(str, ids)), "--max-tokens",
           str(n_new), "--greedy", "--ignore-eos", "--json", "--backend", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ExportError(f"{out}: mixattn generate failed: {(r.stderr or r.stdout).strip()[-500:]}")
    got = json.loads(r.stdout.strip().splitlines()[-1])["tokenIds"]
    if got != want:
        k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        raise ExportError(f"{out}: engine greedy differs from train/model.py at step {k} (margin there "
                          f"{margins[k] if k < len(margins) else float('nan'):.4f}): engine {got}, torch {want}")
    return f"engine greedy == torch greedy over {n_new} tokens after {len(ids)} (min margin {min(margins):.3f})"


def load_run_model(run_dir: Path) -> tuple[M.ModelConfig, dict[str, torch.Tensor]]:
    for f in ("config.json", "model.pt"):
        if not (run_dir / f).exists():
            raise ExportError(f"{run_dir / f} is missing (expected train.py's output for one model)")
    cfg = M.load_config(run_dir / "config.json")
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    return cfg, state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="train.py's <out>/<name> directory")
    ap.add_argument("out", type=Path, help="the HF model directory to write")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--tokenizer-dir", type=Path, default=HERE / "tokenizer")
    ap.add_argument("--check-engine", action="store_true", help="then compare our engine's greedy continuation "
                    "(node dist/lib/cli/main.js, CPU) with train/model.py's on the exported weights")
    a = ap.parse_args()
    try:
        cfg, state = load_run_model(a.run_dir)
        log = a.run_dir / "train-log.json"
        export(cfg, state, a.out, dtype=a.dtype, tokenizer_dir=a.tokenizer_dir, train_log=log if log.exists() else None)
        size = sum(f.stat().st_size for f in a.out.iterdir())
        n = sum(v.numel() for v in state.values())
        print(f"exported {a.run_dir} -> {a.out} ({n:,} parameters, {a.dtype}, {size / 1e6:.2f} MB)", flush=True)
        if a.check_engine:
            print(f"  {check_engine(a.out)}")
    except (ExportError, M.ConfigError) as e:
        sys.exit(f"export: {e}")


if __name__ == "__main__":
    main()
