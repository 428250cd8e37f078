"""report.py: the markdown report reads what the stages wrote and shows every number, or says what did not run."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import report  # noqa: E402


def write_eval(path, pass1, fmt, tests, n):
    os.makedirs(path)
    with open(os.path.join(path, "results.json"), "w") as f:
        json.dump({"metrics": {"tiny": {"pass@1": pass1, "format_rate": fmt, "mean_test_pass_fraction": tests}},
                   "n_tasks": n}, f)


def test_report_shows_stage_times_evals_and_plain_text_pictures(tmp_path):
    r = tmp_path / "report"
    r.mkdir()
    # an interrupted and resumed stage adds up
    (r / "times.tsv").write_text("data\t2\tdone\npretrain\t574\tdone\nsft\t100\tinterrupted\nsft\t340\tdone\n"
                                 "data\t1\tdone\n")
    write_eval(str(tmp_path / "sft" / "eval"), 0.1, 0.9, 0.3, 500)
    write_eval(str(tmp_path / "grpo" / "eval"), 0.125, 0.95, 0.35, 500)
    (r / "samples.log").write_text("model old: ...\nold sample\nmodel out/x: 6.8M\n\x1b[1;38;2;1;2;3mdef\x1b[0m f():\n000 111\n")
    cfg = report.configure(vars(report), report.CONFIG_KEYS, [
        f"--report_dir={r}", f"--data_dir={tmp_path / 'no data'}", f"--pretrain_dir={tmp_path / 'pretrain'}",
        f"--sft_dir={tmp_path / 'sft'}", f"--grpo_dir={tmp_path / 'grpo'}"])
    text = report.build(cfg)
    assert "| data | 3 | 2 runs, 0 interrupted |" in text and "| pretrain | 574 |  |" in text
    assert "| sft | 440 | 2 runs, 1 interrupted |" in text and "| **total** | **1017** | |" in text
    assert "| after SFT | 500 | 0.100 | 0.900 | 0.300 |" in text
    assert "| after coupled-GRPO | 500 | 0.125 | 0.950 | 0.350 |" in text
    assert "not run" in text  # no checkpoints in the training dirs
    assert "def f():\n000 111" in text and "\x1b" not in text and "old sample" not in text  # the last run only
