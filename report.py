"""
The tiny pipeline's report: one markdown file with every number `bash run.sh` measured.
    python report.py                       # reads out/report/ and the run's outputs, writes out/report/report.md
It only reads what the stages wrote (their checkpoints' meta.json, eval.py's results.json, the logs
run.sh keeps under out/report/), so it can be rerun at any time and never trains or decodes anything.
"""
import json
import os
import platform
import re
import sys
import time

from common import latest_checkpoint, read_meta
from configurator import config_keys, configure, run_cli

# -----------------------------------------------------------------------------
report_dir = "out/report"  # run.sh writes times.tsv and the stage logs here
data_dir = "data/stdlib"
pretrain_dir = "out/pretrain_tiny"
sft_dir = "out/sft_tiny"
grpo_dir = "out/grpo_tiny"
CONFIG_KEYS = config_keys(globals())
# -----------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def read_text(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return ANSI.sub("", f.read())


def read_json(path):
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_times(path):
    """[(stage, seconds, note)]: run.sh appends one line per attempt (stage, seconds, done|interrupted); a stage
    run several times (interrupted and resumed, or re-checked by a later run) adds up."""
    times = {}
    for line in (read_text(path) or "").splitlines():
        stage, secs, status = (line.split("\t") + ["done"])[:3]
        total, runs, stopped = times.get(stage, (0.0, 0, 0))
        times[stage] = (total + float(secs), runs + 1, stopped + (status == "interrupted"))
    return [(s, t, f"{n} runs, {k} interrupted" if n > 1 else "") for s, (t, n, k) in times.items()]


def last_run(text):
    """The output of the last invocation in an appended sample.py log (each starts with its config)."""
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("model ")]
    return "\n".join(lines[starts[-1]:] if starts else lines)


def machine():
    cpu = platform.processor() or platform.machine()
    for line in (read_text("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import torch
    return f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, Python {platform.python_version()}"


def training_section(title, out_dir, key):
    ckpt = latest_checkpoint(out_dir)
    if ckpt is None:
        return [f"## {title}", "", f"not run ({out_dir} has no checkpoint)", ""]
    meta = read_meta(ckpt)
    cfg = meta["config"]
    hist = meta.get(key) or []
    lines = [f"## {title}", "", f"`{ckpt}`: {meta['step']} steps, {cfg.get('batch_size')} x {cfg.get('block_size', cfg.get('max_completion_length'))} "
             f"tokens per micro-batch, lr {cfg.get('learning_rate')}", ""]
    if hist:
        name = "val loss" if key == "val_history" else "held-out pass@1"
        lines += [f"| step | {name} |", "|---:|---:|"] + [f"| {s} | {v:.4f} |" for s, v in hist] + [""]
    return lines


def grpo_section(out_dir):
    ckpt = latest_checkpoint(out_dir)
    if ckpt is None:
        return ["## coupled-GRPO", "", f"not run ({out_dir} has no checkpoint)", ""]
    meta = read_meta(ckpt)
    c = meta["config"]
    lines = ["## coupled-GRPO", "", f"`{ckpt}`: {meta['step']} steps from `{c['init_from']}`, {c['prompts_per_step']} prompts x "
             f"{c['num_generations']} completions of <= {c['max_completion_length']} tokens per step, estimator {c['estimator']}, "
             f"lr {c['learning_rate']}, beta {c['beta']}", "",
             "| step | reward (code x 2 + format x 0.5) | code pass rate | solved |", "|---:|---:|---:|---:|"]
    lines += [f"| {s} | {r:.3f} | {code:.3f} | {solved:.3f} |" for s, r, code, solved in meta.get("reward_history", [])]
    if meta.get("eval_history"):
        lines += ["", "held-out pass@1 during training: " + ", ".join(f"step {s}: {v:.3f}" for s, v in meta["eval_history"])]
    return lines + [""]


def last_log_line(path, pattern):
    lines = [ln for ln in (read_text(path) or "").splitlines() if re.search(pattern, ln)]
    return lines[-1] if lines else None


def eval_row(name, path):
    res = read_json(path)
    if res is None:
        return f"| {name} | not run | | | |"
    m = res["metrics"]["tiny"]
    return (f"| {name} | {res['n_tasks']} | {m['pass@1']:.3f} | {m['format_rate']:.3f} | "
            f"{m['mean_test_pass_fraction']:.3f} |")


def build(cfg):
    r = cfg.report_dir
    out = ["# Tiny DiffuCoder: pipeline report", "",
           f"Written {time.strftime('%Y-%m-%d %H:%M %Z')} on {machine()}.", ""]
    times = read_times(os.path.join(r, "times.tsv"))
    if times:
        out += ["## Stage times (summed over every attempt; a later run of a finished stage only checks, a few s)", "",
                "| stage | seconds | |", "|---|---:|---|"] + [f"| {s} | {t:.0f} | {note} |" for s, t, note in times]
        out += [f"| **total** | **{sum(t for _, t, _ in times):.0f}** | |", ""]
    data = read_json(os.path.join(cfg.data_dir, "meta.json"))
    if data:
        out += ["## Data", "", f"stdlib corpus: {data['train_tokens']:,} train + {data['val_tokens']:,} val tokens, "
                f"BPE vocab {data['vocab_size']:,}", ""]
    out += training_section("Masked-diffusion pre-training", cfg.pretrain_dir, "val_history")
    speed = last_log_line(os.path.join(r, "pretrain.log"), r"tok/s")
    if speed:
        out += [f"last log line: `{speed.strip()}`", ""]
    out += training_section("Conditional SFT on the tiny tasks", cfg.sft_dir, "val_history")
    out += grpo_section(cfg.grpo_dir)
    out += ["## Held-out tiny tasks, greedy pass@1 (eval.py)", "",
            "| model | tasks | pass@1 | format | tests passed |", "|---|---:|---:|---:|---:|",
            eval_row("after SFT", os.path.join(cfg.sft_dir, "eval", "results.json")),
            eval_row("after coupled-GRPO", os.path.join(cfg.grpo_dir, "eval", "results.json")), ""]
    for title, name in (("AR-ness of the decoding order", "arness.log"),
                        ("Samples and their decoding order", "samples.log")):
        text = read_text(os.path.join(r, name))
        if text:
            out += [f"## {title}", "", "````", last_run(text).rstrip(), "````", ""]  # samples hold ``` fences
    if os.path.isfile(os.path.join(r, "order.html")):
        out += ["The decoding-order picture (each token coloured by the step that committed it): `order.html`.", ""]
    return "\n".join(out)


def main(argv=None):
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    text = build(cfg)
    os.makedirs(cfg.report_dir, exist_ok=True)
    path = os.path.join(cfg.report_dir, "report.md")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.replace(path + ".tmp", path)
    print(text)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    run_cli(main)
