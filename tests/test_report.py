"""report.py: the markdown report reads what the stages wrote and shows every number, or says what did not run."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import report  # noqa: E402


def write_eval(path, pass1, fmt, tests, n, **extra):
    os.makedirs(path)
    with open(os.path.join(path, "results.json"), "w") as f:
        metrics = {"pass@1": pass1, "format_rate": fmt, "mean_test_pass_fraction": tests, **extra}
        json.dump({"metrics": {"tiny": metrics},
                   "n_tasks": n, "n_samples": 8 if extra else 1, "breakdown": {"split": {
                       "seen template": [pass1 + 0.05, n // 2], "held-out template": [pass1 - 0.05, n // 2]}},
                   "settings": {"temperature": 1.2, "top_p": 0.95, "steps": 32}}, f)


def test_report_shows_stage_times_evals_and_plain_text_pictures(tmp_path):
    r = tmp_path / "report"
    r.mkdir()
    # an interrupted and resumed stage adds up
    (r / "times.tsv").write_text("data\t2\tdone\npretrain\t574\tdone\nsft\t100\tinterrupted\nsft\t340\tdone\n"
                                 "data\t1\tdone\n")
    write_eval(str(tmp_path / "sft" / "eval"), 0.1, 0.9, 0.3, 500)
    write_eval(str(tmp_path / "grpo" / "eval"), 0.125, 0.95, 0.35, 500)
    write_eval(str(tmp_path / "sft" / "headroom"), 0.2, 0.9, 0.3, 50, **{"pass@8": 0.5})
    ckpt = tmp_path / "ar" / "ckpt-000200"  # an AR run's checkpoint meta with its val loss and probes
    ckpt.mkdir(parents=True)
    (ckpt / "meta.json").write_text(json.dumps({
        "step": 200, "config": {"objective": "ar", "batch_size": 16, "block_size": 192, "learning_rate": 1e-3},
        "val_history": [[0, 8.4], [200, 0.3]],
        "probe_history": [[0, {"copy/name": 0.0, "induction": 0.0}], [200, {"copy/name": 0.9, "induction": 0.01}]]}))
    (r / "samples.log").write_text("model old: 1.64M parameters on cpu\nold sample\n"
                                   "model out/x: 6.8M parameters on cpu, float32\n"
                                   "\x1b[1;38;2;1;2;3mdef\x1b[0m f():\n000 111\n")
    (r / "arness.log").write_text("model out/x: 1.64M parameters on cpu\nAR-ness of 32 prompts\n"
                                  "model      temp | local@1\nx          0.00 |   0.887\n"
                                  "model      temp |      1\nx          0.00 |   0.00\n")
    cfg = report.configure(vars(report), report.CONFIG_KEYS, [
        f"--report_dir={r}", f"--data_dir={tmp_path / 'no data'}", f"--ar_dir={tmp_path / 'ar'}",
        f"--sft_dir={tmp_path / 'sft'}", f"--grpo_dir={tmp_path / 'grpo'}"])
    text = report.build(cfg)
    assert "| data | 3 | 2 runs, 0 interrupted |" in text and "| pretrain | 574 |  |" in text
    assert "| sft | 440 | 2 runs, 1 interrupted |" in text and "| **total** | **1017** | |" in text
    assert "| after SFT | 500 | 0.100 | 0.150 | 0.050 | 0.900 | 0.300 |" in text
    assert "| after coupled-GRPO | 500 | 0.125 | 0.175 | 0.075 | 0.950 | 0.350 |" in text
    assert ("pass@8 0.500 (pass@1 0.200) on 50 train prompts x 8 samples at the rollouts' decoding "
            "(temperature 1.2") in text
    assert "objective ar, 200 steps" in text and "| step | val loss | copy/name | induction |" in text
    assert "| 0 | 8.4000 | 0.00 | 0.00 |" in text and "| 200 | 0.3000 | 0.90 | 0.01 |" in text
    assert "not run" in text  # no checkpoints in the training dirs
    assert "def f():\n000 111" in text and "\x1b" not in text and "old sample" not in text  # the last run only
    assert "AR-ness of 32 prompts\nmodel      temp | local@1\nx          0.00 |   0.887" in text  # all its tables
