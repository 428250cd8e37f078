"""
Tests for prepare_data.py --kind=acecode: on a small synthetic table in AceCode-87K's schema (parquet, and the
same rows as jsonl), the hard-split filter keeps exactly the rows worked out by hand (quantiles over all
questions, as DiffuCoder's recipe), other models' inferences are ignored for the filter, the prompt gets the
first test case unless it already holds a fenced block, the signature variant is built as the official
recipe builds it, and an unreachable hub is one clear error.

Hermetic: the table is written under tmp_path; the hub is never contacted.
Run: .venv/bin/python -m pytest tests/test_acecode.py
"""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

import prepare_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCED = "You get a list.\n```\nexample: f([1]) == 1\n```\nReturn its first element."

# id -> (question, pass rates of qwen_coder_2.5 x2 then llama3_instruct x2). Worked out by hand:
# means sorted 0, .2, .25, .25, .5, .5, .75, .875, .95, .95, 1 -> the 0.2 quantile (position 2 of 10) is .25:
#   A, K, B, C have mean <= .25;
# stds sorted 0 (A), 0 (H), .05 (I), .087 (J), .2165 (G), .25 (C), .25 (F), .346 (K), .354 (E), .433 (B), .5 (D)
#   -> the 0.4 quantile (position 4) is .2165: of A, K, B, C, all but A (std 0) are kept.
# (Ranking the std only among the 4 low-mean rows, "top 40%", would keep B and K only: C tells them apart.)
ROWS = {
    "A": ("Write a function zero that returns 0.", [0, 0, 0, 0]),
    "B": ("You are given two ints; write add(a, b) returning their sum.", [0, 0, 0, 1]),
    "C": ("Write a function mul(a, b) returning the product of a and b.", [0, 0.5, 0, 0.5]),
    "K": (FENCED, [0, 0, 0, 0.8]),
    "D": ("Write d.", [0, 0, 1, 1]),
    "E": ("Write e.", [0, 0.5, 0.5, 1]),
    "F": ("Write f.", [0.5, 1, 1, 0.5]),
    "G": ("Write g.", [0.5, 1, 1, 1]),
    "H": ("Write h.", [1, 1, 1, 1]),
    "I": ("Write i.", [0.9, 1, 1, 0.9]),
    "J": ("Write j.", [0.8, 1, 1, 1]),
}


def table():
    rows = []
    for rid, (question, rates) in ROWS.items():
        best = {"C": "def mul(a, b):\n    return a * b\n",
                "K": "class Solution:\n    pass\n"}.get(rid, f"def {rid.lower()}():\n    pass\n")
        models = [("qwen_coder_2.5", 0), ("qwen_coder_2.5", 1), ("llama3_instruct", 0), ("llama3_instruct", 1)]
        infs = [dict(model_name=m, completion_id=j, completion=best, pass_rate=float(p))
                for (m, j), p in zip(models, rates)]
        infs.append(dict(model_name="deepseek_coder", completion_id=0, completion="def other():\n    pass\n",
                         pass_rate=1.0 if rid == "B" else 0.0))
        rows.append(dict(id=rid, source="oss", question=question,
                         test_cases=[f"assert {rid.lower()}(1) == 1", "assert True"],
                         inferences=infs, context_messages=[dict(role="user", content=question)]))
    # a question with only other models' inferences, and one without tests: both skipped
    rows.append(dict(id="Z", source="evol", question="Write z.", test_cases=["assert z() == 0"],
                     inferences=[dict(model_name="deepseek_coder", completion_id=0, completion="", pass_rate=0.0)],
                     context_messages=[]))
    rows.append(dict(id="Y", source="evol", question="Write y.", test_cases=[],
                     inferences=[dict(model_name="qwen_coder_2.5", completion_id=0, completion="", pass_rate=0.0)],
                     context_messages=[]))
    return rows


def run(tmp_path, source, *extra):
    out = tmp_path / "out"
    prepare_data.main(["--kind=acecode", f"--acecode_source={source}", f"--acecode_out={out}", *extra])
    return [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


def test_hard_split_rows_and_prompts(tmp_path, capsys):
    f = tmp_path / "train-00000-of-00001.parquet"
    pd.DataFrame(table()).to_parquet(f)
    recs = run(tmp_path, str(f))
    assert [r["task_id"] for r in recs] == ["B", "C", "C/variant", "K"]
    by_id = {r["task_id"]: r for r in recs}
    assert by_id["B"]["question"] == ROWS["B"][0] + "\nTest cases: assert b(1) == 1"  # "you": no variant
    assert by_id["C"]["question"] == ROWS["C"][0] + "\nTest cases: assert c(1) == 1"
    assert by_id["C/variant"]["question"] == (
        'Please complete the following problem:\n```\ndef mul(a, b):\n    """\n'
        f'    {ROWS["C"][0]}\n    """\n```\n')  # fenced: no test case appended
    assert by_id["K"]["question"] == FENCED  # already fenced; its best inference is a class: no variant
    assert all(r["tests"] == [f"assert {r['task_id'][0].lower()}(1) == 1", "assert True"] for r in recs)
    assert by_id["B"]["mean_pass_rate"] == 0.25 and by_id["B"]["std_pass_rate"] == pytest.approx(0.4330127)
    out = capsys.readouterr().out
    assert "read 13 questions (2 skipped" in out and "3 hard questions + 1 variants = 4 prompts" in out
    run(tmp_path, str(f))
    assert "already prepared" in capsys.readouterr().out
    # the same rows as jsonl in a folder (a hub snapshot's layout), and without variants
    d = tmp_path / "snapshot" / "data"
    d.mkdir(parents=True)
    (d / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in table()))
    again = run(tmp_path, str(tmp_path / "snapshot"), "--acecode_variants=False")
    assert again == [r for r in recs if r["task_id"] != "C/variant"]


def test_unreachable_hub_is_one_clear_error(tmp_path):
    code = ("import prepare_data; prepare_data.hub_reachable = lambda *a, **k: False; "
            f"prepare_data.run_cli(lambda: prepare_data.main(['--kind=acecode', '--acecode_out={tmp_path}']))")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")}
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.startswith("error: cannot reach dataset 'TIGER-Lab/AceCode-87K'")
    assert r.stderr.count("\n") == 1 and "--acecode_source=" in r.stderr
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(tmp_path, str(tmp_path / "missing.parquet"))
