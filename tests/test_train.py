"""
Data preparation and masked-diffusion training end to end on a tiny corpus: idempotent data prep,
exact resume, gradient accumulation and 2-process torchrun DDP equal to one process, FSDP2, SFT
mode, and one-line errors for bad input.

Run: .venv/bin/python -m pytest tests/test_train.py      (about a minute on 2 CPU cores)
"""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import prepare_data
import train_pretrain
from configurator import run_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n_layer=2", "--n_head=2", "--n_kv_head=1", "--n_embd=32", "--intermediate_size=64", "--block_size=32",
        "--dtype=float32", "--eval_interval=100", "--eval_batches=1", "--log_interval=1", "--warmup_steps=1",
        "--learning_rate=3e-3", "--ckpt_interval=0"]


def make_corpus(folder, n_docs=60):
    os.makedirs(folder, exist_ok=True)
    for i in range(n_docs):
        body = "\n".join(f"    total += x{j} * {i + j}  # step {j}" for j in range(i % 7 + 3))
        with open(os.path.join(folder, f"mod_{i}.py"), "w") as f:
            f.write(f"def func_{i}(x, y=None):\n    \"\"\"Doc {i}: ünïcode ✓.\"\"\"\n"
                    f"    total = 0\n{body}\n    return total\n")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root / "src")
    out = root / "data"
    prepare_data.main([f"--source={root / 'src'}", f"--out_dir={out}", "--vocab_size=320", "--val_fraction=0.2"])
    return str(out)


def train(data_dir, out_dir, *extra):
    return train_pretrain.main([f"--data_dir={data_dir}", f"--out_dir={out_dir}", *TINY, *extra])


def weights(out_dir):
    ckpts = sorted(d for d in os.listdir(out_dir) if re.fullmatch(r"ckpt-\d+", d))
    return load_file(os.path.join(out_dir, ckpts[-1], "model.safetensors"))


def max_diff(a, b):
    """Largest weight difference, k_proj biases excluded: softmax is invariant to them, so their true
    gradient is 0 and Adam turns float noise in it into +-lr steps."""
    return max((a[k] - b[k]).abs().max().item() for k in a if not k.endswith("k_proj.bias"))


def train_losses(text):
    return [float(x) for x in re.findall(r"^step \d+/\d+ \| loss ([\d.]+)", text, re.M)]


def test_prepare_data_outputs_and_idempotence(data_dir, capsys):
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    assert meta["dtype"] == "uint16" and meta["train_tokens"] > 1000 and meta["val_documents"] > 0
    from tokenizer import Tokenizer
    tok = Tokenizer.from_pretrained(os.path.join(data_dir, "tokenizer"))
    assert tok.identity == meta["tokenizer_identity"]
    import numpy as np
    ids = np.fromfile(os.path.join(data_dir, "train.bin"), dtype=np.uint16)
    assert (ids == tok.eos_token_id).sum() == meta["train_documents"]  # one EOS after each document
    first_doc = tok.decode(ids[: list(ids).index(tok.eos_token_id)].tolist())
    assert first_doc.startswith("def func_") and "ünïcode ✓" in first_doc
    src = os.path.join(os.path.dirname(data_dir), "src")
    prepare_data.main([f"--source={src}", f"--out_dir={data_dir}", "--vocab_size=320", "--val_fraction=0.2"])
    assert "already prepared" in capsys.readouterr().out


def test_training_lowers_loss_and_writes_hf_checkpoints(data_dir, tmp_path, capsys):
    history = train(data_dir, tmp_path, "--max_steps=30", "--eval_interval=15", "--keep_last=1", "--ckpt_interval=10")
    assert history[-1][1] < history[0][1] - 0.5
    assert sorted(os.listdir(tmp_path)) == ["ckpt-000030"]  # keep_last=1
    from checkpoint import load_pretrained
    from tokenizer import Tokenizer
    ckpt = tmp_path / "ckpt-000030"
    model = load_pretrained(ckpt)  # each checkpoint is an HF directory with its tokenizer
    assert model.config.mask_token_id == Tokenizer.from_pretrained(ckpt).mask_token_id
    meta = json.load(open(ckpt / "meta.json"))
    assert meta["step"] == 30 and meta["config"]["max_steps"] == 30 and meta["data_cursor"] == 30


def test_resume_is_exact(data_dir, tmp_path, capsys):
    train(data_dir, tmp_path / "straight", "--max_steps=6", "--lr_decay_steps=6")
    straight = train_losses(capsys.readouterr().out)
    train(data_dir, tmp_path / "resumed", "--max_steps=3", "--lr_decay_steps=6")
    first = train_losses(capsys.readouterr().out)
    # keep_last=1 removes the checkpoint it resumed from (and its tokenizer) at step 4: later saves still work
    train(data_dir, tmp_path / "resumed", "--max_steps=6", "--lr_decay_steps=6", "--ckpt_interval=1", "--keep_last=1")
    out = capsys.readouterr().out
    assert "resuming from" in out
    assert len(straight) == 6 and first + train_losses(out) == straight
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gradient_accumulation_equals_one_big_batch(data_dir, tmp_path):
    train(data_dir, tmp_path / "big", "--max_steps=3", "--batch_size=4")
    train(data_dir, tmp_path / "accum", "--max_steps=3", "--batch_size=2", "--grad_accum=2")
    a, b = weights(tmp_path / "big"), weights(tmp_path / "accum")
    assert max_diff(a, b) < 1e-6


def torchrun(args, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           os.path.join(REPO, "train_pretrain.py"), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def test_ddp_two_processes_equal_one_process(data_dir, tmp_path):
    train(data_dir, tmp_path / "single", "--max_steps=3", "--batch_size=4")
    out = torchrun([f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'ddp'}", *TINY, "--max_steps=3", "--batch_size=2",
                    "--device=cpu", "--parallel=ddp"])
    assert "2 rank(s)" in out
    a, b = weights(tmp_path / "single"), weights(tmp_path / "ddp")
    assert max_diff(a, b) < 1e-6


def test_fsdp2_runs_and_its_checkpoint_loads_single_process(data_dir, tmp_path):
    out = torchrun([f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'fsdp'}", *TINY, "--max_steps=2",
                    "--batch_size=2", "--device=cpu", "--parallel=fsdp", "--activation_checkpointing=True"])
    assert "(fsdp)" in out and "step 2/2" in out
    # a single process resumes from the FSDP2 checkpoint (weights and optimizer state) and goes on
    train(data_dir, tmp_path / "fsdp", "--max_steps=3", "--batch_size=4")
    assert sorted(os.listdir(tmp_path / "fsdp"))[-1] == "ckpt-000003"


def test_sft_mode_keeps_prompt_clean(data_dir, tmp_path):
    from tokenizer import Tokenizer
    tok = Tokenizer.from_pretrained(os.path.join(data_dir, "tokenizer"))
    records = [(f"Write f{i}.", f"```python\ndef f{i}(x):\n    return x + {i}\n```\n") for i in range(40)]
    rows, dropped = train_pretrain.sft_tensors(records + [("long " * 200, "x")], tok, 128)
    assert dropped == 1 and rows.x.shape == (40, 128)
    prompt = tok.encode("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                        "<|im_start|>user\nWrite f3.\n<|im_end|>\n<|im_start|>assistant\n")
    answer = tok.encode(records[3][1]) + [tok.im_end_id]
    assert rows.x[3].tolist() == prompt + answer + [tok.dlm_pad_token_id] * (128 - len(prompt) - len(answer))
    assert not rows.canvas[3, :len(prompt)].any() and rows.canvas[3, len(prompt):].all() and rows.real.all()
    assert rows.answer[3].tolist() == ([False] * len(prompt) + [True] * len(answer)
                                       + [False] * (128 - len(prompt) - len(answer)))
    # an SFT run on top of a pre-trained checkpoint
    train(data_dir, tmp_path / "pre", "--max_steps=2")
    sft_file = tmp_path / "sft.jsonl"
    sft_file.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in records))
    history = train_pretrain.main(["--mode=sft", f"--sft_file={sft_file}", f"--init_from={tmp_path / 'pre'}",
                                   f"--out_dir={tmp_path / 'sft'}", *TINY, "--block_size=128", "--max_steps=2"])
    assert len(history) == 2 and os.path.isdir(tmp_path / "sft" / "ckpt-000002")


def test_sft_rows_with_an_answer_canvas_are_left_padded(data_dir):
    """answer_length = n: every row ends with the same n-token canvas (answer, <|im_end|>, <|dlm_pad|>s) and the
    prompt sits right before it, after left padding that no token attends to."""
    from tokenizer import Tokenizer
    tok = Tokenizer.from_pretrained(os.path.join(data_dir, "tokenizer"))
    records = [("Write f.", "```python\nreturn 1\n```\n"),
               ("Write a longer function g, please.", "```python\nreturn 22\n```\n"),
               ("Too long an answer.", "x " * 40)]
    T, n = 160, 40
    rows, dropped = train_pretrain.sft_tensors(records, tok, T, answer_length=n)
    assert dropped == 1 and rows.x.shape == (2, T)
    for b, (q, a) in enumerate(records[:2]):
        prompt, answer = tok.encode(tok.diffucoder_prompt(q)), tok.encode(a) + [tok.im_end_id]
        pad = T - n - len(prompt)
        assert pad > 0 and len(answer) < n
        assert rows.x[b].tolist() == ([tok.pad_token_id] * pad + prompt + answer
                                      + [tok.dlm_pad_token_id] * (n - len(answer)))
        assert rows.real[b].tolist() == [False] * pad + [True] * (T - pad)
        assert rows.canvas[b].tolist() == [False] * (T - n) + [True] * n
        assert rows.answer[b].tolist() == [False] * (T - n) + [True] * len(answer) + [False] * (n - len(answer))


def test_ar_training_then_adaptation_starts_from_its_weights(data_dir, tmp_path, capsys):
    """objective='ar' trains (the loss falls) and writes an ordinary checkpoint; an AR->diffusion adaptation run
    initialised from it starts from exactly its weights (a learning rate of 0 leaves them unchanged)."""
    history = train(data_dir, tmp_path / "ar", "--objective=ar", "--max_steps=30", "--eval_interval=15")
    assert history[-1][1] < history[0][1] - 0.5
    assert "objective ar" in capsys.readouterr().out
    train(data_dir, tmp_path / "adapt", f"--init_from={tmp_path / 'ar'}", "--anneal_steps=100", "--max_steps=1",
          "--learning_rate=0")
    out = capsys.readouterr().out
    assert "attention annealed causal -> full over 100 steps" in out
    a, b = weights(tmp_path / "ar"), weights(tmp_path / "adapt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and with a learning rate it moves on from there
    train(data_dir, tmp_path / "adapt2", f"--init_from={tmp_path / 'ar'}", "--anneal_steps=100", "--max_steps=2")
    assert max_diff(a, weights(tmp_path / "adapt2")) > 0


def test_adaptation_from_a_qwen_checkpoint_adds_diffucoder_tokens(tmp_path):
    """A tiny Qwen2 checkpoint and a Qwen-style tokenizer without diffusion tokens, both saved by transformers:
    data preparation and adaptation add <|beginoftext|>, <|mask|>, <|dlm_pad|> after the existing ids (as DiffuCoder's
    151665-151667), the embedding grows, the original ids and rows are unchanged, and transformers opens the result
    (tokenizer and model) with the same ids and the same logits as ours."""
    import transformers
    from test_model import hf_logits
    from test_tokenizer import CASES, hf_tokenizer
    from checkpoint import load_pretrained
    from tokenizer import DIFFUSION_TOKENS, Tokenizer
    qwen = tmp_path / "qwen"
    hf_tok = hf_tokenizer(256 + 300, specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    n = hf_tok.get_vocab_size()  # 559 ids, all in use: the model has no spare rows
    transformers.PreTrainedTokenizerFast(tokenizer_object=hf_tok, eos_token="<|endoftext|>").save_pretrained(qwen)
    tc = json.loads((qwen / "tokenizer_config.json").read_text())  # Qwen2.5's also lists its added tokens
    added = json.loads((qwen / "tokenizer.json").read_text())["added_tokens"]
    tc["added_tokens_decoder"] = {str(t["id"]): t for t in added}
    (qwen / "tokenizer_config.json").write_text(json.dumps(tc))
    torch.manual_seed(0)
    hf_cfg = transformers.Qwen2Config(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                                      rope_theta=10000.0, tie_word_embeddings=False)
    transformers.Qwen2ForCausalLM(hf_cfg).save_pretrained(qwen)
    make_corpus(tmp_path / "src", n_docs=30)
    prepare_data.main([f"--source={tmp_path / 'src'}", f"--out_dir={tmp_path / 'data'}", f"--tokenizer={qwen}",
                       "--val_fraction=0.2"])
    adapt = [f"--data_dir={tmp_path / 'data'}", f"--init_from={qwen}", *TINY, "--anneal_steps=10"]
    train_pretrain.main([*adapt, f"--out_dir={tmp_path / 'frozen'}", "--max_steps=1", "--learning_rate=0"])
    train_pretrain.main([*adapt, f"--out_dir={tmp_path / 'adapt'}", "--max_steps=3"])

    before, ckpt = Tokenizer.from_pretrained(qwen), tmp_path / "adapt" / "ckpt-000003"
    tok = Tokenizer.from_pretrained(ckpt)
    assert {s: tok.special_tokens[s] for s in DIFFUSION_TOKENS} == {s: n + j for j, s in enumerate(DIFFUSION_TOKENS)}
    assert {s: tok.special_tokens[s] for s in before.special_tokens} == before.special_tokens
    assert all(tok.encode(s, allowed_special=set(before.special_tokens)) == before.encode(s) for s in CASES)
    ref_tok = transformers.AutoTokenizer.from_pretrained(ckpt)
    assert ref_tok.convert_tokens_to_ids(list(DIFFUSION_TOKENS)) == [n, n + 1, n + 2]
    assert ref_tok("x = 1<|mask|><|dlm_pad|>")["input_ids"] == tok.encode("x = 1<|mask|><|dlm_pad|>")

    # the embedding grew to 576 rows (a multiple of 64); with lr 0 the original rows are exactly Qwen's
    ours, frozen = load_pretrained(ckpt), load_pretrained(tmp_path / "frozen" / "ckpt-000001")
    assert ours.config.vocab_size == frozen.config.vocab_size == 576 and ours.config.mask_token_id == n + 1
    start = load_pretrained(qwen)
    assert torch.equal(frozen.model.embed_tokens.weight[:n], start.model.embed_tokens.weight)
    assert torch.equal(frozen.lm_head.weight[:n], start.lm_head.weight)
    assert not torch.equal(ours.model.embed_tokens.weight[:n], start.model.embed_tokens.weight)  # it trained
    ref = transformers.Qwen2ForCausalLM.from_pretrained(ckpt).eval()
    idx = torch.tensor([tok.encode("def f(x):<|mask|><|mask|>\n    return<|dlm_pad|>")])
    with torch.no_grad():
        assert (ours(idx) - hf_logits(ref, idx)).abs().max() <= 1e-4


def cli_error(capsys, argv):
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: train_pretrain.main(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_bad_input_gives_one_line_errors(data_dir, tmp_path, capsys):
    assert "expects a int" in cli_error(capsys, ["--max_steps=ten"])
    assert "did you mean 'learning_rate'" in cli_error(capsys, ["--learnin_rate=1"])
    assert "objective must be 'diffusion' or 'ar'" in cli_error(capsys, ["--objective=causal"])
    assert "set anneal_steps=0 for objective='ar'" in cli_error(capsys, ["--objective=ar", "--anneal_steps=10"])
    assert "run `python prepare_data.py" in cli_error(capsys, [f"--data_dir={tmp_path / 'nothing'}",
                                                               f"--out_dir={tmp_path / 'o'}"])
    # a checkpoint whose shapes do not match its config, and a truncated weight file
    train(data_dir, tmp_path / "good", "--max_steps=1")
    ckpt = tmp_path / "good" / "ckpt-000001"
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["intermediate_size"] = 96
    (ckpt / "config.json").write_text(json.dumps(cfg))
    args = [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'o2'}", f"--init_from={ckpt}", *TINY]
    assert "shape mismatch for 'model.layers.0.mlp" in cli_error(capsys, args)
    cfg["intermediate_size"] = 64
    (ckpt / "config.json").write_text(json.dumps(cfg))
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[:-100])
    assert "truncated or corrupted" in cli_error(capsys, args)
    # data tokenized with another tokenizer than the checkpoint's
    other = tmp_path / "other"
    make_corpus(other / "src", n_docs=30)
    prepare_data.main([f"--source={other / 'src'}", f"--out_dir={other / 'data'}", "--vocab_size=300",
                       "--val_fraction=0.2"])
    (ckpt / "model.safetensors").write_bytes(data)
    args = [f"--data_dir={other / 'data'}", f"--out_dir={tmp_path / 'o3'}", f"--init_from={ckpt}", *TINY]
    assert "was tokenized with tokenizer" in cli_error(capsys, args)


def test_cli_error_exit_code_in_a_subprocess(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(REPO, "train_pretrain.py"), f"--data_dir={tmp_path}"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"error: no prepared data in '{tmp_path}' (missing meta.json); "
                                             f"run `python prepare_data.py --out_dir={tmp_path}` first."]


def test_dtype_auto_is_bf16_only_where_native(monkeypatch, capsys):
    import common
    for native, want in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(common, "native_bf16", lambda device_type, n=native: n)
        assert common.resolve_dtype("auto", "cpu") == want
    assert common.resolve_dtype("float32", "cpu") == "float32"
    assert common.resolve_dtype("bfloat16", "cpu") == "bfloat16"  # an explicit choice is kept, with a warning
    assert "without native bf16" in capsys.readouterr().out
    with pytest.raises(ValueError, match="dtype must be"):
        common.resolve_dtype("bf16", "cpu")
