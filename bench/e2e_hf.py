#!/usr/bin/env python3
"""HF transformers `generate` on the config `mixattn bench` runs (bench/e2e-on-gpu.sh).

LlamaForCausalLM, 24 layers, hidden 2048, 16 heads / 8 KV heads x 128, MLP 5632, vocab 32000,
bf16, random init (on the GPU), sdpa attention. Per batch size: a prompt of --prompt random
tokens per sequence, greedy `generate` with EOS off; decode tok/s = batch x (new - 1) /
(t(generate `new` tokens) - t(generate 1 token)), the prefill cancelling out. Also measures the
device copy bandwidth the way bench/attention.py's ceilings() does (bytes read + written), for
mixattn bench's weight-read floor. Writes JSON to --out.

  python3 bench/e2e_hf.py --out hf.json [--batches 1,16,64 --prompt 4096 --new 64 --deadline 150]
"""
import argparse
import json
import time

import torch


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, reps=1):
    sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def copy_bandwidth():
    x = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    try:
        from triton.testing import do_bench

        sec = do_bench(lambda: y.copy_(x), warmup=25, rep=200, return_mode="median") / 1e3
        how = "triton do_bench median, 2 GiB copy"
    except Exception:  # noqa: BLE001
        for _ in range(5):
            y.copy_(x)
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(50):
            y.copy_(x)
        e.record()
        torch.cuda.synchronize()
        sec = s.elapsed_time(e) / 1e3 / 50
        how = "cuda events, mean of 50, 2 GiB copy"
    bw = 2 * x.numel() / sec
    del x, y
    torch.cuda.empty_cache()
    return bw, how


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--prompt", type=int, default=4096)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--deadline", type=float, default=float("inf"), help="skip batches starting after this many seconds")
    ap.add_argument("--out", default="hf.json")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke run (no copy bandwidth)")
    ap.add_argument("--size", default="1b", choices=["1b", "small"], help="small: mixattn bench --size small's model")
    a = ap.parse_args()
    t0 = time.perf_counter()

    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    dev = a.device
    res = {
        "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "runs": [],
        "skipped": [],
    }
    if dev == "cuda":
        bw, how = copy_bandwidth()
        res["copy_bytes_per_s"] = bw
        res["copy_how"] = how
        print(f"copy bandwidth {bw / 1e12:.3f} TB/s ({how})", flush=True)

    def save():
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)

    shape = (dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128) if a.size == "1b" else
             dict(vocab_size=2048, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=64))
    cfg = LlamaConfig(
        **shape, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=8192,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=0,
        attn_implementation="sdpa",
    )
    try:
        cfg._attn_implementation = "sdpa"
    except Exception:  # noqa: BLE001
        pass
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(dev):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(prev)
    model = model.to(torch.bfloat16).eval()
    res["attn_implementation"] = model.config._attn_implementation
    res["weight_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    res["params"] = sum(p.numel() for p in model.parameters())
    print(f"model ready at {time.perf_counter() - t0:.1f} s: {res['params'] / 1e9:.3f}B params, attn {res['attn_implementation']}", flush=True)
    save()

    g = torch.Generator(device="cpu").manual_seed(1)

    def gen(ids, n):
        with torch.inference_mode():
            return model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                do_sample=False, eos_token_id=None, pad_token_id=0, use_cache=True,
            )

    for b in [int(x) for x in a.batches.split(",") if x]:
        if time.perf_counter() - t0 > a.deadline:
            print(f"batch {b}: skipped (deadline)", flush=True)
            res["skipped"].append(b)
            continue
        ids = torch.randint(0, cfg.vocab_size, (b, a.prompt), generator=g).to(dev)
        gen(ids[:, :256], 4)  # warm-up at this batch size
        t1 = timed(lambda: gen(ids, 1))
        tn = timed(lambda: gen(ids, a.new))
        out = gen(ids, 2)
        assert out.shape == (b, a.prompt + 2), out.shape
        dec = tn - t1
        run = {
            "batch": b, "prompt": a.prompt, "new_tokens": a.new, "prefill_s": t1,
            "generate_s": tn, "decode_s": dec, "decode_tok_s": b * (a.new - 1) / dec,
            "step_ms": 1e3 * dec / (a.new - 1),
        }
        res["runs"].append(run)
        print(f"batch {b}: generate 1 token {t1:.3f} s, {a.new} tokens {tn:.3f} s -> decode {run['decode_tok_s']:.1f} tok/s, "
              f"step {run['step_ms']:.2f} ms", flush=True)
        save()
        del ids
        if dev == "cuda":
            torch.cuda.empty_cache()
    save()
    print(f"total {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
