"""
The DiffuCoder / Dream / Qwen2 Transformer, run bidirectionally, in one file.

Architecture (Qwen2's, as DiffuCoder-7B and Dream-7B): token embedding -> N pre-norm blocks
(RMSNorm -> grouped-query attention with rotate-half RoPE, q/k/v bias, no o_proj bias
-> RMSNorm -> SwiGLU MLP) -> final RMSNorm -> untied LM head. Attention is fully
bidirectional (`F.scaled_dot_product_attention(is_causal=False)`).

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
3. `Transformer.from_pretrained` builds the model on the meta device and assigns the checkpoint
   tensors shard by shard: a bf16 7B checkpoint never exists as an fp32 copy in host RAM.
4. A `kv_cache` (decoders.KVCache) lets a forward recompute only some rows of a sequence (the
   Fast-dLLM-style prefix/dual caches of decoders.py). The training path never uses it.
"""

import json
import os
import shutil
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


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
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim))
    freqs = position_ids[:, :, None].float() * inv_freq  # (B, T, D/2)
    emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # (B, 1, T, D)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


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
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False,
                                           enable_gqa=self.n_kv_head != self.n_head)  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


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
                raise ValueError(f"attention_mask must be (B, T) or (B, 1, T, T) (with a filled kv_cache: (B, 1, T, T_all)), "
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
        if output_rows is not None:
            x = x[output_rows]  # (N, C)
        x = self.model.norm(x)
        return self.lm_head(x).float()  # (B, T, V) or (N, V)

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

    # ----------------------------------------------------------------------------------------
    # Hugging Face checkpoint format

    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None):
        """Load an HF directory (DiffuCoder-7B-*, Dream-v0-*, Qwen2.5-Coder-*, or our own save).

        dtype=None keeps the checkpoint's dtype (bit-exact round trip). Weights are assigned to a
        meta-device model shard by shard, so host memory peaks near the checkpoint size."""
        config = config_from_hf(load_hf_config(path))
        with torch.device("meta"):
            model = cls(config)
        expected = dict(model.state_dict())
        if config.tie_word_embeddings:
            expected.pop("lm_head.weight")
        seen = set()
        for file in checkpoint_files(path):
            for key, tensor in read_safetensors(file):
                if key.endswith("rotary_emb.inv_freq") or (key == "lm_head.weight" and config.tie_word_embeddings):
                    continue
                if key not in expected:
                    raise ValueError(f"checkpoint {file} has unexpected tensor '{key}'; it is not a Qwen2/Dream checkpoint or its config.json does not match.")
                want = expected[key].shape
                if tuple(tensor.shape) != tuple(want):
                    raise ValueError(f"shape mismatch for '{key}' in {file}: checkpoint has {tuple(tensor.shape)}, "
                                     f"config.json implies {tuple(want)}; the config does not match the weights.")
                tensor = tensor.to(device=device or "cpu", dtype=dtype or tensor.dtype)
                assign_tensor(model, key, tensor)
                seen.add(key)
        missing = sorted(set(expected) - seen)
        if missing:
            raise ValueError(f"checkpoint in {path} is missing {len(missing)} tensors, e.g. '{missing[0]}'; the download is incomplete or the config does not match.")
        if config.tie_word_embeddings:
            model.lm_head.weight = model.model.embed_tokens.weight
        return model.eval()

    def save_pretrained(self, path):
        """Write config.json + safetensors weights, atomically: the files go to a temporary
        directory that replaces `path` at the end (tokenizer files already in `path` are kept)."""
        path = os.path.abspath(path)
        tmp = path + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        write_hf_checkpoint(self.state_dict(), self.config, tmp)
        replace_dir(tmp, path)


def write_hf_checkpoint(state_dict, config, path, max_shard_bytes=5 * 2**30):
    """Write config.json + model.safetensors (sharded with an index past max_shard_bytes) into the
    existing directory `path`. Tensors are saved in their own dtype, so a load round-trips bit-exactly."""
    from safetensors.torch import save_file
    state = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    shards, cur, cur_bytes = [], {}, 0
    for k, v in state.items():
        nbytes = v.numel() * v.element_size()
        if cur and cur_bytes + nbytes > max_shard_bytes:
            shards.append(cur)
            cur, cur_bytes = {}, 0
        cur[k], cur_bytes = v, cur_bytes + nbytes
    shards.append(cur)
    if len(shards) == 1:
        save_file(shards[0], os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, os.path.join(path, name), metadata={"format": "pt"})
            weight_map.update({k: name for k in shard})
        total = sum(v.numel() * v.element_size() for v in state.values())
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    dtype = next(iter(state.values())).dtype
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config_to_hf(config, dtype), f, indent=2)


def replace_dir(tmp, path):
    """Atomically (as far as the filesystem allows) move directory tmp to path, replacing it.
    Files of `path` that tmp lacks (e.g. a tokenizer saved beside the weights) are carried over."""
    if os.path.isdir(path):
        for name in os.listdir(path):
            if not os.path.exists(os.path.join(tmp, name)) and not name.startswith("model"):
                src = os.path.join(path, name)
                (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, os.path.join(tmp, name))
        old = path + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        os.replace(tmp, path)


def assign_tensor(model, key, tensor):
    """Replace the (meta) parameter `key` of model by `tensor`, keeping requires_grad."""
    module_path, name = key.rsplit(".", 1)
    module = model.get_submodule(module_path)
    module._parameters[name] = nn.Parameter(tensor, requires_grad=tensor.is_floating_point())


def load_hf_config(path):
    file = os.path.join(path, "config.json")
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no config.json in '{path}'; pass a Hugging Face model directory (e.g. a downloaded apple/DiffuCoder-7B-Instruct) or one written by save_pretrained.")
    with open(file) as f:
        return json.load(f)


def checkpoint_files(path):
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            names = sorted(set(json.load(f)["weight_map"].values()))
        files = [os.path.join(path, n) for n in names]
    else:
        files = [os.path.join(path, "model.safetensors")]
    for file in files:
        if not os.path.isfile(file):
            raise FileNotFoundError(f"missing weight file {file}; the checkpoint in '{path}' is incomplete (only safetensors checkpoints are supported).")
    return files


def read_safetensors(file):
    """Yield (key, tensor) from one safetensors file, with a clear error if it is damaged."""
    from safetensors import safe_open
    try:
        with safe_open(file, framework="pt", device="cpu") as f:
            for key in f.keys():
                yield key, f.get_tensor(key)
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise ValueError(f"weight file {file} is unreadable (truncated or corrupted: {e}); re-download or re-save the checkpoint.") from None


_ARCHITECTURES = {"DreamModel", "Qwen2ForCausalLM", "Qwen2Model"}


def config_from_hf(hf):
    """HF config.json dict (Qwen2 / Dream; transformers 4.x or 5.x layout) -> ModelConfig."""
    arch = (hf.get("architectures") or ["?"])[0]
    if arch not in _ARCHITECTURES:
        raise ValueError(f"unsupported architecture '{arch}' in config.json; expected one of {sorted(_ARCHITECTURES)}.")
    rope = hf.get("rope_parameters") or {}
    theta = hf.get("rope_theta", rope.get("rope_theta"))
    if theta is None:
        raise ValueError("config.json has neither 'rope_theta' nor 'rope_parameters.rope_theta'.")
    scaling = hf.get("rope_scaling") or {}
    if scaling.get("type", scaling.get("rope_type", "default")) != "default" or rope.get("rope_type", "default") != "default":
        raise ValueError("config.json asks for RoPE scaling, which this model does not implement; remove 'rope_scaling' to use the base context length.")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"unsupported hidden_act '{hf['hidden_act']}' in config.json (only silu).")
    return ModelConfig(
        vocab_size=hf["vocab_size"], n_layer=hf["num_hidden_layers"], n_head=hf["num_attention_heads"],
        n_kv_head=hf.get("num_key_value_heads", hf["num_attention_heads"]), n_embd=hf["hidden_size"],
        intermediate_size=hf["intermediate_size"], max_seq_len=hf.get("max_position_embeddings", 32768),
        rope_theta=float(theta), rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_word_embeddings=hf.get("tie_word_embeddings", False),
        mask_token_id=hf.get("mask_token_id"), pad_token_id=hf.get("pad_token_id"),
        eos_token_id=hf.get("eos_token_id") if isinstance(hf.get("eos_token_id"), int) else None,
    )


def config_to_hf(config, dtype):
    """ModelConfig -> a config.json that transformers opens as Qwen2 (run it with a full 4D mask
    for diffusion), plus Dream's token-id fields."""
    hf = dict(
        architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu",
        vocab_size=config.vocab_size, num_hidden_layers=config.n_layer, num_attention_heads=config.n_head,
        num_key_value_heads=config.n_kv_head, hidden_size=config.n_embd, intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_seq_len, rope_theta=config.rope_theta,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        rms_norm_eps=config.rms_norm_eps, tie_word_embeddings=config.tie_word_embeddings,
        use_sliding_window=False, attention_dropout=0.0,
        torch_dtype=str(dtype).removeprefix("torch."), dtype=str(dtype).removeprefix("torch."),
    )
    for name in ("mask_token_id", "pad_token_id", "eos_token_id"):
        if getattr(config, name) is not None:
            hf[name] = getattr(config, name)
    return hf

