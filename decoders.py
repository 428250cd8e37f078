"""
Approximate fast decoders, built from sample.py's pieces: semi-autoregressive blocks (LLaDA), a
confidence threshold and prefix/dual KV caches (Fast-dLLM, Wu et al. 2025). None of them is
DiffuCoder's default; `sample.diffusion_generate` is the exact algorithm. `generate` picks
`fast_generate` when one of these options is set, else the exact decoder.

1. `block_length`: blocks are decoded left to right, steps split evenly between them, and Dream's
   schedule runs inside each block over that block's masked positions (LLaDA's semi-AR decoding,
   which the paper contrasts against). With one block (block_length = max_new_tokens) it is Dream's
   decoding, token for token (tested). So each block inherits Dream's schedule quirk (one token per
   step: none at the block's first step, two at its last, committed without seeing each other); add
   threshold=1 for one token at every step (blocks of 8 on the tiny model: 0.148 -> 0.438 pass@1).
2. `threshold` in (0, 1]: each step commits every masked position of the block whose token
   probability (under the filtered distribution, whatever the alg) exceeds the threshold, and at
   least the one the alg ranks first; the block's last allotted step commits what is left, so
   `steps` becomes a maximum, and a block that is done early hands over to the next block at the
   next step (the history numbers the steps actually run). threshold=1 is one token per step.
   Needs a confidence alg (not 'origin') and alg_temp=0.
3. `cache` 'prefix' | 'dual' (needs block_length): the block's first forward runs over the whole
   sequence and stores every layer's keys/values (`KVCache`); the block's other steps recompute only
   the rows from the one before the block (it predicts the block's first token) to the end
   ('prefix') or to the block's end ('dual'), attending to the stored keys/values of the other rows.
   Those are stale: computed before this block's tokens were committed (exact for a one-layer model,
   an approximation above; tested). `cache_refresh=r` refills every r steps of a block (1: no
   reuse, the tokens of uncached decoding at temperature 0). Only the block's predictions are
   computed, so at temperature > 0 the random draws differ from uncached decoding and
   `first_confidence` covers the first block only. Fast-dLLM's Dream code differs: its refill
   forward commits the block's first token whatever its confidence, and its cached steps predict
   the block's first token from that token's own row.
4. Even where the cache is exact, a cached step runs attention with another query length than a
   full forward, so its logits differ from uncached decoding by rounding (more under bf16 autocast,
   where the stored keys/values are bf16 activations), and tokens can differ at near-ties.

Measured speed-ups (python -m bench.speed) and pass@1 on the tiny model are in docs/results.md.
"""

import itertools
import math

import torch
import torch.nn.functional as F

from model import padding_attention_mask, padding_position_ids, predictor_rows
from sample import (DecodeHistory, _need, check_decoding_options, check_generate_args, commit_rule, diffusion_generate,
                    generation_padding, sample_tokens)

FAST_OPTIONS = ("block_length", "threshold", "cache", "cache_refresh")


def generate(model, input_ids, attention_mask=None, *, block_length=None, threshold=None, cache=None,
             cache_refresh=None, **kw):
    """`fast_generate` when an approximation is asked for, else the exact `sample.diffusion_generate`."""
    fast = dict(block_length=block_length, threshold=threshold, cache=cache, cache_refresh=cache_refresh)
    if all(v is None for v in fast.values()):
        return diffusion_generate(model, input_ids, attention_mask, **kw)
    return fast_generate(model, input_ids, attention_mask, **fast, **kw)


class KVCache:
    """Every layer's keys and values (after RoPE) of a whole (B, T) sequence, so that a forward can
    recompute only the rows start:end and attend to the cached rest (the model calls `update`).

    A forward over the whole sequence with start = None (re)fills it. A forward over
    idx = x[:, start:end] (with those rows' position ids and (B, 1, end - start, T) mask rows) writes the
    fresh keys/values of its rows into the cache and attends to all T of them: exact for the cached rows
    whose hidden states have not changed since the fill, an approximation for the others (attention is
    bidirectional, so a changed token changes every row's hidden states in the layers above)."""

    def __init__(self):
        self.k, self.v = {}, {}  # layer -> (B, Hkv, T, D)
        self.start = self.end = None  # rows the next forward recomputes (None: all of them, a refill)

    def update(self, layer, k, v):
        """Store or splice in one layer's fresh keys/values (B, Hkv, rows, D); return the full (B, Hkv, T, D) ones."""
        if self.start is None:
            self.k[layer], self.v[layer] = k, v
        else:
            self.k[layer][:, :, self.start:self.end] = k
            self.v[layer][:, :, self.start:self.end] = v
        return self.k[layer], self.v[layer]


@torch.no_grad()
def fast_generate(model, input_ids, attention_mask=None, *, max_new_tokens, steps, temperature=0.0, top_p=None,
                  top_k=None, alg="entropy", alg_temp=0.0, eps=1e-3, mask_token_id, generator=None,
                  return_history=False, block_length=None, threshold=None, cache=None, cache_refresh=None):
    """`sample.diffusion_generate` with the approximations of the module docstring. Same arguments and
    return value, plus block_length, threshold, cache ('prefix' | 'dual') and cache_refresh."""
    check_generate_args(model, input_ids, attention_mask, max_new_tokens, steps, alg, temperature, top_p, top_k,
                        alg_temp, eps, mask_token_id)
    check_fast_options(max_new_tokens, steps, alg, alg_temp, block_length, threshold, cache, cache_refresh)
    B, P = input_ids.shape
    N, dev = max_new_tokens, input_ids.device
    T = P + N
    x = F.pad(input_ids, (0, N), value=mask_token_id)  # (B, T)
    gen = x[:, P:]  # (B, N) view: writing it writes x
    padding = generation_padding(attention_mask, N)  # a cached forward needs explicit positions and mask rows
    position_ids = torch.arange(T, device=dev).expand(B, T) if padding is None else padding_position_ids(padding)
    mask = None if padding is None else padding_attention_mask(padding)  # (B, 1, T, T)
    block = block_length or N
    steps_per_block = steps // (N // block)
    ts = torch.linspace(1, eps, steps_per_block + 1, device=dev)
    kv = KVCache() if cache else None
    history = DecodeHistory.empty(B, N, dev)
    pos = torch.arange(N, device=dev)
    step_numbers = itertools.count()  # (threshold decoding skips the unused steps of a finished block)
    for lo in range(0, N, block):
        in_block = (pos >= lo) & (pos < lo + block)  # (N,)
        refresh = False  # the next forward runs over the whole sequence and refills the cache
        for i in range(steps_per_block):
            step = next(step_numbers)
            t, s, last = ts[i], ts[i + 1], i == steps_per_block - 1
            refresh |= cache is not None and i % (cache_refresh or steps_per_block) == 0
            masked = gen == mask_token_id  # (B, N)
            active = masked & in_block  # (B, N) positions this step may commit
            if not bool(active.any()):  # the block is done ('origin' can finish early)
                continue
            # the rows r0:r1 of x this forward computes; a cached step starts one row before the block
            r0, r1 = 0, T
            if kv is not None:
                if not refresh:
                    r0, r1 = P + lo - 1, (T if cache == "prefix" else P + lo + block)
                kv.start, kv.end = (None, None) if refresh else (r0, r1)
                refresh = False
            # predictions for every masked position (as Dream) or, with a cache, for the block's only
            need = masked if cache is None else active  # (B, N)
            rows = predictor_rows(F.pad(need, (P, 0)))[:, r0:r1]  # (B, r1 - r0)
            logits = model(x[:, r0:r1], None if mask is None else mask[:, :, r0:r1], position_ids[:, r0:r1],
                           output_rows=rows, kv_cache=kv).float()  # (M, V)
            logits[:, mask_token_id] = -math.inf  # the mask token is never a prediction
            x0, conf, p_x0 = sample_tokens(logits, alg, temperature, top_p, top_k, generator)  # (M,) each
            score = torch.full((B, N), -math.inf, device=dev).masked_scatter(need, conf)  # (B, N)
            in_score = score.masked_fill(~in_block, -math.inf)
            if threshold is not None:  # every token above the threshold, and the most confident one
                prob = torch.zeros((B, N), device=dev).masked_scatter(need, p_x0)  # (B, N)
                best = torch.zeros_like(active).scatter_(1, in_score.argmax(-1, keepdim=True), True)
                commit = active & ((prob > threshold) | best | last)  # the block's last step commits what is left
            else:
                commit = commit_rule(in_score, active, alg, alg_temp, t, s, last, generator)
            gen.copy_(torch.where(commit, gen.masked_scatter(need, x0), gen))
            history.record(step, commit, score, need)
            if threshold is not None and not bool((active & ~commit).any()):
                break  # the block is done: the next step starts the next block
    return (x, history) if return_history else x


def check_fast_options(max_new_tokens, steps, alg="entropy", alg_temp=0.0, block_length=None, threshold=None,
                       cache=None, cache_refresh=None):
    """sample.check_decoding_options and the options of this file (scripts check them before loading a
    model). A bad one raises a one-line ValueError that names the fix."""
    check_decoding_options(max_new_tokens, steps, alg)
    if block_length is not None:
        _need(isinstance(block_length, int) and block_length >= 1 and max_new_tokens % block_length == 0,
              f"block_length {block_length} must divide max_new_tokens {max_new_tokens}")
        n_blocks = max_new_tokens // block_length
        _need(steps % n_blocks == 0, f"steps {steps} must be a multiple of the number of blocks {n_blocks}")
    if threshold is not None:
        _need(isinstance(threshold, (int, float)) and 0 < threshold <= 1,
              f"threshold must be in (0, 1] (the probability above which a token is committed early; "
              f"1: one token per step), got {threshold!r}")
        _need(alg != "origin", "threshold decoding ranks positions by confidence; use alg='entropy', "
                               "'maskgit_plus' or 'topk_margin', not 'origin'")
        _need(alg_temp == 0,
              f"threshold decoding commits the most confident positions; set alg_temp=0 (got {alg_temp})")
    _need(cache in (None, "prefix", "dual"), f"cache must be None, 'prefix' or 'dual', got {cache!r}")
    _need(cache is None or block_length is not None,
          f"cache='{cache}' decodes block by block; set block_length too (e.g. 32)")
    _need(cache_refresh is None or (cache is not None and isinstance(cache_refresh, int) and cache_refresh >= 1),
          f"cache_refresh must be a positive int and needs cache='prefix' or 'dual', "
          f"got cache_refresh={cache_refresh!r}, cache={cache!r}")
