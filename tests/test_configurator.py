"""
configurator.py: defaults, config files, --key=value overrides, and the errors for bad input.

Run: .venv/bin/python -m pytest tests/test_configurator.py
"""

import os
import subprocess
import sys

import pytest

from configurator import ConfigError, config_keys, configure

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
    cfg = configure(globals(), KEYS, [str(f), "--learning_rate=3", "--init_from='a/b'", "--compile=True", "--out_dir=123"])
    assert cfg.max_steps == 30 and cfg.out_dir == "123" and cfg.compile is True
    assert cfg.learning_rate == 3.0 and isinstance(cfg.learning_rate, float)  # int promotes to float
    assert cfg.init_from == "a/b"  # None defaults take any value
    assert configure(globals(), KEYS, ["--init_from=some/dir"]).init_from == "some/dir"
    assert learning_rate == 1e-3  # module globals untouched


def test_unknown_keys_suggest_the_nearest(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'learning_rat' on the command line; did you mean 'learning_rate'"):
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
    assert r.stderr.strip().splitlines() == ["error: unknown config key 'max_step' on the command line; did you mean 'max_steps'?"]


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
