"""
Tests for bench/: every CPU workload of bench.speed runs on a minuscule random model and puts its rows in
the table, with the forward count and the FLOP count worked out by hand; the reference (transformers'
Qwen2 run bidirectionally, driven by our decoder) has our logits and decodes our tokens in fp32, and a
bf16-only disagreement is reported as such; the bidirectionality probe catches a causal model; clear
one-line errors.

Hermetic (random models, files in a temporary directory). Run: .venv/bin/python -m pytest tests/test_bench.py
"""

import os

import pytest
import torch

from bench import memory, profiling, reference
from bench import speed as bench

MINI = dict(vocab_size=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, intermediate_size=64, rope_theta=10000.0)
SMALL_RUN = [f"--model={MINI}", f"--train_model={MINI}", f"--grpo_model={MINI}", "--device=cpu", "--repeats=1",
             "--batch_size=2", "--prompt_len=8", "--max_new_tokens=16",
             "--approx=[{'block_length': 8}, {'no_such_option': 1}]",
             "--train_rows=[('pretrain', 2, 24, 0), ('sft', 2, 24, 8)]",
             "--grpo_sequences=4", "--grpo_micro_batch=2", "--grpo_prompt_len=8", "--grpo_completion_len=8"]


def test_every_workload_fp32():
    rows = bench.main(SMALL_RUN + ["--dtype=float32"])
    got = [(r["workload"], r["setting"]) for r in rows]
    assert got == [("decode", "exact"), ("decode", "block_length=8"), ("decode", "no_such_option=1"),
                   ("reference", "ours, greedy"), ("reference", "transformers' Qwen2, same loop"),
                   ("train", "pretrain"), ("train", "sft"), ("grpo", "coupled, micro-batch 2")]
    assert "not available: fast_generate has no no_such_option argument" in rows[2]["notes"]
    assert "16 forwards, speed-up" in rows[1]["notes"]  # 16 steps: one forward each (the counter is per call)
    assert rows[0]["notes"].endswith(", 16 forwards")
    assert rows[4]["notes"].startswith("identical: yes;")
    assert "ours/reference time" in rows[3]["notes"]
    assert all(0 < r["mfu"] < 1 for r in rows[5:])
    table = bench.format_table(rows)
    assert len(table.splitlines()) == 2 + len(rows) and "transformers' Qwen2, same loop" in table


def test_flops_counted_by_hand():
    """A planted bug in the parameter count (norms or biases counted as matmuls, the LM head counted per
    token instead of per masked row) changes these numbers."""
    m, _, _ = bench.random_model(MINI, "cpu", 32, seed=0)
    C, kv, inter = 32, 2 * 8, 64  # n_embd, n_kv_head * head_dim, intermediate_size
    body = 2 * (C * C + 2 * C * kv + C * C + 3 * C * inter)  # 2 layers of q, k, v, o and the SwiGLU MLP
    assert bench.matmul_params(m) == (body, 64 * C)
    attention = 12 * 2 * 4 * 8 * 24 * 3 * 24  # 12 x layers x heads x head_dim x T, per token, 3 x 24 tokens
    assert bench.train_flops(m, 3, 24, 10) == 6 * body * 3 * 24 + 6 * 64 * C * 10 + attention


def test_reference_that_differs_in_bf16_only_is_rechecked_in_fp32(monkeypatch):
    """The reference's logits are perturbed under autocast only: the row must say the tokens differ in
    bf16 and agree in fp32 (a planted bug in the fp32 recheck, e.g. running it under autocast, fails)."""
    forward = reference.ReferenceModel.forward

    def bf16_noise(self, idx, attention_mask=None, output_rows=None):
        logits = forward(self, idx, attention_mask, output_rows)
        if torch.is_autocast_enabled("cpu"):
            logits = logits + 50 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(0))
        return logits
    monkeypatch.setattr(reference.ReferenceModel, "forward", bf16_noise)
    rows = bench.main(SMALL_RUN + ["--workloads=[reference]", "--dtype=bfloat16"])
    assert [r["workload"] for r in rows] == ["reference", "reference"]
    assert rows[1]["notes"].startswith("identical: no (2/2 rows differ) in bfloat16; in float32 yes;")


def test_reference_model_is_ours_and_bidirectional():
    m, mask_id, _ = bench.random_model(MINI, "cpu", 32, seed=1)
    m.eval()
    with torch.no_grad():  # non-trivial norms and biases, so every parameter matters
        for name, p in m.named_parameters():
            if name.endswith("norm.weight") or name.endswith(".bias"):
                p.add_(0.1 * torch.randn_like(p))
    x = torch.randint(0, mask_id, (2, 20))
    for via_disk in (True, False):  # save_pretrained -> from_pretrained, and the in-memory copy used for 7B
        reference.REFERENCE_WEIGHTS_VIA_DISK, saved = (2e9 if via_disk else 0), reference.REFERENCE_WEIGHTS_VIA_DISK
        try:
            hf = reference.hf_reference_model(m)
        finally:
            reference.REFERENCE_WEIGHTS_VIA_DISK = saved
        forward = reference.hf_forward(hf)
        reference.check_bidirectional(forward, x)
        with torch.no_grad():
            assert (m(x) - forward(x)).abs().max() <= 1e-4
    for module in hf.modules():  # a causal model must be caught
        if hasattr(module, "is_causal"):
            module.is_causal = True
    with pytest.raises(RuntimeError, match="causally"):
        reference.check_bidirectional(forward, x)


def test_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no GPU is visible"):
        bench.main(["--device=cuda"])
    with pytest.raises(ValueError, match="unknown workload"):
        bench.main(["--workloads=[decode,sampling]", "--device=cpu"])
    with pytest.raises(ValueError, match="model shape must be one of"):
        bench.main(["--workloads=train", "--train_model=3b", "--device=cpu"])
    assert (bench.parse_workloads("[decode, train]") == bench.parse_workloads("['decode','train']")
            == ["decode", "train"])


def test_memory_bench_reports_rss_per_shape_in_fresh_processes(capsys):
    rows = memory.main([f"--train_model={MINI}", "--train_rows=[('pretrain', 2, 24, 0), ('sft', 2, 24, 8)]",
                        "--steps=4", "--first=2", "--every=0", "--dtype=float32"])
    assert [r["shape"] for r in rows] == ["pretrain", "sft"]
    assert all(r["first"] > 50 and r["last"] > 50 for r in rows)  # MB: a process that imported torch
    assert all(r["growth"] == pytest.approx(r["last"] / r["first"] - 1) for r in rows)
    out = capsys.readouterr().out
    assert "| shape | RSS at step 2 | RSS at step 4 |" in out
    with pytest.raises(ValueError, match="unknown shape"):
        memory.main(["--shapes=[decode]"])


def test_profile_shares_add_up_and_name_the_ops():
    rows = bench.main(SMALL_RUN + ["--workloads=[train,grpo]", "--dtype=float32", "--profile=True"])
    for r in rows:
        shares = r["notes"].split("time: ")[1].split(";")[0]  # 'matmul 24%, attention 21%, other ops 50%, ...'
        parts = dict(p.rsplit(" ", 1) for p in shares.split(", "))
        assert list(parts) == ["matmul", "attention", "other ops", "outside ops"]
        assert 95 <= sum(int(v.rstrip("%")) for v in parts.values()) <= 105  # each rounded to a percent
        assert int(parts["matmul"].rstrip("%")) > 0 and "aten::" in r["notes"].split("top ops: ")[1]
    assert profiling.group_of("aten::addmm") == "matmul" and profiling.group_of("aten::mul") == "other ops"
    assert profiling.group_of("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == "attention"
    assert profiling.group_of("compiled graphs") == "other ops"


def test_toy_rl_probe_keeps_rl_templates_out_of_sft_and_caches_its_stages(tmp_path, capsys, monkeypatch):
    from bench import toy_rl
    from tasks import read_jsonl
    rl = ["arith:mul+sub", "arith:sq+sub"]
    run = [f"--out_dir={tmp_path}/toy", f"--rl_templates={rl}", "--train_tasks=900", "--test_tasks=600",
           "--sft_tasks=24", "--vocab_size=300", "--n_embd=32", "--block_size=256", "--ar_steps=2", "--sft_steps=2",
           "--anneal_steps=1",
           "--grpo_steps=1", "--prompts_per_step=2", "--num_generations=2", "--estimators=[coupled]", "--seeds=[1]",
           "--eval_n=2", "--dtype=float32"]
    with pytest.raises(ValueError, match="are not train templates of family 'arith'"):
        toy_rl.main(run[:1] + ["--rl_templates=[arith:nope]"] + run[2:])
    toy_rl.main(run)
    d = f"{tmp_path}/toy"
    sft, rl_tasks = read_jsonl(f"{d}/sft.jsonl"), read_jsonl(f"{d}/rl.jsonl")
    seen = {t.template for t in sft}
    assert len(sft) == 24 and rl_tasks and not seen & set(rl) and {t.template for t in rl_tasks} <= set(rl)
    assert {t.template for t in read_jsonl(f"{d}/test_rl.jsonl")} <= set(rl)
    assert not {t.template for t in read_jsonl(f"{d}/test_new.jsonl")} & (seen | set(rl))
    assert os.path.isdir(f"{d}/grpo_coupled_s1/ckpt-000001")
    table = capsys.readouterr().out.split("greedy pass@1 on held-out arith tasks")[1]
    assert "SFT |" in table and "coupled seed 1 |" in table and "coupled gain |" in table
    # a second call reads every stage from out_dir: nothing is trained again
    monkeypatch.setattr(toy_rl.train_grpo, "main", lambda argv: pytest.fail("RL ran again"))
    monkeypatch.setattr(toy_rl.train_pretrain, "main", lambda argv: pytest.fail("SFT ran again"))
    toy_rl.main(run)
    assert capsys.readouterr().out.split("greedy pass@1 on held-out arith tasks")[1] == table
    # other options would silently reuse a stage made with the old ones: an error names them
    with pytest.raises(ValueError, match=r"grpo_coupled_s1/toy_rl_options.json records other options .*run_tag"):
        toy_rl.main(run + ["--learning_rate=1e-3"])
    with pytest.raises(ValueError, match=r"toy/toy_rl_options.json records other options \(sft_steps\)"):
        toy_rl.main(run + ["--sft_steps=3"])


def test_toy_rl_probe_runs_on_one_family_a_list_or_all():
    from types import SimpleNamespace

    from bench import toy_rl
    from tasks import FAMILIES
    assert toy_rl.families(SimpleNamespace(family="arith")) == ["arith"]
    assert toy_rl.families(SimpleNamespace(family="[arith, list]")) == ["arith", "list"]
    assert toy_rl.families(SimpleNamespace(family="all")) == list(FAMILIES)
    with pytest.raises(ValueError, match=r"family '\[arith, nope\]' names no task family .*'nope'"):
        toy_rl.families(SimpleNamespace(family="[arith, nope]"))
