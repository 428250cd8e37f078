"""
Speed of the whole system in one table: decoding (exact and approximate), decoding against a reference
implementation, masked-diffusion training steps, and coupled-GRPO update steps.

    python -m bench.speed                                   # every workload, tiny shape, random weights, CPU
    python -m bench.speed --workloads=[decode,reference] --out_dir=out/sft_tiny   # a trained checkpoint instead
    python -m bench.speed --workloads=[train,grpo] --compile=True  # the same steps, each block torch.compiled
    python -m bench.speed --workloads=[train,grpo] --profile=True  # + where the time goes (bench/profiling.py)
    python -m bench.speed --device=cuda                       # 7B decoding, 1.5B training and GRPO, bf16 weights

Workloads (each does one warm-up run, then `repeats` timed runs; the fastest is reported):
- decode: `sample.diffusion_generate` on a batch of random prompts (DiffuCoder's setting by default:
  entropy, top-p 0.95, one token per step), then one row per entry of `approx` (decoders.py: blocks, caches,
  confidence threshold...) with its speed-up over the exact row. An entry whose arguments
  decoders.fast_generate does not accept is listed as not available.
- reference: the same decoding, greedy (temperature 0), with transformers' Qwen2 model loaded with the
  same weights and run bidirectionally in place of ours (bench/reference.py: the LM head on every row, as
  Dream's code computes it). The decoding loop itself is checked against a naive loop written from its
  definition in tests/test_sample.py. Same process, weights, dtype and prompts: the row reports our
  time over the reference's and whether the tokens are identical (when bf16 rounding makes them
  differ, the check is repeated in fp32 and both verdicts are shown).
- train: one train_pretrain.py step (masking, forward with bf16 autocast, 1/t-weighted loss, backward,
  grad clip, fused AdamW) on random tokens, for the pre-training and the SFT row shapes.
- grpo: one coupled-GRPO update (estimators.per_token_logps with the coupled estimator: 3 passes in
  one batch, PPO-clip + KL loss, backward, grad clip, AdamW) over `grpo_sequences` left-padded sequences
  in micro-batches, in sequences/s.

MFU (train, grpo) is model FLOPs per second over common.matmul_flops measured in the same run and
dtype. Model FLOPs count what the step computes: 6 x (block matmul params) per token, 6 x (LM head) per
row that reaches the LM head (only the masked rows do), and the attention scores; train_pretrain.py's
log line uses 6 N with N including the whole LM head, so it reads a little higher. On cuda the table
also shows peak GPU memory per workload (torch.cuda.max_memory_allocated); a workload that does not fit
is reported as out of memory and the others still run.

Random weights cost the same per forward as trained ones, but a default initialisation gives nearly flat
next-token distributions: top-p's worst case (a full sort of the vocabulary instead of a partial one),
and confidences of different positions so close that float rounding decides the decoding order, so two
correct implementations disagree. The decoding model's LM head is therefore drawn with a larger std
(`logit_std`: logits of std ~6, peaked like a trained model's). Pass --out_dir for a trained model.
"""

import gc
import inspect
import math
import sys
import time

import torch

from bench.profiling import profile_step
from bench.reference import ReferenceModel, check_bidirectional, hf_forward, hf_reference_model
from bench.workloads import (TINY_TRAIN_ROWS, parse_names, random_model, random_train_batch, train_step,
                             with_size)
from checkpoint import load_model
from common import autocast, make_optimizer, matmul_flops, resolve_device, resolve_dtype, seeded, sync
from configurator import config_keys, configure, print_config, run_cli
from decoders import fast_generate, generate
from estimators import per_token_logps
from sample import diffusion_generate
from train_grpo import grpo_loss

# -----------------------------------------------------------------------------
# what to run
workloads = "decode,reference,train,grpo"  # comma separated; [decode,train] also works
device = "auto"  # 'auto', 'cpu', 'cuda'
dtype = "auto"  # autocast dtype: 'auto' (bfloat16 where native, else float32), 'float32', 'bfloat16'
repeats = 3  # timed runs after one warm-up run; the fastest is reported
seed = 0
# models: a name in bench.workloads.SHAPES or a dict of ModelConfig fields; None: 'tiny' on cpu, on cuda '7b' (decode,
# reference) and '1.5b' (train, grpo)
model = None  # decode and reference
out_dir = ""  # decode and reference: this trained checkpoint / HF directory instead of random weights
logit_std = 6.0  # decode and reference, random weights: LM head init std = logit_std / sqrt(n_embd) (see below)
train_model = None
grpo_model = None
# decode and reference
batch_size = 4
prompt_len = 64
max_new_tokens = 128
steps = None  # None: max_new_tokens (one token per step, DiffuCoder's default)
alg = "entropy"  # reference: 'entropy', 'maskgit_plus' or 'topk_margin'
temperature = 0.2  # decode rows; the reference rows are greedy (temperature 0), so tokens can be compared
top_p = 0.95
approx = [{"block_length": 32}, {"block_length": 32, "cache": "prefix"}, {"block_length": 32, "cache": "dual"},
          {"block_length": 32, "cache": "dual", "threshold": 0.9}]  # extra decode rows: decoders.fast_generate kwargs
# train: rows of (name, sequences, tokens per sequence, leading tokens never masked);
# None: pretrain_tiny's 16 x 256 and sft_tiny's 16 x 192 (~88 prompt tokens) on cpu, 2 x 4096 and 8 x 1024 on cuda
train_rows = None
compile = False  # torch.compile each block of the training model (train_pretrain.py's `compile`)
activation_checkpointing = False  # train and grpo
profile = False  # train and grpo: also profile the step (bench/profiling.py: matmul / attention / other shares)
# grpo: None: 32 sequences (4 prompts x 8; grpo_tiny's step is 4x that) in micro-batches of 8, ~112 + 64
# tokens on cpu; grpo_7b's per-GPU 10 sequences in micro-batches of 2 (5 on an H200), 200 + 256 tokens on cuda
grpo_sequences = None
grpo_micro_batch = None
grpo_prompt_len = None
grpo_completion_len = None
CONFIG_KEYS = config_keys(globals())
# -----------------------------------------------------------------------------

DEVICE_DEFAULTS = {
    "cpu": dict(model="tiny", train_model="tiny", grpo_model="tiny",
                train_rows=TINY_TRAIN_ROWS,
                grpo_sequences=32, grpo_micro_batch=8, grpo_prompt_len=112, grpo_completion_len=64),
    "cuda": dict(model="7b", train_model="1.5b", grpo_model="1.5b",
                 train_rows=[("pretrain", 2, 4096, 0), ("sft", 8, 1024, 256)],
                 grpo_sequences=10, grpo_micro_batch=5, grpo_prompt_len=200, grpo_completion_len=256),
}
WORKLOADS = ("decode", "reference", "train", "grpo")


def parse_workloads(text):
    """'decode,train', '[decode,train]' or "['decode']" -> ['decode', 'train'], checked."""
    return parse_names(text, WORKLOADS, "workload")


def matmul_params(model):
    """(parameters of the block matmuls, parameters of the LM head)."""
    body = sum(p.numel() for n, p in model.named_parameters() if n.startswith("model.layers.") and p.dim() == 2)
    return body, model.lm_head.weight.numel()


def train_flops(model, rows, seq_len, head_rows):
    """FLOPs of forward + backward over `rows` sequences of seq_len tokens of which head_rows reach the LM head."""
    c = model.config
    body, head = matmul_params(model)
    attention = 12 * c.n_layer * c.n_head * c.head_dim * seq_len  # per token: the scores and their backward
    return 6 * body * rows * seq_len + 6 * head * head_rows + attention * rows * seq_len


def best_time(fn, repeats, dev):
    """One warm-up call, then `repeats` timed calls: (fastest seconds, the last call's result)."""
    out = fn()
    times = []
    for _ in range(repeats):
        sync(dev)
        t0 = time.perf_counter()
        out = fn()
        sync(dev)
        times.append(time.perf_counter() - t0)
    return min(times), out


class ForwardCounter:
    """Counts a module's forward calls (the decoder's number of function evaluations)."""

    def __init__(self, module):
        self.n = 0
        self.handle = module.register_forward_hook(self.hook)

    def hook(self, *_):
        self.n += 1

    def remove(self):
        self.handle.remove()


# -----------------------------------------------------------------------------
# workloads; each returns table rows (dicts)

def decode_rows(cfg, dev, m, mask_id, label, ctx):
    B, P, N = cfg.batch_size, cfg.prompt_len, cfg.max_new_tokens
    steps = cfg.steps or N
    ids = torch.randint(0, mask_id - 2, (B, P), generator=seeded(cfg.seed)).to(dev)
    accepted = set(inspect.signature(fast_generate).parameters)
    settings = [({}, "exact")] + [(dict(kw), ", ".join(f"{k}={v}" for k, v in kw.items())) for kw in cfg.approx]
    rows, exact = [], None
    for kw, name in settings:
        row = dict(workload="decode", setting=name, shape=label, dtype=cfg.dtype, size=f"{B} x ({P} + {N})",
                   steps=str(kw.get("steps", steps)))
        missing = sorted(set(kw) - accepted)
        if missing:
            rows.append(dict(row, notes=f"not available: fast_generate has no {', '.join(missing)} argument"))
            continue
        args = dict(max_new_tokens=N, steps=steps, temperature=cfg.temperature, top_p=cfg.top_p, alg=cfg.alg,
                    mask_token_id=mask_id, **kw)

        def run():
            with ctx:
                return generate(m, ids, generator=seeded(cfg.seed, device=dev), **args)
        reset_peak(dev)
        counter = ForwardCounter(m)
        secs, _ = best_time(run, cfg.repeats, dev)
        counter.remove()
        nfe = counter.n // (cfg.repeats + 1)
        exact = exact or secs
        notes = f"{secs / B:.3f} s/completion, {nfe} forwards"
        if kw:
            notes += f", speed-up {exact / secs:.2f}x"
        rows.append(dict(row, seconds=secs, throughput=f"{B * N / secs:,.1f} tok/s", peak=peak_gib(dev), notes=notes))
    return rows


def reference_rows(cfg, dev, m, mask_id, label, ctx, model_dir):
    B, P, N = cfg.batch_size, cfg.prompt_len, cfg.max_new_tokens
    steps = cfg.steps or N
    ids = torch.randint(0, mask_id - 2, (B, P), generator=seeded(cfg.seed)).to(dev)
    reset_peak(dev)
    hf = hf_reference_model(m, model_dir)
    ref_forward, ref_model = hf_forward(hf), ReferenceModel(hf, m.config)
    x = torch.cat([ids, torch.full((B, N), mask_id, device=dev)], dim=1)
    with ctx, torch.no_grad():
        check_bidirectional(ref_forward, x)
        logit_diff = (m(x) - ref_forward(x).float()).abs().max().item()

    def ours():
        with ctx:
            return diffusion_generate(m, ids, max_new_tokens=N, steps=steps, temperature=0.0, top_p=cfg.top_p,
                                      alg=cfg.alg, mask_token_id=mask_id)

    def reference():
        with ctx:
            return diffusion_generate(ref_model, ids, max_new_tokens=N, steps=steps, temperature=0.0, top_p=cfg.top_p,
                                      alg=cfg.alg, mask_token_id=mask_id)
    row = dict(workload="reference", shape=label, dtype=cfg.dtype, size=f"{B} x ({P} + {N})", steps=str(steps))
    t_ours, out_ours = best_time(ours, cfg.repeats, dev)
    t_ref, out_ref = best_time(reference, cfg.repeats, dev)
    peak = peak_gib(dev)
    same = int((out_ours == out_ref).all(dim=1).sum())
    verdict = f"identical: {'yes' if same == B else f'no ({B - same}/{B} rows differ)'}"
    if same < B and cfg.dtype != "float32":  # bf16 rounding can reorder close confidences: check in fp32
        verdict += f" in {cfg.dtype}; in float32 "
        try:
            m.float(), hf.float()  # (the last use of both models)
            out32 = diffusion_generate(m, ids, max_new_tokens=N, steps=steps, temperature=0.0, top_p=cfg.top_p,
                                       alg=cfg.alg, mask_token_id=mask_id)
            ref32 = diffusion_generate(ref_model, ids, max_new_tokens=N, steps=steps, temperature=0.0, top_p=cfg.top_p,
                                       alg=cfg.alg, mask_token_id=mask_id)
            same32 = int((out32 == ref32).all(dim=1).sum())
            verdict += "yes" if same32 == B else f"no ({B - same32}/{B} rows differ)"
        except torch.OutOfMemoryError:
            verdict += "not checked (out of memory)"
    del hf
    note = f"{verdict}; max |logit diff| {logit_diff:.1e}"
    return [dict(row, setting="ours, greedy", seconds=t_ours, throughput=f"{B * N / t_ours:,.1f} tok/s", peak=peak,
                 notes=f"ours/reference time {t_ours / t_ref:.2f} ({t_ref / t_ours:.1f}x faster)"),
            dict(row, setting="transformers' Qwen2, same loop", seconds=t_ref, throughput=f"{B * N / t_ref:,.1f} tok/s",
                 peak=peak,
                 notes=note)]


def train_row(cfg, dev, ctx, peak_flops, name, B, T, prompt):
    model, mask_id, label = random_model(cfg.train_model, dev, T, cfg.seed)
    model.train()
    model.gradient_checkpointing = cfg.activation_checkpointing
    if cfg.compile:
        model.compile_blocks()
    opt = make_optimizer(model, 1e-4, (0.9, 0.95), 0.1)
    x, x_t, masked, t = (v.to(dev) for v in random_train_batch(B, T, prompt, mask_id, seeded(cfg.seed)))

    def step():
        train_step(model, model, opt, ctx, x, x_t, masked, t)
    reset_peak(dev)
    step()  # a second warm-up: the first fused AdamW step creates its state
    secs, _ = best_time(step, cfg.repeats, dev)
    flops = train_flops(model, B, T, int(masked.sum()))
    trainer = model.flops_per_token(T) * B * T
    notes = f"{int(masked.sum())} masked rows; trainer's count: mfu {100 * trainer / secs / peak_flops:.0f}%"
    if cfg.profile:
        notes += "; " + profile_step(step, dev)
    return [dict(workload="train", setting=name + (", compiled" if cfg.compile else ""), shape=label, dtype=cfg.dtype,
                 size=f"{B} x {T}", seconds=secs, throughput=f"{B * T / secs:,.0f} tok/s",
                 mfu=flops / secs / peak_flops, peak=peak_gib(dev), notes=notes)]


def grpo_rows(cfg, dev, ctx, peak_flops):
    S, mb, P, C = cfg.grpo_sequences, cfg.grpo_micro_batch, cfg.grpo_prompt_len, cfg.grpo_completion_len
    model, mask_id, label = random_model(cfg.grpo_model, dev, P + C, cfg.seed)
    model.train()
    model.gradient_checkpointing = cfg.activation_checkpointing
    if cfg.compile:
        model.compile_blocks()
    opt = make_optimizer(model, 1e-6, (0.9, 0.99), 0.1)
    g = seeded(cfg.seed)
    ids = torch.randint(0, mask_id - 2, (S, P + C), generator=g)
    pad = torch.randint(0, P // 4 + 1, (S,), generator=g)  # left padding: the prompts of a batch differ in length
    attn = (torch.arange(P + C)[None, :] >= pad[:, None]).long()
    ids, attn = ids.to(dev), attn.to(dev)
    adv = torch.randn(S, generator=g).to(dev)
    cmask = torch.ones(S, C, dtype=torch.bool, device=dev)
    micro = [slice(i, min(i + mb, S)) for i in range(0, S, mb)]

    def logps(sl):
        with ctx:
            return per_token_logps(model, ids[sl], attn[sl], P, mask_id, estimator="coupled",
                                   generator=[seeded(cfg.seed, j) for j in range(sl.start, sl.stop)])
    with torch.no_grad():
        refs = [logps(sl) for sl in micro]  # the reference model's log-probs (computed outside the timed step)

    def step():  # train_grpo.py's policy iteration: micro-batches, then one optimizer step
        for sl, ref in zip(micro, refs):
            lp = logps(sl)
            loss, _ = grpo_loss(lp, lp.detach(), ref, adv[sl], cmask[sl], 0.5, 0.5, 0.01, cmask.sum())
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.2)
        opt.step()
        opt.zero_grad(set_to_none=True)
    reset_peak(dev)
    step()
    secs, _ = best_time(step, cfg.repeats, dev)
    flops = train_flops(model, 3 * S, P + C, 2 * S * C)  # 3 passes; each completion token scored in 2 of them
    notes = f"{3 * S} rows of {P + C} tokens through the model, {S * (P + C) / secs:,.0f} tok/s"
    if cfg.profile:
        notes += "; " + profile_step(step, dev)
    setting = f"coupled, micro-batch {mb}" + (", compiled" if cfg.compile else "")
    return [dict(workload="grpo", setting=setting, shape=label, dtype=cfg.dtype, size=f"{S} x ({P} + {C})",
                 seconds=secs, throughput=f"{S / secs:,.2f} seq/s", mfu=flops / secs / peak_flops, peak=peak_gib(dev),
                 notes=notes)]


# -----------------------------------------------------------------------------
# memory, table, main

def reset_peak(dev):
    if str(dev).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gib(dev):
    return torch.cuda.max_memory_allocated() / 2**30 if str(dev).startswith("cuda") else None


def free(dev):
    gc.collect()
    if str(dev).startswith("cuda"):
        torch.cuda.empty_cache()


COLUMNS = (("workload", "workload"), ("setting", "setting"), ("shape", "shape"), ("dtype", "dtype"),
           ("size", "batch x tokens"), ("steps", "steps"), ("seconds", "s/call"), ("throughput", "throughput"),
           ("mfu", "MFU"), ("peak", "peak GiB"), ("notes", "notes"))


def format_table(rows):
    def cell(row, key):
        v = row.get(key)
        if v is None:
            return "-"
        if key == "seconds":
            return f"{v:.3f}"
        if key == "mfu":
            return f"{100 * v:.0f}%"
        if key == "peak":
            return f"{v:.1f}"
        return str(v)
    cells = [[cell(r, k) for k, _ in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(COLUMNS)]
    lines = [" | ".join(h.ljust(w) for (_, h), w in zip(COLUMNS, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def main(argv=None):
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    names = parse_workloads(cfg.workloads)
    dev = resolve_device(cfg.device)
    dev_type = torch.device(dev).type
    cfg.dtype = resolve_dtype(cfg.dtype, dev_type)
    for k, v in DEVICE_DEFAULTS[dev_type].items():
        if getattr(cfg, k) is None:
            setattr(cfg, k, v)
    print_config(cfg)
    ctx = autocast(dev_type, cfg.dtype)
    peak_flops = matmul_flops(dev, cfg.dtype, n=4096 if dev_type == "cuda" else 1024)
    print(f"{dev} ({torch.get_num_threads()} threads), {cfg.dtype}; "
          f"measured matmul peak {peak_flops / 1e12:.2f} TFLOP/s; "
          f"workloads {', '.join(names)}", flush=True)
    rows = []

    def add(workload, setting, fn):
        """Run one workload (a workload that does not fit in GPU memory becomes an 'out of memory' row)."""
        try:
            new = fn()
        except torch.OutOfMemoryError:
            new = [dict(workload=workload, setting=setting, dtype=cfg.dtype, peak=peak_gib(dev), notes="out of memory")]
        free(dev)
        for r in new:
            timing = f"{r['seconds']:.3f} s | {r['throughput']} | " if "seconds" in r else ""
            mfu = f"mfu {100 * r['mfu']:.0f}% | " if "mfu" in r else ""
            print(f"{r['workload']} | {r['setting']} | {timing}{mfu}{r.get('notes', '')}", flush=True)
        rows.extend(new)

    if "decode" in names or "reference" in names:
        model_dir = None
        if cfg.out_dir:
            m, tok, model_dir, _ = load_model(cfg.out_dir, dev, cfg.dtype)
            mask_id, label = tok.mask_token_id, with_size(cfg.out_dir.rstrip("/"), m)
        else:
            m, mask_id, label = random_model(cfg.model, dev, cfg.prompt_len + cfg.max_new_tokens, cfg.seed)
            with torch.no_grad():  # peaked next-token distributions, like a trained model's
                m.lm_head.weight.normal_(0, cfg.logit_std / math.sqrt(m.config.n_embd))
        if dev_type == "cuda" and cfg.dtype != "float32":
            m = m.to(getattr(torch, cfg.dtype))
            model_dir = None  # the reference takes the cast weights, not the checkpoint's
        m.eval()
        if "decode" in names:
            add("decode", "-", lambda: decode_rows(cfg, dev, m, mask_id, label, ctx))
        if "reference" in names:
            add("reference", "-", lambda: reference_rows(cfg, dev, m, mask_id, label, ctx, model_dir))
        m = None
        free(dev)
    if "train" in names:
        for spec in cfg.train_rows:
            add("train", spec[0], lambda: train_row(cfg, dev, ctx, peak_flops, *spec))
    if "grpo" in names:
        add("grpo", "-", lambda: grpo_rows(cfg, dev, ctx, peak_flops))
    print()
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    run_cli(main)
