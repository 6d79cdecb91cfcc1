#!/usr/bin/env python3
"""Attention benchmark on the GPU machine: our kernels (bench/attention.mjs, through the addon)
against PyTorch SDPA (FlashAttention backend) and FlexAttention (sliding-window block mask) on
the same shapes in the same run, with the machine's ceilings (device copy bandwidth, cuBLAS
bf16 GEMM) measured alongside. Writes bench/results/attention-<date>.json and .md.

Counting: prefill FLOPs = 4 * dim * heads * (attended (query, key) pairs), so sliding-window
rates are effective rates over the pairs the window keeps; decode bytes = the K and V bytes
the step must read (batch * ctx * kvHeads * dim * 2 tensors * 2 bytes).

Our prefill kernel is timed in every configuration it compiles (PREFILL_CONFIGS) besides the
default, each in its own node process.

Usage: python3 bench/attention.py [--quick]    (needs the addon built with CUDA)
"""
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench

ROOT = Path(__file__).resolve().parent.parent
QUICK = "--quick" in sys.argv
H, HKV, D = 32, 8, 128
SHAPES = [
    {"name": "prefill causal 8k", "kind": "prefill", "batch": 1, "ctx": 8192, "window": 0, "repeat": 5},
    {"name": "prefill causal 32k", "kind": "prefill", "batch": 1, "ctx": 32768, "window": 0, "repeat": 2},
    {"name": "prefill sliding W=1024 32k", "kind": "prefill", "batch": 1, "ctx": 32768, "window": 1024, "repeat": 5},
    {"name": "decode 16 x 8k", "kind": "decode", "batch": 16, "ctx": 8192, "window": 0, "repeat": 20},
    {"name": "decode 64 x 2k", "kind": "decode", "batch": 64, "ctx": 2048, "window": 0, "repeat": 20},
    {"name": "decode 1 x 128k", "kind": "decode", "batch": 1, "ctx": 131072, "window": 0, "repeat": 20},
    {"name": "decode 16 x 8k, W=1024", "kind": "decode", "batch": 16, "ctx": 8192, "window": 1024, "repeat": 50},
]
for s in SHAPES:
    s.update(heads=H, kvHeads=HKV, dim=D)
if QUICK:
    SHAPES = [s for s in SHAPES if "32k" not in s["name"] or "sliding" in s["name"]]


def pairs(t, w):
    if w <= 0 or w >= t:
        return t * (t + 1) // 2
    return w * (w + 1) // 2 + (t - w) * w


def work(s):
    if s["kind"] == "prefill":
        return {"flops": 4 * D * H * pairs(s["ctx"], s["window"]) * s["batch"]}
    keys = min(s["ctx"], s["window"]) if s["window"] else s["ctx"]
    return {"bytes": s["batch"] * keys * HKV * D * 2 * 2}


def bench(fn):
    return do_bench(fn, warmup=25, rep=200, return_mode="median") / 1e3


def ceilings():
    x = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    copy = 2 * x.numel() / bench(lambda: y.copy_(x))
    del x, y
    n = 8192
    a, b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16), torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    gemm = 2 * n**3 / bench(lambda: a @ b)
    return {"copy_bytes_per_s": copy, "gemm_bf16_flops_per_s": gemm}


def peers(s):
    out = {}
    T, B = s["ctx"], s["batch"]
    dt = torch.bfloat16
    if s["kind"] == "prefill":
        q = torch.randn(B, H, T, D, device="cuda", dtype=dt)
        k, v = (torch.randn(B, HKV, T, D, device="cuda", dtype=dt) for _ in range(2))
        if s["window"] == 0:
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                out["sdpa-flash"] = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        w = s["window"]
        def mask(b, h, qi, ki):
            return (ki <= qi) & (qi - ki < w) if w else ki <= qi
        bm = create_block_mask(mask, None, None, T, T, device="cuda")
        flex = torch.compile(flex_attention)
        out["flex"] = bench(lambda: flex(q, k, v, block_mask=bm, enable_gqa=True))
    else:
        keys = min(T, s["window"]) if s["window"] else T
        q = torch.randn(B, H, 1, D, device="cuda", dtype=dt)
        k, v = (torch.randn(B, HKV, keys, D, device="cuda", dtype=dt) for _ in range(2))
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            out["sdpa-flash (contiguous K/V)"] = bench(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    return out


# Configurations of the prefill kernel for head dim 128 (native/cuda/attn_prefill_128.cu), each
# timed on the prefill shapes besides the default ("mixattn"); the others were slower in earlier
# runs (native/cuda/README.md lists them all).
PREFILL_CONFIGS = {
    "prefill:1": "mma.sync, 8 warps x 16 rows (BM 128), BN 64, Q in registers (the default without sm_90a code)",
    "prefill:6": "wgmma, 1 warpgroup (BM 64), BN 64, Q and P in registers, 3 blocks/SM, no overlap, K/V copies issued behind the S wgmma (the default on sm_90a)",
    "prefill:9": "wgmma, 1 warpgroup (BM 64), BN 64, softmax(n) overlapping P.V(n-1), 3 stages, 2 blocks/SM",
    "prefill:7": "wgmma, 2 warpgroups (BM 128), BN 64, softmax(n) overlapping P.V(n-1), K/V copies issued behind the GEMMs, 4 stages",
    "prefill:10": "prefill:7 with 3 stages (one tile of prefetch)",
    "prefill:12": "prefill:7 with Q read from shared memory by the S wgmmas",
}


def ours():
    """Our kernels, one node process per configuration (a faulting kernel spoils only its own)."""
    runs = [(None, SHAPES)] + [(p, [dict(s, path=p) for s in SHAPES if s["kind"] == "prefill"]) for p in PREFILL_CONFIGS]
    res = {}
    for path, shapes in runs:
        try:
            r = subprocess.run(["node", str(ROOT / "bench" / "attention.mjs"), json.dumps(shapes)], capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            print(f"ours {path or 'default'}: timed out", file=sys.stderr, flush=True)
            continue
        for line in r.stdout.splitlines():
            d = json.loads(line)
            res.setdefault(d["name"], {})[d["impl"]] = d["seconds"]
        if r.returncode != 0:
            print(f"ours {path or 'default'}: exit {r.returncode}: {r.stderr[-1500:]}", file=sys.stderr, flush=True)
    return res


def main():
    date = datetime.date.today().isoformat()
    rows = []
    mine = ours()
    ceil = ceilings()
    for s in SHAPES:
        times = {**mine.get(s["name"], {}), **peers(s)}
        torch.cuda.empty_cache()
        w = work(s)
        for impl, sec in times.items():
            r = {"shape": s["name"], "impl": impl, "seconds": sec, **s}
            if "flops" in w:
                r["tflops"] = w["flops"] / sec / 1e12
            else:
                r["tbps"] = w["bytes"] / sec / 1e12
                r["of_copy_bw"] = w["bytes"] / sec / ceil["copy_bytes_per_s"]
            rows.append(r)
        print(json.dumps(rows[-len(times):]), flush=True)
    for r in rows:  # prefill: our rate over the peers' on the same shape
        if "tflops" in r:
            peer = {x["impl"]: x["tflops"] for x in rows if x["shape"] == r["shape"]}
            for k in ("sdpa-flash", "flex"):
                if k in peer and not r["impl"].startswith(k):
                    r[f"vs_{k}"] = r["tflops"] / peer[k]
    doc = {"device": torch.cuda.get_device_name(0), "date": date, "commit": os.environ.get("MIXATTN_COMMIT", "unknown"),
           "torch": torch.__version__, "ceilings": ceil, "prefill_configs": PREFILL_CONFIGS, "rows": rows}
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / f"attention-{date}.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = [f"# Attention benchmark, {doc['device']}, {date}, commit {doc['commit']}", "",
          f"Ceilings measured in the same run: device copy {ceil['copy_bytes_per_s'] / 1e12:.2f} TB/s, "
          f"cuBLAS bf16 GEMM 8192^3 {ceil['gemm_bf16_flops_per_s'] / 1e12:.0f} TFLOP/s. "
          f"{H} query / {HKV} KV heads, head dim {D}, bf16. Prefill: effective TFLOP/s over attended pairs; "
          "decode: K+V bytes read per second.", "",
          "Prefill configurations (mixattn = the default): " + "; ".join(f"{k}: {v}" for k, v in PREFILL_CONFIGS.items()) + ".", "",
          "| shape | impl | ms | TFLOP/s | vs SDPA | vs Flex | TB/s | of copy BW |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    ratio = lambda r, k: f"{r[k]:.2f}x" if k in r else ""
    for r in rows:
        md.append(f"| {r['shape']} | {r['impl']} | {r['seconds'] * 1e3:.3f} | | | | "
                  f"{r.get('tbps', float('nan')):.2f} | {100 * r['of_copy_bw']:.0f}% |" if "tbps" in r else
                  f"| {r['shape']} | {r['impl']} | {r['seconds'] * 1e3:.3f} | {r['tflops']:.0f} | {ratio(r, 'vs_sdpa-flash')} | {ratio(r, 'vs_flex')} | | |")
    (res / f"attention-{date}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
