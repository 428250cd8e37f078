"""
What the scripts share: distributed setup (single process, torchrun DDP, FSDP2), the learning-rate
schedule, precision contexts, MFU, prompts and completions (left padding, stop tokens), and building the
training model. Checkpoints are in checkpoint.py.
"""

import contextlib
import math
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from checkpoint import config_from_hf, load_hf_config, load_pretrained
from model import Transformer

# -----------------------------------------------------------------------------
# device, precision, distributed

def resolve_device(device="auto"):
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else as given, but 'cuda...' needs a GPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device='{device}' but no GPU is visible; use --device=cpu.")
    return device


def native_bf16(device_type):
    """Whether this device computes bf16 matmuls natively: CUDA GPUs that support it, x86 CPUs with
    AVX512-BF16 or AMX. Elsewhere (e.g. an AVX2-only CPU) bf16 is emulated: on a 2-core AMD EPYC
    (Zen 1, AVX2) a 1024^2 bf16 matmul ran at 0.0007 TFLOP/s against 0.02-0.04 in fp32, ~40x slower."""
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_dtype(dtype, device_type):
    """The autocast dtype: 'auto' -> 'bfloat16' where it is native (native_bf16), else 'float32'.
    An explicit 'bfloat16' where it is emulated is kept, with a warning."""
    if dtype == "auto":
        return "bfloat16" if native_bf16(device_type) else "float32"
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype must be 'auto', 'float32', 'bfloat16' or 'float16', got '{dtype}'.")
    if dtype == "bfloat16" and not native_bf16(device_type):
        print(f"warning: dtype=bfloat16 on a {device_type} without native bf16 matmuls (emulated, tens of times slower "
              f"than float32 on an AVX2-only CPU); use --dtype=auto or --dtype=float32.", flush=True)
    return dtype


class Dist:
    """Who am I: rank, world size, device. Set up from torchrun's environment variables."""

    def __init__(self, device="auto"):
        self.ddp = int(os.environ.get("RANK", -1)) != -1
        self.rank = int(os.environ.get("RANK", 0))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        device = resolve_device(device)
        if device == "cuda":
            device = f"cuda:{self.local_rank}"
            torch.cuda.set_device(device)
        self.device = device
        self.device_type = "cuda" if device.startswith("cuda") else "cpu"
        if self.ddp and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if self.device_type == "cuda" else "gloo")
        self.master = self.rank == 0

    def all_reduce(self, tensor, op=dist.ReduceOp.SUM):
        if self.ddp:
            dist.all_reduce(tensor, op=op)
        return tensor

    def barrier(self):
        if self.ddp:
            dist.barrier()

    def close(self):
        if self.ddp and dist.is_initialized():
            dist.barrier()  # ranks tear gloo down together (else a rank can abort in a gloo thread at exit)
            dist.destroy_process_group()


def wrap_model(model, parallel, d, activation_checkpointing=False):
    """parallel: 'none' | 'ddp' | 'fsdp'. Returns the module to call; the raw model stays
    `model` (FSDP2 shards it in place) and is what we save."""
    model.gradient_checkpointing = activation_checkpointing
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard  # slow to import (~0.5 s): FSDP runs only
        for block in model.model.layers:
            fully_shard(block)
        fully_shard(model)
        return model
    if parallel == "ddp" and d.ddp:
        return DDP(model, device_ids=[d.local_rank] if d.device_type == "cuda" else None)
    if parallel not in ("none", "ddp"):
        raise ValueError(f"parallel must be 'none', 'ddp' or 'fsdp', got '{parallel}'.")
    return model


def set_grad_sync(module, enabled):
    """Gradient accumulation: all-reduce only on the last micro-step (set before the forward)."""
    if hasattr(module, "require_backward_grad_sync"):  # DDP
        module.require_backward_grad_sync = enabled
    elif hasattr(module, "set_requires_gradient_sync"):  # FSDP2
        module.set_requires_gradient_sync(enabled)


# -----------------------------------------------------------------------------
# precision, schedule, speed

def autocast(device_type, dtype):
    """bf16/fp16 autocast for the matmuls; a no-op for fp32."""
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=getattr(torch, dtype))


def seeded(*keys, device="cpu"):
    """A torch.Generator on `device` seeded by a tuple of ints, e.g. (seed, step, sequence): every random
    draw of the project comes from one of these, never from the global RNG."""
    s = 0
    for k in keys:
        s = (s * 1_000_003 + int(k)) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(s)


def epoch_indices(start, count, n, seed):
    """Indices into a dataset of n items for the global sample numbers start .. start+count-1:
    epochs over a permutation reshuffled per epoch (seeded by (seed, epoch)), so the data cursor is
    just the sample number and resuming needs no loader state."""
    perms, idx = {}, []
    for p in range(start, start + count):
        epoch, i = divmod(p, n)
        if epoch not in perms:
            g = seeded(seed * 7919 + epoch)  # one key: the data order of the runs before seeded() existed
            perms[epoch] = torch.randperm(n, generator=g)
        idx.append(perms[epoch][i].item())
    return idx


def make_optimizer(model, lr, betas, weight_decay):
    """AdamW (fused kernels, on CPU too) with weight decay on the matrices only, not on norms and biases."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)


def lr_at(step, max_lr, warmup_steps, total_steps, min_lr_ratio):
    """Linear warmup, then cosine decay to min_lr_ratio * max_lr at total_steps."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return max_lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


_PEAK_FLOPS = {}


def matmul_flops(device, dtype, n=1024, reps=32):
    """Measured matmul throughput (FLOP/s) of this device in this dtype: the MFU denominator,
    so the ratio means the same on any machine. Best of 3 timed windows of `reps` products after a warm-up (the
    first bf16 calls on CPU are slow). Cached per (device, dtype)."""
    key = (str(device), dtype)
    if key not in _PEAK_FLOPS:
        dt = getattr(torch, dtype)
        a = torch.randn(n, n, device=device, dtype=dt)
        b = torch.randn(n, n, device=device, dtype=dt)
        best = 0.0
        for window in range(4):
            sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                a @ b
            sync(device)
            if window > 0:  # window 0 is the warm-up
                best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
        _PEAK_FLOPS[key] = best
    return _PEAK_FLOPS[key]


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def rss_mb():
    """This process's resident host memory in MB (Linux: now, from /proc; elsewhere: the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource  # no /proc (macOS): ru_maxrss is the peak, in bytes there
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# -----------------------------------------------------------------------------
# prompts and completions

def left_pad(seqs, pad_id, device):
    """List of id lists -> (input_ids, attention_mask) (B, T), left-padded to the longest."""
    T = max(len(s) for s in seqs)
    ids = torch.tensor([[pad_id] * (T - len(s)) + list(s) for s in seqs], device=device)
    mask = torch.tensor([[0] * (T - len(s)) + [1] * len(s) for s in seqs], device=device)
    return ids, mask


def stop_ids(tok):
    """The ids that end a completion (those of <|im_end|>, <|dlm_pad|>, <|endoftext|> the tokenizer has)."""
    return [tok.special_tokens[s] for s in ("<|im_end|>", "<|dlm_pad|>", "<|endoftext|>") if s in tok.special_tokens]


def cut_at_stop(ids, stops):
    """Generated ids up to (excluding) the first end-of-turn / <|dlm_pad|> / EOS."""
    ids = [int(i) for i in ids]
    return ids[:min([ids.index(s) for s in stops if s in ids], default=len(ids))]


def completion_text(tok, ids):
    """The text of a generated completion: cut at the first stop token, without ids past the
    tokenizer's vocabulary (the padded embedding rows, which an under-trained model can sample)."""
    return tok.decode([i for i in cut_at_stop(ids, stop_ids(tok)) if i < tok.vocab_size])


# -----------------------------------------------------------------------------
# models

def build_model(d, parallel, activation_checkpointing=False, init_dir=None, config=None, seed=0, min_vocab_size=0):
    """Create the training model: from `config` (random init, identical on every rank) or loaded from
    the HF directory `init_dir`, in fp32, wrapped for `parallel`. With FSDP2 the model is built on the
    meta device, sharded, and the weights are read by rank 0 and broadcast, so host memory holds one
    copy of the checkpoint, not one per rank. A loaded model with fewer than min_vocab_size embedding rows
    (tokens were added to its tokenizer) grows to that many, rounded up to a multiple of 64 (Transformer.
    resize_token_embeddings). Returns (raw_model, module_to_call)."""
    rows = (min_vocab_size + 63) // 64 * 64

    def load(device):
        model = load_pretrained(init_dir, device=device, dtype=torch.float32)
        if model.config.vocab_size < min_vocab_size:
            model.resize_token_embeddings(rows)
        return model

    if parallel == "fsdp" and init_dir is not None:
        # slow to import (~0.7 s): FSDP runs only
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
        config = config_from_hf(load_hf_config(init_dir))
        if config.vocab_size < min_vocab_size:
            config.vocab_size = rows
        with torch.device("meta"):
            model = Transformer(config)
        module = wrap_model(model, parallel, d, activation_checkpointing)
        model.to_empty(device=d.device)
        sd = load(None).state_dict() if d.master else {}  # on the host
        set_model_state_dict(model, sd, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        model.train()
        return model, module
    if init_dir is not None:
        model = load(d.device)
    else:
        torch.manual_seed(seed)
        model = Transformer(config).to(d.device)
    model.train()
    return model, wrap_model(model, parallel, d, activation_checkpointing)
