#!/usr/bin/env python3
"""PyTorch's own bf16 error against fp32, per op, on the GPU: the yardstick of test/gpu/.

Each CUDA kernel must stay within 2x of what PyTorch itself loses in bf16 on inputs of the same
shapes and distributions as the tests draw (FlashAttention's rule; twin.ts). Inputs are drawn,
rounded to bf16, and then fed both to the fp32 computation (the reference) and to the bf16 one;
the error is ||bf16 - fp32|| / ||fp32|| (2-norm over the tensor), the worst over a few draws and
the shapes listed. Ops follow what PyTorch/HF do in bf16 (HF LlamaRMSNorm, HF rotate_half RoPE,
F.linear, F.silu / F.gelu(tanh), SDPA with its default kernel choice, i.e. FlashAttention).

'model' is the worst whole-model logit error of the HF fixtures (test/fixtures/hf) run by
transformers in bf16 against the same models in fp32, on the fixtures' own prompts and greedy
continuations.

Usage (GPU machine): python3 test/gpu/torch_bf16_bounds.py test/gpu/bf16-bounds.json
"""
import datetime
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

DEV = "cuda"
BF = torch.bfloat16
DRAWS = 3


def rnd(*shape, std=1.0, mean=0.0):
    return (torch.randn(*shape, device=DEV) * std + mean).to(BF).float()


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def worst(fn):
    return max(fn() for _ in range(DRAWS))


def hf_rms(x, w, eps):
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w * xf.to(x.dtype)


def hf_rope(x, pos, theta):  # x [T, H, D]
    d = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, device=DEV).float() / d))
    emb = torch.cat([pos[:, None].float() * inv[None], pos[:, None].float() * inv[None]], -1)
    cos, sin = emb.cos().to(x.dtype)[:, None], emb.sin().to(x.dtype)[:, None]
    rot = torch.cat([-x[..., d // 2:], x[..., : d // 2]], -1)
    return x * cos + rot * sin


def op_bounds():
    e = {}
    tab, scale = rnd(300, 96), math.sqrt(96)
    e["embedding"] = worst(lambda: rel(tab.to(BF) * scale, tab * scale))

    def norm_err(add):
        errs = []
        for rows, dim in [(64, 1024), (13, 30), (5, 4096)]:
            w = rnd(dim, std=0.1, mean=1.0)
            r, d = rnd(rows, dim), rnd(rows, dim)
            if add:
                errs.append(rel(hf_rms(r.to(BF) + d.to(BF), w.to(BF), 1e-6), hf_rms(r + d, w, 1e-6)))
            else:
                errs.append(rel(hf_rms(r.to(BF), w.to(BF), 1e-5), hf_rms(r, w, 1e-5)))
        return max(errs)

    e["rmsnorm"] = worst(lambda: norm_err(False))
    e["addRmsnorm"] = worst(lambda: norm_err(True))
    e["add"] = worst(lambda: (lambda a, b: rel(a.to(BF) + b.to(BF), a + b))(rnd(100003), rnd(100003)))

    def mm(out_fp32):
        errs = []
        for m, n, k in [(1, 512, 256), (7, 96, 40), (64, 384, 512), (200, 30, 24), (9, 301, 64), (1, 1000, 256)]:
            x, w, b = rnd(m, k), rnd(n, k, std=1 / math.sqrt(k)), rnd(n, std=0.1)
            if out_fp32:
                errs.append(rel(F.linear(x.to(BF), w.to(BF)).float(), F.linear(x, w)))
            else:
                errs.append(rel(F.linear(x.to(BF), w.to(BF), b.to(BF)), F.linear(x, w, b)))
        return max(errs)

    e["matmul"] = worst(lambda: mm(False))
    e["logits"] = worst(lambda: mm(True))
    g, u = rnd(33, 1000, std=2.0), rnd(33, 1000)
    e["gated_silu"] = worst(lambda: rel(F.silu(g.to(BF)) * u.to(BF), F.silu(g) * u))
    e["gated_gelu"] = worst(lambda: rel(F.gelu(g.to(BF), approximate="tanh") * u.to(BF), F.gelu(g, approximate="tanh") * u))

    def rope_err():
        errs = []
        for h, d in [(8, 128), (3, 6), (2, 64)]:
            pos = torch.cat([torch.arange(20, device=DEV), torch.randint(0, 100000, (20,), device=DEV)])
            x = rnd(40, h, d)
            for theta in (1e4, 5e5, 1e6):
                errs.append(rel(hf_rope(x.to(BF), pos, theta), hf_rope(x, pos.double(), theta)))
        return max(errs)

    e["rope"] = worst(rope_err)
    return e


def attn_bounds():
    """SDPA bf16 (its default kernel: FlashAttention where it applies) vs fp32 math."""
    e = {}
    for d in (8, 64, 128, 256):
        for kind, (lq, lk, hq, hkv) in {"prefill": (512, 512, 8, 2), "decode": (1, 4096, 8, 2)}.items():
            def one():
                q, k, v = rnd(1, hq, lq, d), rnd(1, hkv, lk, d), rnd(1, hkv, lk, d)
                causal = kind == "prefill"
                out = F.scaled_dot_product_attention(q.to(BF), k.to(BF), v.to(BF), is_causal=causal, enable_gqa=True)
                with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
                    ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=causal, enable_gqa=True)
                return rel(out, ref)
            e[f"attention_{kind}_d{d}"] = worst(one)
    return e


def lowrank_bounds():
    """Attention over low-rank keys (attentionLowRankKeys) as PyTorch runs it in bf16: keys
    expanded by a bf16 linear (k = c·Uᵀ, U bf16 as a checkpoint's k_up), HF RoPE at the keys'
    positions, SDPA; against the same in float64. Rank 32, values at the head dim."""
    e = {}
    r, theta = 32, 1e4
    for d in (64, 128, 256):
        for kind, (lq, lk, hq, hkv) in {"prefill": (512, 512, 8, 2), "decode": (1, 4096, 8, 2)}.items():
            def one():
                c, u = rnd(lk, hkv, r), rnd(d, r, std=1 / math.sqrt(r))
                q, v = rnd(1, hq, lq, d), rnd(1, hkv, lk, d)
                pos = torch.arange(lk, device=DEV)
                causal = kind == "prefill"
                k16 = hf_rope(F.linear(c.to(BF), u.to(BF)), pos, theta).permute(1, 0, 2)[None]
                out = F.scaled_dot_product_attention(q.to(BF), k16, v.to(BF), is_causal=causal, enable_gqa=True)
                k64 = hf_rope(F.linear(c.double(), u.double()), pos.double(), theta).permute(1, 0, 2)[None]
                with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
                    ref = F.scaled_dot_product_attention(q.double(), k64, v.double(), is_causal=causal, enable_gqa=True)
                return rel(out, ref)
            e[f"attention_lowrank_{kind}_d{d}"] = worst(one)
    return e


def model_bounds(fixtures: Path):
    from transformers import AutoModelForCausalLM
    e, detail = {}, {}
    for d in sorted(p for p in fixtures.iterdir() if (p / "expected.json").exists()):
        exp = json.loads((d / "expected.json").read_text())
        if "kv_sources" in json.loads((d / "config.json").read_text()):
            detail[d.name] = "skipped: KV sharing is no HF architecture (its reference is the fixture script's own)"
            continue
        try:
            m32 = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").to(DEV).eval()
        except Exception as ex:  # the mixattn fixture is no HF architecture
            detail[d.name] = f"skipped: {type(ex).__name__}: {str(ex)[:120]}"
            continue
        m16 = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").to(DEV).to(BF).eval()
        errs = []
        with torch.no_grad():
            for p in exp["prompts"]:
                ids = torch.tensor([p["ids"] + p["greedy"][:-1]], device=DEV)
                errs.append(rel(m16(ids).logits.float(), m32(ids).logits))
        detail[d.name] = max(errs)
    e["model"] = max(v for v in detail.values() if isinstance(v, float))
    return e, detail


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "test/gpu/bf16-bounds.json")
    torch.manual_seed(0)
    entries = {**op_bounds(), **attn_bounds(), **lowrank_bounds()}
    model, detail = model_bounds(Path(__file__).resolve().parent.parent / "fixtures" / "hf")
    entries.update(model)
    doc = {
        "what": "PyTorch's bf16 error vs fp32 (||bf16 - fp32|| / ||fp32||), worst of the draws; test/gpu/torch_bf16_bounds.py",
        "device": torch.cuda.get_device_name(0),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "entries": {k: float(f"{v:.4g}") for k, v in sorted(entries.items())},
        "model_fixtures": detail,
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    for k, v in doc["entries"].items():
        print(f"{k:28s} {v:.3e}")


if __name__ == "__main__":
    main()
