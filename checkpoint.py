"""
Everything that reads or writes a model directory, in one place.

1. Hugging Face format: `load_pretrained` / `save_pretrained` read and write config.json +
   model.safetensors (sharded with an index past 5 GiB), DiffuCoder-7B-*, Dream-v0-*, Qwen2.5-Coder-*
   or our own. Tensor names equal HF Qwen2's, so loading is a state-dict copy with shape checks; the
   model is built on the meta device and the tensors are assigned shard by shard, so a bf16 7B
   checkpoint never exists as an fp32 copy in host RAM. Saving is atomic (a temporary directory
   renamed at the end).
2. Training checkpoints: a directory `out_dir/ckpt-{step:06d}/` that is at the same time an HF model
   directory (config.json + model.safetensors + the tokenizer files), so sample.py and eval.py open it
   directly, plus `optimizer.pt` and `meta.json` (resolved config, step, data cursor, tokenizer
   identity; no RNG state: every random draw comes from a generator seeded by the step). It is
   written to `ckpt-XXXXXX.tmp` and renamed when complete, so a crash never leaves a half-written
   checkpoint behind; the last `keep_last` are kept.
3. Opening a model for decoding: `resolve_model_dir` (an HF directory or a training out_dir's latest
   checkpoint), `load_model` (weights + tokenizer, checked to belong together).
"""

import json
import os
import re
import shutil

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from configurator import load_json
from model import ModelConfig, Transformer
from tokenizer import Tokenizer, add_tokens_to_files

TOKENIZER_FILES = ("tokenizer.tiktoken", "tokenizer_meta.json", "tokenizer.json", "vocab.json", "merges.txt",
                   "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


# -----------------------------------------------------------------------------
# Hugging Face model directories

def load_pretrained(path, device=None, dtype=None):
    """Load an HF directory (DiffuCoder-7B-*, Dream-v0-*, Qwen2.5-Coder-*, or our own save).

    dtype=None keeps the checkpoint's dtype (bit-exact round trip). Weights are assigned to a
    meta-device model shard by shard, so host memory peaks near the checkpoint size."""
    config = config_from_hf(load_hf_config(path))
    with torch.device("meta"):
        model = Transformer(config)
    expected = dict(model.state_dict())
    if config.tie_word_embeddings:
        expected.pop("lm_head.weight")
    seen = set()
    for file in checkpoint_files(path):
        for key, tensor in read_safetensors(file):
            if key.endswith("rotary_emb.inv_freq") or (key == "lm_head.weight" and config.tie_word_embeddings):
                continue
            if key not in expected:
                raise ValueError(f"checkpoint {file} has unexpected tensor '{key}'; it is not a Qwen2/Dream "
                                 f"checkpoint or its config.json does not match.")
            want = expected[key].shape
            if tuple(tensor.shape) != tuple(want):
                raise ValueError(f"shape mismatch for '{key}' in {file}: checkpoint has {tuple(tensor.shape)}, "
                                 f"config.json implies {tuple(want)}; the config does not match the weights.")
            tensor = tensor.to(device=device or "cpu", dtype=dtype or tensor.dtype)
            assign_tensor(model, key, tensor)
            seen.add(key)
    missing = sorted(set(expected) - seen)
    if missing:
        raise ValueError(f"checkpoint in {path} is missing {len(missing)} tensors, e.g. '{missing[0]}'; the "
                         f"download is incomplete or the config does not match.")
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()


def save_pretrained(model, path):
    """Write config.json + safetensors weights, atomically: the files go to a temporary
    directory that replaces `path` at the end (tokenizer files already in `path` are kept)."""
    path = os.path.abspath(path)
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    write_hf_checkpoint(model.state_dict(), model.config, tmp)
    replace_dir(tmp, path)


def write_hf_checkpoint(state_dict, config, path, max_shard_bytes=5 * 2**30):
    """Write config.json + model.safetensors (sharded with an index past max_shard_bytes) into the
    existing directory `path`. Tensors are saved in their own dtype, so a load round-trips bit-exactly."""
    state = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    shards, cur, cur_bytes = [], {}, 0
    for k, v in state.items():
        nbytes = v.numel() * v.element_size()
        if cur and cur_bytes + nbytes > max_shard_bytes:
            shards.append(cur)
            cur, cur_bytes = {}, 0
        cur[k], cur_bytes = v, cur_bytes + nbytes
    shards.append(cur)
    if len(shards) == 1:
        save_file(shards[0], os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, os.path.join(path, name), metadata={"format": "pt"})
            weight_map.update({k: name for k in shard})
        total = sum(v.numel() * v.element_size() for v in state.values())
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    dtype = next(iter(state.values())).dtype
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config_to_hf(config, dtype), f, indent=2)


def replace_dir(tmp, path):
    """Atomically (as far as the filesystem allows) move directory tmp to path, replacing it.
    Files of `path` that tmp lacks (e.g. a tokenizer saved beside the weights) are carried over."""
    if os.path.isdir(path):
        for name in os.listdir(path):
            if not os.path.exists(os.path.join(tmp, name)) and not name.startswith("model"):
                src = os.path.join(path, name)
                (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, os.path.join(tmp, name))
        old = path + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        os.replace(tmp, path)


def assign_tensor(model, key, tensor):
    """Replace the (meta) parameter `key` of model by `tensor`, keeping requires_grad."""
    module_path, name = key.rsplit(".", 1)
    module = model.get_submodule(module_path)
    module._parameters[name] = nn.Parameter(tensor, requires_grad=tensor.is_floating_point())


def load_hf_config(path):
    return load_json(os.path.join(path, "config.json"),
                     missing=f"no config.json in '{path}'; pass a Hugging Face model directory (e.g. a downloaded "
                             f"apple/DiffuCoder-7B-Instruct) or one written by save_pretrained.")


def checkpoint_files(path):
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        names = sorted(set(load_json(index)["weight_map"].values()))
        files = [os.path.join(path, n) for n in names]
    else:
        files = [os.path.join(path, "model.safetensors")]
    for file in files:
        if not os.path.isfile(file):
            raise FileNotFoundError(f"missing weight file {file}; the checkpoint in '{path}' is incomplete (only "
                                    f"safetensors checkpoints are supported).")
    return files


def read_safetensors(file):
    """Yield (key, tensor) from one safetensors file, with a clear error if it is damaged."""
    try:
        with safe_open(file, framework="pt", device="cpu") as f:
            for key in f.keys():
                yield key, f.get_tensor(key)
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise ValueError(f"weight file {file} is unreadable (truncated or corrupted: {e}); re-download or re-save "
                         f"the checkpoint.") from None


_ARCHITECTURES = {"DreamModel", "Qwen2ForCausalLM", "Qwen2Model"}


def config_from_hf(hf):
    """HF config.json dict (Qwen2 / Dream; transformers 4.x or 5.x layout) -> ModelConfig."""
    arch = (hf.get("architectures") or ["?"])[0]
    if arch not in _ARCHITECTURES:
        raise ValueError(f"unsupported architecture '{arch}' in config.json; expected one of {sorted(_ARCHITECTURES)}.")
    rope = hf.get("rope_parameters") or {}
    theta = hf.get("rope_theta", rope.get("rope_theta"))
    if theta is None:
        raise ValueError("config.json has neither 'rope_theta' nor 'rope_parameters.rope_theta'.")
    scaling = hf.get("rope_scaling") or {}
    scaling_type = scaling.get("type", scaling.get("rope_type", "default"))
    if scaling_type != "default" or rope.get("rope_type", "default") != "default":
        raise ValueError("config.json asks for RoPE scaling, which this model does not implement; remove "
                         "'rope_scaling' to use the base context length.")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"unsupported hidden_act '{hf['hidden_act']}' in config.json (only silu).")
    return ModelConfig(
        vocab_size=hf["vocab_size"], n_layer=hf["num_hidden_layers"], n_head=hf["num_attention_heads"],
        n_kv_head=hf.get("num_key_value_heads", hf["num_attention_heads"]), n_embd=hf["hidden_size"],
        intermediate_size=hf["intermediate_size"], max_seq_len=hf.get("max_position_embeddings", 32768),
        rope_theta=float(theta), rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_word_embeddings=hf.get("tie_word_embeddings", False),
        mask_token_id=hf.get("mask_token_id"), pad_token_id=hf.get("pad_token_id"),
        eos_token_id=hf.get("eos_token_id") if isinstance(hf.get("eos_token_id"), int) else None,
    )


def config_to_hf(config, dtype):
    """ModelConfig -> a config.json that transformers opens as Qwen2 (run it with a full 4D mask
    for diffusion), plus Dream's token-id fields."""
    hf = dict(
        architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu",
        vocab_size=config.vocab_size, num_hidden_layers=config.n_layer, num_attention_heads=config.n_head,
        num_key_value_heads=config.n_kv_head, hidden_size=config.n_embd, intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_seq_len, rope_theta=config.rope_theta,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        rms_norm_eps=config.rms_norm_eps, tie_word_embeddings=config.tie_word_embeddings,
        use_sliding_window=False, attention_dropout=0.0,
        torch_dtype=str(dtype).removeprefix("torch."), dtype=str(dtype).removeprefix("torch."),
    )
    for name in ("mask_token_id", "pad_token_id", "eos_token_id"):
        if getattr(config, name) is not None:
            hf[name] = getattr(config, name)
    return hf


# -----------------------------------------------------------------------------
# training checkpoints

def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def full_state_dicts(model, optimizer):
    """Full (unsharded) model and optimizer state dicts, on CPU, keyed by parameter name.
    Collective under FSDP: every rank must call it."""
    # slow to import (~0.7 s), and only training checkpoints need it
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    msd = get_model_state_dict(model, options=options)
    osd = get_optimizer_state_dict(model, optimizer, options=options) if optimizer is not None else None
    return msd, osd


def save_checkpoint(out_dir, step, model, optimizer, meta, tokenizer_files, d, keep_last=2, extra_models=None):
    """Atomically write out_dir/ckpt-{step}/. Collective (all ranks call it; rank 0 writes).
    tokenizer_files: read_tokenizer_files() of the run's tokenizer, read at start-up (the directory it came
    from may be a checkpoint that keep_last removes). extra_models: {name: module} saved as
    `{name}.safetensors` (e.g. GRPO's reference model)."""
    msd, osd = full_state_dicts(model, optimizer)
    extras = {name: full_state_dicts(m, None)[0] for name, m in (extra_models or {}).items()}
    if d.master:
        final = os.path.join(out_dir, f"ckpt-{step:06d}")
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        write_hf_checkpoint(msd, model.config, tmp)
        for name, sd in extras.items():
            save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(tmp, f"{name}.safetensors"))
        write_tokenizer_files(tokenizer_files, tmp)
        if osd is not None:
            torch.save(osd, os.path.join(tmp, "optimizer.pt"))
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(dict(meta, step=step), f, indent=1, default=_json_default)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in list_checkpoints(out_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    d.barrier()


def read_tokenizer_files(src_dir):
    """{file name: bytes} of the tokenizer files in src_dir."""
    files = {}
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(src_dir, name)):
            with open(os.path.join(src_dir, name), "rb") as f:
                files[name] = f.read()
    if not files:
        raise FileNotFoundError(f"no tokenizer files in '{src_dir}'; run prepare_data.py first.")
    return files


def write_tokenizer_files(files, dst_dir):
    for name, data in files.items():
        with open(os.path.join(dst_dir, name), "wb") as f:
            f.write(data)


def load_tokenizer(src_dir):
    """(tokenizer, its files {name: bytes}, added) from src_dir, with DiffuCoder's diffusion tokens added when it lacks
    them (a Qwen2.5 tokenizer gets <|mask|> 151666 and <|dlm_pad|> 151667; see Tokenizer.with_diffusion_tokens);
    added = {name: id} of the new tokens, already written into the files."""
    tok, added = Tokenizer.from_pretrained(src_dir).with_diffusion_tokens()
    files = read_tokenizer_files(src_dir)
    return tok, add_tokens_to_files(files, tok, added) if added else files, added


def list_checkpoints(out_dir):
    """Complete checkpoints (those with a meta.json), oldest first."""
    if not os.path.isdir(out_dir):
        return []
    names = sorted(n for n in os.listdir(out_dir) if re.fullmatch(r"ckpt-\d{6}", n))
    return [os.path.join(out_dir, n) for n in names if os.path.isfile(os.path.join(out_dir, n, "meta.json"))]


def latest_checkpoint(out_dir):
    ckpts = list_checkpoints(out_dir)
    return ckpts[-1] if ckpts else None


def read_meta(ckpt_dir):
    return load_json(os.path.join(ckpt_dir, "meta.json"))


def load_training_state(ckpt_dir, model, optimizer, extra_models=None):
    """Load weights and optimizer state (and `extra_models`, saved by save_checkpoint) from a
    checkpoint into (optionally wrapped/sharded) models. Every rank reads the files; returns meta.json."""
    # slow to import (~0.7 s), and only training checkpoints need it
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)
    options = StateDictOptions(full_state_dict=True)

    def load_weights(m, files):
        sd = {}
        for file in files:
            sd.update(load_file(file))
        if m.config.tie_word_embeddings:
            sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
        set_model_state_dict(m, sd, options=options)

    load_weights(model, checkpoint_files(ckpt_dir))
    for name, m in (extra_models or {}).items():
        load_weights(m, [os.path.join(ckpt_dir, f"{name}.safetensors")])
    if optimizer is not None:
        osd = torch.load(os.path.join(ckpt_dir, "optimizer.pt"), map_location="cpu", weights_only=False)
        set_optimizer_state_dict(model, optimizer, osd, options=options)
    return read_meta(ckpt_dir)


# -----------------------------------------------------------------------------
# opening a model

def resolve_model_dir(path):
    """A model directory: an HF directory (has config.json), or a training out_dir, in which case
    its latest complete checkpoint."""
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(f"'{path}' is neither a model directory (no config.json) nor a training out_dir "
                                f"with a checkpoint; "
                                f"train one first or pass a downloaded Hugging Face directory.")
    return ckpt


TINY_DIRS = ("out/sft_tiny", "out/pretrain_tiny")


def pick_model_dir(path):
    """out_dir as given, except that the default falls back to the other tiny model."""
    if path != TINY_DIRS[0]:
        return path
    for d in TINY_DIRS:
        if os.path.isfile(os.path.join(d, "config.json")) or latest_checkpoint(d):
            return d
    raise FileNotFoundError("no tiny model in out/sft_tiny or out/pretrain_tiny; train it with "
                            "`python train_pretrain.py config/pretrain_tiny.py` or pass "
                            "--out_dir=<checkpoint or HF directory>")


def load_model(path, device, dtype_str="bfloat16"):
    """(model, tokenizer, model_dir, meta) from a training out_dir or an HF directory, checking that
    the tokenizer beside the weights is the one the model was trained with."""
    model_dir = resolve_model_dir(path)
    tok = Tokenizer.from_pretrained(model_dir)
    meta_file = os.path.join(model_dir, "meta.json")
    meta = load_json(meta_file) if os.path.isfile(meta_file) else {}
    if meta.get("tokenizer_identity", tok.identity) != tok.identity:
        raise ValueError(f"checkpoint {model_dir} was trained with tokenizer {meta['tokenizer_identity']} but its "
                         f"directory holds tokenizer {tok.identity}; copy the training tokenizer files next to the "
                         f"weights")
    dtype = torch.float32 if dtype_str == "float32" else None
    model = load_pretrained(model_dir, device=device, dtype=dtype)
    cfg_mask = model.config.mask_token_id
    if (cfg_mask is not None and cfg_mask != tok.mask_token_id) or tok.vocab_size > model.config.vocab_size:
        raise ValueError(f"the tokenizer in {model_dir} does not match the model (mask id {tok.mask_token_id} vs "
                         f"config {cfg_mask}, vocab {tok.vocab_size} vs {model.config.vocab_size} rows); use the "
                         f"tokenizer the model was trained with")
    return model, tok, model_dir, meta
