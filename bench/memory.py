"""
Host memory over a training run: the process's resident memory (RSS) at step 50 and at the last step of
train_pretrain.py's step on random tokens, for the pre-training and the SFT row shapes of the tiny configs.
The masking is drawn afresh every step, as in training, so the number of masked rows that reach the LM head
(and so the size of the logits and of their gradient) changes every step. Each shape runs in a fresh process.

    python -m bench.memory                                  # both shapes, 1,000 steps each, CPU
    python -m bench.memory --shapes=[pretrain] --steps=300 --every=50
    python -m bench.memory --row_bucket_bits=None           # without the LM-head row bucketing (model.py)

A flat run's RSS at the last step is at most 10% above step 50's; the table says so per shape.
"""

import concurrent.futures
import multiprocessing
import sys
import time

import torch

import model
from bench.workloads import TINY_TRAIN_ROWS, parse_names, random_model, random_train_batch, train_step
from common import autocast, make_optimizer, resolve_dtype, rss_mb, seeded
from configurator import config_keys, configure, print_config, run_cli

# -----------------------------------------------------------------------------
shapes = "pretrain,sft"  # names in train_rows
train_rows = None  # (name, sequences, tokens, prompt tokens never masked); None: bench.workloads.TINY_TRAIN_ROWS,
# the tiny configs' pretrain 16 x 256 and sft 16 x 192 (~88 prompt tokens)
train_model = None  # a bench.workloads SHAPES name or a dict of ModelConfig fields; None: 'tiny'
steps = 1000
first = 50  # the step whose RSS is the baseline
every = 100  # also print RSS every this many steps (0: only first and last)
dtype = "auto"  # autocast dtype: 'auto' (bfloat16 where native, else float32), 'float32', 'bfloat16'
row_bucket_bits = -1  # model.py's ROW_BUCKET_BITS for this run (None: no bucketing; -1: the model's default)
seed = 0
CONFIG_KEYS = config_keys(globals())
# -----------------------------------------------------------------------------


def run_shape(cfg, name, B, T, prompt):
    """Train `steps` steps of one shape in this process: [(step, rss MB)] and seconds per step."""
    if cfg.row_bucket_bits != -1:
        model.ROW_BUCKET_BITS = cfg.row_bucket_bits
    m, mask_id, _ = random_model(cfg.train_model or "tiny", "cpu", T, cfg.seed)
    m.train()
    opt = make_optimizer(m, 1e-4, (0.9, 0.95), 0.1)
    ctx = autocast("cpu", cfg.dtype)
    g = seeded(cfg.seed)
    marks, t0 = [], time.time()
    for step in range(1, cfg.steps + 1):
        train_step(m, m, opt, ctx, *random_train_batch(B, T, prompt, mask_id, g))
        if step in (cfg.first, cfg.steps) or cfg.every and step % cfg.every == 0:
            marks.append((step, rss_mb()))
            print(f"{name} | step {step} | rss {marks[-1][1]:,.0f} MB", flush=True)
    return marks, (time.time() - t0) / cfg.steps


def main(argv=None):
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    cfg.dtype = resolve_dtype(cfg.dtype, "cpu")
    rows = {r[0]: r for r in cfg.train_rows or TINY_TRAIN_ROWS}
    names = parse_names(cfg.shapes, list(rows), "shape")
    if cfg.row_bucket_bits is not None and cfg.row_bucket_bits < -1:
        raise ValueError(f"row_bucket_bits={cfg.row_bucket_bits} must be >= 0, None (no bucketing) or -1 (the "
                         f"model's default).")
    if not 0 < cfg.first < cfg.steps:
        raise ValueError(f"first={cfg.first} must be between 0 and steps={cfg.steps}; lower first or raise steps.")
    print_config(cfg)
    print(f"cpu ({torch.get_num_threads()} threads), {cfg.dtype}", flush=True)
    results = []
    for name in names:
        spawn = multiprocessing.get_context("spawn")  # a fresh process per shape: nothing left from the last one
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            marks, secs = pool.submit(run_shape, cfg, *rows[name]).result()
        rss = dict(marks)
        growth = rss[cfg.steps] / rss[cfg.first] - 1
        results.append(dict(shape=name, first=rss[cfg.first], last=rss[cfg.steps], growth=growth, secs=secs))
    print()
    print(f"| shape | RSS at step {cfg.first} | RSS at step {cfg.steps} | growth | s/step | flat (grew <= 10%) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['shape']} | {r['first']:,.0f} MB | {r['last']:,.0f} MB | {100 * r['growth']:+.1f}% | "
              f"{r['secs']:.3f} | {'yes' if r['growth'] <= 0.10 else 'NO'} |")
    return results


if __name__ == "__main__":
    run_cli(main)
