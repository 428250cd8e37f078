"""
The training objectives (diffusion.py): the forward process, the masked-diffusion loss, the autoregressive
loss and the training attention masks (causal, annealed, full; with left padding).

Run: .venv/bin/python -m pytest tests/test_diffusion.py
"""

import math

import torch
import torch.nn.functional as F

from diffusion import (annealed_attention_mask, apply_mask, ar_loss, diffusion_loss, sample_noise,
                       training_attention_mask)
from model import ModelConfig, Transformer, padding_position_ids, predictor_rows

MASK = 99


def test_masked_fraction_follows_t():
    g = torch.Generator().manual_seed(0)
    B, T = 8, 4000
    t = torch.linspace(0.05, 0.95, B)
    _, u = sample_noise(B, T, generator=g)
    x = torch.randint(0, 50, (B, T), generator=g)
    x_t, masked = apply_mask(x, torch.ones(B, T, dtype=torch.bool), t, u, MASK)
    frac = masked.float().mean(1)
    assert (frac - t).abs().max() < 0.03
    assert torch.equal(x_t[masked], torch.full((int(masked.sum()),), MASK))
    assert torch.equal(x_t[~masked], x[~masked])


def test_t_range_and_unmaskable_positions():
    g = torch.Generator().manual_seed(1)
    t, u = sample_noise(1000, 16, eps=1e-3, generator=g)
    assert t.min() >= 1e-3 and t.max() <= 1.0
    x = torch.randint(0, 50, (1000, 16), generator=g)
    maskable = torch.ones(1000, 16, dtype=torch.bool)
    maskable[:, :5] = False  # a prompt
    _, masked = apply_mask(x, maskable, torch.ones(1000), u, MASK)  # t = 1 masks everything maskable
    assert not masked[:, :5].any() and masked[:, 5:].all()
    maskable[:] = True
    _, masked = apply_mask(x, maskable, torch.ones(1000), u, MASK)
    assert not masked[:, 0].any()  # position 0 has no predictor under the shift


def test_loss_equals_hand_computation():
    """Two sequences of length 3, vocab 2. Row i of the raw logits predicts token i+1."""
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]],
                           [[1.0, 1.0], [3.0, 0.0], [0.0, 0.0]]])
    x0 = torch.tensor([[0, 1, 0], [1, 0, 1]])
    masked = torch.tensor([[False, True, True], [False, False, True]])
    t = torch.tensor([0.5, 0.25])

    def ce(row, target):
        return -math.log(math.exp(row[target]) / sum(math.exp(v) for v in row))
    # seq 0: token 1 predicted by row 0, token 2 by row 1; seq 1: token 2 by row 1
    expected = (ce([2.0, 0.0], 1) / 0.5 + ce([0.0, 1.0], 0) / 0.5 + ce([3.0, 0.0], 1) / 0.25) / 3
    rows = logits[predictor_rows(masked)]
    assert abs(diffusion_loss(rows, x0, masked, t).item() - expected) < 1e-6
    assert abs(diffusion_loss(rows, x0, masked, t, normalizer=1).item() - expected * 3) < 1e-5


def test_zero_gradient_on_unmasked_positions():
    torch.manual_seed(0)
    B, T, V = 3, 10, 7
    logits = torch.randn(B, T, V, requires_grad=True)
    x0 = torch.randint(0, V, (B, T))
    masked = torch.rand(B, T) < 0.5
    masked[:, 0] = False
    diffusion_loss(logits[predictor_rows(masked)], x0, masked, torch.rand(B) + 0.1).backward()
    # raw row i predicts token i+1: only rows whose next token is masked get gradient
    predicts_masked = torch.zeros(B, T, dtype=torch.bool)
    predicts_masked[:, :-1] = masked[:, 1:]
    grad_norm = logits.grad.abs().sum(-1)
    assert (grad_norm[~predicts_masked] == 0).all()
    assert (grad_norm[predicts_masked] > 0).all()


def test_loss_matches_unweighted_ce_at_t_one():
    torch.manual_seed(0)
    logits, x0 = torch.randn(2, 6, 5), torch.randint(0, 5, (2, 6))
    masked = torch.ones(2, 6, dtype=torch.bool)
    masked[:, 0] = False
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 5), x0[:, 1:].reshape(-1))
    assert torch.allclose(diffusion_loss(logits[predictor_rows(masked)], x0, masked, torch.ones(2)), ref, atol=1e-6)


def test_annealed_mask_goes_from_causal_to_full():
    g = torch.Generator().manual_seed(0)
    m = annealed_attention_mask(4, 32, step=0, anneal_steps=1000, generator=g)
    causal = torch.ones(32, 32, dtype=torch.bool).tril()
    assert m.shape == (4, 1, 32, 32) and m[:, 0][:, causal].all()  # causal entries always allowed
    assert m[:, 0][:, ~causal].float().mean() < 0.01  # p = 1/1000 above the diagonal
    mid = annealed_attention_mask(4, 32, step=499, anneal_steps=1000, generator=g)
    assert abs(mid[:, 0][:, ~causal].float().mean().item() - 0.5) < 0.05
    assert annealed_attention_mask(4, 32, step=999, anneal_steps=1000) is None  # fully bidirectional


def test_ar_loss_equals_hand_computation():
    """Row i of the raw logits predicts token i+1; the loss averages the CE of the target tokens."""
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]],
                           [[1.0, 1.0], [3.0, 0.0], [0.0, 0.0]]])
    x0 = torch.tensor([[0, 1, 0], [1, 0, 1]])
    targets = torch.tensor([[False, True, True], [False, False, True]])

    def ce(row, target):
        return -math.log(math.exp(row[target]) / sum(math.exp(v) for v in row))
    expected = (ce([2.0, 0.0], 1) + ce([0.0, 1.0], 0) + ce([3.0, 0.0], 1)) / 3  # no 1/t weight
    rows = logits[predictor_rows(targets)]
    assert abs(ar_loss(rows, x0, targets).item() - expected) < 1e-6
    assert abs(ar_loss(rows, x0, targets, normalizer=1).item() - expected * 3) < 1e-5


def test_training_attention_masks():
    real = torch.ones(2, 5, dtype=torch.bool)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    ar = training_attention_mask("ar", real)
    assert ar.shape == (2, 1, 5, 5) and torch.equal(ar[0, 0], causal) and torch.equal(ar[1, 0], causal)
    assert training_attention_mask("diffusion", real) is None  # full attention, no mask tensor
    assert training_attention_mask("diffusion", real, step=10, anneal_steps=10) is None  # annealing is over
    g = torch.Generator().manual_seed(0)
    early = training_attention_mask("diffusion", real, step=0, anneal_steps=10_000, generator=g)
    assert early[:, 0][:, causal].all() and early[:, 0][:, ~causal].float().mean() < 0.05
    real[1, :2] = False  # row 1 is left-padded by 2
    ar = training_attention_mask("ar", real)
    assert torch.equal(ar[0, 0], causal)
    assert not ar[1, 0, 2:, :2].any() and torch.equal(ar[1, 0, 2:, 2:], causal[:3, :3])  # real tokens never see padding
    full = training_attention_mask("diffusion", real)
    assert full[1, 0, 2:, 2:].all() and not full[1, 0, 2:, :2].any() and full[0].all()


def test_causal_mask_blocks_the_future():
    """With the 'ar' mask, changing a later token leaves every earlier row's logits unchanged (and changes later
    rows); with full attention it changes them all. Also with left padding."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, n_layer=2, n_head=2, n_kv_head=1, n_embd=32, intermediate_size=64,
                                    max_seq_len=32)).eval()
    x = torch.randint(0, 64, (2, 12))
    y = x.clone()
    y[:, 7] = (x[:, 7] + 1) % 64
    real = torch.ones_like(x, dtype=torch.bool)
    real[1, :3] = False
    pos = padding_position_ids(real)
    with torch.no_grad():
        a = model(x, attention_mask=training_attention_mask("ar", real), position_ids=pos)
        b = model(y, attention_mask=training_attention_mask("ar", real), position_ids=pos)
        c = model(y, attention_mask=training_attention_mask("diffusion", real), position_ids=pos)
        d = model(x, attention_mask=training_attention_mask("diffusion", real), position_ids=pos)
    assert torch.equal(a[:, :7], b[:, :7])
    assert (a[:, 7:] - b[:, 7:]).abs().amax(-1).min() > 1e-4  # every later row sees the change
    changed = (c - d).abs().amax(-1) > 1e-4  # (B, T)
    assert changed[0, :7].all() and changed[1, 3:7].all()  # bidirectional: earlier real rows see it too
    assert not changed[1, :3].any()  # a padding row attends to itself only
