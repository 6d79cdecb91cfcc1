#!/usr/bin/env python3
"""Trains several plan models in lockstep, in one process, on the same batches: every model sees
exactly the same data and token budget, so their losses compare plans and nothing else.

    python3 train/train.py --models standard,ma,ma-endslide,ma-offset,ma-pairs,sliding \\
        --out train/build/runs/plans --deadline-s 300
    python3 train/train.py --smoke            # CPU: tiny widths, a few steps, seconds

Per step: one batch of --batch-size rows of --seq-len tokens. A row is a random window of
train.bin, or (a --retrieval-frac share of rows) a retrieval sample from train/data/retrieval.py
(prompt length uniform in [64, seq_len - 8], filler sentences from train.txt) followed by its
answer, <|endoftext|> and train.bin text up to the row's end: packed, so no row holds padding
and every position carries loss. Each model then does forward/backward (bf16 autocast on CUDA),
gradient clipping at 1.0 and an AdamW step (betas 0.9/0.95, weight decay 0.1 on matrices).
LR: linear warmup, cosine decay to --min-lr-frac of the peak at the last step.

Step budget: --steps N, or --deadline-s S (seconds from process start): after the first steps
(compile/autotune warm-up, then --probe-steps timed steps and one timed held-out evaluation) the
total step count is fixed so that training, the remaining evaluations and saving end by the
deadline; the LR schedule decays over that count. A hard stop at the deadline remains as a guard
(the log says whether it fired).

Output (--out): <name>/model.pt (float32 state dict, HF tensor names), <name>/config.json,
<name>/train-log.json (loss curve, held-out losses, retrieval accuracy, tokens, params, seconds,
tokens/s) and run.json (the run's settings and summary). train/export.py turns a model dir into
an HF directory.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import random
import sys
import threading
import time
from pathlib import Path

T0 = time.time()  # the deadline counts from here

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "data"))

import model as M  # noqa: E402
import retrieval  # noqa: E402  (train/data/retrieval.py: the task's only implementation)

ALL_PLANS = ["standard", "ma", "ma-endslide", "ma-offset", "ma-pairs", "sliding"]
EOT = "<|endoftext|>"
RETRIEVAL_MIN_PROMPT = 64
RETRIEVAL_ROOM = 8  # answer (3-5 tokens) + <|endoftext|> + 1 target must fit after the prompt


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(ALL_PLANS), help="names of train/configs/<name>.json, comma-separated")
    p.add_argument("--configs-dir", default=str(HERE / "configs"))
    p.add_argument("--data", default=str(HERE / "build" / "data"), help="prepare.py's output directory")
    p.add_argument("--tokenizer", default=str(HERE / "tokenizer" / "tokenizer.json"))
    p.add_argument("--out", default=str(HERE / "build" / "runs" / "plans"))
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=32, help="rows per step")
    p.add_argument("--micro-batch", type=int, default=0, help="rows per forward (gradient accumulation); 0 = whole batch")
    p.add_argument("--steps", type=int, default=0, help="total steps (0: from --deadline-s)")
    p.add_argument("--deadline-s", type=float, default=0, help="whole run ends within this many seconds of start")
    p.add_argument("--probe-steps", type=int, default=10, help="timed steps before the step count is fixed")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr-frac", type=float, default=0.1)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--retrieval-frac", type=float, default=0.25, help="share of rows that are retrieval samples")
    p.add_argument("--evals", type=int, default=8, help="held-out evaluations during the run (plus start and end)")
    p.add_argument("--eval-rows", type=int, default=64, help="held-out rows (of --seq-len) per evaluation")
    p.add_argument("--retrieval-eval", type=int, default=-1, help="retrieval-eval.jsonl prompts scored at the end (-1: all, 0: none)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--compile", action="store_true", help="torch.compile the norms, RoPE, MLP and loss (regional)")
    p.add_argument("--attn", default="auto", choices=["auto", "flex", "mask"], help="sliding-window attention implementation")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="CPU check: tiny widths, seq 256, 8 steps")
    a = p.parse_args(argv)
    if a.smoke:
        a.seq_len, a.batch_size, a.probe_steps, a.warmup_steps, a.log_every = 256, 4, 2, 2, 1
        a.steps = a.steps or (0 if a.deadline_s else 8)
        a.evals, a.eval_rows = 2, 4
        a.retrieval_eval = 4 if a.retrieval_eval < 0 else a.retrieval_eval
        a.lr = 3e-3
    if not a.steps and not a.deadline_s:
        p.error("give --steps or --deadline-s")
    if not 0 <= a.retrieval_frac <= 1:
        p.error(f"--retrieval-frac {a.retrieval_frac} must be in [0, 1]")
    if a.seq_len < RETRIEVAL_MIN_PROMPT + RETRIEVAL_ROOM and a.retrieval_frac > 0:
        p.error(f"--seq-len {a.seq_len} is too short for retrieval samples (>= {RETRIEVAL_MIN_PROMPT + RETRIEVAL_ROOM})")
    if a.micro_batch and a.batch_size % a.micro_batch:
        p.error(f"--micro-batch {a.micro_batch} must divide --batch-size {a.batch_size}")
    return a


def smoke_config(cfg: M.ModelConfig) -> M.ModelConfig:
    """The same plan at CPU-friendly widths (layer count, plan and window unchanged)."""
    return M.ModelConfig.from_hf({**cfg.to_hf(), "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                                  "head_dim": 16, "intermediate_size": 128})


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def read_bin(path: Path) -> np.ndarray:
    if not path.exists():
        sys.exit(f"train: {path} is missing; run python3 train/data/prepare.py first")
    return np.fromfile(path, dtype="<u2")


class BatchSource:
    """Deterministic batches (seeded) made on a background thread, a few steps ahead."""

    def __init__(self, a, tokenizer, vocab: int):
        data = Path(a.data)
        self.train = read_bin(data / "train.bin")
        if int(self.train.max()) >= vocab:
            sys.exit(f"train: {data / 'train.bin'} holds token id {int(self.train.max())} >= vocab_size {vocab}")
        self.T, self.B = a.seq_len, a.batch_size
        if len(self.train) < 4 * (self.T + 1):
            sys.exit(f"train: {data / 'train.bin'} has {len(self.train)} tokens, too few for rows of {self.T}")
        self.n_retrieval = round(a.retrieval_frac * self.B)
        self.eot = tokenizer.token_to_id(EOT)
        self.filler = retrieval.Filler((data / "train.txt").read_text(encoding="utf-8"), tokenizer) if self.n_retrieval else None
        self.rng = random.Random(a.seed)
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.retrieval_tokens = 0
        threading.Thread(target=self._produce, daemon=True).start()

    def _window(self, n: int) -> np.ndarray:
        o = self.rng.randrange(len(self.train) - n)
        return self.train[o:o + n]

    def _row(self, retrieval_row: bool) -> tuple[np.ndarray, int]:
        if not retrieval_row:
            return self._window(self.T + 1).astype(np.int64), 0
        # Samples packed one after another (each ended by <|endoftext|>) while one still fits:
        # every question is a copy the model must learn, so a row carries several. Lengths lean
        # short (u², mean ~T/3) and still reach the full context.
        row: list[int] = []
        n_retrieval = 0
        while self.T + 1 - len(row) >= RETRIEVAL_MIN_PROMPT + RETRIEVAL_ROOM:
            room = self.T + 1 - len(row) - RETRIEVAL_ROOM
            length = RETRIEVAL_MIN_PROMPT + int((self.T - RETRIEVAL_ROOM - RETRIEVAL_MIN_PROMPT) * self.rng.random() ** 2)
            if length > room:
                if row:
                    break
                length = room
            ids, _ = retrieval.make_sample(self.rng, self.filler, length)
            row += ids[: self.T] + [self.eot]
            n_retrieval += len(ids)
        rest = self.T + 1 - len(row)
        parts = [np.asarray(row[: self.T + 1], dtype=np.int64)]
        if rest > 0:
            parts.append(self._window(rest).astype(np.int64))
        return np.concatenate(parts), n_retrieval

    def _make(self):
        rows = [self._row(i < self.n_retrieval) for i in range(self.B)]
        order = list(range(self.B))
        self.rng.shuffle(order)
        x = torch.from_numpy(np.stack([rows[i][0] for i in order]))
        return x[:, :-1].contiguous(), x[:, 1:].contiguous(), sum(r[1] for r in rows)

    def _produce(self):
        while True:
            self.queue.put(self._make())

    def next(self):
        x, y, retrieval_tokens = self.queue.get()
        self.retrieval_tokens += retrieval_tokens
        return x, y


def heldout_rows(a, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """--eval-rows rows of --seq-len tokens evenly spread over heldout.bin (the same every eval)."""
    h = read_bin(Path(a.data) / "heldout.bin")
    if int(h.max()) >= vocab:
        sys.exit(f"train: heldout.bin holds token id {int(h.max())} >= vocab_size {vocab}")
    n = min(a.eval_rows, (len(h) - 1) // (a.seq_len + 1))
    mb = a.micro_batch or a.batch_size
    n = n // mb * mb if n >= mb else n  # whole batches: one shape for compiled attention
    starts = np.linspace(0, len(h) - a.seq_len - 1, n).astype(np.int64)
    x = torch.from_numpy(np.stack([h[s:s + a.seq_len + 1].astype(np.int64) for s in starts]))
    return x[:, :-1].contiguous(), x[:, 1:].contiguous()


def retrieval_eval_rows(a, tokenizer) -> list[dict]:
    path = Path(a.data) / "retrieval-eval.jsonl"
    if a.retrieval_eval == 0 or not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    if a.retrieval_eval > 0:  # an even spread over lengths and depths
        rows = rows[:: max(1, len(rows) // a.retrieval_eval)][: a.retrieval_eval]
    for r in rows:
        r["ids"] = tokenizer.encode(r["prompt"], add_special_tokens=False).ids
        r["answer_ids"] = tokenizer.encode(r["answer"], add_special_tokens=False).ids
    return rows


# ----------------------------------------------------------------------------------------------
# Models, optimisers, schedule
# ----------------------------------------------------------------------------------------------

class Trainee:
    def __init__(self, name: str, cfg: M.ModelConfig, a, device):
        self.name = name
        self.model = M.PlanLM(cfg)
        self.model.init_weights(a.seed)
        self.model.set_attention_impl(a.attn)
        self.model.to(device)
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = device.type == "cuda"
        self.opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=fused)
        self.seconds = 0.0
        self.loss_sum = torch.zeros((), device=device)
        self.loss_n = 0
        self.curve: list[dict] = []
        self.heldout: list[dict] = []
        self.retrieval: dict | None = None


def lr_at(step: int, total: int | None, a) -> float:
    """Linear warmup over warmup steps, then cosine down to min_lr_frac * lr at the last step."""
    warm = a.warmup_steps if total is None else max(1, min(a.warmup_steps, total // 10))
    if step < warm:
        return a.lr * (step + 1) / warm
    if total is None:
        return a.lr
    t = min(1.0, (step - warm) / max(1, total - 1 - warm))
    return a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def autocast(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step(t: Trainee, x, y, lr: float, a, device) -> None:
    start = time.perf_counter()
    mb = a.micro_batch or x.shape[0]
    for g in t.opt.param_groups:
        g["lr"] = lr
    for i in range(0, x.shape[0], mb):
        with autocast(device):
            loss = t.model.loss(x[i:i + mb], y[i:i + mb]) * (mb / x.shape[0])
        loss.backward()
        t.loss_sum += loss.detach()
    torch.nn.utils.clip_grad_norm_(t.model.parameters(), a.grad_clip)
    t.opt.step()
    t.opt.zero_grad(set_to_none=True)
    t.loss_n += 1
    sync(device)
    t.seconds += time.perf_counter() - start


@torch.no_grad()
def heldout_loss(t: Trainee, hx, hy, a, device) -> float:
    t.model.eval()
    total = 0.0
    mb = a.micro_batch or a.batch_size
    for i in range(0, hx.shape[0], mb):
        with autocast(device):
            total += t.model.loss(hx[i:i + mb].to(device), hy[i:i + mb].to(device)).item() * hx[i:i + mb].shape[0]
    t.model.train()
    return total / hx.shape[0]


class RetrievalEval:
    """Teacher-forced greedy check of retrieval-eval.jsonl answers: right if the argmax at every
    answer position is the answer token (what greedy decoding would emit). Every batch has the
    same shape (rows right-padded to the longest prompt + answer; causal, so padding is
    harmless; the last batch filled with repeats), so compiled attention never recompiles."""

    def __init__(self, rows: list[dict], max_tokens: int = 32768):
        self.rows = rows
        self.width = max((len(r["ids"]) + len(r["answer_ids"]) for r in rows), default=0)
        self.per_batch = max(1, min(len(rows), max_tokens // max(1, self.width)))
        self.batches = [list(range(i, min(i + self.per_batch, len(rows)))) for i in range(0, len(rows), self.per_batch)]

    def tensor(self, batch: list[int]) -> torch.Tensor:
        x = torch.zeros(self.per_batch, self.width, dtype=torch.long)
        for b, k in enumerate(batch + [batch[0]] * (self.per_batch - len(batch))):
            seq = self.rows[k]["ids"] + self.rows[k]["answer_ids"]
            x[b, :len(seq)] = torch.tensor(seq)
        return x

    @torch.no_grad()
    def run(self, t: "Trainee", device, batches: int | None = None) -> dict:
        t.model.eval()
        by_len: dict[int, list[int]] = {}
        for batch in self.batches[:batches]:
            with autocast(device):
                pred = t.model(self.tensor(batch).to(device)).argmax(-1).cpu()
            for b, k in enumerate(batch):
                r = self.rows[k]
                p, ans = len(r["ids"]), r["answer_ids"]
                by_len.setdefault(r["context_tokens"], []).append(int(pred[b, p - 1:p - 1 + len(ans)].tolist() == ans))
        t.model.train()
        every = [x for v in by_len.values() for x in v]
        return {"accuracy": sum(every) / max(1, len(every)), "prompts": len(every),
                "by_context_tokens": {str(k): round(sum(v) / len(v), 4) for k, v in sorted(by_len.items())}}


def enable_compile(trainees: list[Trainee]) -> None:
    """Regional torch.compile of the parts every layer shares (elementwise chains: RMSNorm, RoPE,
    SwiGLU, the loss head); attention stays SDPA / FlexAttention. One graph serves every layer
    of every model of the same widths."""
    torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
    M.apply_rope = torch.compile(M.apply_rope, dynamic=False)
    for t in trainees:
        for mod in t.model.modules():
            if isinstance(mod, (M.RMSNorm, M.MLP)):
                mod.compile(dynamic=False)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------

def elapsed() -> float:
    return time.time() - T0


def main(argv=None) -> None:
    a = parse_args(argv)
    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(a.tokenizer)
    names = [n for n in a.models.split(",") if n]
    if len(set(names)) != len(names):
        sys.exit(f"train: --models lists a name twice: {a.models}")
    cfgs = {}
    for n in names:
        cfg = M.load_config(Path(a.configs_dir) / f"{n}.json")
        cfgs[n] = smoke_config(cfg) if a.smoke else cfg
    vocab = {c.vocab_size for c in cfgs.values()}
    if len(vocab) != 1 or tokenizer.get_vocab_size() > next(iter(vocab)):
        sys.exit(f"train: vocab sizes differ: configs {sorted(vocab)}, tokenizer {tokenizer.get_vocab_size()}")
    vocab = next(iter(vocab))

    trainees = [Trainee(n, cfgs[n], a, device) for n in names]
    for t in trainees:
        print(f"{t.name}: {M.param_summary(t.model)}", flush=True)
    if a.compile:
        enable_compile(trainees)
    batches = BatchSource(a, tokenizer, vocab)
    hx, hy = heldout_rows(a, vocab)
    reval = RetrievalEval(retrieval_eval_rows(a, tokenizer))
    tokens_per_step = a.batch_size * a.seq_len

    def evaluate(step: int) -> float:
        s = time.perf_counter()
        for t in trainees:
            t.heldout.append({"step": step, "tokens": step * tokens_per_step, "loss": round(heldout_loss(t, hx, hy, a, device), 5)})
        took = time.perf_counter() - s
        print(f"[{elapsed():7.1f}s] step {step:5d} held-out " + " ".join(f"{t.name} {t.heldout[-1]['loss']:.4f}" for t in trainees), flush=True)
        return took

    def log(step: int, lr: float) -> None:
        parts = []
        for t in trainees:
            if t.loss_n:
                loss = t.loss_sum.item() / t.loss_n
                t.curve.append({"step": step, "tokens": step * tokens_per_step, "loss": round(loss, 5), "lr": lr})
                parts.append(f"{t.name} {loss:.4f}")
                t.loss_sum.zero_()
                t.loss_n = 0
        print(f"[{elapsed():7.1f}s] step {step:5d} lr {lr:.2e} loss " + " ".join(parts), flush=True)

    evaluate(0)  # the starting point; also warms the eval path (compiles) before timing it
    total = a.steps or None
    schedule = {"next": None, "every": 0, "left": a.evals}

    def plan_evals(from_step: int) -> None:
        schedule["every"] = max(1, (total - from_step) // (a.evals + 1))
        schedule["next"] = from_step + schedule["every"]

    if total:
        plan_evals(0)
    step, stopped_early, plan_info = 0, False, {}
    warm = min(3, a.probe_steps)
    probe_start = 0.0
    final_reserve = 0.0
    while total is None or step < total:
        if step == warm:
            sync(device)
            probe_start = time.perf_counter()
        x, y = batches.next()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        lr = lr_at(step, total, a)
        for t in trainees:
            train_step(t, x, y, lr, a, device)
        step += 1
        if step % a.log_every == 0:
            log(step, lr)
        if total is None and step == warm + a.probe_steps:
            # Fix the step count from the measured pace (per step, all models together).
            step_s = (time.perf_counter() - probe_start) / a.probe_steps
            eval_s = evaluate(step)
            retrieval_s = 0.0
            if reval.rows:  # one batch per model (on CUDA twice: the first compiles), extrapolated
                for t in trainees if device.type == "cuda" else []:
                    reval.run(t, device, batches=1)
                sync(device)
                s0 = time.perf_counter()
                for t in trainees:
                    reval.run(t, device, batches=1)
                sync(device)
                retrieval_s = (time.perf_counter() - s0) * len(reval.batches) * 1.2
            final_reserve = eval_s + retrieval_s + 5.0 + 0.03 * a.deadline_s
            left = a.deadline_s - elapsed() - final_reserve - a.evals * eval_s
            total = max(step, step + int(left / step_s))
            plan_evals(step)
            plan_info = {"probe_step_s": round(step_s, 4), "eval_s": round(eval_s, 3), "retrieval_eval_s": round(retrieval_s, 1), "planned_steps": total,
                         "fixed_at_s": round(elapsed(), 1), "reserve_s": round(final_reserve, 1)}
            print(f"[{elapsed():7.1f}s] deadline {a.deadline_s:.0f}s: {step_s * 1000:.0f} ms/step, eval {eval_s:.1f}s, "
                  f"retrieval eval ~{retrieval_s:.1f}s "
                  f"-> {total} steps ({total * tokens_per_step / 1e6:.1f}M tokens per model)", flush=True)
            continue
        if a.deadline_s and total is not None and step < total and elapsed() > a.deadline_s - final_reserve:
            stopped_early = True
            print(f"[{elapsed():7.1f}s] deadline guard: stopping at step {step} of {total}", flush=True)
            break
        if schedule["left"] and step == schedule["next"] and step < total:
            evaluate(step)
            schedule["next"] += schedule["every"]
            schedule["left"] -= 1
    if step % a.log_every:
        log(step, lr_at(step - 1, total, a))
    if trainees[0].heldout[-1]["step"] != step:
        evaluate(step)
    for t in trainees:
        if reval.rows:
            t.retrieval = reval.run(t, device)
            print(f"[{elapsed():7.1f}s] {t.name} retrieval accuracy {t.retrieval['accuracy']:.3f} {t.retrieval['by_context_tokens']}", flush=True)
    save(a, trainees, step, stopped_early, plan_info, batches)


def save(a, trainees: list[Trainee], steps: int, stopped_early: bool, plan_info: dict, batches: BatchSource) -> None:
    out = Path(a.out)
    tokens = steps * a.batch_size * a.seq_len
    versions = {"torch": torch.__version__, "python": platform.python_version(), "numpy": np.__version__}
    settings = {k: v for k, v in vars(a).items()}
    meta_path = Path(a.data) / "meta.json"
    data_meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    summary = []
    for t in trainees:
        d = out / t.name
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().float().cpu().contiguous() for k, v in t.model.state_dict().items()}
        torch.save(state, d / "model.pt")
        (d / "config.json").write_text(json.dumps(t.model.cfg.to_hf(), indent=2) + "\n")
        log = {
            "name": t.name,
            "plan": t.model.cfg.notation(),
            "params": t.model.num_params(),
            "steps": steps,
            "tokens_seen": tokens,
            "retrieval_tokens_seen": batches.retrieval_tokens,
            "seconds": round(t.seconds, 2),
            "tokens_per_s": round(tokens / t.seconds) if t.seconds else None,
            "run_wall_seconds": round(elapsed(), 1),
            "models_in_lockstep": [x.name for x in trainees],
            "final_train_loss": t.curve[-1]["loss"] if t.curve else None,
            "final_heldout_loss": t.heldout[-1]["loss"] if t.heldout else None,
            "retrieval_eval": t.retrieval,
            "loss_curve": t.curve,
            "heldout_loss": t.heldout,
            "schedule": {"lr": a.lr, "min_lr_frac": a.min_lr_frac, "warmup_steps": a.warmup_steps, "total_steps": steps,
                         "deadline_s": a.deadline_s or None, "stopped_early_by_deadline": stopped_early, **plan_info},
            "batch": {"rows": a.batch_size, "seq_len": a.seq_len, "retrieval_frac": a.retrieval_frac, "micro_batch": a.micro_batch or a.batch_size},
            "optimizer": {"name": "AdamW", "betas": [0.9, 0.95], "weight_decay": a.weight_decay, "grad_clip": a.grad_clip},
            "precision": "bf16 autocast" if a.device.startswith("cuda") else "float32",
            "compile": a.compile,
            "smoke": a.smoke,
            "data": {"dir": a.data, "splits": data_meta.get("splits"), "tokenizer": data_meta.get("tokenizer")},
            "device": torch.cuda.get_device_name() if a.device.startswith("cuda") else platform.processor() or "cpu",
            "versions": versions,
        }
        (d / "train-log.json").write_text(json.dumps(log, indent=1) + "\n")
        summary.append({k: log[k] for k in ("name", "params", "tokens_seen", "seconds", "tokens_per_s", "final_train_loss", "final_heldout_loss")}
                       | {"retrieval_accuracy": t.retrieval["accuracy"] if t.retrieval else None})
    (out / "run.json").write_text(json.dumps({"settings": settings, "steps": steps, "wall_seconds": round(elapsed(), 1),
                                              "stopped_early_by_deadline": stopped_early, **plan_info, "models": summary}, indent=1) + "\n")
    print(f"[{elapsed():7.1f}s] saved {len(trainees)} models to {out} ({steps} steps, {tokens / 1e6:.2f}M tokens each)", flush=True)


if __name__ == "__main__":
    main()
