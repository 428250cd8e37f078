"""
coupled-GRPO (DiffuCoder, arXiv 2506.20639, section 5) and its baselines, as plain functions:

    rollout -> rewards -> advantages -> mu policy iterations (PPO-clip + k3 KL, token-level mean)

    python train_grpo.py config/grpo_tiny.py                              # tiny model, tiny tasks, CPU
    torchrun --nproc_per_node=2 train_grpo.py config/grpo_tiny.py --device=cpu
    torchrun --nproc_per_node=8 train_grpo.py config/grpo_7b.py           # DiffuCoder-7B-Instruct, FSDP2

The token log-probs that the ratio and the KL need come from estimators.py's `per_token_logps`: the
paper's coupled estimator (lambda pairs of complementary masks plus one fully masked pass, so every
completion token is scored exactly once per pair), or the decoupled, full_mask and d1 baselines.

How this relates to the paper and the official code (an open-r1/TRL fork); the README links this list:
1. Advantages: group-mean baseline (paper) by default, leave-one-out (official code) as an option,
   no std scaling unless asked.
2. Masks come from torch.Generators seeded per (seed, step, iteration, sequence): old, reference and
   current log-probs of an iteration use identical masks, each policy iteration draws fresh masks
   (the official code reuses one by accident), a sequence's masks do not depend on how the batch is
   split over micro-batches or ranks, and no global RNG is ever reseeded (the official code reseeds
   everything inside the loss). t is drawn per pair and per sequence (the official code draws one t
   per batch).
3. Old log-probs are computed once per rollout, before the first update; for iteration 1 they equal
   the current log-probs (ratio exactly 1), so that pass is skipped.
4. The log-prob passes get the rollout's attention mask and position ids (the official code drops
   them), and log-probs are taken at temperature 1 (as the official code).
5. Rollouts are decoded one prompt group (G completions) per generate call, with a
   generator seeded per (seed, step, prompt): a run is the same on 1 or N ranks.
6. The loss is normalised by the number of completion tokens of the whole optimizer step across
   ranks, so gradient accumulation and DDP/FSDP2 give exactly the one-big-batch update (tested).
7. Reference model: synced every ref_sync_steps as ref <- alpha * policy + (1 - alpha) * ref
   (TRL's mixup, alpha 0.6 as the official run); beta = 0 drops the reference model entirely.
8. One "step" is one rollout round followed by mu optimizer updates; the lr schedule runs over steps.
9. Completions: tokens up to and including the first stop token (<|im_end|>, <|dlm_pad|> or EOS),
   exactly the text the reward saw; one without is counted as truncated and all its tokens are
   trained on (as TRL does). Counting only <|im_end|> would train the trailing <|dlm_pad|> of
   answers that end with pads, with their (mostly negative) advantage, although the reward never saw them.
10. Rewards: the official code runs the tests in a cloud sandbox; we run them locally in execution.py's
    (a fork server; network, PID, IPC and mount namespaces; rlimits; uid 65534 when run as root). Its
    docstring gives the threat model: guard rails against reward hacking and accidents, not a hardened
    sandbox.
"""

import math
import sys
import time

import torch

from checkpoint import (latest_checkpoint, load_training_state, read_tokenizer_files, resolve_model_dir,
                        save_checkpoint)
from common import (Dist, autocast, build_model, completion_text, epoch_indices, left_pad, lr_at, make_optimizer,
                    resolve_dtype, rss_mb, seeded, set_grad_sync, stop_ids)
from configurator import config_keys, configure, load_jsonl, print_config, run_cli
from decoders import check_fast_options, generate
from estimators import ESTIMATORS, per_token_logps
from eval import evaluate_tasks
from rewards import score_completions
from tokenizer import Tokenizer

# -----------------------------------------------------------------------------
# I/O
out_dir = "out/grpo_tiny"  # checkpoints: out_dir/ckpt-XXXXXX/ (HF model dirs + optimizer, reference model)
init_from = "out/sft_tiny"  # the policy to start from: a model directory or a training out_dir
resume = True  # continue from the latest checkpoint in out_dir if there is one
# data
train_file = "data/tasks/train.jsonl"  # jsonl records with 'question' and 'tests' (assert strings)
eval_file = "data/tasks/test.jsonl"  # held-out records for the periodic pass@1
eval_interval = 10  # steps between evals (0: only at the start and the end)
eval_n = 100  # held-out tasks per eval (0: no evals)
max_prompt_length = 200  # prompt tokens, truncated from the left
# rollout
num_generations = 10  # G: completions per prompt
prompts_per_step = 8  # prompts per step, over all ranks
max_completion_length = 256  # generated tokens per completion
diffusion_steps = None  # denoising steps (None: max_completion_length, one token per step)
temperature = 1.2  # the paper's rollout temperature (the released recipe uses 1.0)
top_p = 0.95
alg = "entropy"
# rollouts with decoders.py's approximations (all None: the exact decoder, as the paper)
block_length = None  # semi-AR blocks
threshold = None  # also commit every token above this probability (needs a confidence alg)
cache = None  # 'prefix' | 'dual' KV cache within a block (needs block_length)
# rewards
code_weight = 2.0  # reward = code_weight * test pass rate + format_weight * format reward
format_weight = 0.5
exec_timeout = 5.0  # seconds per program
exec_workers = None  # sandbox worker processes (None: cpu count)
exec_packages = False  # True: programs may import this venv's site-packages (read-only), as AceCode tasks need
# advantages
baseline = "mean"  # 'mean' (paper) or 'loo' (leave-one-out, official code)
scale_std = False  # divide advantages by the group std
# log-prob estimator and loss
estimator = "coupled"  # 'coupled' | 'decoupled' | 'full_mask' | 'd1'
num_pairs = 1  # lambda: complementary mask pairs per sequence
t_min = 0.2
t_max = 0.8
p_mask_prompt = 0.15  # d1 only: probability of masking each prompt token
num_iterations = 2  # mu: policy updates per rollout
epsilon_low = 0.5  # PPO clip: ratio kept within [1 - epsilon_low, 1 + epsilon_high]
epsilon_high = 0.5
beta = 0.01  # k3 KL to the reference model (0: no reference model)
ref_sync_steps = 64  # optimizer steps between reference syncs (0: never)
ref_sync_alpha = 0.6  # ref <- alpha * policy + (1 - alpha) * ref
# optimizer
learning_rate = 1e-6
min_lr_ratio = 0.1
warmup_steps = 0
max_steps = 100  # rollout rounds
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.99
grad_clip = 0.2
micro_batch_size = 4  # sequences per forward/backward (each with its estimator passes)
# system
device = "auto"
dtype = "auto"  # autocast dtype: 'auto' (bfloat16 where native, else float32), 'float32', 'bfloat16'
parallel = "ddp"  # under torchrun: 'ddp' or 'fsdp'
activation_checkpointing = False
seed = 1337
log_interval = 1
ckpt_interval = 10  # 0: only at the end
keep_last = 2
CONFIG_KEYS = config_keys(globals())
# -----------------------------------------------------------------------------

def completion_mask(completion_ids, stop_ids):
    """(B, C) ids -> mask (B, C) of the tokens up to and including the first stop token (<|im_end|>,
    <|dlm_pad|>, EOS: the cut that `completion_text` makes before the reward), and truncated (B,): no
    stop token at all (then every token counts)."""
    is_stop = torch.isin(completion_ids, torch.tensor(list(stop_ids), device=completion_ids.device))
    has_stop = is_stop.any(dim=1)
    first = torch.where(has_stop, is_stop.int().argmax(dim=1), completion_ids.size(1))  # (B,)
    mask = torch.arange(completion_ids.size(1), device=completion_ids.device)[None, :] <= first[:, None]
    return mask, ~has_stop


def compute_advantages(rewards, group_size, baseline="mean", scale_std=False):
    """rewards (N * G,) grouped by prompt -> advantages (N * G,)."""
    r = rewards.view(-1, group_size)
    a = r - r.mean(dim=1, keepdim=True)
    if baseline == "loo":  # r_i - mean of the others
        a = a * group_size / (group_size - 1)
    elif baseline != "mean":
        raise ValueError(f"baseline must be 'mean' or 'loo', got '{baseline}'.")
    if scale_std:
        a = a / (r.std(dim=1, keepdim=True) + 1e-4)
    return a.view(-1)


def grpo_loss(logps, old_logps, ref_logps, advantages, mask, epsilon_low, epsilon_high, beta, normalizer):
    """PPO-clip + k3 KL, summed over the completion tokens in `mask` and divided by `normalizer`.
    logps/old_logps/ref_logps/mask (B, C); advantages (B,). Returns (loss, stats of sums)."""
    A = advantages[:, None]
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    per_token = -torch.min(ratio * A, clipped * A)
    m = mask.float()
    stats = {"clip_low": (((ratio < 1 - epsilon_low) & (A < 0)).float() * m).sum().detach(),
             "clip_high": (((ratio > 1 + epsilon_high) & (A > 0)).float() * m).sum().detach()}
    if beta > 0:
        d = ref_logps - logps
        kl = torch.exp(d) - d - 1
        per_token = per_token + beta * kl
        stats["kl"] = (kl * m).sum().detach()
    return (per_token * m).sum() / normalizer, stats


def read_task_records(path):
    missing = (f"task file '{path}' not found; run `python prepare_data.py --kind=tasks` (tiny tasks) "
               f"or `python prepare_data.py --kind=acecode` (AceCode hard split).")
    records = []
    for i, r in load_jsonl(path, missing):
        if "question" not in r or not r.get("tests"):
            raise ValueError(f"{path} line {i} needs a 'question' and a non-empty 'tests' list.")
        records.append(r)
    if not records:
        raise ValueError(f"task file '{path}' is empty.")
    return records


def main(argv=None):
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    if cfg.estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got '{cfg.estimator}'.")
    d = Dist(cfg.device)
    cfg.dtype = resolve_dtype(cfg.dtype, d.device_type)
    G = cfg.num_generations
    if cfg.prompts_per_step % d.world_size:
        raise ValueError(f"prompts_per_step={cfg.prompts_per_step} must be divisible by the {d.world_size} ranks.")
    if G < 2:
        raise ValueError("num_generations must be at least 2 (advantages compare completions of one prompt).")
    check_fast_options(cfg.max_completion_length, cfg.diffusion_steps or cfg.max_completion_length, cfg.alg, 0.0,
                       cfg.block_length, cfg.threshold, cfg.cache)
    if d.master:
        print("train_grpo.py config:")
        print_config(cfg)

    # models, data --------------------------------------------------------------------------
    ckpt = latest_checkpoint(cfg.out_dir) if cfg.resume else None
    init_dir = resolve_model_dir(cfg.init_from)
    tok = Tokenizer.from_pretrained(init_dir)
    tok_files = read_tokenizer_files(init_dir)
    parallel = cfg.parallel if d.ddp else "none"
    model, module = build_model(d, parallel, cfg.activation_checkpointing, init_dir=init_dir)
    ref = None
    if cfg.beta > 0:
        ref, _ = build_model(d, parallel if parallel == "fsdp" else "none", False, init_dir=init_dir)
        ref.requires_grad_(False).eval()
    optimizer = make_optimizer(model, cfg.learning_rate, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    start_step, history, rewards_log = 0, [], []
    if ckpt is not None:
        meta = load_training_state(ckpt, model, optimizer, {"ref_model": ref} if ref is not None else None)
        if meta["tokenizer_identity"] != tok.identity:
            raise ValueError(f"checkpoint {ckpt} was trained with tokenizer {meta['tokenizer_identity']}, "
                             f"not {tok.identity}.")
        start_step, history, rewards_log = meta["step"], meta["eval_history"], meta.get("reward_history", [])
        if d.master:
            print(f"resuming from {ckpt} at step {start_step}")
    train_records = read_task_records(cfg.train_file)
    # tiny tasks name their family: the log then splits the solved rate by family (RL can trade one for another)
    families = sorted({r.get("family", "") for r in train_records})
    family_totals = torch.zeros(len(families), 3, dtype=torch.float64)  # completions, solved, zero-std groups
    eval_records = read_task_records(cfg.eval_file)[:cfg.eval_n] if cfg.eval_n > 0 else []
    mask_id, stops = tok.mask_token_id, stop_ids(tok)
    C = cfg.max_completion_length
    n_steps = cfg.diffusion_steps or C
    local_prompts = cfg.prompts_per_step // d.world_size
    if d.master:
        passes = 2 * cfg.num_pairs + 1 if cfg.estimator in ("coupled", "decoupled") else 1
        print(f"policy {init_dir}: {model.num_params() / 1e6:.1f}M parameters; {len(train_records):,} train prompts, "
              f"{len(eval_records)} eval prompts; estimator {cfg.estimator} ({passes} forward passes per sequence)")
        print(f"{cfg.prompts_per_step} prompts x {G} completions = {cfg.prompts_per_step * G} sequences per step, "
              f"{local_prompts * G} per rank on {d.world_size} rank(s), "
              f"{math.ceil(local_prompts * G / cfg.micro_batch_size)} micro-batches of {cfg.micro_batch_size} "
              f"per update, {cfg.num_iterations} updates per step; "
              f"{C} completion tokens in {n_steps} diffusion steps; {cfg.max_steps} steps = "
              f"{cfg.max_steps * cfg.prompts_per_step / len(train_records):.2f} epochs")
    ctx = autocast(d.device_type, cfg.dtype)

    def prompt_ids(question):
        return tok.encode(tok.diffucoder_prompt(question))[-cfg.max_prompt_length:]

    def rollout(step, records, first_index):
        """G completions per record, one generate call per prompt group (the exact decoder unless
        block_length, threshold or cache is set). Returns per group: (prompt ids, completions (G, C))."""
        model.eval()
        groups = []
        for i, r in enumerate(records):
            p = prompt_ids(r["question"])
            ids = torch.tensor([p] * G, device=d.device)
            g = seeded(cfg.seed, step, first_index + i)
            if d.device_type == "cuda":
                g = torch.Generator(device=d.device).manual_seed(int(torch.randint(2**62, (1,), generator=g)))
            with ctx:
                out = generate(model, ids, max_new_tokens=C, steps=n_steps, temperature=cfg.temperature,
                               top_p=cfg.top_p, alg=cfg.alg, mask_token_id=mask_id, generator=g,
                               block_length=cfg.block_length, threshold=cfg.threshold, cache=cfg.cache)
            groups.append((p, out[:, len(p):]))
        model.train()
        return groups

    def run_eval(step):
        """Greedy pass@1 on the held-out prompts, split over ranks (every rank decodes equally many)."""
        n = math.ceil(len(eval_records) / d.world_size)
        mine = eval_records[d.rank * n:(d.rank + 1) * n]
        real = len(mine)
        mine = mine + eval_records[:n - real]  # equal work per rank (FSDP needs matching forwards)
        model.eval()
        res = evaluate_tasks(model, tok, mine, max_new_tokens=C, steps=n_steps, temperature=0.0,
                             batch_size=cfg.micro_batch_size, dtype=cfg.dtype, timeout_s=cfg.exec_timeout,
                             workers=cfg.exec_workers, packages=cfg.exec_packages)
        model.train()
        solved = sum(t["pass@1"] for t in res["per_task"][:real])
        stats = d.all_reduce(torch.tensor([solved, real], dtype=torch.float64, device=d.device))
        pass1 = (stats[0] / stats[1]).item()
        history.append((step, pass1))
        if d.master:
            print(f"step {step}/{cfg.max_steps} | eval pass@1 {pass1:.3f} on {int(stats[1])} held-out tasks",
                  flush=True)

    # training loop ---------------------------------------------------------------------------
    if start_step == 0 and eval_records:
        run_eval(0)
    t_start = time.time()
    for step in range(start_step, cfg.max_steps):
        t0 = time.time()
        lr = lr_at(step, cfg.learning_rate, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # which prompts: epochs over a permutation, the cursor is the step
        first = step * cfg.prompts_per_step + d.rank * local_prompts
        records = [train_records[i] for i in epoch_indices(first, local_prompts, len(train_records), cfg.seed)]

        # 1. rollout
        groups = rollout(step, records, first)
        t_rollout = time.time() - t0
        seqs = []
        for p, comp in groups:
            for row in comp:
                seqs.append((p, row))
        P_max = max(len(p) for p, _ in seqs)  # every completion is C tokens, so they all start at P_max
        input_ids, attn = left_pad([p + row.tolist() for p, row in seqs], tok.pad_token_id, d.device)
        comp_ids = input_ids[:, P_max:]
        cmask, truncated = completion_mask(comp_ids, stops)
        texts = [completion_text(tok, row.tolist()) for row in comp_ids]

        # 2. rewards
        t1 = time.time()
        scored = score_completions(texts, [r["tests"] for r in records for _ in range(G)], cfg.exec_timeout,
                                   cfg.exec_workers, cfg.exec_packages)
        fmt_r, code_r = (torch.tensor(v) for v in zip(*scored))
        rewards = cfg.code_weight * code_r + cfg.format_weight * fmt_r  # (local_prompts * G,)
        t_reward = time.time() - t1

        # 3. advantages (groups never cross ranks)
        adv = compute_advantages(rewards, G, cfg.baseline, cfg.scale_std).to(d.device)
        zero_groups = rewards.view(-1, G).std(dim=1) == 0  # (local_prompts,)
        zero_std = zero_groups.sum()
        per_prompt = torch.stack([torch.full_like(zero_groups, G, dtype=torch.float64),
                                  (code_r == 1).view(-1, G).sum(1).double(), zero_groups.double()], dim=1)
        fam = torch.tensor([families.index(r.get("family", "")) for r in records])
        fam_step = torch.zeros(len(families), 3, dtype=torch.float64).index_add_(0, fam, per_prompt)
        family_totals += d.all_reduce(fam_step.to(d.device)).cpu()
        if zero_std == local_prompts:
            print(f"warning: rank {d.rank}, step {step + 1}: every group has zero reward variance, "
                  f"no policy-gradient signal (rewards all {rewards[0].item():.2f}); "
                  f"a harder/easier task mix or a higher temperature helps", flush=True)

        # 4. mu policy iterations
        t2 = time.time()
        n_seq = len(seqs)
        micro = [slice(i, min(i + cfg.micro_batch_size, n_seq)) for i in range(0, n_seq, cfg.micro_batch_size)]
        normalizer = d.all_reduce(cmask.sum().float()).item()  # completion tokens of the step, all ranks

        def mask_gens(it, sl):
            return [seeded(cfg.seed, step, it, first * G + j) for j in range(sl.start, sl.stop)]

        def logps(m, it, sl):
            with ctx:
                return per_token_logps(m, input_ids[sl], attn[sl], P_max, mask_id, estimator=cfg.estimator,
                                       num_pairs=cfg.num_pairs, t_min=cfg.t_min, t_max=cfg.t_max,
                                       p_mask_prompt=cfg.p_mask_prompt, generator=mask_gens(it, sl))

        with torch.no_grad():  # old log-probs (iterations >= 2) and reference log-probs, once per rollout
            old = {(it, k): logps(model, it, sl) for it in range(1, cfg.num_iterations) for k, sl in enumerate(micro)}
            refs = {(it, k): logps(ref, it, sl)
                    for it in range(cfg.num_iterations) for k, sl in enumerate(micro)} if ref else {}
        sums = {"loss": 0.0, "clip_low": 0.0, "clip_high": 0.0, "kl": 0.0}
        for it in range(cfg.num_iterations):
            for k, sl in enumerate(micro):
                set_grad_sync(module, k == len(micro) - 1)
                lp = logps(module, it, sl)
                old_lp = old[(it, k)] if it > 0 else lp.detach()
                loss, stats = grpo_loss(lp, old_lp, refs.get((it, k)), adv[sl], cmask[sl], cfg.epsilon_low,
                                        cfg.epsilon_high, cfg.beta, normalizer)
                (loss * d.world_size).backward()  # DDP/FSDP average over ranks; we want the sum / normalizer
                sums["loss"] += loss.item()
                for key, v in stats.items():
                    sums[key] += v.item()
            # the gradient norm (before clipping; logged for the last of the mu updates)
            max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            gnorm = (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            n_updates = step * cfg.num_iterations + it + 1
            if ref is not None and cfg.ref_sync_steps and n_updates % cfg.ref_sync_steps == 0:
                with torch.no_grad():
                    if hasattr(ref, "reshard"):  # FSDP2 keeps the root unsharded after a forward-only pass
                        ref.reshard()
                    for p_ref, p in zip(ref.parameters(), model.parameters()):
                        p_ref.lerp_(p, cfg.ref_sync_alpha)
        t_update = time.time() - t2

        # 5. metrics: sums over the step's sequences (and tokens), all-reduced over ranks
        sums.update(seqs=len(seqs), reward=rewards.sum(), reward_sq=(rewards ** 2).sum(), code=code_r.sum(),
                    format=fmt_r.sum(), solved=(code_r == 1).sum(), zero_std=zero_std, tokens=cmask.sum(),
                    truncated=truncated.sum())
        totals = d.all_reduce(torch.tensor([float(v) for v in sums.values()], dtype=torch.float64, device=d.device))
        m = dict(zip(sums, totals.tolist()))
        n, per_update = m["seqs"], normalizer * cfg.num_iterations  # clip/kl: token means over the mu updates
        mean_r = m["reward"] / n
        std_r = math.sqrt(max(0.0, m["reward_sq"] / n - mean_r ** 2))
        done = step + 1
        rewards_log.append((done, round(mean_r, 4), round(m["code"] / n, 4), round(m["solved"] / n, 4)))
        log_now = done % cfg.log_interval == 0 or done == cfg.max_steps
        if d.master and log_now:
            tokens = n * C * n_steps / max(t_rollout, 1e-9)
            print(f"step {done}/{cfg.max_steps} | reward {mean_r:.3f} ± {std_r:.3f} | code {m['code'] / n:.3f} | "
                  f"format {m['format'] / n:.3f} | solved {m['solved'] / n:.3f} | "
                  f"zero-std groups {int(m['zero_std'])}/{cfg.prompts_per_step} | "
                  f"len {m['tokens'] / n:.0f} | trunc {m['truncated'] / n:.2f} | "
                  f"loss {m['loss'] / cfg.num_iterations:+.4f} | "
                  f"clip {m['clip_low'] / per_update:.3f}/{m['clip_high'] / per_update:.3f} | "
                  f"kl {m['kl'] / per_update:.4f} | gnorm {gnorm:.3f} | lr {lr:.1e} | "
                  f"rollout {t_rollout:.1f}s reward {t_reward:.1f}s update {t_update:.1f}s | "
                  f"{tokens / 1e3:.1f}k tok-steps/s | rss {rss_mb():,.0f} MB", flush=True)
            if len(families) > 1:  # since the last log line: solved rate (completions) and groups without variance
                n_f, solved_f, zero_f = family_totals.T.tolist()
                print("  solved by family: " + " | ".join(
                    f"{f} {s / n:.2f} ({n:.0f}, {z:.0f} zero-std)" for f, n, s, z in zip(families, n_f, solved_f, zero_f)
                    if n), flush=True)
        if log_now:
            family_totals.zero_()
        last = done == cfg.max_steps
        if eval_records and (last or (cfg.eval_interval and done % cfg.eval_interval == 0)):
            run_eval(done)
        if last or (cfg.ckpt_interval and done % cfg.ckpt_interval == 0):
            meta = dict(config=vars(cfg), tokenizer_identity=tok.identity, data_cursor=done,
                        eval_history=history, reward_history=rewards_log, world_size=d.world_size)
            save_checkpoint(cfg.out_dir, done, model, optimizer, meta, tok_files, d, keep_last=cfg.keep_last,
                            extra_models={"ref_model": ref} if ref is not None else None)
    if d.master:
        if start_step >= cfg.max_steps:
            print(f"{cfg.out_dir} already holds a checkpoint at step {start_step} >= max_steps={cfg.max_steps}; "
                  f"nothing to do.")
        else:
            print(f"done in {(time.time() - t_start) / 60:.1f} min; policy saved to {latest_checkpoint(cfg.out_dir)}")
        print("eval pass@1: " + ", ".join(f"{s}: {v:.3f}" for s, v in history))
    d.close()
    return history


if __name__ == "__main__":
    run_cli(main)
