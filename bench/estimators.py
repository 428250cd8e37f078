"""
Variance of the sequence log-likelihood estimate across mask draws, per GRPO estimator (not a test).

    python -m bench.estimators                           # the tiny SFT model, 64 held-out tasks' reference answers
    python -m bench.estimators --out_dir=out/grpo_tiny --n=128 --draws=32

For a fixed set of completions (the reference answers of held-out tiny tasks, after the chat prompt),
each estimator of estimators.per_token_logps is evaluated `draws` times with fresh masks; the sequence
estimate is the sum of its per-token values over the completion (answer + <|im_end|>). We report, per
estimator, the mean over sequences of the variance across draws, and the mean estimate. Estimators
are compared at equal forward passes: coupled and decoupled (lambda = 1) use 3 passes per draw, so the
one-pass estimators (full_mask, d1) average 3 independent draws per sample. The paper's claim is that
coupled has a lower variance than decoupled; this prints what it measures.
"""

import sys

import torch

from checkpoint import load_model
from common import autocast, left_pad, resolve_device, resolve_dtype, seeded, stop_ids
from configurator import config_keys, configure, print_config, run_cli
from estimators import per_token_logps
from tasks import read_jsonl
from train_grpo import completion_mask

out_dir = "out/sft_tiny"  # model: a training out_dir or an HF directory
tasks_file = "data/tasks/test.jsonl"
n = 64  # completions
draws = 16  # mask draws per estimator
num_pairs = 1
p_mask_prompt = 0.15
batch_size = 16
dtype = "auto"  # autocast dtype: 'auto' (bfloat16 where native, else float32), 'float32', 'bfloat16'
device = "auto"
seed = 0
CONFIG_KEYS = config_keys(globals())


def main(argv=None):
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    print_config(cfg)
    dev = resolve_device(cfg.device)
    cfg.dtype = resolve_dtype(cfg.dtype, torch.device(dev).type)
    model, tok, model_dir, _ = load_model(cfg.out_dir, dev, cfg.dtype)
    tasks = read_jsonl(cfg.tasks_file)[:cfg.n]
    seqs = [(tok.encode(tok.diffucoder_prompt(t.question)), tok.encode(t.answer) + [tok.im_end_id]) for t in tasks]
    passes = {"coupled": 2 * cfg.num_pairs + 1, "decoupled": 2 * cfg.num_pairs + 1, "full_mask": 1, "d1": 1}
    target = max(passes.values())
    print(f"model {model_dir}; {len(seqs)} completions (reference answers), {cfg.draws} draws, "
          f"{target} forward passes per draw")
    print(f"{'estimator':>10} | passes | mean seq log-lik | var across draws | std")
    for est, p in passes.items():
        repeat = target // p
        values = torch.zeros(len(seqs), cfg.draws)
        for b in range(0, len(seqs), cfg.batch_size):
            chunk = seqs[b:b + cfg.batch_size]
            P = max(len(q) for q, _ in chunk)
            C = max(len(a) for _, a in chunk)  # left-padded prompts, answers padded on the right with <|dlm_pad|>
            ids, attn = left_pad([q for q, _ in chunk], tok.pad_token_id, "cpu")
            answers = torch.tensor([a + [tok.dlm_pad_token_id] * (C - len(a)) for _, a in chunk])  # (B, C)
            ids, attn = torch.cat([ids, answers], 1), torch.cat([attn, torch.ones_like(answers)], 1)
            cmask, _ = completion_mask(ids[:, P:], stop_ids(tok))
            ids, attn, cmask = ids.to(dev), attn.to(dev), cmask.to(dev)
            for k in range(cfg.draws):
                total = torch.zeros(len(chunk), device=dev)
                for r in range(repeat):
                    gens = [seeded(cfg.seed, k, r, b + i) for i in range(len(chunk))]
                    with torch.no_grad(), autocast(torch.device(dev).type, cfg.dtype):
                        lp = per_token_logps(model, ids, attn, P, tok.mask_token_id, estimator=est,
                                             num_pairs=cfg.num_pairs, p_mask_prompt=cfg.p_mask_prompt, generator=gens)
                    total += (lp * cmask).sum(1)
                values[b:b + len(chunk), k] = (total / repeat).cpu()
        var = values.var(dim=1).mean().item()
        print(f"{est:>10} | {p * repeat:>6} | {values.mean().item():>16.3f} | {var:>16.4f} | {var ** 0.5:.4f}")


if __name__ == "__main__":
    run_cli(main)
