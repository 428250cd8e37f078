"""
Tests for the decoding analyses: the per-step entropy the decoder records (against a softmax entropy computed by
hand, and the decoded tokens unchanged by recording it), its text rendering, AR-ness of several checkpoints in
one table (each row equal to that model analyzed alone), the 2x-speed setting, the list syntax of --out_dir, and
the PNG pictures with and without matplotlib.

Hermetic (tiny random models, a tokenizer trained in the test, files in tmp_path).
Run: .venv/bin/python -m pytest tests/test_analysis.py
"""

import json
import math
import shutil
import sys

import pytest
import torch

from analysis import entropy_png, entropy_text, model_labels, pass_at_k_png
from configurator import ConfigError, as_list
from sample import diffusion_generate, main, resolve_steps
from test_sample import MASK, left_padded, model, prompts, saved  # noqa: F401 (fixtures)


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def hand_entropy(row):
    """-sum p log p of softmax(row) with the mask token removed, in python floats."""
    z = [(-math.inf if v == MASK else float(a)) for v, a in enumerate(row)]
    m = max(z)
    e = [math.exp(a - m) for a in z]
    p = [a / sum(e) for a in e]
    return -sum(q * math.log(q) for q in p if q > 0)


def test_recorded_entropy_equals_a_hand_computation_and_changes_no_token(model):
    """Steps 0 and 1 of a left-padded batch: each masked position's entropy is the softmax entropy of the logits
    that predict it, given the tokens committed so far; committed positions are NaN."""
    ids, mask = left_padded(prompts([5, 3], seed=1))
    B, P, N, steps = 2, ids.size(1), 8, 4
    kw = dict(max_new_tokens=N, steps=steps, temperature=0.7, top_p=0.9, alg="entropy", mask_token_id=MASK)
    plain = diffusion_generate(model, ids, mask, generator=torch.Generator().manual_seed(0), **kw)
    out, h = diffusion_generate(model, ids, mask, generator=torch.Generator().manual_seed(0), return_history=True,
                                record_entropy=True, **kw)
    assert torch.equal(out, plain)  # recording costs no token
    assert h.entropy.shape == (B, steps, N)
    assert diffusion_generate(model, ids, mask, return_history=True, **kw)[1].entropy is None  # off by default
    assert bool((h.steps == 0).any())  # step 1 sees committed positions
    pad = torch.cat([mask, torch.ones(B, N, dtype=mask.dtype)], 1)
    for step in (0, 1):
        x = out.clone()
        x[:, P:] = torch.where(h.steps < step, out[:, P:], MASK)  # the sequence as step `step` saw it
        with torch.no_grad():
            logits = model(x, attention_mask=pad)  # (B, T, V): row r predicts token r + 1
        for b in range(B):
            for j in range(N):
                got = float(h.entropy[b, step, j])
                if h.steps[b, j] < step:
                    assert math.isnan(got)
                else:
                    assert got == pytest.approx(hand_entropy(logits[b, P + j - 1].tolist()), rel=1e-4, abs=1e-5)


def test_entropy_text_ramp_and_bins():
    nan = math.nan
    heat = torch.tensor([[0.0, 1.0, 2.0], [nan, 2.0, nan]])
    lines = entropy_text(heat).splitlines()
    assert "0 .. 2.00 nats" in lines[0]
    assert lines[1:] == ["step    0 |.+@|", "step    1 | @ |"]  # 1 / 2 of the ramp's 9 levels -> level 4, '+'
    binned = entropy_text(torch.tensor([[0.0, 2.0, nan, nan], [nan, nan, nan, 2.0]]), max_rows=1, max_cols=2)
    assert binned.splitlines()[1:] == ["step    0 |+@|"]  # bins of 2 x 2: means 1.0 and 2.0


def test_as_list_reads_the_command_line_list():
    assert as_list("out/sft_tiny") == ["out/sft_tiny"]
    assert as_list("[out/ar_tiny, out/sft_tiny,'out/grpo_tiny']") == ["out/ar_tiny", "out/sft_tiny", "out/grpo_tiny"]
    assert as_list(["a", "b"]) == ["a", "b"]
    assert as_list("[]") == [] and as_list(" [ ] ") == []
    with pytest.raises(ConfigError, match="empty item"):
        as_list("[a,,b]")
    assert model_labels(["x/sft", "y/grpo", "z/grpo"]) == ["sft", "y/grpo", "z/grpo"]


def test_speedup_halves_the_steps_and_says_when_it_cannot():
    assert resolve_steps(64) == 64 and resolve_steps(64, 16) == 16 and resolve_steps(64, None, 2) == 32
    with pytest.raises(ValueError, match="divides max_new_tokens=63"):
        resolve_steps(63, None, 2)
    with pytest.raises(ValueError, match="not both"):
        resolve_steps(64, 16, 2)


def ar_rows(out):
    """{(model, temperature): the AR-ness numbers} of sample.py --analyze's first table."""
    lines = out.split("local@1", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return {tuple(line.split()[:2]): line.split("|", 1)[1].split() for line in lines}


def test_analyze_several_checkpoints_in_one_table(saved, tmp_path, capsys):
    d, tok = saved
    sft = tmp_path / "sft"
    shutil.copytree(d, sft)
    (sft / "meta.json").write_text(json.dumps({"tokenizer_identity": tok.identity, "config": {"mode": "sft"}}))
    f = tmp_path / "prompts.txt"
    f.write_text("def add(a, b):\nclass Foo:\nimport os\n")
    args = [f"--analyze_file={f}", "--max_new_tokens=8", "--analyze_batch=2", "--analyze_temperatures=[0.0,1.0]",
            "--device=cpu", "--dtype=float32", "--heatmap_png="]
    main([f"--out_dir=[{d},{sft}]", "--analyze=True", *args])
    both = capsys.readouterr().out
    rows = ar_rows(both)
    assert list(rows) == [(d.name, "0.00"), (d.name, "1.00"), ("sft", "0.00"), ("sft", "1.00")]
    main([f"--out_dir={sft}", "--analyze=True", *args])
    assert ar_rows(capsys.readouterr().out) == {k: v for k, v in rows.items() if k[0] == "sft"}
    heat = both.split(f"step, {d.name}, temperature 0.0:\n", 1)[1].splitlines()[:9]
    assert len(heat) == 1 + 8 and heat[1].startswith("step    0 |")
    assert all(len(line.split("|")[1]) == 8 for line in heat[1:])  # a character per position
    assert heat[1].split("|")[1].strip() and heat[-1].split("|")[1].count(" ") >= 6  # the last step: few masks
    with pytest.raises(ValueError, match="for --analyze=True"):
        main([f"--out_dir=[{d},{sft}]", "--max_new_tokens=4", "--device=cpu"])


def test_sample_speedup_decodes_in_half_the_steps(saved, capsys):
    d, _ = saved
    main([f"--out_dir={d}", "--prompt=def f(x):", "--max_new_tokens=12", "--speedup=2", "--device=cpu",
          "--dtype=float32"])
    assert "decoding 1 x 12 tokens in 6 steps" in capsys.readouterr().out
    with pytest.raises(ValueError, match="divides max_new_tokens=12"):
        main([f"--out_dir={d}", "--max_new_tokens=12", "--speedup=5"])


def test_pngs_are_drawn_or_one_line_says_why_not(tmp_path, capsys, monkeypatch):
    heat = torch.tensor([[0.5, 1.0], [math.nan, 2.0]])
    metrics = [{"tiny": {"pass@1": 0.1, "pass@10": 0.5}}, {"tiny": {"pass@1": 0.2, "pass@10": 0.7}}]
    if have_matplotlib():
        entropy_png([("a", heat), ("b", heat)], 2, tmp_path / "h.png")
        pass_at_k_png([0.2, 0.4], metrics, tmp_path / "p.png")
        assert (tmp_path / "h.png").read_bytes()[:4] == (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    entropy_png([("a", heat)], 1, tmp_path / "none.png")
    pass_at_k_png([0.2, 0.4], metrics, tmp_path / "none.png")
    assert capsys.readouterr().out.count("matplotlib is not installed") == 2 and not (tmp_path / "none.png").exists()
