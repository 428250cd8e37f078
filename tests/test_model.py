"""
Model tests: logits parity with transformers' Qwen2 run bidirectionally, the HF checkpoint format
(both config layouts, Dream's architecture name, shards, bit-exact round trips), non-causality,
padding invariance, and clear errors for damaged or mismatched checkpoints.

Run: .venv/bin/python -m pytest tests/test_model.py
"""

import json
import os
import shutil

import pytest
import torch
import torch.nn.functional as F
import transformers  # the reference (pinned in requirements.txt)

import model as model_module
from checkpoint import load_pretrained, save_pretrained, write_hf_checkpoint
from decoders import KVCache
from model import (ModelConfig, Transformer, padding_attention_mask, padding_position_ids, predictor_rows,
                   shift_logits)


CFG = dict(vocab_size=96, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, intermediate_size=128, max_seq_len=64,
           rope_theta=10000.0)


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(**{**CFG, **kw})).eval()
    with torch.no_grad():  # non-trivial norms and biases, so parity tests see every parameter
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("layernorm.weight") or name.endswith(".bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def hf_logits(hf_model, idx, attention_mask=None):
    """transformers' Qwen2 run bidirectionally: a 4D additive mask that lets every real token attend to every real
    token."""
    B, T = idx.shape
    m = torch.ones(B, T, dtype=torch.long) if attention_mask is None else attention_mask
    allowed = m[:, None, :, None].bool() & m[:, None, None, :].bool()
    bias = torch.zeros(B, 1, T, T).masked_fill(~allowed, torch.finfo(torch.float32).min)
    pos = (m.cumsum(-1) - 1).masked_fill(m == 0, 1)
    with torch.no_grad():
        return hf_model(idx, attention_mask=bias, position_ids=pos).logits


def left_padded_batch():
    idx = torch.randint(0, CFG["vocab_size"], (3, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, :4] = 0
    mask[2, :7] = 0
    return idx.masked_fill(mask == 0, 0), mask


def test_parity_with_transformers_checkpoint(tmp_path):
    """A random Qwen2 saved by transformers loads in ours and gives the same logits (plain and left-padded)."""
    torch.manual_seed(0)
    hf_cfg = transformers.Qwen2Config(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      rope_theta=10000.0, tie_word_embeddings=False)
    hf = transformers.Qwen2ForCausalLM(hf_cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.05)
    hf.save_pretrained(tmp_path)
    ours = load_pretrained(tmp_path)
    idx = torch.randint(0, 96, (2, 16))
    with torch.no_grad():
        assert (ours(idx) - hf_logits(hf, idx)).abs().max() <= 1e-4
        idx, mask = left_padded_batch()
        diff = (ours(idx, attention_mask=mask) - hf_logits(hf, idx, mask))[mask.bool()]
        assert diff.abs().max() <= 1e-4


def test_our_save_loads_in_transformers(tmp_path):
    ours = tiny_model()
    save_pretrained(ours, tmp_path)
    hf = transformers.Qwen2ForCausalLM.from_pretrained(tmp_path).eval()
    idx, mask = left_padded_batch()
    with torch.no_grad():
        assert (ours(idx) - hf_logits(hf, idx)).abs().max() <= 1e-4
        assert (ours(idx, attention_mask=mask) - hf_logits(hf, idx, mask))[mask.bool()].abs().max() <= 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    model = tiny_model().to(dtype)
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path)
    assert loaded.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype == dtype and torch.equal(a, b), k


def test_sharded_checkpoint_and_both_config_layouts(tmp_path):
    """Sharded weights with an index; rope_theta at the top level (transformers 4.x) or in
    rope_parameters (5.x); Dream's architecture name."""
    model = tiny_model()
    write_hf_checkpoint(model.state_dict(), model.config, str(tmp_path), max_shard_bytes=20_000)
    assert os.path.isfile(tmp_path / "model.safetensors.index.json")
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".safetensors")]) > 2
    hf = json.loads((tmp_path / "config.json").read_text())
    idx = torch.randint(0, 96, (1, 10))
    ref = model(idx)
    for variant in ("4.x", "5.x"):
        cfg = dict(hf, architectures=["DreamModel"], model_type="Dream")
        if variant == "4.x":
            cfg.pop("rope_parameters")
        else:
            cfg.pop("rope_theta")
        (tmp_path / "config.json").write_text(json.dumps(cfg))
        loaded = load_pretrained(tmp_path)
        assert loaded.config.rope_theta == 10000.0
        assert torch.equal(loaded(idx), ref)


def test_tied_embeddings_load(tmp_path):
    """Small Qwen2.5 models tie the LM head to the embedding and store no lm_head.weight."""
    model = tiny_model(tie_word_embeddings=True)
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    idx = torch.randint(0, 96, (1, 8))
    assert torch.equal(loaded(idx), model(idx))


@pytest.mark.parametrize("tied", [False, True])
def test_resize_token_embeddings_keeps_old_rows_and_adds_mean_rows(tmp_path, tied):
    model = tiny_model(tie_word_embeddings=tied)
    emb, head = model.model.embed_tokens.weight.clone(), model.lm_head.weight.clone()
    idx = torch.randint(0, 96, (2, 10))
    with torch.no_grad():
        before = model(idx)
        model.resize_token_embeddings(128)
        after = model(idx)
    assert model.config.vocab_size == 128 and model.model.embed_tokens.weight.shape == (128, 64)
    assert torch.allclose(after[..., :96], before, atol=1e-6)  # old tokens: same logits
    assert torch.equal(model.model.embed_tokens.weight[:96], emb)
    assert torch.allclose(model.model.embed_tokens.weight[96:], emb.mean(0).expand(32, -1))
    assert torch.allclose(model.lm_head.weight[96:], head.mean(0).expand(32, -1))
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    save_pretrained(model, tmp_path)  # the config says 128 rows
    assert load_pretrained(tmp_path).config.vocab_size == 128
    with pytest.raises(ValueError, match="only grows"):
        model.resize_token_embeddings(100)


def test_load_uses_checkpoint_dtype_and_meta_init(tmp_path, monkeypatch):
    """No fp32 copy of a bf16 checkpoint: parameters come out bf16 and random init never runs."""
    save_pretrained(tiny_model().to(torch.bfloat16), tmp_path)
    monkeypatch.setattr(Transformer, "_init_weights", lambda self, m: pytest.fail("random init ran during load"))
    loaded = load_pretrained(tmp_path)
    assert all(p.dtype == torch.bfloat16 and p.device.type == "cpu" for p in loaded.parameters())
    assert load_pretrained(tmp_path, dtype=torch.float32).lm_head.weight.dtype == torch.float32


def test_attention_is_bidirectional():
    model = tiny_model()
    idx = torch.randint(0, 96, (1, 10))
    idx2 = idx.clone()
    idx2[0, -1] = (idx[0, -1] + 1) % 96
    with torch.no_grad():
        a, b = model(idx), model(idx2)
    assert (a[0, :-1] - b[0, :-1]).abs().max() > 1e-4  # earlier positions see the last token


def test_padding_invariance():
    """Each row of a left-padded batch gives, on its real tokens, the logits of the row alone."""
    model = tiny_model()
    idx, mask = left_padded_batch()
    with torch.no_grad():
        batch = model(idx, attention_mask=mask)
        for b in range(idx.size(0)):
            real = mask[b].bool()
            alone = model(idx[b][real][None])
            assert (batch[b][real] - alone[0]).abs().max() <= 1e-5
    assert torch.isfinite(batch).all()  # padding rows stay finite too


def test_shift_logits():
    logits = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    shifted = shift_logits(logits)
    assert torch.equal(shifted[:, 1:], logits[:, :-1])  # row i <- the prediction made at i-1
    assert torch.equal(shifted[:, 0], logits[:, 0])


def test_output_rows_select_the_shifted_predictions():
    model = tiny_model()
    idx = torch.randint(0, 96, (2, 10))
    positions = torch.rand(2, 10) < 0.5
    positions[:, 0] = False
    with torch.no_grad():
        full, rows = model(idx), model(idx, output_rows=predictor_rows(positions))
    assert rows.shape == (int(positions.sum()), 96)
    assert torch.allclose(rows, shift_logits(full)[positions], atol=1e-6)  # same predictions, same order


def test_output_rows_as_indices_equal_the_bool_mask():
    model = tiny_model()
    idx = torch.randint(0, 96, (2, 10))
    positions = torch.rand(2, 10) < 0.5
    with torch.no_grad():
        assert torch.equal(model(idx, output_rows=positions), model(idx, output_rows=positions.nonzero(as_tuple=True)))


@pytest.mark.parametrize("padded", [False, True])
def test_kv_cache_rows_equal_the_full_forward(padded):
    """Fill the cache with a full forward, then recompute rows start:end only (prefix: to the end, dual: a
    window): the same sequence gives the full forward's logits on those rows; the cached rows are used."""
    model = tiny_model()
    idx, mask = left_padded_batch()
    if not padded:
        mask = torch.ones_like(mask)
    pos = padding_position_ids(mask)
    mask4 = padding_attention_mask(mask)  # (B, 1, T, T)
    with torch.no_grad():
        full = model(idx, mask4, pos)
        for start, end in [(7, 12), (7, 10), (8, 9)]:
            cache = KVCache()
            assert torch.equal(model(idx, mask4, pos, kv_cache=cache), full)  # filling changes nothing
            cache.start, cache.end = start, end
            rows = model(idx[:, start:end], mask4[:, :, start:end], pos[:, start:end], kv_cache=cache)
            assert (rows - full[:, start:end]).abs().max() <= 1e-5
            other = idx.clone()
            other[:, :start] = (other[:, :start] + 1) % 96  # the cached rows, not these tokens, are attended to
            assert torch.equal(model(other[:, start:end], mask4[:, :, start:end], pos[:, start:end], kv_cache=cache),
                               rows)
        if not padded:  # without a mask or position ids, the rows take positions start:end
            cache.start, cache.end = 7, 12
            assert (model(idx[:, 7:12], kv_cache=cache) - full[:, 7:12]).abs().max() <= 1e-5
        with pytest.raises(ValueError, match="with a filled kv_cache"):
            model(idx[:, 7:12], mask[:, 7:12], kv_cache=cache)


def test_activation_checkpointing_same_gradients():
    model = tiny_model().train()
    idx = torch.randint(0, 96, (2, 10))
    model(idx).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing = True
    model(idx).sum().backward()
    for g, p in zip(grads, model.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)


def test_shape_mismatch_names_the_key(tmp_path):
    save_pretrained(tiny_model(), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["intermediate_size"] = 256
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"shape mismatch for 'model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight'"):
        load_pretrained(tmp_path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    save_pretrained(tiny_model(), tmp_path)
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_pretrained(tmp_path)
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_pretrained(tmp_path)


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_pretrained(tmp_path)
    save_pretrained(tiny_model(), tmp_path)
    os.remove(tmp_path / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="missing weight file"):
        load_pretrained(tmp_path)


def test_unsupported_architecture(tmp_path):
    save_pretrained(tiny_model(), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["architectures"] = ["LlamaForCausalLM"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unsupported architecture 'LlamaForCausalLM'"):
        load_pretrained(tmp_path)


def test_lm_head_rows_are_bucketed_and_the_logits_unchanged(monkeypatch):
    """The masked-rows forward runs the LM head on N rounded up to one of 2^ROW_BUCKET_BITS sizes per doubling
    (few distinct shapes: host memory stays flat in bf16 on CPU) and returns exactly the N requested rows, equal
    to the unbucketed ones."""
    assert [model_module.bucketed_rows(n) for n in (1, 7, 15, 16, 17, 39, 2048, 2049, 4095)] == \
        [1, 7, 15, 16, 18, 40, 2048, 2304, 4096]
    sizes = {model_module.bucketed_rows(n) for n in range(1025, 2049)}  # 1,152 ... 2,048
    assert len(sizes) == 8 and all(0 <= model_module.bucketed_rows(n) - n <= n / 8 for n in range(1, 5000))
    model = tiny_model()
    idx = torch.randint(0, 96, (3, 20), generator=torch.Generator().manual_seed(2))
    positions = torch.zeros(3, 20, dtype=torch.bool)
    positions[:, 5:18] = True  # 39 rows
    seen = []
    model.lm_head.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    monkeypatch.setattr(model_module, "ROW_BUCKET_BITS", 1)  # 2 sizes per doubling: 39 -> 48
    with torch.no_grad():
        bucketed = model(idx, output_rows=predictor_rows(positions))
        monkeypatch.setattr(model_module, "ROW_BUCKET_BITS", None)
        plain = model(idx, output_rows=predictor_rows(positions))
    assert seen == [48, 39]
    assert bucketed.shape == plain.shape == (39, 96)
    assert torch.allclose(bucketed, plain, atol=1e-6)


def test_plain_attention_equals_sdpa_in_values_and_gradients():
    """plain_attention (the path of compiled CPU training: fp32 softmax, query heads folded per k/v head) equals
    PyTorch's SDPA with grouped-query heads, with and without a padding mask, in its output and its gradients."""
    g = torch.Generator().manual_seed(0)
    B, H, Hkv, T, D = 2, 4, 2, 7, 8
    q0, k0, v0 = (torch.randn(B, h, T, D, generator=g) for h in (H, Hkv, Hkv))
    mask = model_module.padding_attention_mask(torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1] * 7]))
    for m in (None, mask):
        q, k, v = (t.clone().requires_grad_() for t in (q0, k0, v0))
        plain = model_module.plain_attention(q, k, v, m)
        plain.square().sum().backward()
        q2, k2, v2 = (t.clone().requires_grad_() for t in (q0, k0, v0))
        ref = F.scaled_dot_product_attention(q2, k2.repeat_interleave(H // Hkv, 1), v2.repeat_interleave(H // Hkv, 1),
                                             attn_mask=m)
        ref.square().sum().backward()
        assert torch.allclose(plain, ref, atol=1e-6)
        for a, b in ((q, q2), (k, k2), (v, v2)):
            assert torch.allclose(a.grad, b.grad, atol=1e-5)
        assert torch.allclose(model_module.attention(q0, k0, v0, m), ref, atol=1e-6)  # eager: SDPA, same values


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_blocks_train_like_the_eager_model():
    """compile_blocks keeps the state-dict keys, and a compiled training forward + backward (on CPU: the
    plain-matmul attention, with a padding mask) gives the eager model's loss and gradients."""
    cfg = ModelConfig(vocab_size=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, intermediate_size=64,
                      max_seq_len=16, rope_theta=10000.0)
    torch.manual_seed(0)
    eager = Transformer(cfg)
    with torch.no_grad():
        for p in eager.parameters():
            p.normal_(0.0, 0.3)  # peaked attention, so that a wrong softmax or mask shows
    compiled = Transformer(cfg)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_blocks()
    assert list(compiled.state_dict()) == list(eager.state_dict())
    idx = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))
    attn = torch.ones(2, 12, dtype=torch.long)
    attn[0, :3] = 0  # left padding
    losses = []
    for m in (eager, compiled):
        loss = m(idx, attention_mask=attn).logsumexp(-1).mean()
        loss.backward()
        losses.append(loss)
    assert torch.allclose(losses[0], losses[1], atol=1e-5)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name
