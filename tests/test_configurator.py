"""
configurator.py: defaults, config files, --key=value overrides, the errors for bad input, and JSON files
whose errors name the file and the line (through the scripts' one-line `error: ...`).

Run: .venv/bin/python -m pytest tests/test_configurator.py
"""

import os
import subprocess
import sys

import pytest

from configurator import ConfigError, config_keys, configure, load_json, load_jsonl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

learning_rate = 1e-3
max_steps = 100
out_dir = "out"
init_from = None
compile = False
betas = (0.9, 0.95)
KEYS = config_keys(globals())


def test_keys_are_the_plain_globals():
    assert {"learning_rate", "max_steps", "out_dir", "init_from", "compile", "betas"} <= set(KEYS)
    assert "pytest" not in KEYS and "configure" not in KEYS


def test_file_then_overrides(tmp_path):
    f = tmp_path / "c.py"
    f.write_text("import math\nmax_steps = 10 * 3  # arithmetic is fine\nout_dir = 'x'\n")
    cfg = configure(globals(), KEYS,
                    [str(f), "--learning_rate=3", "--init_from='a/b'", "--compile=True", "--out_dir=123"])
    assert cfg.max_steps == 30 and cfg.out_dir == "123" and cfg.compile is True
    assert cfg.learning_rate == 3.0 and isinstance(cfg.learning_rate, float)  # int promotes to float
    assert cfg.init_from == "a/b"  # None defaults take any value
    assert configure(globals(), KEYS, ["--init_from=some/dir"]).init_from == "some/dir"
    assert learning_rate == 1e-3  # module globals untouched


def test_unknown_keys_suggest_the_nearest(tmp_path):
    with pytest.raises(ConfigError,
                       match="unknown config key 'learning_rat' on the command line; did you mean 'learning_rate'"):
        configure(globals(), KEYS, ["--learning_rat=1"])
    f = tmp_path / "c.py"
    f.write_text("max_step = 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'max_step' in .*did you mean 'max_steps'"):
        configure(globals(), KEYS, [str(f)])


def test_wrong_types_are_errors():
    with pytest.raises(ConfigError, match="'max_steps' expects a int"):
        configure(globals(), KEYS, ["--max_steps=1.5"])
    with pytest.raises(ConfigError, match="'compile' expects a bool"):
        configure(globals(), KEYS, ["--compile=1"])
    with pytest.raises(ConfigError, match="'learning_rate' expects a float"):
        configure(globals(), KEYS, ["--learning_rate=fast"])
    with pytest.raises(ConfigError, match="must look like --key=value"):
        configure(globals(), KEYS, ["--max_steps"])
    with pytest.raises(ConfigError, match="not found"):
        configure(globals(), KEYS, ["no_such_config.py"])


def test_config_found_from_any_working_directory(tmp_path):
    """A script run from elsewhere finds config/ in the repository; a bad key exits 1 with one line."""
    cmd = [sys.executable, os.path.join(REPO, "train_pretrain.py"), "config/pretrain_tiny.py", "--max_step=5"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "error: unknown config key 'max_step' on the command line; did you mean 'max_steps'?"]


@pytest.mark.parametrize("world_size, steps", [("8", 991_822), ("80", 99_183), (None, 7_934_571)])
def test_pretrain_7b_spans_65b_tokens_on_any_node_count(monkeypatch, world_size, steps):
    """config/pretrain_7b.py derives max_steps from the 65B-token budget and torchrun's WORLD_SIZE."""
    import train_pretrain
    if world_size is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    cfg = configure(vars(train_pretrain), train_pretrain.CONFIG_KEYS, ["config/pretrain_7b.py"])
    tokens_per_step = int(world_size or 1) * cfg.batch_size * cfg.grad_accum * cfg.block_size
    assert cfg.max_steps == steps and (steps - 1) * tokens_per_step < 65e9 <= steps * tokens_per_step
    assert cfg.lr_decay_steps is None  # the cosine schedule spans max_steps


def test_json_errors_name_the_file_and_the_line(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert load_jsonl(good) == [(1, {"a": 1}), (3, {"a": 2})]  # line numbers as an editor shows them
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(ConfigError, match=rf"^{bad} line 3: malformed JSON"):
        load_jsonl(bad)
    config = tmp_path / "config.json"
    config.write_text('{\n  "vocab_size": 64,\n  "n_layer": 2\n  "n_head": 4\n}\n')
    with pytest.raises(ConfigError, match=rf"^{config} line 4: malformed JSON"):
        load_json(config)


@pytest.mark.parametrize("script,args,file", [
    ("sample.py", ["--out_dir={d}"], "config.json"),  # a model directory whose config.json is broken
    ("train_grpo.py", ["--init_from={d}", "--train_file={d}/tasks.jsonl", "--eval_n=0"], "tasks.jsonl"),
])
def test_scripts_print_one_line_naming_the_bad_json_file(tmp_path, script, args, file):
    """Before, a malformed file printed only the decoder's message ('Expecting ',' delimiter: line 1 ...')."""
    from checkpoint import save_pretrained
    from model import ModelConfig, Transformer
    from tokenizer import Tokenizer
    tok = Tokenizer.train(iter([f"def f{i}(x):\n    return x + {i}\n" for i in range(200)]), vocab_size=300)
    save_pretrained(Transformer(ModelConfig(vocab_size=320, n_layer=1, n_head=2, n_kv_head=1, n_embd=16,
                                            intermediate_size=32, max_seq_len=64, mask_token_id=tok.mask_token_id)),
                    tmp_path)
    tok.save(tmp_path)
    (tmp_path / "tasks.jsonl").write_text('{"question": "q", "tests": ["assert True"]}\n{"question": "q" "tests"}\n')
    if file == "config.json":
        (tmp_path / file).write_text((tmp_path / file).read_text().replace(",", "", 1))
    r = subprocess.run([sys.executable, script, *[a.format(d=tmp_path) for a in args], "--device=cpu"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"error: {tmp_path / file} line ") and "malformed JSON" in r.stderr
