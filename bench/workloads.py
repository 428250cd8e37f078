"""
What the benchmarks share: model shapes with random weights, train_pretrain.py's training step on a random
batch, and the parsing of name lists on the command line ('decode,train', '[decode,train]').
"""

import torch

from diffusion import apply_mask, diffusion_loss, sample_noise
from model import ModelConfig, Transformer, predictor_rows

SHAPES = {  # ModelConfig fields (max_seq_len is set per workload)
    "tiny": dict(vocab_size=4096, n_layer=6, n_head=4, n_kv_head=2, n_embd=256, intermediate_size=768,
                 rope_theta=10000.0, mask_token_id=4094),  # train_pretrain.py's default model
    "1.5b": dict(vocab_size=151936, n_layer=28, n_head=12, n_kv_head=2, n_embd=1536, intermediate_size=8960,
                 tie_word_embeddings=True, mask_token_id=151666),  # Qwen2.5-Coder-1.5B's shape
    "7b": dict(vocab_size=152064, n_layer=28, n_head=28, n_kv_head=4, n_embd=3584, intermediate_size=18944,
               mask_token_id=151666),  # DiffuCoder-7B's shape
}
TINY_TRAIN_ROWS = [("pretrain", 16, 256, 0), ("sft", 16, 192, 88)]  # (name, rows, tokens, prompt tokens): the
# tiny configs' pre-training rows and SFT rows (~88 prompt tokens, never masked)


def parse_names(text, allowed, what):
    """'a,b', '[a,b]' or "['a']" -> ['a', 'b'], each checked against `allowed`."""
    names = [w.strip(" '\"") for w in text.strip("[]() ").split(",") if w.strip(" '\"")]
    bad = [w for w in names if w not in allowed]
    if bad or not names:
        raise ValueError(f"unknown {what}(s) {bad or text!r}; choose from {', '.join(allowed)}")
    return names


def shape_of(spec):
    """A SHAPES name or a dict of ModelConfig fields -> (fields, label)."""
    if isinstance(spec, dict):
        return {"mask_token_id": spec.get("vocab_size", 2) - 2, **spec}, "custom"
    if spec not in SHAPES:
        raise ValueError(f"model shape must be one of {', '.join(SHAPES)} or a dict of ModelConfig fields, "
                         f"got {spec!r}")
    return SHAPES[spec], spec


def random_model(spec, dev, max_seq_len, seed):
    """A randomly initialised model of a shape, built directly on `dev` in fp32: (model, mask_token_id, label)."""
    fields, label = shape_of(spec)
    torch.manual_seed(seed)
    with torch.device(dev):
        m = Transformer(ModelConfig(**fields, max_seq_len=max_seq_len))
    return m, fields["mask_token_id"], with_size(label, m)


def with_size(label, model):
    n = model.num_params()
    size = f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"
    return f"{label} {size}"


def random_train_batch(B, T, prompt, mask_id, generator):
    """Random tokens masked as train_pretrain.py masks them (the first `prompt` tokens never): x, x_t, masked, t."""
    x = torch.randint(0, mask_id - 2, (B, T), generator=generator)
    maskable = torch.ones(B, T, dtype=torch.bool)
    maskable[:, :prompt] = False  # SFT: the prompt is never masked
    t, u = sample_noise(B, T, 1e-3, generator)
    x_t, masked = apply_mask(x, maskable, t, u, mask_id)
    return x, x_t, masked, t


def train_step(model, module, opt, ctx, x, x_t, masked, t):
    """train_pretrain.py's step with one micro-batch: forward (LM head on the masked rows), 1/t-weighted loss,
    backward, grad clip, AdamW."""
    with ctx:
        logits = module(x_t, output_rows=predictor_rows(masked))
    diffusion_loss(logits, x, masked, t).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
