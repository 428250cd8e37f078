"""
The DiffuCoder / Dream / Qwen2 Transformer, run bidirectionally, in one file.

Architecture (Qwen2's, as DiffuCoder-7B and Dream-7B): token embedding -> N pre-norm blocks
(RMSNorm -> grouped-query attention with rotate-half RoPE, q/k/v bias, no o_proj bias
-> RMSNorm -> SwiGLU MLP) -> final RMSNorm -> untied LM head. Attention is fully
bidirectional (`F.scaled_dot_product_attention(is_causal=False)`; see `attention`).

Module names equal the Hugging Face Qwen2 checkpoint keys (`model.layers.0.self_attn.q_proj.weight`),
so loading and saving is a plain state-dict copy with shape checks.

The shift: like its AR parent, the network's output row i is the prediction for token i+1.
`model(idx)` returns exactly that (raw, as the HF checkpoint computes it). The consumers that score
masked positions (the masked-diffusion loss, the decoders, the GRPO log-probs) pass
`output_rows=predictor_rows(masked)`: the LM head then runs only on the rows that predict a masked
token. `shift_logits` re-aligns full (B, T, V) logits instead (the tests compare against it).
Position 0 has no predictor, so the forward process never masks it.

Notes:
1. With a (B, T) padding mask we build Dream's (B,1,T,T) outer-AND mask, except that a padding
   query also attends to itself, so its (unused) output is finite instead of NaN. Real tokens
   never see padding, so their outputs are unchanged.
2. A (B,1,T,T) boolean mask can be passed directly (AR->diffusion attention annealing uses it).
3. Loading and saving the Hugging Face format is in checkpoint.py.
4. A `kv_cache` (decoders.KVCache) lets a forward recompute only some rows of a sequence (the
   Fast-dLLM-style prefix/dual caches of decoders.py). The training path never uses it.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


# The LM head of a masked-rows forward runs on the N rows rounded up to one of few sizes (zero rows added, their
# logits dropped). N changes every training step (the masking is random). On CPUs with native bf16, bf16 matmuls
# go through oneDNN, which builds and keeps a kernel per new shape: the host memory of a tiny bf16 pre-training
# run on a 2-core Xeon with AMX grew ~12 MB per step without this (1.9 GB at step 50, 4.7 GB at step 300).
# N is rounded up to m * 2^k with 2^ROW_BUCKET_BITS <= m < 2^(ROW_BUCKET_BITS + 1): at most 2^ROW_BUCKET_BITS
# sizes per doubling of N, at most 1 / 2^ROW_BUCKET_BITS extra rows (multiples of 64 rows still grew 10% over
# 1,000 steps). bench/memory.py prints RSS at step 50 and 1,000 with and without. None turns bucketing off.
ROW_BUCKET_BITS = 3


def bucketed_rows(n):
    """n rounded up to a multiple of 2^(bit_length(n) - 1 - ROW_BUCKET_BITS) (see ROW_BUCKET_BITS); n if off."""
    if ROW_BUCKET_BITS is None:
        return n
    step = 1 << max(n.bit_length() - 1 - ROW_BUCKET_BITS, 0)
    return -(-n // step) * step


@dataclass
class ModelConfig:
    vocab_size: int = 152064  # rows of the embedding / LM head
    n_layer: int = 28
    n_head: int = 28
    n_kv_head: int = 4  # grouped-query attention: n_head // n_kv_head queries share one k/v head
    n_embd: int = 3584
    intermediate_size: int = 18944  # SwiGLU hidden size
    max_seq_len: int = 32768  # max_position_embeddings; only used to validate inputs
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False  # True for the small Qwen2.5 models only
    # token ids, recorded in config.json like Dream does (None when unknown)
    mask_token_id: int | None = None
    pad_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self):
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}.")
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(f"n_head={self.n_head} must be divisible by n_kv_head={self.n_kv_head}.")
        if (self.n_embd // self.n_head) % 2 != 0:
            raise ValueError(f"head_dim={self.n_embd // self.n_head} must be even for RoPE.")

    @property
    def head_dim(self):
        return self.n_embd // self.n_head


def shift_logits(logits):
    """Re-align raw logits so that row i is the prediction for token i.

    The network predicts token i from hidden state i-1; row 0 has no predictor and is filled with
    row 0 (Dream's convention), it must never be used for a masked position."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def predictor_rows(positions):
    """The raw output rows that predict `positions` (B, T) bool: row i predicts token i+1. Pass it as
    `model(..., output_rows=predictor_rows(masked))` to compute the LM head only where needed; the
    returned (N, V) rows are in the row-major order of `positions` (position 0 must be False)."""
    rows = torch.zeros_like(positions)
    rows[:, :-1] = positions[:, 1:]
    return rows


def padding_position_ids(attention_mask):
    """Position ids for left-padded rows, as Dream computes them: cumsum(mask) - 1, pads set to 1."""
    position_ids = attention_mask.long().cumsum(-1) - 1
    return position_ids.masked_fill(attention_mask == 0, 1)


def padding_attention_mask(attention_mask):
    """(B, T) padding mask -> (B, 1, T, T) bool: query i attends to key j iff both are real tokens
    (Dream's outer-AND); a padding query attends to itself so its output stays finite."""
    m = attention_mask.bool()
    allowed = m[:, None, :, None] & m[:, None, None, :]  # (B, 1, T, T)
    eye = torch.eye(m.size(1), dtype=torch.bool, device=m.device)
    return allowed | eye


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # computed in fp32, cast back before the weight (as Qwen2)
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_cos_sin(position_ids, head_dim, theta):
    """fp32 cos, sin of shape (B, 1, T, head_dim) for the rotate-half layout."""
    exponents = torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim
    inv_freq = 1.0 / (theta ** exponents)  # (D/2,)
    freqs = position_ids[:, :, None].float() * inv_freq  # (B, T, D/2)
    emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # (B, 1, T, D)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def attention(q, k, v, mask):
    """Bidirectional grouped-query attention: q (B, H, T, D), k and v (B, Hkv, Tk, D), mask None or (B, 1, T, Tk)
    bool (True = may attend) -> (B, H, T, D); query head h uses k/v head h // (H / Hkv), as Qwen2's repeat_kv.

    PyTorch's fused kernel (SDPA), except inside torch.compile when gradients are computed on CPU: there SDPA's
    backward is slow in bf16 (12.7 ms against 2.2 ms forward for a tiny pre-training layer on a 2-core Xeon with
    AMX) and is not fused, while `plain_attention` lets the compiler fuse the softmax and its backward
    (Transformer.compile_blocks). Without the compiler plain matmuls were 4-8% slower in fp32 (mixed in bf16),
    so eager runs keep SDPA."""
    if q.device.type == "cpu" and torch.compiler.is_compiling() and torch.is_grad_enabled():
        return plain_attention(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=k.size(1) != q.size(1))


def plain_attention(q, k, v, mask):
    """`attention` as plain matmuls with an fp32 softmax (transformers' eager Qwen2 attention). The G = H / Hkv
    query heads of a k/v head are folded into the query rows, so k and v are never repeated."""
    B, H, T, D = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    scores = q.reshape(B, Hkv, H // Hkv * T, D) @ k.transpose(-2, -1) * D**-0.5  # (B, Hkv, G*T, Tk)
    if mask is not None:
        scores = scores.view(B, Hkv, H // Hkv, T, Tk).masked_fill(~mask[:, :, None], float("-inf")).flatten(2, 3)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    return (weights @ v).view(B, H, T, D)


class Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.q_proj = nn.Linear(config.n_embd, config.n_head * self.head_dim, bias=True)
        self.k_proj = nn.Linear(config.n_embd, config.n_kv_head * self.head_dim, bias=True)
        self.v_proj = nn.Linear(config.n_embd, config.n_kv_head * self.head_dim, bias=True)
        self.o_proj = nn.Linear(config.n_head * self.head_dim, config.n_embd, bias=False)

    def forward(self, x, cos, sin, mask, kv_cache=None, layer=0):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, Hkv, T, D)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)  # (B, Hkv, T_all, D): the cached rows and these
        return self.o_proj(attention(q, k, v, mask).transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.gate_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.n_embd, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, mask, kv_cache=None, layer=0):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, kv_cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.model = nn.ModuleDict(dict(
            embed_tokens=nn.Embedding(config.vocab_size, config.n_embd),
            layers=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            norm=RMSNorm(config.n_embd, config.rms_norm_eps),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.gradient_checkpointing = False  # per-block activation checkpointing while training
        if self.lm_head.weight.device.type != "meta":
            self.apply(self._init_weights)

    def _init_weights(self, module):
        std = 0.02
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)

    def num_params(self, exclude_embedding=False):
        n = sum(p.numel() for p in self.parameters())
        if exclude_embedding:
            n -= self.model.embed_tokens.weight.numel()
        return n

    def compile_blocks(self):
        """torch.compile each block in place (the state-dict keys stay the same). The blocks see one shape per
        workload; the LM head, whose rows change every training step, stays eager. On CPU the compiled block
        fuses the elementwise ops (RMSNorm, RoPE, SwiGLU, the softmax of `attention`) that otherwise cost
        more than the matmuls in bf16 (docs/results.md, Performance)."""
        for block in self.model.layers:
            block.compile()

    def flops_per_token(self, seq_len):
        """Training FLOPs per token (forward + backward): 6 N for the matmuls, plus attention scores."""
        c = self.config
        n = self.num_params(exclude_embedding=True)
        return 6 * n + 12 * c.n_layer * c.n_head * c.head_dim * seq_len

    def forward(self, idx, attention_mask=None, position_ids=None, output_rows=None, kv_cache=None):
        """idx (B, T) -> logits (B, T, V) in fp32; row i predicts token i+1 (see `shift_logits`).
        With output_rows, only those rows go through the LM head: logits (N, V) in their order.
        output_rows: (B, T) bool, or a pair of (N,) long tensors (batch index, row index).

        attention_mask: None (all tokens attend to all), a (B, T) 0/1 padding mask, or a
        (B, 1, T, T) bool mask (True = may attend). position_ids: (B, T); by default arange(T),
        or cumsum(mask) - 1 when a padding mask is given.
        kv_cache: a decoders.KVCache; when its start is set, idx holds the rows start:end of the cached
        sequence, attention_mask must be None or (B, 1, T, T_all) and position_ids default to start:end."""
        B, T = idx.shape
        if T > self.config.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len={self.config.max_seq_len}; shorten the input.")
        offset = 0 if kv_cache is None or kv_cache.start is None else kv_cache.start
        mask = None
        if attention_mask is not None:
            if attention_mask.dim() == 2 and offset == 0:
                if position_ids is None:
                    position_ids = padding_position_ids(attention_mask)
                mask = padding_attention_mask(attention_mask)
            elif attention_mask.dim() == 4:
                mask = attention_mask.bool()
            else:
                raise ValueError(f"attention_mask must be (B, T) or (B, 1, T, T) (with a filled kv_cache: "
                                 f"(B, 1, T, T_all)), "
                                 f"got shape {tuple(attention_mask.shape)}.")
        x = self.model.embed_tokens(idx)  # (B, T, C)
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        if position_ids is None:
            position_ids = torch.arange(offset, offset + T, device=idx.device).expand(B, T)
        cos, sin = rope_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta)  # (B, 1, T, D) fp32
        cos, sin = cos.to(dtype), sin.to(dtype)
        for i, block in enumerate(self.model.layers):
            if self.gradient_checkpointing and self.training:
                x = checkpoint(block, x, cos, sin, mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, mask, kv_cache, i)
        if output_rows is None:
            return self.lm_head(self.model.norm(x)).float()  # (B, T, V)
        x = x[output_rows]  # (N, C)
        n = x.shape[0]
        x = F.pad(x, (0, 0, 0, bucketed_rows(n) - n))  # few distinct LM-head shapes (see ROW_BUCKET_BITS)
        return self.lm_head(self.model.norm(x))[:n].float()  # (N, V)

    def resize_token_embeddings(self, vocab_size):
        """Grow the embedding and the LM head to vocab_size rows, e.g. for the diffusion tokens added to a
        Qwen2.5 tokenizer. Existing rows are kept; each new row starts as the mean of the old rows (of the
        embedding, and of the LM head), so a new token starts as an average token."""
        old = self.config.vocab_size
        if vocab_size < old:
            raise ValueError(f"resize_token_embeddings only grows the vocabulary ({old} rows), got {vocab_size}.")
        with torch.no_grad():
            def grown(w):  # (old, C) -> (vocab_size, C)
                return nn.Parameter(torch.cat([w, w.mean(0, keepdim=True).expand(vocab_size - old, -1)]))
            self.model.embed_tokens.weight = grown(self.model.embed_tokens.weight)
            self.lm_head.weight = self.model.embed_tokens.weight if self.config.tie_word_embeddings else \
                grown(self.lm_head.weight)
        self.model.embed_tokens.num_embeddings = self.lm_head.out_features = vocab_size
        self.config.vocab_size = vocab_size
