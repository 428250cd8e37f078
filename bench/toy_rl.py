"""
The toy RL probe: does a change to the RL stage pay? Minutes on a 2-core CPU, where the pipeline takes 23
minutes to hours. One family of the tiny tasks (or several), a 0.14M-parameter model with its own BPE (457 tokens on
arith, where the merges run out before vocab_size), trained as the pipeline trains (AR SFT, then AR ->
diffusion SFT with attention annealing), then train_grpo.py as it is, per estimator and seed, and greedy
pass@1 on the family's held-out tasks before and after RL.

    python -m bench.toy_rl                                   # coupled and d1, seeds 1-3 (11 min, 2-core AMD EPYC, fp32)
    python -m bench.toy_rl --estimators=[d1] --learning_rate=3e-4 --run_tag=lr3e-4   # same SFT model, other RL
    python -m bench.toy_rl --sft_seed=1 --out_dir=out/toy_rl_s1                      # another SFT model
    python -m bench.toy_rl --rl_templates=[arith:mul+sub,arith:add+mul,arith:sq+sub] --out_dir=out/toy_rl_split
    python -m bench.toy_rl --family=all --out_dir=out/toy_all --train_tasks=20000 --test_tasks=500 --sft_tasks=8000 \
        --vocab_size=2000 --n_layer=4 --n_embd=128 --block_size=200 --answer_length=56 --max_completion_length=56 \
        --ar_steps=1500 --ar_lr=2e-3 --sft_steps=1200 --sft_lr=6e-4 --learning_rate=5e-5 --estimators=[coupled] \
        --run_tag=lr5e-5                                     # all six families, a 1.1M model (~45 min)

SFT and RL draw their tasks from the same train templates (the pipeline's setting), unless rl_templates
names some: those are left out of SFT and are the only RL prompts. The held-out tasks are scored in three groups:
'seen' (templates SFT trained on, new constants), 'rl' (templates RL trained on and SFT did not, new
constants) and 'new' (tasks.py's held-out templates, which no stage sees). Stages are cached in out_dir
(the data, the SFT model, each RL run and its scores) with the options that made them, and a call whose options
differ stops with an error: RL variants on one SFT model take a --run_tag, anything else a new out_dir.
"""

import json
import math
import os
import sys

import torch

import train_grpo
import train_pretrain
from checkpoint import latest_checkpoint, load_model, save_pretrained
from common import resolve_dtype
from configurator import as_list, config_keys, configure, load_json, print_config, run_cli
from eval import evaluate_tasks
from model import ModelConfig, Transformer
from tasks import FAMILIES, generate_tasks, read_jsonl, write_jsonl
from tokenizer import Tokenizer

# -----------------------------------------------------------------------------
out_dir = "out/toy_rl"
family = "arith"  # a family of tasks.py, a list of them ([arith,list]) or 'all'
rl_templates = "[]"  # train templates kept out of SFT and used as the only RL prompts ([]: RL on SFT's templates)
train_tasks = 9000  # tasks generated per split before keeping the family (tasks.py cycles through 6 families)
test_tasks = 1800
sft_tasks = 600
vocab_size = 1000
n_layer = 2
n_embd = 64  # heads of 32 dims (query heads = n_embd / 32, half as many k/v heads), SwiGLU 2 x n_embd
block_size = 160  # the model's context and the SFT row length (prompt + answer canvas)
answer_length = None  # SFT rows: left padding + prompt + a canvas of this many tokens (None: pads up to block_size)
ar_steps = 1000  # AR SFT (causal, next-token loss)
ar_lr = 3e-3
sft_steps = 800  # then AR -> diffusion SFT, attention annealed over anneal_steps
sft_lr = 1e-3
anneal_steps = 100
sft_seed = 0  # the model's random init and the SFT stages' data order (their --seed is 1337 + sft_seed)
# RL (train_grpo.py): per estimator and seed, from the same SFT model
estimators = "[coupled,d1]"
seeds = "[1,2,3]"
grpo_steps = 30
prompts_per_step = 8
num_generations = 8
learning_rate = 1e-4
temperature = 1.0
max_completion_length = 32  # tokens, decoded one per step
run_tag = ""  # appended to the RL runs' directory names: RL variants that share one SFT model
eval_n = None  # held-out tasks scored per group (None: all)
dtype = "auto"  # autocast dtype: 'auto' (bfloat16 where native, else float32), 'float32', 'bfloat16'
CONFIG_KEYS = config_keys(globals())
# -----------------------------------------------------------------------------

GROUPS = ("seen", "rl", "new")


def families(cfg):
    """The task families the probe runs on: one, a list, or 'all' (every family of tasks.py)."""
    names = list(FAMILIES) if cfg.family == "all" else as_list(cfg.family)
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown or not names:
        raise ValueError(f"family '{cfg.family}' names no task family of tasks.py ({unknown}); "
                         f"give one of {list(FAMILIES)}, a list of them, or 'all'.")
    return names


def make_data(cfg):
    """The chosen families' tasks split by template: sft.jsonl, rl.jsonl and one test file per group."""
    rl, fams = set(as_list(cfg.rl_templates)), families(cfg)
    train = [t for t in generate_tasks("train", cfg.train_tasks, 0) if t.family in fams]
    test = [t for t in generate_tasks("test", cfg.test_tasks, 0) if t.family in fams]
    unknown = rl - {t.template for t in train}
    if unknown:
        raise ValueError(f"rl_templates {sorted(unknown)} are not train templates of family '{cfg.family}'; "
                         f"choose from {sorted({t.template for t in train})}.")
    sft = [t for t in train if t.template not in rl][:cfg.sft_tasks]
    seen = {t.template for t in sft}
    parts = {"sft": sft, "rl": [t for t in train if t.template in rl] if rl else train[cfg.sft_tasks:],
             "test_seen": [t for t in test if t.template in seen], "test_rl": [t for t in test if t.template in rl],
             "test_new": [t for t in test if t.template not in seen | rl]}
    for name, part in parts.items():
        write_jsonl(part, f"{cfg.out_dir}/{name}.jsonl")
    tok = Tokenizer.train(iter([t.question + t.answer for t in train] * 3), cfg.vocab_size)
    torch.manual_seed(cfg.sft_seed)
    heads = max(1, cfg.n_embd // 32)
    model = Transformer(ModelConfig(vocab_size=math.ceil(tok.vocab_size / 64) * 64, n_layer=cfg.n_layer,
                                    n_head=heads, n_kv_head=max(1, heads // 2), n_embd=cfg.n_embd,
                                    intermediate_size=2 * cfg.n_embd,
                                    max_seq_len=cfg.block_size, mask_token_id=tok.mask_token_id))
    save_pretrained(model, f"{cfg.out_dir}/init")
    tok.save(f"{cfg.out_dir}/init")
    print("tasks: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))


def train_sft(cfg):
    """AR SFT from the random init, then AR -> diffusion SFT (the pipeline's stage order)."""
    common = ["--mode=sft", f"--sft_file={cfg.out_dir}/sft.jsonl", f"--block_size={cfg.block_size}",
              f"--answer_length={cfg.answer_length}",
              "--batch_size=8", "--warmup_steps=5", f"--dtype={cfg.dtype}", "--eval_interval=100000",
              "--eval_batches=1", "--log_interval=200", "--ckpt_interval=0", f"--seed={1337 + cfg.sft_seed}"]
    train_pretrain.main(common + [f"--init_from={cfg.out_dir}/init", f"--out_dir={cfg.out_dir}/ar", "--objective=ar",
                                  f"--max_steps={cfg.ar_steps}", f"--learning_rate={cfg.ar_lr}"])
    train_pretrain.main(common + [f"--init_from={cfg.out_dir}/ar", f"--out_dir={cfg.out_dir}/sft",
                                  f"--anneal_steps={cfg.anneal_steps}", f"--max_steps={cfg.sft_steps}",
                                  f"--learning_rate={cfg.sft_lr}"])


def write_json(obj, path):
    """json.dump to a temp file, renamed: an interrupted call leaves no half-written cache."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}.tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(f"{path}.tmp", path)


def score(cfg, run_dir):
    """Greedy pass@1 per held-out group, cached in run_dir/toy_rl_scores.json."""
    path = f"{run_dir}/toy_rl_scores.json"
    if os.path.isfile(path):
        return load_json(path)
    model, tok, _, _ = load_model(run_dir, "cpu", cfg.dtype)
    model.eval()
    scores = {}
    for g in GROUPS:
        tasks = read_jsonl(f"{cfg.out_dir}/test_{g}.jsonl")[:cfg.eval_n]
        scores[g] = [evaluate_tasks(model, tok, tasks, max_new_tokens=cfg.max_completion_length, batch_size=100,
                                    dtype=cfg.dtype)["pass@1"], len(tasks)] if tasks else [math.nan, 0]
    write_json(scores, path)
    return scores


def same_options(path, options, record=True):
    """Check a stage's options against the ones an earlier call recorded in `path`; record them if none are."""
    if os.path.isfile(path):
        recorded = load_json(path)
        if recorded != options:
            changed = sorted(k for k in options.keys() | recorded.keys() if options.get(k) != recorded.get(k))
            raise ValueError(f"{path} records other options ({', '.join(changed)}) than this call: its stage would "
                             f"be reused; give another out_dir (data, SFT) or run_tag (RL runs).")
    elif record:
        write_json(options, path)


def run_rl(cfg, est, seed):
    run_dir = f"{cfg.out_dir}/grpo_{est}{cfg.run_tag and '_' + cfg.run_tag}_s{seed}"
    args = [f"--init_from={cfg.out_dir}/sft", f"--train_file={cfg.out_dir}/rl.jsonl",
            f"--eval_file={cfg.out_dir}/test_new.jsonl", f"--out_dir={run_dir}", "--eval_n=0",
            f"--max_prompt_length={cfg.block_size - cfg.max_completion_length}",
            f"--max_completion_length={cfg.max_completion_length}", f"--max_steps={cfg.grpo_steps}",
            f"--prompts_per_step={cfg.prompts_per_step}", f"--num_generations={cfg.num_generations}",
            f"--temperature={cfg.temperature}", f"--learning_rate={cfg.learning_rate}", "--warmup_steps=2",
            f"--estimator={est}", f"--seed={seed}", "--micro_batch_size=16", f"--dtype={cfg.dtype}",
            "--ckpt_interval=0", "--log_interval=5"]
    same_options(f"{run_dir}/toy_rl_options.json", {"train_grpo": args}, record=False)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None or not ckpt.endswith(f"{cfg.grpo_steps:06d}"):
        train_grpo.main(args)
    same_options(f"{run_dir}/toy_rl_options.json", {"train_grpo": args})
    return score(cfg, run_dir)


def main(argv=None):
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    cfg.dtype = resolve_dtype(cfg.dtype, "cpu")
    print_config(cfg)
    stages = ("family", "rl_templates", "train_tasks", "test_tasks", "sft_tasks", "vocab_size", "n_layer", "n_embd",
              "block_size", "answer_length", "ar_steps", "ar_lr", "sft_steps", "sft_lr", "anneal_steps", "sft_seed",
              "max_completion_length", "eval_n", "dtype")
    options = {k: getattr(cfg, k) for k in stages}
    same_options(f"{cfg.out_dir}/toy_rl_options.json", options, record=False)
    if not os.path.isfile(f"{cfg.out_dir}/init/config.json"):
        make_data(cfg)
    same_options(f"{cfg.out_dir}/toy_rl_options.json", options)
    if latest_checkpoint(f"{cfg.out_dir}/sft") is None:
        train_sft(cfg)
    base = score(cfg, f"{cfg.out_dir}/sft")
    rows = {(e, int(s)): run_rl(cfg, e, int(s)) for e in as_list(cfg.estimators) for s in as_list(cfg.seeds)}

    def values(scores):  # pass@1 per group, then over all held-out tasks (groups weighted by their tasks)
        n = sum(scores[g][1] for g in GROUPS)
        return [scores[g][0] for g in GROUPS] + [sum(scores[g][0] * scores[g][1] for g in GROUPS if scores[g][1]) / n]

    cols = (*GROUPS, "all")
    print(f"\ngreedy pass@1 on held-out {cfg.family} tasks ({cfg.out_dir}; " +
          ", ".join(f"{g}: {base[g][1]} tasks" for g in GROUPS) + ")")
    print(f"{'run':>16} | " + " | ".join(f"{c:>5}" for c in cols))
    for name, sc in [("SFT", base)] + [(f"{e} seed {s}", sc) for (e, s), sc in rows.items()]:
        print(f"{name:>16} | " + " | ".join("-" if math.isnan(v) else f"{v:.3f}" for v in values(sc)))
    for e in as_list(cfg.estimators):
        g = torch.tensor([[a - b for a, b in zip(values(sc), values(base))] for (e2, _), sc in rows.items() if e2 == e])
        se = g.std(0) / len(g) ** 0.5 if len(g) > 1 else torch.full((len(cols),), math.nan)  # g: (seeds, columns)
        cells = ["-" if math.isnan(m) else f"{m:+.3f} ± {s:.3f}" for m, s in zip(g.mean(0).tolist(), se.tolist())]
        print(f"{f'{e} gain':>16} | " + " | ".join(cells))
    print("(gain: mean over seeds of RL minus SFT, ± its standard error)")


if __name__ == "__main__":
    run_cli(main)
