"""A Llama-style decoder whose attention follows a mixattn layer plan, written plainly in PyTorch
(no HF modelling code): the training-side, independent implementation of the plan semantics.

Config: an HF LlamaForCausalLM config.json plus the MixAttention extension (docs/hf.md):
  layer_types[i]    "full_attention" | "sliding_attention"
  sliding_window    W: a sliding layer's query at position p attends keys p-W+1 .. p
  kv_sources[i]     the layer whose K/V layer i attends over; i itself for a layer that computes
                    its own (an "owner"), an earlier owner for a "reader", which then has no
                    k_proj / v_proj and uses the source's post-RoPE keys and values at the same
                    positions.

Each layer:  h += o(attn(rope(q(n1(h))), K_src, V_src));  h += down(silu(gate(n2(h))) * up(n2(h)))
with RMSNorm pre-norms, RoPE in HF's rotate_half layout, GQA (KV head j serves query heads
j*G .. j*G+G-1), tied embeddings (the head is the embedding matrix), no biases.

Attention: torch SDPA with is_causal for global layers; sliding layers use FlexAttention with a
sliding-window block mask on CUDA (when torch has it) and an explicit boolean mask with SDPA
otherwise. Both compute the same softmax over the same key set (see `self_test`).

Run `python train/model.py CONFIG.json` to print the parameter count and run the self-test.
"""
from __future__ import annotations

import argparse
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

try:  # FlexAttention (torch >= 2.5): block-sparse sliding windows on CUDA.
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    HAVE_FLEX = True
except ImportError:  # pragma: no cover - old torch
    HAVE_FLEX = False

FULL, SLIDING = "full_attention", "sliding_attention"


class ConfigError(ValueError):
    """A config.json that does not describe a model this file can build; names the field."""


@dataclass
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    layer_types: list[str]
    kv_sources: list[int]
    sliding_window: int | None
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 1024
    extra: dict = field(default_factory=dict)  # the rest of config.json, kept for export

    @staticmethod
    def from_hf(cfg: dict, where: str = "config.json") -> "ModelConfig":
        def need(key: str):
            if key not in cfg:
                raise ConfigError(f"{where}: field '{key}' is missing")
            return cfg[key]

        arch = cfg.get("architectures", ["LlamaForCausalLM"])
        if arch != ["LlamaForCausalLM"] or cfg.get("model_type", "llama") != "llama":
            raise ConfigError(f"{where}: field 'architectures' must be [\"LlamaForCausalLM\"] (got {arch})")
        for key, neutral in (("tie_word_embeddings", True), ("attention_bias", False), ("mlp_bias", False)):
            if cfg.get(key, neutral) != neutral:
                raise ConfigError(f"{where}: field '{key}' must be {json.dumps(neutral)} for this model")
        if cfg.get("hidden_act", "silu") != "silu":
            raise ConfigError(f"{where}: field 'hidden_act' must be \"silu\" (got {cfg['hidden_act']!r})")
        rope = cfg.get("rope_parameters") or {}
        if rope.get("rope_type", "default") != "default" or cfg.get("rope_scaling"):
            raise ConfigError(f"{where}: field 'rope_parameters' must be the default RoPE (got {rope})")
        theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
        L = need("num_hidden_layers")
        H = need("num_attention_heads")
        hidden = need("hidden_size")
        c = ModelConfig(
            vocab_size=need("vocab_size"),
            hidden_size=hidden,
            intermediate_size=need("intermediate_size"),
            num_layers=L,
            num_heads=H,
            num_kv_heads=cfg.get("num_key_value_heads") or H,
            head_dim=cfg.get("head_dim") or hidden // H,
            layer_types=list(cfg.get("layer_types") or [FULL] * L),
            kv_sources=list(cfg.get("kv_sources") or range(L)),
            sliding_window=cfg.get("sliding_window"),
            rms_norm_eps=cfg.get("rms_norm_eps", 1e-5),
            rope_theta=float(theta),
            max_position_embeddings=cfg.get("max_position_embeddings", 1024),
            extra=dict(cfg),
        )
        c.validate(where)
        return c

    def validate(self, where: str = "config") -> None:
        L = self.num_layers
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"{where}: num_key_value_heads {self.num_kv_heads} does not divide num_attention_heads {self.num_heads}")
        if self.head_dim % 2:
            raise ConfigError(f"{where}: head_dim {self.head_dim} must be even (RoPE rotates pairs)")
        for name, arr in (("layer_types", self.layer_types), ("kv_sources", self.kv_sources)):
            if len(arr) != L:
                raise ConfigError(f"{where}: field '{name}' has {len(arr)} entries but num_hidden_layers is {L}")
        for i, (t, s) in enumerate(zip(self.layer_types, self.kv_sources)):
            if t not in (FULL, SLIDING):
                raise ConfigError(f"{where}: field 'layer_types' entry {i} is {t!r}; expected {FULL!r} or {SLIDING!r}")
            if t == SLIDING and not (isinstance(self.sliding_window, int) and self.sliding_window >= 1):
                raise ConfigError(f"{where}: field 'sliding_window' must be an integer >= 1: layer {i} slides")
            if not (isinstance(s, int) and 0 <= s <= i):
                raise ConfigError(f"{where}: field 'kv_sources' entry {i} is {s!r}; a layer reads itself or an earlier layer")
            if s != i and self.kv_sources[s] != s:
                raise ConfigError(f"{where}: field 'kv_sources': layer {i} reads layer {s}, which is itself a reader (no chains)")
            if s != i and t == FULL and self.layer_types[s] == SLIDING:
                raise ConfigError(f"{where}: field 'kv_sources': global layer {i} cannot read sliding layer {s}'s cache")

    def is_owner(self, i: int) -> bool:
        return self.kv_sources[i] == i

    def window(self, i: int) -> int | None:
        return self.sliding_window if self.layer_types[i] == SLIDING else None

    def to_hf(self) -> dict:
        """config.json for this model (the fields we read, over everything else the input had)."""
        out = dict(self.extra)
        out.update(
            architectures=["LlamaForCausalLM"],
            model_type="llama",
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            rms_norm_eps=self.rms_norm_eps,
            rope_parameters={"rope_theta": self.rope_theta, "rope_type": "default"},
            max_position_embeddings=self.max_position_embeddings,
            layer_types=list(self.layer_types),
            sliding_window=self.sliding_window,
            kv_sources=list(self.kv_sources),
            tie_word_embeddings=True,
        )
        out.pop("rope_theta", None)
        return dict(sorted(out.items()))

    def notation(self) -> str:
        """The plan in lib/plan's notation, e.g. 'w=128 0 1s 1s 3s ...' (for logs)."""
        parts = [f"{s}{'s' if t == SLIDING else ''}" for t, s in zip(self.layer_types, self.kv_sources)]
        return (f"w={self.sliding_window} " if SLIDING in self.layer_types else "") + " ".join(parts)


def load_config(path: str | Path) -> ModelConfig:
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{p}: cannot read config ({e})") from None
    return ModelConfig.from_hf(raw, str(p))


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in float32 whatever the activation dtype (as HF's LlamaRMSNorm).
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


def rope_tables(cfg: ModelConfig, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [T, head_dim] in float32 for integer positions [T] (HF default RoPE)."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float32, device=positions.device) / d))
    angles = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, heads, T, D]; rotate_half pairs element j with j + D/2."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


_FLEX_COMPILED = None
_BLOCK_MASKS: dict = {}
_BOOL_MASKS: dict = {}


def sliding_bool_mask(T: int, window: int, device) -> torch.Tensor:
    """[T, T] True where query p may attend key j: p - window < j <= p."""
    key = (T, window, str(device))
    if key not in _BOOL_MASKS:
        p = torch.arange(T, device=device)[:, None]
        j = torch.arange(T, device=device)[None, :]
        _BOOL_MASKS[key] = (j <= p) & (j > p - window)
    return _BOOL_MASKS[key]


def sliding_block_mask(T: int, window: int, device):
    key = (T, window, str(device))
    if key not in _BLOCK_MASKS:
        def mask_mod(b, h, q_idx, kv_idx):
            return (kv_idx <= q_idx) & (kv_idx > q_idx - window)

        _BLOCK_MASKS[key] = create_block_mask(mask_mod, None, None, T, T, device=device)
    return _BLOCK_MASKS[key]


def flex(q, k, v, block_mask):
    # FlexAttention is only fast when compiled; compiling just this call is cheap and reused.
    # (On the CPU it runs eagerly: torch's reference implementation, used by the self-test.)
    global _FLEX_COMPILED
    if not q.is_cuda:
        return flex_attention(q, k, v, block_mask=block_mask, enable_gqa=True)
    if _FLEX_COMPILED is None:
        _FLEX_COMPILED = torch.compile(flex_attention, dynamic=False)
    return _FLEX_COMPILED(q, k, v, block_mask=block_mask, enable_gqa=True)


def attend(q, k, v, window: int | None, impl: str) -> torch.Tensor:
    """Causal attention of q [B, H, T, D] over k, v [B, KH, T, D]; window None = global.

    impl: 'flex' (sliding layers via FlexAttention), 'mask' (boolean mask + SDPA) or 'auto'
    (flex on CUDA when available, else mask).
    """
    use_flex = window is not None and window < q.shape[2] and (impl == "flex" or (impl == "auto" and HAVE_FLEX and q.is_cuda))
    if use_flex:
        if not HAVE_FLEX:
            raise RuntimeError("attention impl 'flex' asked for, but this torch has no FlexAttention")
        return flex(q, k, v, sliding_block_mask(q.shape[2], window, q.device))
    if q.is_cuda:
        # Explicit GQA expansion (cheap) so SDPA can always pick a fused kernel; enable_gqa is
        # not supported by every CUDA backend.
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    gqa = k.shape[1] != q.shape[1]
    if window is None or window >= q.shape[2]:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    mask = sliding_bool_mask(q.shape[2], window, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.source = cfg.kv_sources[layer]
        self.window = cfg.window(layer)
        self.H, self.KH, self.D = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, self.H * self.D, bias=False)
        if self.source == layer:  # readers have no K/V projections at all
            self.k_proj = nn.Linear(cfg.hidden_size, self.KH * self.D, bias=False)
            self.v_proj = nn.Linear(cfg.hidden_size, self.KH * self.D, bias=False)
        self.o_proj = nn.Linear(self.H * self.D, cfg.hidden_size, bias=False)
        self.impl = "auto"

    def forward(self, x, cos, sin, kv: dict) -> torch.Tensor:
        B, T, _ = x.shape
        q = apply_rope(self.q_proj(x).view(B, T, self.H, self.D).transpose(1, 2), cos, sin)
        if self.source == self.layer:
            k = apply_rope(self.k_proj(x).view(B, T, self.KH, self.D).transpose(1, 2), cos, sin)
            v = self.v_proj(x).view(B, T, self.KH, self.D).transpose(1, 2)
            kv[self.layer] = (k, v)
        k, v = kv[self.source]
        y = attend(q, k, v, self.window, self.impl)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.H * self.D))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, layer)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, h, cos, sin, kv: dict):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, kv)
        return h + self.mlp(self.post_attention_layernorm(h))


class Inner(nn.Module):
    """The `model.` prefix of HF's names: state_dict keys equal the HF tensor names."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class PlanLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.model = Inner(cfg)

    def set_attention_impl(self, impl: str) -> None:
        if impl not in ("auto", "flex", "mask"):
            raise ValueError(f"attention impl must be auto, flex or mask (got {impl!r})")
        for b in self.model.layers:
            b.self_attn.impl = impl

    def init_weights(self, seed: int, std: float = 0.02) -> None:
        """N(0, std) everywhere, output projections scaled by 1/sqrt(2L) (GPT-2), norms 1."""
        g = torch.Generator().manual_seed(seed)
        resid_std = std / math.sqrt(2 * self.cfg.num_layers)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                else:
                    s = resid_std if name.endswith(("o_proj.weight", "down_proj.weight")) else std
                    p.copy_(torch.randn(p.shape, generator=g) * s)

    def forward(self, ids: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
        """Logits [B, T, V] for token ids [B, T] at positions start_pos .. start_pos+T-1."""
        cos, sin = rope_tables(self.cfg, torch.arange(start_pos, start_pos + ids.shape[1], device=ids.device))
        h = self.model.embed_tokens(ids)
        kv: dict = {}
        for block in self.model.layers:
            h = block(h, cos, sin, kv)
        h = self.model.norm(h)
        return F.linear(h, self.model.embed_tokens.weight)  # tied head

    def loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over targets != -100 (padding / no-loss positions)."""
        logits = self(ids)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def greedy(self, prompt: list[int], n: int) -> tuple[list[int], torch.Tensor]:
        """n greedy tokens after `prompt` by full re-forwards (no cache: nothing to get wrong),
        and the logits [len(prompt) + n - 1, V] of the final forward."""
        dev = next(self.parameters()).device
        seq = list(prompt)
        for _ in range(n):
            logits = self(torch.tensor([seq], device=dev))[0]
            seq.append(int(logits[-1].argmax()))
        return seq[len(prompt):], self(torch.tensor([seq[:-1]], device=dev))[0]


def param_summary(m: PlanLM) -> str:
    c = m.cfg
    owners = sum(c.is_owner(i) for i in range(c.num_layers))
    return (f"{m.num_params():,} parameters ({c.num_layers} layers, {owners} own K/V, hidden {c.hidden_size}, "
            f"{c.num_heads}x{c.head_dim} heads / {c.num_kv_heads} KV, plan {c.notation()})")


# ----------------------------------------------------------------------------------------------
# Self-test: the sliding implementations agree with each other and with a per-query reference.
# ----------------------------------------------------------------------------------------------

def reference_attention(q, k, v, window):
    """Loop over queries, explicit softmax over the allowed keys, float64."""
    B, H, T, D = q.shape
    G = H // k.shape[1]
    out = torch.zeros(B, H, T, D, dtype=torch.float64)
    for p in range(T):
        lo = 0 if window is None else max(0, p - window + 1)
        for h in range(H):
            kk = k[:, h // G, lo:p + 1].double()
            s = (q[:, h, p:p + 1].double() @ kk.transpose(-1, -2)) / math.sqrt(D)
            out[:, h, p] = (s.softmax(-1) @ v[:, h // G, lo:p + 1].double())[:, 0]
    return out


def self_test(device: str = "cpu") -> float:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, s, 37, 16, generator=g) for s in (4, 2, 2))
    worst = 0.0
    tol = 1e-5 if device == "cpu" else 2e-4  # CUDA kernels may use TF32 inside
    impls = ["mask"] + (["flex"] if HAVE_FLEX else [])
    for window in (None, 1, 5, 16):
        ref = reference_attention(q, k, v, window)
        for impl in impls:
            got = attend(q.to(device), k.to(device), v.to(device), window, impl).double().cpu()
            err = (got - ref).abs().max().item()
            if err > tol:
                raise AssertionError(f"attention impl {impl}, window {window}: max error {err:.2e} vs reference")
            worst = max(worst, err)
    return worst


def model_check(cfg: ModelConfig, device: str, T: int) -> str:
    """The whole model under flex and under the boolean mask, forward and backward (bf16
    autocast on CUDA): logits and gradients must agree to bf16 rounding. On the CPU (no flex
    backward there) forward only, float32."""
    cuda = device.startswith("cuda")
    m = PlanLM(cfg)
    m.init_weights(0)
    m.to(device)
    ids = torch.randint(0, cfg.vocab_size, (2, T + 1), generator=torch.Generator().manual_seed(1)).to(device)
    out = {}
    for impl in ("mask", "flex"):
        m.set_attention_impl(impl)
        m.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda), \
                torch.set_grad_enabled(cuda):
            logits = m(ids[:, :-1]).float()
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        if cuda:
            loss.backward()
        grad = m.model.layers[0].self_attn.q_proj.weight.grad.float().clone() if cuda else torch.ones(1)
        out[impl] = (logits.detach(), loss.item(), grad)
    (la, lossa, ga), (lb, lossb, gb) = out["mask"], out["flex"]
    logit_rel = ((la - lb).abs().max() / la.abs().max()).item()
    grad_rel = ((ga - gb).abs().max() / ga.abs().max()).item()
    tol = 5e-2 if cuda else 1e-5
    if logit_rel > tol or grad_rel > 10 * tol:
        raise AssertionError(f"flex vs mask on the whole model: logits {logit_rel:.2e}, layer-0 q grad {grad_rel:.2e}")
    return f"flex vs mask, T={T}: loss {lossa:.4f} / {lossb:.4f}, logits rel {logit_rel:.1e}, grad rel {grad_rel:.1e}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="*", help="config.json files (train/configs/*.json)")
    ap.add_argument("--self-test", action="store_true", help="check the attention implementations (and, with "
                    "configs, each whole model under flex vs mask)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seq-len", type=int, default=256, help="sequence length of the whole-model check")
    a = ap.parse_args()
    warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
    if a.self_test:
        print(f"attention self-test on {a.device} passed (max error {self_test(a.device):.1e}; flex available: {HAVE_FLEX})")
    for path in a.configs:
        cfg = load_config(path)
        with torch.device("meta"):
            m = PlanLM(cfg)
        print(f"{Path(path).stem}: {param_summary(m)}", flush=True)
        if a.self_test and HAVE_FLEX:
            print(f"  {model_check(cfg, a.device, a.seq_len)}", flush=True)


if __name__ == "__main__":
    main()
