"""
Decoding speed of `sample.diffusion_generate`: generated tokens/s for a model size, batch and steps.

    python bench_sample.py                                      # the tiny model's shape, random weights, CPU
    python bench_sample.py --steps=64                           # DiffuCoder's "2x speed" setting
    python bench_sample.py --model=7b --device=cuda --batch_size=8 --max_new_tokens=256
    python bench_sample.py --out_dir=out/pretrain_tiny          # a trained checkpoint instead

Besides the total it prints the time of the same number of bare forwards; the difference is the
sampler's own cost per step (shift, filtering, softmax, confidence, commit). Random weights cost the
same per forward as trained ones, but their flat next-token distributions are top-p's worst case (a
full sort of the vocabulary instead of a partial one), so pass --out_dir to see a trained model's.
"""

import sys
import time

import torch

from configurator import config_keys, configure, print_config, run_cli

# -----------------------------------------------------------------------------
# model
model = "tiny"  # 'tiny' (train_pretrain.py's default shape, 4096 vocab), '7b' (DiffuCoder-7B's shape)
out_dir = ""  # benchmark this checkpoint / HF directory instead of a random `model`
# decoding
batch_size = 4
prompt_len = 64
max_new_tokens = 128
steps = None  # None: max_new_tokens (one token per step, DiffuCoder's default)
alg = "entropy"
temperature = 0.2
top_p = 0.95
# system
device = "auto"  # 'auto', 'cpu', 'cuda'
dtype = "bfloat16"  # autocast dtype; on cuda the weights are cast to it too
repeats = 3  # timed runs after one warm-up run; the fastest is reported
seed = 0
CONFIG_KEYS = config_keys(globals())
# -----------------------------------------------------------------------------

SHAPES = {
    "tiny": dict(vocab_size=4096, n_layer=6, n_head=4, n_kv_head=2, n_embd=256, intermediate_size=768, rope_theta=10000.0),
    "7b": dict(vocab_size=152064, n_layer=28, n_head=28, n_kv_head=4, n_embd=3584, intermediate_size=18944),
}


def build(cfg, dev):
    from model import ModelConfig, Transformer
    if cfg.out_dir:
        from sample import load_model
        m, tok, _, _ = load_model(cfg.out_dir, dev, cfg.dtype)
        return m, tok.mask_token_id
    if cfg.model not in SHAPES:
        raise ValueError(f"model must be one of {', '.join(SHAPES)} (or pass --out_dir), got '{cfg.model}'")
    shape = SHAPES[cfg.model]
    torch.manual_seed(cfg.seed)
    with torch.device(dev):
        m = Transformer(ModelConfig(**shape, max_seq_len=cfg.prompt_len + cfg.max_new_tokens)).eval()
    return m, shape["vocab_size"] - 2


def main(argv=None):
    from common import autocast, sync
    from sample import diffusion_generate
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    print_config(cfg)
    dev = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    m, mask_id = build(cfg, dev)
    if dev.startswith("cuda") and cfg.dtype != "float32":
        m = m.to(getattr(torch, cfg.dtype))
    steps = cfg.steps or cfg.max_new_tokens
    B, P, N = cfg.batch_size, cfg.prompt_len, cfg.max_new_tokens
    g = torch.Generator(device=dev).manual_seed(cfg.seed)
    ids = torch.randint(0, mask_id - 2, (B, P), generator=g, device=dev)
    ctx = autocast(torch.device(dev).type, cfg.dtype)
    print(f"{m.num_params() / 1e6:,.1f}M parameters on {dev} ({torch.get_num_threads()} threads), {cfg.dtype}; "
          f"batch {B} x (prompt {P} + {N} new) tokens, {steps} steps = {B * N / steps:.1f} tokens committed per step")

    def generate():
        sync(dev)
        t0 = time.perf_counter()
        with ctx:
            diffusion_generate(m, ids, max_new_tokens=N, steps=steps, temperature=cfg.temperature, top_p=cfg.top_p,
                               alg=cfg.alg, mask_token_id=mask_id, generator=g)
        sync(dev)
        return time.perf_counter() - t0

    def forwards():
        x = torch.cat([ids, torch.full((B, N), mask_id, device=dev)], dim=1)
        sync(dev)
        t0 = time.perf_counter()
        with ctx, torch.no_grad():
            for _ in range(steps):
                m(x)
        sync(dev)
        return time.perf_counter() - t0

    generate()  # warm-up
    times, bare = [], []
    for _ in range(cfg.repeats):  # interleaved, so a busy machine slows both alike
        times.append(generate())
        bare.append(forwards())
    t, f = min(times), min(bare)
    print(f"decoding runs: {', '.join(f'{x:.2f}' for x in times)} s; bare forwards: {', '.join(f'{x:.2f}' for x in bare)} s (best reported)")
    print(f"decoding: {B * N / t:,.1f} tok/s | {1000 * t / steps:.1f} ms/step | bare forwards {1000 * f / steps:.1f} ms/step | "
          f"sampler overhead {100 * (t - f) / t:.0f}%")
    if dev.startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    run_cli(main)
