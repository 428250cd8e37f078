"""
The paper's decoding analyses as text tables, with PNG pictures when matplotlib is installed (an optional
dependency, imported only to draw; without it each picture is one printed line and the text stays).

`sample.py --analyze=True` decodes a prompt set one token per step at several temperatures and prints:
1. AR-ness@1..4, local and global (appendix A.2), one row per model and temperature. With several checkpoints,
   `--out_dir=[out/ar_tiny,out/sft_tiny,out/grpo_tiny]`, the rows of one table compare the training stages
   (the shape of the paper's Figure 4).
2. The mean first-step confidence by distance from the prompt (the "entropy sink").
3. The per-step entropy heat-map of the first prompt (Figure 9): rows are decoding steps, columns generated
   positions, a cell the entropy of the model's distribution at a still-masked position (blank once committed),
   as a character ramp (at the first temperature); `--heatmap_png` draws every model and temperature.

`eval.py --temperatures=[...]` draws pass@k against temperature (Figures 5-6) with `pass_at_k_png`.
"""

import math
import os
from statistics import fmean

import torch

from common import left_pad, seeded
from order import global_ar_ness, local_ar_ness
from sample import diffusion_generate, read_prompts, resolve_steps

RAMP = ".:-=+*#%@"  # low -> high entropy; a committed position is a blank


def model_labels(dirs):
    """A short name per model directory (its last component; the whole path where two would clash)."""
    names = [os.path.basename(os.path.normpath(d)) for d in dirs]
    return [n if names.count(n) == 1 else d for n, d in zip(names, dirs)]


def analyze_model(model, tok, encode, cfg, prompts, dev, ctx):
    """Per temperature: (temperature, local@1..4, global@1..4, mean first-step confidence (N,), the entropy
    map (steps, N) of the first prompt, NaN where committed)."""
    N = cfg.max_new_tokens
    steps = resolve_steps(N, cfg.steps, cfg.speedup)
    out = []
    for temp in cfg.analyze_temperatures:
        g = seeded(cfg.seed, device=dev)
        local, glob, first, heat = [[] for _ in range(4)], [[] for _ in range(4)], [], None
        for b in range(0, len(prompts), cfg.analyze_batch):
            ids, mask = left_pad([encode(p) for p in prompts[b:b + cfg.analyze_batch]], tok.pad_token_id, dev)
            with ctx:
                _, h = diffusion_generate(model, ids, mask, max_new_tokens=N, steps=steps, temperature=temp,
                                          top_p=cfg.top_p, top_k=cfg.top_k, alg=cfg.alg, alg_temp=cfg.alg_temp,
                                          eps=cfg.eps, mask_token_id=tok.mask_token_id, generator=g,
                                          return_history=True, record_entropy=b == 0)
            for r in range(ids.size(0)):
                order = h.order(r)
                for k in range(4):
                    local[k].append(local_ar_ness(order, k + 1))
                    glob[k].append(global_ar_ness(order, k + 1))
            first.append(h.first_confidence.float().cpu())
            heat = h.entropy[0].cpu() if b == 0 else heat
        out.append((temp, [fmean(v) for v in local], [fmean(v) for v in glob], torch.cat(first).mean(0), heat))
    return out


def run_analysis(cfg, dirs, open_model):
    """Analyze every model directory (open_model(d) -> model, tok, encode) on cfg's prompts; print the tables and
    heat-map; write the PNG. Returns {label: analyze_model's rows}."""
    prompts = read_prompts(cfg.analyze_file, cfg.analyze_n)
    N, results = cfg.max_new_tokens, {}
    steps = resolve_steps(N, cfg.steps, cfg.speedup)
    for label, d in zip(model_labels(dirs), dirs):
        model, tok, encode, dev, ctx = open_model(d)
        results[label] = analyze_model(model, tok, encode, cfg, prompts, dev, ctx)
        del model
    w = max(6, *map(len, results))
    print(f"\nAR-ness of {len(prompts)} prompts x {N} tokens in {steps} steps ({cfg.alg}, top_p {cfg.top_p})"
          + ("; the schedule quirk commits 0 tokens at step 0 and 2 at the last" if steps == N else ""))
    print(f"{'model':<{w}} {'temp':>5} | " + " ".join(f"local@{k}" for k in range(1, 5)) + " | "
          + " ".join(f"global@{k}" for k in range(1, 5)))
    for label, rows in results.items():
        for temp, local, glob, _, _ in rows:
            print(f"{label:<{w}} {temp:>5.2f} | " + " ".join(f"{v:7.3f}" for v in local) + " | "
                  + " ".join(f"{v:8.3f}" for v in glob))
    cols = [c for c in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256) if c <= N]
    print(f"\nmean first-step confidence ({cfg.alg}) by distance from the prompt (higher = more confident; "
          "an 'entropy sink' peaks right after the prompt)")
    print(f"{'model':<{w}} {'temp':>5} | " + " ".join(f"{c:>6}" for c in cols))
    for label, rows in results.items():
        for temp, _, _, curve, _ in rows:
            print(f"{label:<{w}} {temp:>5.2f} | " + " ".join(f"{float(curve[c - 1]):6.2f}" for c in cols))
    for label, rows in results.items():
        temp, heat = rows[0][0], rows[0][4]
        print(f"\nentropy of the first prompt's masked positions at each step, {label}, temperature {temp}:")
        print(entropy_text(heat))
    if cfg.heatmap_png:
        panels = [(f"{label}, temperature {r[0]}", r[4]) for label, rows in results.items() for r in rows]
        entropy_png(panels, len(cfg.analyze_temperatures), cfg.heatmap_png)
    return results


# -----------------------------------------------------------------------------
# pictures

def entropy_text(heat, max_rows=32, max_cols=64):
    """A (steps, N) entropy map (NaN: committed) as text: a row per step, a character per position, from RAMP
    scaled to the map's largest entropy; larger maps are binned (a cell: the mean of its bin's masked entries)."""
    S, N = heat.shape
    rs, cs = math.ceil(S / max_rows), math.ceil(N / max_cols)  # steps per row, positions per column
    top = float(heat.nan_to_num(0).max()) or 1.0
    lines = [f"rows: {rs} step(s) each, columns: {cs} position(s) each; '{RAMP}' = entropy 0 .. {top:.2f} nats, "
             "blank: committed"]
    for r in range(0, S, rs):
        cells = ""
        for c in range(0, N, cs):
            v = heat[r:r + rs, c:c + cs].nanmean()
            cells += " " if math.isnan(v) else RAMP[min(len(RAMP) - 1, int(len(RAMP) * float(v) / top))]
        lines.append(f"step {r:>4} |{cells}|")
    return "\n".join(lines)


def pyplot():
    """matplotlib.pyplot (drawing to files), or None after one printed line when matplotlib is not installed."""
    try:
        import matplotlib  # optional, not in requirements.txt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no PNG written, the text above is the result")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def entropy_png(panels, ncols, path):
    """One heat-map (steps down, positions across, committed cells blank) per (title, (steps, N) map)."""
    plt = pyplot()
    if plt is None:
        return
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.2 * nrows), squeeze=False,
                             layout="constrained")
    top = max(float(h.nan_to_num(0).max()) for _, h in panels) or 1.0
    for ax, (title, heat) in zip(axes.flat, panels):
        im = ax.imshow(heat.numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=top, interpolation="nearest")
        ax.set(title=title, xlabel="generated position", ylabel="decoding step")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, label="entropy (nats) of a masked position")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def pass_at_k_png(temps, metrics, path):
    """pass@k (%) against temperature, a line per k and a panel per benchmark (the paper's Figures 5-6).
    metrics: per temperature, {benchmark: {"pass@k": value}}."""
    plt = pyplot()
    if plt is None:
        return
    names = list(metrics[0])
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for k in (k for k in metrics[0][name] if k.startswith("pass@")):
            ax.plot(temps, [100 * m[name][k] for m in metrics], marker="o", label=k)
        ax.set(title=name, xlabel="temperature", ylabel="pass@k (%)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
