"""
The reference of bench.speed's `reference` workload: transformers' Qwen2ForCausalLM holding our weights,
run bidirectionally, behind our forward's signature so that sample.diffusion_generate drives it.
"""

import os
import tempfile

import torch

from checkpoint import config_to_hf, save_pretrained

REFERENCE_WEIGHTS_VIA_DISK = 2e9  # below this many parameters the reference loads a save_pretrained copy



def hf_reference_model(model, model_dir=None):
    """transformers' Qwen2ForCausalLM holding the same weights as `model`, on its device and dtype, made
    bidirectional. A model of up to REFERENCE_WEIGHTS_VIA_DISK parameters goes through save_pretrained
    and transformers' from_pretrained (or loads `model_dir`, a checkpoint it came from); a larger one is
    built by transformers and given our state dict in memory (15 GB through the disk would take longer
    than the benchmark)."""
    import transformers  # slow to import, and only this workload needs it
    p = next(model.parameters())
    kw = dict(dtype=p.dtype, attn_implementation="sdpa")
    if model_dir is not None or model.num_params() <= REFERENCE_WEIGHTS_VIA_DISK:
        with tempfile.TemporaryDirectory() as tmp:
            if model_dir is None:
                model_dir = os.path.join(tmp, "model")
                save_pretrained(model, model_dir)
            hf = transformers.Qwen2ForCausalLM.from_pretrained(model_dir, **kw).to(p.device)
    else:
        hf_config = transformers.Qwen2Config.from_dict(config_to_hf(model.config, p.dtype))
        with torch.device(p.device):
            hf = transformers.Qwen2ForCausalLM._from_config(hf_config, **kw)
        hf.load_state_dict(model.state_dict())
    # Bidirectional: SDPA's is_causal flag comes from each attention module, and with no padding
    # transformers builds no mask at all (it leaves causality to that flag). Checked by `check_bidirectional`.
    for m in hf.modules():
        if hasattr(m, "is_causal"):
            m.is_causal = False
    return hf.eval()


def hf_forward(hf):
    """x (B, T) -> raw logits (B, T, V) of the full sequence (no padding, no KV cache)."""
    return lambda x: hf(input_ids=x, use_cache=False).logits


@torch.no_grad()
def check_bidirectional(forward, x):
    """Raise unless changing the last token changes the first row's logits (a causal model cannot)."""
    y = x.clone()
    y[:, -1] = (y[:, -1] + 1) % 7
    if torch.equal(forward(x)[:, 0], forward(y)[:, 0]):
        raise RuntimeError("transformers' Qwen2 still attends causally; this transformers version needs another way "
                           "to run it bidirectionally")


class ReferenceModel(torch.nn.Module):
    """transformers' model behind our forward's signature, so that `sample.diffusion_generate` drives it.
    Like Dream's code it computes the LM head on every row, then keeps the asked ones (no padding)."""

    def __init__(self, hf, config):
        super().__init__()
        self.hf, self.config = hf, config

    def forward(self, idx, attention_mask=None, output_rows=None):
        if attention_mask is not None:
            raise ValueError("the reference runs unpadded prompts only")
        logits = self.hf(input_ids=idx, use_cache=False).logits  # (B, T, V)
        return logits if output_rows is None else logits[output_rows]
