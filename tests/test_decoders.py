"""
Tests for decoders.py, the approximate decoders: threshold decoding against the reference loop of
test_sample.py (one position at a time, from the definition), at least one commit per step, and the
prefix / dual KV caches equal to plain decoding where the cache is exact, recomputing only the block.

Hermetic (tiny random models). Run: .venv/bin/python -m pytest tests/test_decoders.py
"""

import pytest
import torch

from decoders import generate
from model import ModelConfig, Transformer
from sample import diffusion_generate
from test_sample import CFG, MASK, MaskLover, left_padded, model, prompts, reference_generate  # noqa: F401 (fixture)

# -----------------------------------------------------------------------------
# the approximate fast paths: threshold decoding and the KV caches

@pytest.mark.parametrize("alg,threshold,block,steps", [("entropy", 0.3, None, 12), ("maskgit_plus", 0.5, 4, 12),
                                                       ("topk_margin", 1.0, 6, 12), ("entropy", 0.6, 4, 6)])
def test_threshold_decoding_matches_reference_loop(model, alg, threshold, block, steps):
    ps = prompts([3, 7, 5], seed=13)
    ids, mask = left_padded(ps)
    out, hist = generate(model, ids, mask, max_new_tokens=12, steps=steps, alg=alg, threshold=threshold,
                         block_length=block, mask_token_id=MASK, return_history=True)
    for b, (tokens, when) in enumerate(reference_generate(model, ps, 12, steps, alg, block=block, threshold=threshold)):
        assert out[b, ids.size(1):].tolist() == tokens
        assert hist.steps[b].tolist() == when


def count_forwards(model):
    calls = []
    model.register_forward_hook(lambda m, args, out: calls.append(args[0].size(1)))
    return calls


@pytest.mark.parametrize("block", [None, 4])
def test_threshold_commits_at_least_one_token_per_step_and_terminates(model, block):
    ids = prompts([6], seed=14)[0][None]
    m = MaskLover(model)  # not m: hooks stay on this wrapper
    calls = count_forwards(m)
    kw = dict(max_new_tokens=12, steps=12, alg="entropy", block_length=block, mask_token_id=MASK, return_history=True)
    out, h = generate(m, ids, threshold=1.0, **kw)  # nothing passes 1.0: exactly one token per step
    assert not (out == MASK).any() and sorted(h.steps[0].tolist()) == list(range(12)) and len(calls) == 12
    calls.clear()
    out, h = generate(m, ids, threshold=1e-3, **kw)  # every prediction passes: one step per block
    assert not (out == MASK).any() and len(calls) == 12 // (block or 12)
    assert h.steps[0].tolist() == [j // (block or 12) for j in range(12)]
    calls.clear()
    out, h = generate(m, ids, threshold=0.5, **{**kw, "steps": 12 // (block or 4)})  # a step budget of 3 per block
    assert not (out == MASK).any() and len(calls) <= 12 // (block or 4)
    used = sorted(set(h.steps[0].tolist()))
    assert used == list(range(len(used))) == list(range(len(calls)))  # every step commits at least one token


@pytest.fixture(scope="module")
def one_layer():
    """With one layer a token's keys and values depend on the token and its position only, so a KV cache
    of tokens that have not changed is exact: cached decoding must give plain decoding's tokens."""
    torch.manual_seed(1)
    m = Transformer(ModelConfig(**{**CFG, "n_layer": 1})).eval()
    with torch.no_grad():
        m.lm_head.weight.mul_(20.0)
    return m


CACHE_CASES = [  # (alg, steps, block, threshold)
    ("entropy", 12, 4, None), ("maskgit_plus", 6, 4, None), ("topk_margin", 12, 6, None), ("origin", 12, 4, None),
    ("entropy", 12, 4, 0.4),
]


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("alg,steps,block,threshold", CACHE_CASES)
def test_cached_decoding_equals_plain_when_the_cache_is_exact(model, one_layer, cache, alg, steps, block, threshold):
    ids, mask = left_padded(prompts([3, 7, 5], seed=15))
    kw = dict(max_new_tokens=12, steps=steps, alg=alg, block_length=block, threshold=threshold, mask_token_id=MASK)

    def run(m, **extra):
        return generate(m, ids, mask, generator=torch.Generator().manual_seed(0), **kw, **extra)
    assert torch.equal(run(one_layer, cache=cache), run(one_layer))  # the cached keys/values are the true ones
    assert torch.equal(run(model, cache=cache, cache_refresh=1), run(model))  # refreshed every step: no reuse at all


def test_dual_cache_with_one_block_refreshed_every_step_equals_plain(model):
    ids, mask = left_padded(prompts([4, 8], seed=16))
    kw = dict(max_new_tokens=12, steps=12, alg="entropy", top_p=0.9, mask_token_id=MASK)
    plain = diffusion_generate(model, ids, mask, **kw)
    assert torch.equal(generate(model, ids, mask, cache="dual", block_length=12, cache_refresh=1, **kw), plain)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_cache_recomputes_only_the_block(model, cache):
    """Each block: one full forward (refill), then forwards over the block and the row before it (dual)
    or over everything from that row on (prefix); cache_refresh=2 refills every other step."""
    m = MaskLover(model)
    calls = count_forwards(m)
    ids = prompts([5], seed=17)[0][None]
    P, N, block = 5, 12, 4
    out = generate(m, ids, max_new_tokens=N, steps=6, alg="entropy", block_length=block, cache=cache,
                   mask_token_id=MASK)
    assert not (out == MASK).any()
    rows = lambda lo: block + 1 if cache == "dual" else P + N - (P + lo - 1)  # noqa: E731
    assert calls == [x for lo in range(0, N, block) for x in (P + N, rows(lo))]  # 2 steps per block
    calls.clear()
    generate(m, ids, max_new_tokens=N, steps=12, alg="entropy", block_length=block, cache=cache, cache_refresh=2,
             mask_token_id=MASK)  # 4 steps per block: refills at steps 0 and 2
    assert calls == [x for lo in range(0, N, block) for x in (P + N, rows(lo), P + N, rows(lo))]
