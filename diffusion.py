"""
The training objectives, shared by pre-training, AR->diffusion adaptation, SFT and the tests: the
masked-diffusion forward process and its loss, the autoregressive (next-token) loss, and the attention
masks that take a model from causal to bidirectional.

Absorbing-state diffusion with the linear schedule: draw t ~ U(eps, 1) per sequence and replace
each maskable token by <|mask|> with probability t. The model predicts the clean token at every
masked position; the loss is the sum over masked positions of CE / t, divided by the number of
masked tokens (or by a normaliser the caller gives, e.g. the count over the whole optimizer step
across ranks, which makes gradient accumulation and DDP exact).

Position 0 is never maskable: with the AR-style shift (model.predictor_rows) nothing predicts it.
The loss takes the logits of the masked positions only, `model(x_t, output_rows=predictor_rows(masked))`,
so the LM head and the fp32 cross-entropy run on the masked rows, not on all B x T.

The autoregressive objective uses the same network, the same shift and the same checkpoints: causal
attention, and the cross-entropy of every supervised token predicted from the clean tokens before it.
An AR model is the starting point of AR->diffusion adaptation (DiffuCoder starts from Qwen2.5-Coder):
`training_attention_mask` is causal for 'ar', anneals causal -> full over `anneal_steps` (DiffuLLaMA),
and is full for 'diffusion', always combined with the left-padding mask of the rows.
"""

import torch
import torch.nn.functional as F

from model import padding_attention_mask


def sample_noise(batch_size, seq_len, eps=1e-3, generator=None, device=None):
    """Noise for one batch: t (B,) ~ U(eps, 1) and uniforms u (B, T); token j of row b is masked iff u[b, j] < t[b]."""
    t = eps + (1 - eps) * torch.rand(batch_size, generator=generator, device=device)
    u = torch.rand(batch_size, seq_len, generator=generator, device=device)
    return t, u


def apply_mask(x, maskable, t, u, mask_token_id):
    """x (B, T) clean tokens, maskable (B, T) bool -> (x_t, masked): masked = (u < t) & maskable,
    position 0 excluded."""
    masked = (u < t[:, None]) & maskable
    masked[:, 0] = False
    x_t = torch.where(masked, torch.full_like(x, mask_token_id), x)
    return x_t, masked


def annealed_attention_mask(batch_size, seq_len, step, anneal_steps, generator=None, device=None):
    """AR->diffusion attention annealing (DiffuLLaMA): allowed(i, j) = causal(i >= j) OR Bernoulli(p),
    p = min(1, (step + 1) / anneal_steps), one draw per entry. Returns (B, 1, T, T) bool, or None
    once the mask is fully bidirectional."""
    p = min(1.0, (step + 1) / anneal_steps) if anneal_steps > 0 else 1.0
    if p >= 1.0:
        return None
    causal = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()
    coin = torch.rand(batch_size, 1, seq_len, seq_len, generator=generator, device=device) < p
    return causal | coin


def training_attention_mask(objective, real, step=0, anneal_steps=0, generator=None):
    """The attention of a training batch: (B, 1, T, T) bool, or None when every token may attend to every
    other (no padding, bidirectional). objective 'ar': causal; 'diffusion': bidirectional, or annealed from
    causal to full while step < anneal_steps. real (B, T) bool: False on left padding, which no real token
    sees (model.padding_attention_mask)."""
    B, T = real.shape
    if objective == "ar":
        mask = torch.ones(T, T, dtype=torch.bool, device=real.device).tril().expand(B, 1, T, T)
    elif objective == "diffusion":
        mask = annealed_attention_mask(B, T, step, anneal_steps, generator, real.device) if anneal_steps > 0 else None
    else:
        raise ValueError(f"objective must be 'diffusion' or 'ar', got '{objective}'.")
    if not bool(real.all()):
        pad = padding_attention_mask(real)  # (B, 1, T, T)
        mask = pad if mask is None else mask & pad
    return mask


def ar_loss(logits, x0, targets, normalizer=None):
    """Autoregressive loss: sum over the target positions of the CE of token i predicted from row i - 1
    (clean input, causal attention), divided by `normalizer` (default: the number of targets, at least 1).
    logits (N, V): `model(x0, output_rows=predictor_rows(targets))`; targets (B, T) bool, position 0 False."""
    ce = F.cross_entropy(logits.float(), x0[targets], reduction="sum")
    if normalizer is None:
        normalizer = targets.sum().clamp(min=1)
    return ce / normalizer


def diffusion_loss(logits, x0, masked, t, normalizer=None):
    """Masked-diffusion loss: sum over masked positions of CE / t, divided by `normalizer`
    (default: the number of masked tokens, at least 1).

    logits (N, V): the predictions for the N masked positions in row-major order, i.e.
    `model(x_t, output_rows=predictor_rows(masked))`; x0 (B, T) clean tokens; masked (B, T) bool;
    t (B,). CE is computed in fp32."""
    ce = F.cross_entropy(logits.float(), x0[masked], reduction="none")  # (N,)
    weights = (1.0 / t)[:, None].expand_as(masked)[masked]  # (N,)
    if normalizer is None:
        normalizer = masked.sum().clamp(min=1)
    return (ce * weights).sum() / normalizer
