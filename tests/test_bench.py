"""
Tests for bench.py: every CPU workload runs on a minuscule random model and puts its rows in the table;
the reference (transformers' Qwen2 run bidirectionally, driven by our decoder) has our logits and
decodes our tokens in fp32; the bidirectionality probe catches a causal model; clear one-line errors.

Hermetic (random models, files in a temporary directory). Run: .venv/bin/python -m pytest tests/test_bench.py
"""

import pytest
import torch

import bench

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
    timed = [r for r in rows if "no_such_option" not in r["setting"]]
    assert all(r["seconds"] > 0 for r in timed)
    assert "not available: fast_generate has no no_such_option argument" in rows[2]["notes"]
    assert "speed-up" in rows[1]["notes"]
    assert rows[4]["notes"].startswith("identical: yes;")
    assert "ours/reference time" in rows[3]["notes"]
    assert all(0 < r["mfu"] for r in rows[5:])
    table = bench.format_table(rows)
    assert len(table.splitlines()) == 2 + len(rows) and "transformers' Qwen2, same loop" in table


def test_reference_in_bf16_says_what_it_compared():
    rows = bench.main(SMALL_RUN + ["--workloads=[reference]"])
    assert [r["workload"] for r in rows] == ["reference", "reference"]
    notes = rows[1]["notes"]
    assert notes.startswith("identical: yes;") or "in bfloat16; in float32 yes" in notes


def test_reference_model_is_ours_and_bidirectional():
    m, mask_id, _ = bench.random_model(MINI, "cpu", 32, seed=1)
    m.eval()
    with torch.no_grad():  # non-trivial norms and biases, so every parameter matters
        for name, p in m.named_parameters():
            if name.endswith("norm.weight") or name.endswith(".bias"):
                p.add_(0.1 * torch.randn_like(p))
    x = torch.randint(0, mask_id, (2, 20))
    for via_disk in (True, False):  # save_pretrained -> from_pretrained, and the in-memory copy used for 7B
        bench.REFERENCE_WEIGHTS_VIA_DISK, saved = (2e9 if via_disk else 0), bench.REFERENCE_WEIGHTS_VIA_DISK
        try:
            hf = bench.hf_reference_model(m)
        finally:
            bench.REFERENCE_WEIGHTS_VIA_DISK = saved
        forward = bench.hf_forward(hf)
        bench.check_bidirectional(forward, x)
        with torch.no_grad():
            assert (m(x) - forward(x)).abs().max() <= 1e-4
    for module in hf.modules():  # a causal model must be caught
        if hasattr(module, "is_causal"):
            module.is_causal = True
    with pytest.raises(RuntimeError, match="causally"):
        bench.check_bidirectional(forward, x)


def test_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no GPU is visible"):
        bench.main(["--device=cuda"])
    with pytest.raises(ValueError, match="unknown workload"):
        bench.main(["--workloads=[decode,sampling]", "--device=cpu"])
    with pytest.raises(ValueError, match="model shape must be one of"):
        bench.main(["--workloads=train", "--train_model=3b", "--device=cpu"])
    assert bench.parse_workloads("[decode, train]") == bench.parse_workloads("['decode','train']") == ["decode", "train"]
