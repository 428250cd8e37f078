"""
Peak host memory of checkpoint.load_pretrained on a random bf16 checkpoint (not a test).

    python bench_load.py                      # ~1.1B parameters (a TinyLlama-like shape, 2.1 GB bf16)
    python bench_load.py --layers=28 --hidden=3584 --intermediate=18944 --heads=28 --kv_heads=4   # the 7B shape (15 GB)

Writes the checkpoint (in a child process, so its memory does not count), then loads it in another
child, touches every weight (safetensors maps the file, so untouched pages would not count), and prints
the child's peak RSS next to the checkpoint size.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time


def write(path, a):
    import torch
    from checkpoint import save_pretrained
    from model import ModelConfig, Transformer
    config = ModelConfig(vocab_size=a.vocab, n_layer=a.layers, n_head=a.heads, n_kv_head=a.kv_heads, n_embd=a.hidden,
                         intermediate_size=a.intermediate, max_seq_len=4096)
    with torch.device("meta"):
        model = Transformer(config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    save_pretrained(model.to(torch.bfloat16), path)


def load(path):
    from checkpoint import load_pretrained
    t0 = time.time()
    model = load_pretrained(path)
    n = model.num_params()
    checksum = sum(p.float().sum().item() for p in model.parameters())  # read every page
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"loaded {n / 1e9:.2f}B parameters ({next(model.parameters()).dtype}) and read them all in {time.time() - t0:.1f}s "
          f"(checksum {checksum:.1f}); peak RSS {peak:.2f} GiB")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=22)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--intermediate", type=int, default=5632)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv_heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--role", default="main")
    p.add_argument("--path", default="")
    a = p.parse_args()
    if a.role == "write":
        write(a.path, a)
    elif a.role == "load":
        load(a.path)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ckpt")
            args = [f"--layers={a.layers}", f"--hidden={a.hidden}", f"--intermediate={a.intermediate}", f"--heads={a.heads}",
                    f"--kv_heads={a.kv_heads}", f"--vocab={a.vocab}", f"--path={path}"]
            subprocess.run([sys.executable, __file__, "--role=write", *args], check=True)
            size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 2**30
            base = subprocess.run([sys.executable, "-c", "import resource, torch, safetensors, model; "
                                   "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)"],
                                  capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.abspath(__file__)))
            print(f"checkpoint: {size:.2f} GiB on disk; a python process with torch imported: {float(base.stdout):.2f} GiB RSS")
            subprocess.run([sys.executable, __file__, "--role=load", *args], check=True)
