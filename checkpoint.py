"""
Model directories: opening one for decoding or evaluation, with the checks that its tokenizer is the
one the model was trained with.
"""

import json
import os

import torch

from common import latest_checkpoint, resolve_model_dir
from model import Transformer
from tokenizer import Tokenizer

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
    meta = {}
    if os.path.isfile(meta_file):
        with open(meta_file) as f:
            meta = json.load(f)
    if meta.get("tokenizer_identity", tok.identity) != tok.identity:
        raise ValueError(f"checkpoint {model_dir} was trained with tokenizer {meta['tokenizer_identity']} but its "
                         f"directory holds tokenizer {tok.identity}; copy the training tokenizer files next to the "
                         f"weights")
    dtype = torch.float32 if dtype_str == "float32" else None
    model = Transformer.from_pretrained(model_dir, device=device, dtype=dtype)
    cfg_mask = model.config.mask_token_id
    if (cfg_mask is not None and cfg_mask != tok.mask_token_id) or tok.vocab_size > model.config.vocab_size:
        raise ValueError(f"the tokenizer in {model_dir} does not match the model (mask id {tok.mask_token_id} vs "
                         f"config {cfg_mask}, vocab {tok.vocab_size} vs {model.config.vocab_size} rows); use the "
                         f"tokenizer the model was trained with")
    return model, tok, model_dir, meta
