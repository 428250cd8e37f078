"""
The per-token log-probability proxies that GRPO trains a masked-diffusion LM with (DiffuCoder, arXiv
2506.20639, section 5). A diffusion LM has no cheap exact sequence log-likelihood, so `per_token_logps`
scores each completion token from forward passes on masked copies of the sequence:
- coupled (the paper): lambda pairs of complementary masks (tokens with u < t masked in one pass,
  the others in the other, t ~ U[t_min, t_max] per pair) plus one pass with the whole completion
  masked; token k's estimate is (lp_full_k + sum over pairs of lp_k / t or lp_k / (1 - t), from the
  pass in which k is masked) / (lambda + 1). Every token is scored in every pair, exactly once.
- decoupled: the same passes, but the two masks of a pair are drawn independently (masked with
  probability t and 1 - t), so a token can be scored twice or not at all in a pair.
- full_mask: one pass, the whole completion masked.
- d1: full_mask plus each prompt token masked with probability p_mask_prompt (d1's estimator).
All passes of a micro-batch go through the model as one batch, with the rollout's attention mask and
position ids, and only the rows that are needed reach the LM head. train_grpo.py uses them (its
docstring lists how the masks are seeded); bench/estimators.py measures their variance.
"""

import torch

from model import predictor_rows

ESTIMATORS = ("coupled", "decoupled", "full_mask", "d1")


def estimator_masks(input_ids, completion_start, estimator, num_pairs=1, t_min=0.2, t_max=0.8, p_mask_prompt=0.0,
                    prompt_mask=None, generator=None):
    """The masks of an estimator's forward passes and the coefficient of each pass's log-probs.

    Returns masked (P, B, T) bool (True: replaced by <|mask|> in pass p) and coef (P, B, C) float
    for the C completion tokens, such that the estimate is sum_p coef[p] * lp[p]; a coefficient is
    non-zero only where the token is masked. `generator`: one torch.Generator, or a list of B (one
    per row, so a row's masks do not depend on the rest of the batch)."""
    B, T = input_ids.shape
    C = T - completion_start
    gens = generator if isinstance(generator, (list, tuple)) else [generator] * B

    def rand(*shape):  # (B, *shape) uniforms, row b from gens[b]
        if isinstance(generator, (list, tuple)):
            return torch.stack([torch.rand(shape, generator=g) for g in gens])
        return torch.rand((B, *shape), generator=generator)

    full = torch.ones(B, C, dtype=torch.bool)
    passes = []  # (masked completion (B, C), coef (B, C), masked prompt (B, completion_start) or None)
    if estimator in ("coupled", "decoupled"):
        t = t_min + (t_max - t_min) * rand(num_pairs)  # (B, lambda): one t per pair and sequence
        for j in range(num_pairs):
            tj = t[:, j:j + 1]  # (B, 1)
            m1 = rand(C) < tj
            m2 = ~m1 if estimator == "coupled" else rand(C) < 1 - tj
            passes.append((m1, m1 / tj, None))
            passes.append((m2, m2 / (1 - tj), None))
        norm = num_pairs + 1
        passes.append((full, full.float(), None))
    elif estimator == "full_mask":
        norm = 1
        passes.append((full, full.float(), None))
    elif estimator == "d1":
        norm = 1
        prompt = rand(completion_start) < p_mask_prompt
        if prompt_mask is not None:
            prompt &= prompt_mask[:, :completion_start].bool().cpu()  # never mask padding
        prompt[:, 0] = False  # position 0 has no predictor
        passes.append((full, full.float(), prompt))
    else:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got '{estimator}'.")
    masked = torch.zeros(len(passes), B, T, dtype=torch.bool)
    for p, (mc, _, mp) in enumerate(passes):
        masked[p, :, completion_start:] = mc
        if mp is not None:
            masked[p, :, :completion_start] = mp
    coef = torch.stack([c for _, c, _ in passes]).float() / norm  # (P, B, C)
    return masked.to(input_ids.device), coef.to(input_ids.device)


def per_token_logps(model, input_ids, attention_mask, completion_start, mask_token_id, *, estimator="coupled",
                    num_pairs=1, t_min=0.2, t_max=0.8, p_mask_prompt=0.0, generator=None):
    """The per-token log-probability proxy of the completion tokens: float32 (B, C).

    input_ids (B, T) = left-padded prompt + completion (starting at completion_start); attention_mask
    (B, T) the rollout's padding mask or None. All passes run as one batch of P * B sequences."""
    B, T = input_ids.shape
    masked, coef = estimator_masks(input_ids, completion_start, estimator, num_pairs, t_min, t_max, p_mask_prompt,
                                   attention_mask, generator)
    P = masked.size(0)
    x = torch.where(masked, torch.full_like(input_ids, mask_token_id), input_ids).view(P * B, T)  # (P*B, T)
    am = None if attention_mask is None or bool(attention_mask.all()) else attention_mask.repeat(P, 1)
    needed = coef != 0  # (P, B, C): tokens scored in pass p
    rows = torch.zeros(P * B, T, dtype=torch.bool, device=input_ids.device)
    rows[:, completion_start:] = needed.view(P * B, -1)
    logits = model(x, attention_mask=am, output_rows=predictor_rows(rows))  # (N, V), fp32
    targets = input_ids[:, completion_start:].expand(P, B, -1)[needed]  # (N,)
    lp = logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # (N,)
    lp_all = torch.zeros(coef.shape, dtype=torch.float32, device=input_ids.device).masked_scatter(needed, lp)
    return (coef * lp_all).sum(0)  # (B, C)
