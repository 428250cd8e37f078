"""
Training before RL: autoregressive pre-training, AR->diffusion adaptation, masked-diffusion
pre-training, conditional SFT (diffusion or autoregressive).

    python train_pretrain.py config/pretrain_tiny.py                 # tiny AR model on the stdlib corpus + tasks, CPU
    python train_pretrain.py config/adapt_tiny.py                    # AR -> diffusion adaptation of it
    python train_pretrain.py config/sft_tiny.py                      # conditional diffusion SFT
    torchrun --nproc_per_node=2 train_pretrain.py config/pretrain_tiny.py --device=cpu   # DDP (gloo)
    torchrun --nproc_per_node=8 train_pretrain.py config/pretrain_7b.py                  # FSDP2

Two objectives (diffusion.py) and two kinds of data, set by config:
- objective='diffusion': mask a fraction t ~ U(eps, 1) of the maskable tokens, bidirectional
  attention, the 1/t-weighted loss on the masked tokens. With init_from=<an AR model> and
  anneal_steps > 0 this is the AR->diffusion adaptation: attention anneals from causal to full
  (the DiffuLLaMA rule), as DiffuCoder was adapted from Qwen2.5-Coder. A tokenizer without the diffusion
  tokens (Qwen2.5-Coder's) gets DiffuCoder's <|mask|> and <|dlm_pad|> with DiffuCoder's ids, and a model
  with fewer embedding rows than that grows its embedding and LM head (common.load_tokenizer, build_model).
- objective='ar': causal attention, next-token loss on every supervised token. Same network, same
  shift (row i predicts token i+1), same checkpoints: the model an adaptation starts from.
- mode='pretrain': packed unconditional windows of a prepared token file; every token but the
  first of a window is supervised (AR) or maskable (diffusion).
- mode='sft': (question, answer) records; the prompt (chat template) is never masked or supervised.
  The answer is followed by <|im_end|> and <|dlm_pad|> tokens; diffusion supervises all of them, so
  the model learns to end its answer and pad (DiffuCoder's SFT), AR supervises the answer and its
  <|im_end|>. With answer_length = n, prompts are left-padded (padding that no token attends to) so
  that every row ends with a canvas of exactly n answer tokens, the canvas that decoding fills.

Every random choice of a step (which windows or records, t, which tokens are masked) comes from a
generator seeded by (seed, step) and drawn for the whole global batch on every rank, each rank then
taking its rows. So a run gives the same update on 1 process or N (DDP/FSDP2) for the same global
batch, the loss is normalised by the masked-token count of the whole optimizer step (exact under
gradient accumulation), and resuming from a checkpoint continues the run exactly: the data cursor
is the step number.
"""

import os
import sys
import time

import numpy as np
import torch

from checkpoint import (latest_checkpoint, load_tokenizer, load_training_state, read_meta, resolve_model_dir,
                        save_checkpoint)
from common import (Dist, autocast, build_model, epoch_indices, lr_at, make_optimizer, matmul_flops, resolve_dtype,
                    rss_mb, seeded, set_grad_sync, sync)
from configurator import config_keys, configure, load_jsonl, print_config, run_cli
from diffusion import apply_mask, ar_loss, diffusion_loss, sample_noise, training_attention_mask
from model import ModelConfig, padding_position_ids, predictor_rows
from prepare_data import is_val, load_data_meta
from probes import Probes, format_probes

# -----------------------------------------------------------------------------
# I/O
out_dir = "out/pretrain_tiny"  # checkpoints go to out_dir/ckpt-XXXXXX/ (each an HF model directory)
init_from = "scratch"  # 'scratch', or a model directory / out_dir to start from (adaptation, SFT)
resume = True  # continue from the latest checkpoint in out_dir if there is one
# data
objective = "diffusion"  # 'diffusion' (masked-diffusion loss, bidirectional) or 'ar' (next-token loss, causal)
mode = "pretrain"  # 'pretrain' (packed, unconditional) or 'sft' (prompt clean, answer supervised)
data_dir = "data/stdlib"  # pretrain: prepared by prepare_data.py
sft_file = ""  # sft: jsonl of {question, answer} records (or {prompt, response})
sft_val_fraction = 0.05  # sft: records held out (by hash) for the val loss
block_size = 256  # tokens per sequence
answer_length = None  # sft: answer + <|im_end|> + <|dlm_pad|>s in exactly this many tokens, prompts left-padded
# (None: prompt at position 0, answer and pads fill the row to block_size)
# model (init_from='scratch' only)
n_layer = 6
n_head = 4
n_kv_head = 2
n_embd = 256
intermediate_size = 768
rope_theta = 10000.0
# diffusion
eps = 1e-3  # t ~ U(eps, 1)
anneal_steps = 0  # AR->diffusion attention annealing length (0: bidirectional from the start)
truncate_fraction = 0.0  # pretrain: fraction of sequences cut to a random length (the rest is EOS, unsupervised)
# optimizer
batch_size = 16  # sequences per micro-batch per rank
grad_accum = 1  # micro-batches per optimizer step
max_steps = 1000  # optimizer steps
lr_decay_steps = None  # length of the cosine schedule (None: max_steps)
learning_rate = 1e-3
min_lr_ratio = 0.1  # cosine decays to learning_rate * min_lr_ratio
warmup_steps = 50
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0  # 0 disables
# system
device = "auto"  # 'auto', 'cpu', 'cuda'
dtype = "auto"  # autocast dtype: 'auto' (bfloat16 where native, else float32), 'float32', 'bfloat16'
parallel = "ddp"  # under torchrun: 'ddp' or 'fsdp' (FSDP2 fully_shard per block)
activation_checkpointing = False
compile = False  # torch.compile each block (Transformer.compile_blocks)
seed = 1337
# logging and checkpoints
log_interval = 10
eval_interval = 100  # val loss and probes every this many steps (and at the end)
probe_file = ""  # tasks jsonl whose held-out (val) records the copy probes read ('': no probes)
probe_n = 128  # tasks per copy probe
eval_batches = 8  # micro-batches of batch_size sequences per val loss
ckpt_interval = 200  # 0: only at the end
keep_last = 2  # checkpoints kept in out_dir
CONFIG_KEYS = config_keys(globals())
# -----------------------------------------------------------------------------


class PackedData:
    """Random windows of a flat token file (pre-training)."""

    def __init__(self, data_dir, split, block_size):
        meta = load_data_meta(data_dir)
        path = os.path.join(data_dir, f"{split}.bin")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"missing {path}; run `python prepare_data.py --out_dir={data_dir}` again.")
        self.tokens = np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r")
        if len(self.tokens) <= block_size:
            raise ValueError(f"{path} has {len(self.tokens)} tokens, fewer than block_size={block_size}; "
                             f"use more data or a smaller block_size.")
        self.block_size = block_size

    def batch(self, n, generator):
        """A Rows batch of n windows: every token real and supervised."""
        starts = torch.randint(len(self.tokens) - self.block_size, (n,), generator=generator).tolist()
        x = torch.from_numpy(np.stack([self.tokens[s:s + self.block_size] for s in starts]).astype(np.int64))
        ones = torch.ones_like(x, dtype=torch.bool)
        return Rows(x, ones, ones, ones)


class Rows:
    """A batch of training rows, all (N, T): x token ids; real (False on left padding); answer (the tokens AR
    training predicts: the answer and its <|im_end|>, or every token when pre-training); canvas (the tokens
    diffusion training may mask: the answer, <|im_end|> and the <|dlm_pad|>s, or every token)."""

    def __init__(self, x, real, answer, canvas):
        self.x, self.real, self.answer, self.canvas = x, real, answer, canvas

    def __getitem__(self, idx):
        return Rows(self.x[idx], self.real[idx], self.answer[idx], self.canvas[idx])

    def __len__(self):
        return len(self.x)


def sft_records(path):
    records = []
    for i, r in load_jsonl(path, missing=f"sft_file '{path}' not found; prepare it with prepare_data.py (tiny tasks) "
                                         f"or pass a jsonl of question/answer records."):
        q, a = r.get("question", r.get("prompt")), r.get("answer", r.get("response"))
        if q is None or a is None:
            raise ValueError(f"{path} line {i} needs 'question' and 'answer' (or 'prompt' and 'response') fields.")
        records.append((q, a))
    if not records:
        raise ValueError(f"sft_file '{path}' has no records.")
    return records


def sft_tensors(records, tok, block_size, answer_length=None):
    """Tokenize (question, answer) pairs into Rows of block_size tokens:
    answer_length None: chat prompt + answer + <|im_end|> + <|dlm_pad|>... up to block_size;
    answer_length n: left padding + chat prompt + a canvas of n tokens (answer + <|im_end|> + <|dlm_pad|>...).
    Returns (Rows, number of records dropped because they do not fit)."""
    rows, real, answer, canvas, dropped = [], [], [], [], 0
    for question, text in records:
        prompt = tok.encode(tok.diffucoder_prompt(question))
        response = tok.encode(text) + [tok.im_end_id]
        n = answer_length or block_size - len(prompt)  # canvas tokens
        pad = block_size - len(prompt) - n  # left padding
        if len(response) > n or pad < 0:
            dropped += 1
            continue
        rows.append([tok.pad_token_id] * pad + prompt + response + [tok.dlm_pad_token_id] * (n - len(response)))
        real.append([False] * pad + [True] * (len(prompt) + n))
        answer.append([False] * (pad + len(prompt)) + [True] * len(response) + [False] * (n - len(response)))
        canvas.append([False] * (pad + len(prompt)) + [True] * n)
    if not rows:
        raise ValueError(f"no SFT record fits in block_size={block_size} (answer_length={answer_length}); raise them.")
    return Rows(*(torch.tensor(v) for v in (rows, real, answer, canvas))), dropped


class SFTData:
    """Epochs over fixed-length SFT rows, reshuffled per epoch, indexed by the global sample number."""

    def __init__(self, rows, seed):
        self.data, self.seed = rows, seed

    def rows(self, start, n):
        return self.data[epoch_indices(start, n, len(self.data), self.seed)]


def truncate_rows(rows, fraction, eos_id, generator):
    """Cut a random `fraction` of rows to a random length: the tail becomes EOS and is not supervised."""
    B, T = rows.x.shape
    cut = torch.rand(B, generator=generator) < fraction
    lengths = torch.randint(1, T, (B,), generator=generator)
    tail = cut[:, None] & (torch.arange(T)[None, :] >= lengths[:, None])
    return Rows(rows.x.masked_fill(tail, eos_id), rows.real, rows.answer & ~tail, rows.canvas & ~tail)


def main(argv=None):
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    if cfg.mode not in ("pretrain", "sft"):
        raise ValueError(f"mode must be 'pretrain' or 'sft', got '{cfg.mode}'.")
    if cfg.objective not in ("diffusion", "ar"):
        raise ValueError(f"objective must be 'diffusion' or 'ar', got '{cfg.objective}'.")
    if cfg.objective == "ar" and cfg.anneal_steps > 0:
        raise ValueError("anneal_steps anneals attention from causal to bidirectional for objective='diffusion'; "
                         "set anneal_steps=0 for objective='ar'.")
    d = Dist(cfg.device)
    cfg.dtype = resolve_dtype(cfg.dtype, d.device_type)
    if d.master:
        print("train_pretrain.py config:")
        print_config(cfg)

    # tokenizer, model, data --------------------------------------------------------------
    ckpt = latest_checkpoint(cfg.out_dir) if cfg.resume else None
    init_dir = ckpt or (resolve_model_dir(cfg.init_from) if cfg.init_from != "scratch" else None)
    tok_dir = init_dir or os.path.join(cfg.data_dir, "tokenizer")
    if init_dir is None and not os.path.isdir(tok_dir):
        load_data_meta(cfg.data_dir)  # raises the "run prepare_data.py" error
    # the files are read now: tok_dir may be a checkpoint that keep_last removes later
    tok, tok_files, added = load_tokenizer(tok_dir)
    if added and d.master:
        print(f"{tok_dir}'s tokenizer lacks the diffusion tokens; added DiffuCoder's: {added}")
    if cfg.mode == "pretrain":
        data_identity = load_data_meta(cfg.data_dir)["tokenizer_identity"]
        if data_identity != tok.identity:
            raise ValueError(f"the data in {cfg.data_dir} was tokenized with tokenizer {data_identity}, "
                             f"but {tok_dir} has {tok.identity}; re-run prepare_data.py with --tokenizer={tok_dir}.")
        train_data = PackedData(cfg.data_dir, "train", cfg.block_size)
        val_data = PackedData(cfg.data_dir, "val", cfg.block_size)
    else:
        records = sft_records(cfg.sft_file)
        train_recs = [r for r in records if not is_val(r[0], cfg.sft_val_fraction)]
        val_recs = [r for r in records if is_val(r[0], cfg.sft_val_fraction)] or train_recs[:cfg.batch_size]
        rows, dropped = sft_tensors(train_recs, tok, cfg.block_size, cfg.answer_length)
        train_data = SFTData(rows, cfg.seed)
        val_rows, _ = sft_tensors(val_recs, tok, cfg.block_size, cfg.answer_length)
        val_data = SFTData(val_rows, cfg.seed + 1)
        if d.master:
            prompt = (rows.real & ~rows.canvas).sum(1).float().mean()
            print(f"sft: {len(rows):,} train rows ({dropped} dropped: too long), {len(val_rows):,} val rows; "
                  f"per row on average {(~rows.real).sum(1).float().mean():.0f} left padding, {prompt:.0f} prompt, "
                  f"{rows.answer.sum(1).float().mean():.0f} answer + <|im_end|>, "
                  f"{rows.canvas.sum(1).float().mean():.0f} canvas tokens")
    probes = None
    if cfg.probe_file:
        probes = Probes.build(tok, cfg.probe_file, cfg.probe_n, cfg.sft_val_fraction, cfg.answer_length, cfg.seed)

    model_config = None
    if init_dir is None:
        model_config = ModelConfig(
            vocab_size=(tok.vocab_size + 63) // 64 * 64, n_layer=cfg.n_layer, n_head=cfg.n_head,
            n_kv_head=cfg.n_kv_head, n_embd=cfg.n_embd, intermediate_size=cfg.intermediate_size,
            max_seq_len=cfg.block_size, rope_theta=cfg.rope_theta,
            mask_token_id=tok.mask_token_id, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    # with added tokens, a model with fewer embedding rows than the tokenizer has ids grows its embedding and LM head
    model, module = build_model(d, cfg.parallel if d.ddp else "none", cfg.activation_checkpointing,
                                init_dir=init_dir, config=model_config, seed=cfg.seed,
                                min_vocab_size=tok.vocab_size if added else 0)
    if model.config.mask_token_id is None:  # recorded in config.json, as Dream does
        model.config.mask_token_id = tok.mask_token_id
    if cfg.block_size > model.config.max_seq_len:  # RoPE extends; record the new trained context
        if d.master:
            print(f"extending the model's context from {model.config.max_seq_len} to block_size={cfg.block_size}")
        model.config.max_seq_len = cfg.block_size
    if tok.vocab_size > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tok.vocab_size} ids but the model only {model.config.vocab_size} rows; "
                         f"they do not belong together.")
    optimizer = make_optimizer(model, cfg.learning_rate, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    start_step, history, probe_history = 0, [], []
    if ckpt is not None:
        meta = load_training_state(ckpt, model, optimizer)
        history = [tuple(h) for h in meta["val_history"]]
        probe_history = [tuple(h) for h in meta.get("probe_history", [])]
        if meta["tokenizer_identity"] != tok.identity:
            raise ValueError(f"checkpoint {ckpt} was trained with tokenizer {meta['tokenizer_identity']}, "
                             f"not {tok.identity}.")
        start_step = meta["step"]
        if d.master:
            print(f"resuming from {ckpt} at step {start_step}")
    if cfg.compile:
        model.compile_blocks()

    # derived quantities ------------------------------------------------------------------
    T = cfg.block_size
    local_B = cfg.batch_size * cfg.grad_accum
    global_B = local_B * d.world_size
    tokens_per_step = global_B * T
    decay_steps = cfg.lr_decay_steps or cfg.max_steps
    flops_per_step = model.flops_per_token(T) * tokens_per_step
    peak = matmul_flops(d.device, "float32" if cfg.dtype == "float32" else cfg.dtype) * d.world_size
    if d.master:
        print(f"model: {model.num_params() / 1e6:.2f}M parameters "
              f"({model.num_params(exclude_embedding=True) / 1e6:.2f}M without the embedding), "
              f"vocab {model.config.vocab_size}, mask id {tok.mask_token_id}")
        anneal = f", attention annealed causal -> full over {cfg.anneal_steps} steps" if cfg.anneal_steps else ""
        print(f"objective {cfg.objective}{anneal}; {cfg.mode} data")
        print(f"{d.world_size} rank(s) on {d.device} ({cfg.parallel if d.ddp else 'single process'}), "
              f"{cfg.dtype} autocast; "
              f"{global_B} sequences x {T} tokens = {tokens_per_step:,} tokens per step, "
              f"x {cfg.max_steps:,} steps = {tokens_per_step * cfg.max_steps / 1e9:.3g}B tokens; "
              f"{cfg.grad_accum} micro-batch(es) of {cfg.batch_size} per rank per step; "
              f"measured matmul peak {peak / 1e12:.2f} TFLOP/s")
        if cfg.mode == "sft":
            epochs = cfg.max_steps * global_B / len(train_data.data)
            print(f"{cfg.max_steps} steps = {epochs:.1f} epochs over the SFT rows")
    mask_id = tok.mask_token_id

    def global_batch(data, step, generator, n):
        """n rows of the global batch and their noise: (Rows, model input, supervised positions (B, T), t (B,))."""
        if cfg.mode == "pretrain":
            rows = data.batch(n, generator)
            if cfg.truncate_fraction > 0:
                rows = truncate_rows(rows, cfg.truncate_fraction, tok.eos_token_id, generator)
        else:
            rows = data.rows(step * n, n)
        if cfg.objective == "ar":  # predict every answer token from the clean tokens before it
            targets = rows.answer.clone()
            targets[:, 0] = False  # nothing predicts position 0
            return rows, rows.x, targets, None
        t, u = sample_noise(n, T, cfg.eps, generator)
        x_t, masked = apply_mask(rows.x, rows.canvas, t, u, mask_id)
        return rows, x_t, masked, t

    def forward_loss(rows, inp, targets, t, step, normalizer, micro=0):
        """The loss of one micro-batch (all tensors on the device), divided by `normalizer`."""
        ag = None
        if cfg.anneal_steps > 0 and step < cfg.anneal_steps:  # the annealing coins, per (step, rank, micro-batch)
            ag = seeded(cfg.seed, step, d.rank, micro, device=d.device)
        attn = training_attention_mask(cfg.objective, rows.real, step, cfg.anneal_steps, ag)
        pos = None if bool(rows.real.all()) else padding_position_ids(rows.real)
        with autocast(d.device_type, cfg.dtype):
            logits = module(inp, attention_mask=attn, position_ids=pos, output_rows=predictor_rows(targets))
        if cfg.objective == "ar":
            return ar_loss(logits, rows.x, targets, normalizer)
        return diffusion_loss(logits, rows.x, targets, t, normalizer)

    def to_device(rows, inp, targets, t, sl):
        r = Rows(*(v[sl].to(d.device) for v in (rows.x, rows.real, rows.answer, rows.canvas)))
        return r, inp[sl].to(d.device), targets[sl].to(d.device), None if t is None else t[sl].to(d.device)

    @torch.no_grad()
    def evaluate(step):
        """Val loss on fixed batches and fixed noise, rows split across ranks (after annealing: full
        attention), and the probes: kept in the histories, printed by rank 0."""
        module.eval()
        total, count = torch.zeros((), device=d.device), torch.zeros((), device=d.device)
        g = seeded(cfg.seed + 1, 0)
        for i in range(cfg.eval_batches):
            batch = global_batch(val_data, i, g, cfg.batch_size * d.world_size)
            sl = slice(d.rank * cfg.batch_size, (d.rank + 1) * cfg.batch_size)
            rows, inp, targets, t = to_device(*batch, sl)
            total += forward_loss(rows, inp, targets, t, cfg.anneal_steps, normalizer=1)
            count += targets.sum()
        d.all_reduce(total), d.all_reduce(count)
        result = {}
        if probes is not None:
            with autocast(d.device_type, cfg.dtype):
                result = probes.run(model, cfg.objective, d.device)
        module.train()
        val = (total / count).item()
        history.append((step, val))
        probe_history.append((step, result))
        if d.master:
            print(f"step {step}/{cfg.max_steps} | val loss {val:.4f}", flush=True)
            if result:
                print(f"step {step}/{cfg.max_steps} | probes {format_probes(result)}", flush=True)

    # training loop -----------------------------------------------------------------------
    t_start, step_times = time.time(), []
    for step in range(start_step, cfg.max_steps):
        if step % cfg.eval_interval == 0 and step > start_step or step == start_step == 0:
            evaluate(step)
        t0 = time.time()
        lr = lr_at(step, cfg.learning_rate, cfg.warmup_steps, decay_steps, cfg.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        g = seeded(cfg.seed, step)
        batch = global_batch(train_data, step, g, global_B)
        normalizer = batch[2].sum().clamp(min=1).item()  # supervised (masked) tokens in the whole optimizer step
        rows, inp, targets, t = to_device(*batch, slice(d.rank * local_B, (d.rank + 1) * local_B))
        loss_sum = torch.zeros((), device=d.device)
        for micro in range(cfg.grad_accum):
            sl = slice(micro * cfg.batch_size, (micro + 1) * cfg.batch_size)
            set_grad_sync(module, micro == cfg.grad_accum - 1)
            loss = forward_loss(rows[sl], inp[sl], targets[sl], None if t is None else t[sl], step, normalizer, micro)
            loss = loss * d.world_size  # DDP and FSDP average gradients over ranks, we want the sum / normalizer
            loss.backward()
            loss_sum += loss.detach() / d.world_size
        if cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        d.all_reduce(loss_sum)
        done = step + 1
        if done % cfg.log_interval == 0 or done == cfg.max_steps:
            loss_val = loss_sum.item()
            sync(d.device)
            dt = time.time() - t0
            step_times.append(dt)
            avg = sum(step_times[-10:]) / len(step_times[-10:])
            if d.master:
                eta = avg * (cfg.max_steps - done)
                gnorm = f" | gnorm {norm.item():.2f}" if cfg.grad_clip > 0 else ""
                print(f"step {done}/{cfg.max_steps} | loss {loss_val:.4f} | lr {lr:.2e}{gnorm} | {dt * 1000:.0f} ms | "
                      f"{tokens_per_step / dt:,.0f} tok/s | mfu {100 * flops_per_step / dt / peak:.0f}% | "
                      f"rss {rss_mb():,.0f} MB | eta {eta / 60:.1f}m", flush=True)
        last = done == cfg.max_steps
        if last:
            evaluate(done)
        if last or (cfg.ckpt_interval and done % cfg.ckpt_interval == 0):
            meta = dict(config=vars(cfg), tokenizer_identity=tok.identity, data_cursor=done, val_history=history,
                        probe_history=probe_history, world_size=d.world_size)
            save_checkpoint(cfg.out_dir, done, model, optimizer, meta, tok_files, d, keep_last=cfg.keep_last)
    if d.master:
        ckpt = latest_checkpoint(cfg.out_dir)
        if start_step >= cfg.max_steps:
            print(f"{cfg.out_dir} already holds a checkpoint at step {start_step} >= max_steps={cfg.max_steps}; "
                  f"nothing to do.")
        else:
            print(f"done in {(time.time() - t_start) / 60:.1f} min; model saved to {ckpt}")
        if ckpt:
            vh = read_meta(ckpt)["val_history"]
            print("val loss: " + ", ".join(f"{s}: {v:.3f}" for s, v in vh))
    d.close()
    return history


if __name__ == "__main__":
    run_cli(main)
