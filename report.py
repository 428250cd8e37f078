"""
The tiny pipeline's report: one markdown file with every number `bash run.sh` measured.
    python report.py                       # reads out/report/ and the run's outputs, writes out/report/report.md
It only reads what the stages wrote (their checkpoints' meta.json, eval.py's results.json, the logs
run.sh keeps under out/report/), so it can be rerun at any time and never trains or decodes anything.
"""
import os
import platform
import re
import sys
import time

import torch

from checkpoint import latest_checkpoint, read_meta
from configurator import config_keys, configure, load_json, run_cli

# -----------------------------------------------------------------------------
report_dir = "out/report"  # run.sh writes times.tsv and the stage logs here
data_dir = "data/stdlib"
ar_dir = "out/ar_tiny"
sft_dir = "out/sft_tiny"
grpo_dir = "out/grpo_tiny"
ar_baseline_dir = "out/ar_baseline_tiny"  # optional: run.sh's extra stages ar_baseline and eval_ar_baseline
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
    return load_json(path)


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
    """The output of the last invocation in an appended sample.py log: from its last "model <dir>: <n> parameters"
    line (the AR-ness tables' "model      temp |" headers are not one)."""
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if re.match(r"model \S+: [\d.]+\w? parameters", ln)]
    return "\n".join(lines[starts[-1]:] if starts else lines)


def machine():
    cpu = platform.processor() or platform.machine()
    for line in (read_text("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, Python {platform.python_version()}"


PROBE_COLUMNS = ("copy/name", "copy/literal", "copy/digit", "answer/all", "induction")


def training_section(title, out_dir):
    """A train_pretrain.py run: its settings, and the val loss and probes at every eval."""
    ckpt = latest_checkpoint(out_dir)
    if ckpt is None:
        return [f"## {title}", "", f"not run ({out_dir} has no checkpoint)", ""]
    meta = read_meta(ckpt)
    cfg = meta["config"]
    anneal = f", attention annealed causal -> full over {cfg['anneal_steps']} steps" if cfg.get("anneal_steps") else ""
    lines = [f"## {title}", "",
             f"`{ckpt}`: objective {cfg.get('objective', 'diffusion')}{anneal}, {meta['step']} steps, "
             f"{cfg.get('batch_size')} x {cfg.get('block_size')} tokens per micro-batch, "
             f"lr {cfg.get('learning_rate')}", ""]
    probes = dict((s, p) for s, p in meta.get("probe_history", []))
    cols = [c for c in PROBE_COLUMNS if any(c in p for p in probes.values())]
    lines += ["| step | val loss | " + " | ".join(cols) + " |", "|---:|---:|" + "---:|" * len(cols)]
    for step, val in meta.get("val_history", []):
        p = probes.get(step, {})
        lines.append(f"| {step} | {val:.4f} | " + " | ".join(f"{p[c]:.2f}" if c in p else "" for c in cols) + " |")
    if cols:
        lines += ["", "Probes (probes.py): top-1 accuracy on the answer tokens copied from the question "
                  "(function name, literal, digit), with only those masked (AR: teacher-forced); answer/all: "
                  "every answer token with the whole canvas masked; induction: the masked half of a repeated "
                  "random span."]
    return lines + [""]


def grpo_section(out_dir):
    ckpt = latest_checkpoint(out_dir)
    if ckpt is None:
        return ["## coupled-GRPO", "", f"not run ({out_dir} has no checkpoint)", ""]
    meta = read_meta(ckpt)
    c = meta["config"]
    lines = ["## coupled-GRPO", "",
             f"`{ckpt}`: {meta['step']} steps from `{c['init_from']}`, {c['prompts_per_step']} prompts x "
             f"{c['num_generations']} completions of <= {c['max_completion_length']} tokens per step, "
             f"estimator {c['estimator']}, lr {c['learning_rate']}, beta {c['beta']}", "",
             f"| step | reward (code x {c['code_weight']} + format x {c['format_weight']}) | code pass rate | solved |",
             "|---:|---:|---:|---:|"]
    lines += [f"| {s} | {r:.3f} | {code:.3f} | {solved:.3f} |" for s, r, code, solved in meta.get("reward_history", [])]
    if meta.get("eval_history"):
        history = ", ".join(f"step {s}: {v:.3f}" for s, v in meta["eval_history"])
        lines += ["", "held-out pass@1 during training: " + history]
    return lines + [""]


def last_log_line(path, pattern):
    lines = [ln for ln in (read_text(path) or "").splitlines() if re.search(pattern, ln)]
    return lines[-1] if lines else None


def eval_row(name, path):
    res = read_json(path)
    if res is None:
        return f"| {name} | not run | | | | | |"
    m, split = res["metrics"]["tiny"], res.get("breakdown", {}).get("split", {})
    halves = " | ".join(f"{split[k][0]:.3f}" if k in split else "" for k in ("seen template", "held-out template"))
    return (f"| {name} | {res['n_tasks']} | {m['pass@1']:.3f} | {halves} | {m['format_rate']:.3f} | "
            f"{m['mean_test_pass_fraction']:.3f} |")


def headroom_line(path):
    res = read_json(path)
    if res is None:
        return []
    s, m = res["settings"], res["metrics"]["tiny"]
    k = f"pass@{res['n_samples']}"
    return [f"RL headroom of the SFT model: {k} {m[k]:.3f} (pass@1 {m['pass@1']:.3f}) on {res['n_tasks']} "
            f"train prompts x {res['n_samples']} samples at the rollouts' decoding "
            f"(temperature {s['temperature']}, top-p {s['top_p']}, {s['steps']} steps)", ""]


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
    out += training_section("Autoregressive training (the AR parent)", cfg.ar_dir)
    for stage in ("ar", "sft"):
        speed = last_log_line(os.path.join(r, f"{stage}.log"), r"tok/s")
        if speed:
            out += [f"last `{stage}` log line: `{speed.strip()}`", ""]
    out += training_section("AR->diffusion adaptation and diffusion SFT", cfg.sft_dir)
    out += headroom_line(os.path.join(cfg.sft_dir, "headroom", "results.json"))
    out += grpo_section(cfg.grpo_dir)
    out += ["## Held-out tiny tasks, greedy pass@1 (eval.py, Dream decoding, one token per step)", "",
            "| model | tasks | pass@1 | seen template | held-out template | format | tests passed |",
            "|---|---:|---:|---:|---:|---:|---:|",
            eval_row("after SFT", os.path.join(cfg.sft_dir, "eval", "results.json")),
            eval_row("after coupled-GRPO", os.path.join(cfg.grpo_dir, "eval", "results.json"))]
    baseline = os.path.join(cfg.ar_baseline_dir, "eval", "results.json")
    if os.path.isfile(baseline):  # `bash run.sh tiny ar_baseline eval_ar_baseline`
        out += [eval_row("AR baseline, same steps, left-to-right decoding", baseline)]
    out += [""]
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
