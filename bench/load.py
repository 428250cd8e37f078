"""
Peak host memory of checkpoint.load_pretrained on a random bf16 checkpoint (not a test).

    python -m bench.load                      # ~1.1B parameters (a TinyLlama-like shape, 2.1 GB bf16)
    python -m bench.load --layers=28 --hidden=3584 --intermediate=18944 --heads=28 --kv_heads=4   # the 7B shape (15 GB)

Writes the checkpoint (in a child process, so its memory does not count), then loads it in another
child, touches every weight (safetensors maps the file, so untouched pages would not count), and prints
the child's peak RSS next to the checkpoint size.
"""

import os
import resource
import subprocess
import sys
import tempfile
import time

import torch

from checkpoint import load_pretrained, save_pretrained
from configurator import REPO_DIR, config_keys, configure, run_cli
from model import ModelConfig, Transformer

# model shape
layers = 22
hidden = 2048
intermediate = 5632
heads = 32
kv_heads = 4
vocab = 32000
# internal: which part this process runs ('main' starts the two children)
role = "main"  # 'main' | 'write' | 'load'
path = ""  # the checkpoint directory of the children
CONFIG_KEYS = config_keys(globals())


def write(cfg):
    config = ModelConfig(vocab_size=cfg.vocab, n_layer=cfg.layers, n_head=cfg.heads, n_kv_head=cfg.kv_heads,
                         n_embd=cfg.hidden, intermediate_size=cfg.intermediate, max_seq_len=4096)
    with torch.device("meta"):
        model = Transformer(config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    save_pretrained(model.to(torch.bfloat16), cfg.path)


def load(cfg):
    t0 = time.time()
    model = load_pretrained(cfg.path)
    n = model.num_params()
    checksum = sum(p.float().sum().item() for p in model.parameters())  # read every page
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"loaded {n / 1e9:.2f}B parameters ({next(model.parameters()).dtype}) and read them all in "
          f"{time.time() - t0:.1f}s (checksum {checksum:.1f}); peak RSS {peak:.2f} GiB")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cfg = configure(globals(), CONFIG_KEYS, argv)
    if cfg.role == "write":
        return write(cfg)
    if cfg.role == "load":
        return load(cfg)
    child = [sys.executable, "-m", "bench.load"]
    with tempfile.TemporaryDirectory() as tmp:
        shape = [a for a in argv if not a.startswith(("--role=", "--path="))]
        where = [f"--path={os.path.join(tmp, 'ckpt')}"]
        subprocess.run(child + shape + where + ["--role=write"], check=True, cwd=REPO_DIR)
        ckpt = os.path.join(tmp, "ckpt")
        size = sum(os.path.getsize(os.path.join(ckpt, f)) for f in os.listdir(ckpt)) / 2**30
        base = subprocess.run([sys.executable, "-c", "import resource, torch, safetensors, model; "
                               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)"],
                              capture_output=True, text=True, check=True, cwd=REPO_DIR)
        print(f"checkpoint: {size:.2f} GiB on disk; a python process with torch imported: "
              f"{float(base.stdout):.2f} GiB RSS")
        subprocess.run(child + shape + where + ["--role=load"], check=True, cwd=REPO_DIR)


if __name__ == "__main__":
    run_cli(main)
