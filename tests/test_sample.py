"""
Tests for sample.py: parity of diffusion_generate with a naive reference loop written from the
algorithm's definition (every alg, top-p/top-k, the steps == max_new_tokens quirk, block decoding),
batch/left-padding invariance, seeded determinism, the mask token never sampled, the decoding history,
clear one-line errors, the CLI end to end on a tiny saved model, and the AR baseline's decoder.
The approximate decoders are in test_decoders.py, AR-ness in test_order.py.

Hermetic (tiny random models, a tokenizer trained in the test, files in tmp_path).
Run: .venv/bin/python -m pytest tests/test_sample.py
"""

import json
import math
import os
import random
import subprocess
import sys

import pytest
import torch

from checkpoint import load_model, load_pretrained, save_pretrained
from common import left_pad
from decoders import fast_generate, generate
from model import ModelConfig, Transformer
import sample
from sample import ALGS, commit_schedule, diffusion_generate, filter_logits, main, sample_tokens

V, MASK = 64, 63
CFG = dict(vocab_size=V, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, intermediate_size=64, max_seq_len=48,
           rope_theta=10000.0, mask_token_id=MASK)


@pytest.fixture(scope="module")
def model():
    """A random model whose next-token distributions are peaked but not saturated (max prob ~0.1-0.7),
    so confidences of different positions are far apart compared to float rounding."""
    torch.manual_seed(0)
    m = Transformer(ModelConfig(**CFG)).eval()
    with torch.no_grad():
        m.lm_head.weight.mul_(20.0)
    return m


def prompts(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, MASK, (n,), generator=g) for n in lengths]


# -----------------------------------------------------------------------------
# the reference: one row, one step, one position at a time, straight from the definition

def ref_distribution(row_logits, temperature, top_p, top_k):
    """Filtered next-token probabilities of one position, as a list of python floats."""
    logits = [(-math.inf if v == MASK else float(row_logits[v])) for v in range(V)]
    if temperature > 0:
        logits = [z / temperature for z in logits]

    def softmax(z):
        m = max(z)
        e = [math.exp(a - m) for a in z]
        return [a / sum(e) for a in e]
    if top_p is not None:
        p, kept, mass = softmax(logits), set(), 0.0
        for v in sorted(range(V), key=lambda v: -p[v]):
            if kept and mass > top_p:  # the nucleus: stop once the kept mass exceeds top_p
                break
            kept.add(v)
            mass += p[v]
        logits = [z if v in kept else -math.inf for v, z in enumerate(logits)]
    if top_k is not None:
        kth = sorted(logits, reverse=True)[top_k - 1]
        logits = [z if z >= kth else -math.inf for z in logits]
    return softmax(logits)


def ref_confidence(p, alg):
    ranked = sorted(p, reverse=True)
    if alg == "topk_margin":
        return ranked[0] - ranked[1]
    if alg == "entropy":
        return sum(q * math.log(q + 1e-10) for q in p)
    return ranked[0]


def reference_generate(model, prompts, n_new, steps, alg, top_p=None, top_k=None, block=None, eps=1e-3, origin_seed=0,
                       threshold=None):
    """Temperature-0 decoding of a left-padded batch of prompts (the model's own (B, T) padding-mask path).
    Returns, per prompt, (generated ids, commit step of each position)."""
    B, P, block = len(prompts), max(len(p) for p in prompts), block or n_new
    xs = [[0] * (P - len(p)) + p.tolist() + [MASK] * n_new for p in prompts]
    pad = torch.tensor([[0] * (P - len(p)) + [1] * (len(p) + n_new) for p in prompts])
    when = [[None] * n_new for _ in prompts]
    per_block = steps // (n_new // block)
    ts = [1 + (eps - 1) * i / per_block for i in range(per_block + 1)]  # linspace(1, eps, per_block + 1)
    g = torch.Generator().manual_seed(origin_seed)  # 'origin' needs the sampler's uniforms to be comparable
    step = 0  # threshold decoding moves to the next block as soon as the block is done
    for lo in range(0, n_new, block):
        for i in range(per_block):
            masked = [[j for j in range(lo, lo + block) if x[P + j] == MASK] for x in xs]
            if not any(masked):
                if threshold is not None:
                    break
                step += 1
                continue
            with torch.no_grad():
                # (B, T, V): row r predicts token r + 1
                raw = model(torch.tensor(xs), attention_mask=None if pad.all() else pad)
            t, s, last = ts[i], ts[i + 1], i == per_block - 1
            u = torch.rand((B, n_new), generator=g) if alg == "origin" else None
            n_masked = sum(len(m) for m in masked) / B
            for b in range(B):
                best = {}
                for j in masked[b]:
                    p = ref_distribution(raw[b, P + j - 1], 0.0, top_p, top_k)
                    v = max(range(V), key=lambda v: p[v])
                    best[j] = (v, ref_confidence(p, alg), p[v])
                ranked = sorted(masked[b], key=lambda j: -best[j][1])
                if threshold is not None:  # above the threshold, and at least the most confident one
                    chosen = [j for j in ranked if last or best[j][2] > threshold or j == ranked[0]]
                elif alg == "origin":
                    chosen = [j for j in masked[b] if last or u[b, j] < 1 - s / t]
                else:
                    chosen = ranked[:len(masked[b]) if last else int(n_masked * (1 - s / t))]
                for j in chosen:
                    xs[b][P + j], when[b][j] = best[j][0], step
            step += 1
    return [(x[P:], w) for x, w in zip(xs, when)]


CASES = [  # (alg, n_new, steps, top_p, top_k, block)
    *[(alg, 10, 10, None, None, None) for alg in ALGS],  # one token per step: the schedule quirk
    *[(alg, 12, 5, 0.9, None, None) for alg in ALGS],
    ("entropy", 12, 6, 0.8, 7, None),
    ("maskgit_plus", 12, 4, None, 5, None),
    ("entropy", 12, 6, 0.95, None, 4),  # 3 blocks of 4, 2 steps each
]


@pytest.mark.parametrize("alg,n_new,steps,top_p,top_k,block,nucleus_k",  # top-p by a full sort, and by a partial one
                         [c + (256,) for c in CASES] + [c + (4,) for c in CASES if c[3] is not None])
def test_matches_reference_loop(model, alg, n_new, steps, top_p, top_k, block, nucleus_k, monkeypatch):
    monkeypatch.setattr(sample, "NUCLEUS_K", nucleus_k)
    for prompt in prompts([5, 9], seed=n_new + steps):
        [(want, want_steps)] = reference_generate(model, [prompt], n_new, steps, alg, top_p, top_k, block)
        out, hist = generate(model, prompt[None], max_new_tokens=n_new, steps=steps, alg=alg, top_p=top_p,
                             top_k=top_k, mask_token_id=MASK, block_length=block, return_history=True,
                             generator=torch.Generator().manual_seed(0))
        assert out[0, :len(prompt)].tolist() == prompt.tolist()
        assert out[0, len(prompt):].tolist() == want
        assert hist.steps[0].tolist() == want_steps


def left_padded(ps):
    return left_pad([p.tolist() for p in ps], 0, "cpu")


PADDED_CASES = [  # (alg, n_new, steps, top_p, block): steps == block_length commits 0 tokens at each block's first step
    *[(alg, 12, 12, None, 4) for alg in ALGS],
    *[(alg, 12, 6, 0.9, None) for alg in ALGS],
]


@pytest.mark.parametrize("alg,n_new,steps,top_p,block", PADDED_CASES)
def test_left_padded_batch_matches_reference_loop(model, alg, n_new, steps, top_p, block):
    """The host-side schedule, index bookkeeping, precomputed mask/RoPE and skipped no-commit forwards
    give the reference's tokens and steps, with and without the history."""
    ps = prompts([3, 7, 5], seed=11)
    ids, mask = left_padded(ps)
    want = reference_generate(model, ps, n_new, steps, alg, top_p, block=block)
    kw = dict(max_new_tokens=n_new, steps=steps, alg=alg, top_p=top_p, block_length=block, mask_token_id=MASK)
    out = generate(model, ids, mask, generator=torch.Generator().manual_seed(0), **kw)
    out_h, hist = generate(model, ids, mask, generator=torch.Generator().manual_seed(0), return_history=True, **kw)
    assert torch.equal(out, out_h) and torch.equal(out[:, :ids.size(1)], ids)
    for b, (tokens, when) in enumerate(want):
        assert out[b, ids.size(1):].tolist() == tokens
        assert hist.steps[b].tolist() == when


@pytest.mark.parametrize("alg,alg_temp",
                         [("entropy", 0.0), ("maskgit_plus", 0.5), ("topk_margin", 0.0), ("origin", 0.0)])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_fast_decoder_without_approximations_is_the_exact_decoder(model, alg, alg_temp, temperature):
    """fast_generate with one block and no cache or threshold = diffusion_generate: same tokens, same history,
    same random draws (a planted bug in the shared pieces or in fast_generate's bookkeeping, e.g. an
    off-by-one in the predictor rows or the commit count of a block, breaks it)."""
    ids, mask = left_padded(prompts([3, 7, 5], seed=18))
    kw = dict(max_new_tokens=12, steps=6, alg=alg, alg_temp=alg_temp, temperature=temperature, top_p=0.9,
              mask_token_id=MASK, return_history=True)
    want, h = diffusion_generate(model, ids, mask, generator=torch.Generator().manual_seed(3), **kw)
    for block in (None, 12):
        got, g = fast_generate(model, ids, mask, block_length=block, generator=torch.Generator().manual_seed(3), **kw)
        assert torch.equal(got, want) and torch.equal(g.steps, h.steps) and torch.equal(g.confidence, h.confidence)
        assert torch.equal(g.first_confidence.isnan(), h.first_confidence.isnan())



@pytest.mark.parametrize("nucleus_k", [1, 4, 10, 64])
@pytest.mark.parametrize("scale", [8.0, 0.5])  # peaked rows (small nuclei: the partial sort), flat rows (fallback)
def test_top_p_partial_sort_equals_full_sort(nucleus_k, scale, monkeypatch):
    logits = torch.randn(200, 64, generator=torch.Generator().manual_seed(0)) * scale
    full = filter_logits(logits, 0.7, 0.9, None)
    if scale > 1 and nucleus_k >= 4:
        assert (~full.isinf()).sum(-1).max() <= nucleus_k  # every nucleus fits: the partial path is taken
    monkeypatch.setattr(sample, "NUCLEUS_K", nucleus_k)
    assert torch.equal(filter_logits(logits, 0.7, 0.9, None).isinf(), full.isinf())


def test_sampling_follows_the_filtered_distribution():
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -math.inf, 1.5, -3.0]).repeat(40000, 1)  # (M, 8)
    g = torch.Generator().manual_seed(0)
    x0, conf, p_x0 = sample_tokens(logits, "maskgit_plus", temperature=1.0, top_k=5, generator=g)
    want = filter_logits(logits[:1], 1.0, None, 5).softmax(-1)[0]  # tokens 4, 5 and 7 removed
    freq = torch.bincount(x0, minlength=8) / len(x0)
    assert (freq[want == 0] == 0).all()
    assert (freq - want).abs().max() < 0.01
    assert torch.equal(conf, want[x0]) and torch.equal(p_x0, conf)  # maskgit_plus: the probability of the drawn token


def test_schedule_quirk_and_hand_worked_schedule():
    assert commit_schedule(8, 8) == [0, 1, 1, 1, 1, 1, 1, 2]  # steps == max_new_tokens: 0 first, 2 last
    # ts = 1, .75025, .5005, .25075, .001: int(8*.24975)=1, int(7*.33289)=2, int(5*.499)=2, then the 3 left
    assert commit_schedule(8, 4) == [1, 2, 2, 3]
    assert commit_schedule(5, 1) == [5]


# -----------------------------------------------------------------------------
# batches, padding, randomness, the mask token

@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy"])
def test_left_padded_batch_equals_each_prompt_alone(model, alg):
    ps = prompts([3, 7, 11], seed=1)
    ids, mask = left_padded(ps)
    T = ids.size(1)
    kw = dict(max_new_tokens=12, steps=6, alg=alg, top_p=0.95, mask_token_id=MASK)
    batch = diffusion_generate(model, ids, mask, **kw)[:, T:]
    for b, p in enumerate(ps):
        assert batch[b].tolist() == diffusion_generate(model, p[None], **kw)[0, len(p):].tolist()


@pytest.mark.parametrize("alg,alg_temp", [("entropy", 0.0), ("maskgit_plus", 0.5), ("entropy", 1e-4), ("origin", 0.0)])
def test_seeded_generator_is_deterministic_and_temperature_matters(model, alg, alg_temp):
    ids = torch.stack(prompts([6, 6], seed=2))
    kw = dict(max_new_tokens=16, steps=8, alg=alg, alg_temp=alg_temp, top_p=0.95, mask_token_id=MASK)

    def run(temperature, seed):
        return diffusion_generate(model, ids, temperature=temperature, generator=torch.Generator().manual_seed(seed),
                                  **kw)
    a, b, c = run(1.0, 7), run(1.0, 7), run(1.0, 8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, run(0.0, 7))


class MaskLover(torch.nn.Module):
    """A model whose favourite prediction is the mask token everywhere."""
    def __init__(self, inner):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, idx, *args, **kwargs):
        logits = self.inner(idx, *args, **kwargs)
        logits[..., MASK] += 100.0
        return logits


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_mask_token_is_never_sampled(model, alg, temperature):
    m = MaskLover(model)
    ids = torch.stack(prompts([5, 5], seed=3))
    assert (m(ids).argmax(-1) == MASK).all()  # without the -inf, masks would come out
    out = diffusion_generate(m, ids, max_new_tokens=10, steps=5, alg=alg, temperature=temperature, top_k=3,
                             mask_token_id=MASK, generator=torch.Generator().manual_seed(0))
    assert not (out[:, 5:] == MASK).any()


# -----------------------------------------------------------------------------
# history

@pytest.mark.parametrize("n_new,steps", [(12, 12), (12, 5), (16, 3)])
def test_history_is_consistent_with_the_schedule(model, n_new, steps):
    ids = torch.stack(prompts([4, 4, 4], seed=4))
    _, h = diffusion_generate(model, ids, max_new_tokens=n_new, steps=steps, alg="entropy", temperature=0.5, top_p=0.95,
                              mask_token_id=MASK, return_history=True, generator=torch.Generator().manual_seed(0))
    expected = [s for s, k in enumerate(commit_schedule(n_new, steps)) for _ in range(k)]
    for b in range(3):
        assert sorted(h.steps[b].tolist()) == expected
        assert h[b, 0] == h.steps[b, 0]  # history[b, j] is the step at which token j was committed
        assert sorted(h.order(b)) == list(range(n_new))
    assert torch.isfinite(h.first_confidence).all() and (h.first_confidence <= 0).all()  # negative entropies
    assert (h.confidence <= 0).all()
    if n_new == steps:  # the quirk: nothing at step 0, two at the last step
        assert (h.steps != 0).all() and ((h.steps == steps - 1).sum(1) == 2).all()


# -----------------------------------------------------------------------------
# errors

@pytest.mark.parametrize("kw,needle", [
    (dict(max_new_tokens=40), "exceeds the model's context of 48"),
    (dict(steps=0), "steps must be between 1 and"),
    (dict(steps=13), "steps must be between 1 and"),
    (dict(alg="greedy"), "unknown alg 'greedy'"),
    (dict(block_length=5), "block_length 5 must divide"),
    (dict(cache="dual"), "set block_length too"),
    (dict(cache="full", block_length=4), "cache must be None, 'prefix' or 'dual'"),
    (dict(cache_refresh=2), "cache_refresh must be a positive int and needs cache="),
    (dict(threshold=0.0), "threshold must be in (0, 1]"),
    (dict(threshold=1.5), "threshold must be in (0, 1]"),
    (dict(threshold=0.9, alg="origin"), "not 'origin'"),
    (dict(threshold=0.9, alg_temp=0.5), "set alg_temp=0"),
    (dict(attention_mask=torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 1, 0]])), "left-padded"),
])
def test_bad_arguments_give_one_line_errors(model, kw, needle):
    args = {**dict(max_new_tokens=12, steps=6, alg="entropy", mask_token_id=MASK), **kw}
    with pytest.raises(ValueError) as e:
        generate(model, prompts([10])[0][None], **args)
    assert needle in str(e.value) and "\n" not in str(e.value)


def code_corpus(seed, n=300):
    rng = random.Random(seed)
    word = lambda: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 8)))  # noqa: E731
    return [f"def {word()}({word()}, {word()}):\n    return {word()} * {rng.randint(0, 99)} + {word()}\n"
            for _ in range(n)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny model and a trained tokenizer saved together, like a training checkpoint."""
    from tokenizer import Tokenizer
    tok = Tokenizer.train(iter(code_corpus(0)), vocab_size=300)
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    m = Transformer(ModelConfig(**{**CFG, "vocab_size": tok.vocab_size, "mask_token_id": tok.mask_token_id,
                                   "max_seq_len": 256}))
    save_pretrained(m, d)
    tok.save(d)
    (d / "meta.json").write_text(json.dumps({"tokenizer_identity": tok.identity, "config": {"mode": "pretrain"}}))
    return d, tok


def test_mismatched_tokenizer_is_a_one_line_error(saved, tmp_path):
    from tokenizer import Tokenizer
    d, tok = saved
    other = Tokenizer.train(iter(code_corpus(1)), vocab_size=290)  # other merges, other mask id
    bad = tmp_path / "bad"
    save_pretrained(load_pretrained(d), bad)
    other.save(bad)
    (bad / "meta.json").write_text((d / "meta.json").read_text())  # trained with `tok`, ships `other`
    with pytest.raises(ValueError, match="trained with tokenizer") as e:
        load_model(str(bad), "cpu")
    assert "\n" not in str(e.value)
    (bad / "meta.json").unlink()  # an HF-style dir without meta.json: the mask id check catches it
    with pytest.raises(ValueError, match="does not match the model"):
        load_model(str(bad), "cpu")
    r = subprocess.run([sys.executable, "sample.py", f"--out_dir={bad}"], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1


def test_missing_default_model_says_how_to_train(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="python train_pretrain.py config/pretrain_tiny.py"):
        main([])


# -----------------------------------------------------------------------------
# the CLI


def test_cli_samples_and_draws_the_order(saved, tmp_path, capsys, monkeypatch):
    d, tok = saved
    html_file = tmp_path / "order.html"
    main([f"--out_dir={d}", "--prompt=def f(x):", "--max_new_tokens=12", "--show_order=True", "--device=cpu",
          "--dtype=float32"])
    out = capsys.readouterr().out
    assert "\x1b[" not in out and any(set(line) <= set("0123456789") and line for line in out.splitlines())
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal gets colours
    main([f"--out_dir={d}", "--prompt=def f(x):", "--max_new_tokens=12", "--num_samples=2", "--show_order=True",
          f"--order_html={html_file}", "--device=cpu", "--dtype=float32", "--chat=True", "--temperature=0.5"])
    out = capsys.readouterr().out
    assert "sample 2/2" in out and "\x1b[1;38;2;" in out and "tok/s" in out
    assert html_file.read_text().count("<pre>") == 2
    main([f"--out_dir={d}", "--prompt=def f(x):", "--max_new_tokens=12", "--block_length=4", "--cache=dual",
          "--threshold=0.5", "--device=cpu", "--dtype=float32"])
    out = capsys.readouterr().out
    assert "in at most 12 steps" in out and "dual KV cache over blocks of 4" in out and "probability > 0.5" in out


def test_cli_reads_a_prompt_from_a_jsonl_file(saved, tmp_path, monkeypatch):
    """run.sh's `samples` stage: --prompt_file=<tasks .jsonl> --prompt_index=i decodes the question of record i."""
    d, tok = saved
    f = tmp_path / "tasks.jsonl"
    f.write_text("".join(json.dumps({"question": q, "tests": []}) + "\n" for q in ["def f(x):", "def g(y, z):"]))
    import decoders
    seen, real = [], decoders.generate  # the prompt ids the CLI decodes
    monkeypatch.setattr(decoders, "generate", lambda model, ids, *a, **k: seen.append(ids) or real(model, ids, *a, **k))
    main([f"--out_dir={d}", f"--prompt_file={f}", "--prompt_index=1", "--max_new_tokens=8", "--device=cpu",
          "--dtype=float32"])
    assert seen and tok.decode(seen[0][0].tolist()).endswith("def g(y, z):")
    with pytest.raises(ValueError, match="has 2 prompts"):
        main([f"--out_dir={d}", f"--prompt_file={f}", "--prompt_index=5", "--device=cpu"])


def test_cli_rejects_bad_fast_options_before_loading_a_model(tmp_path):
    with pytest.raises(ValueError, match="set block_length too"):
        main([f"--out_dir={tmp_path / 'nothing here'}", "--cache=prefix"])
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        main([f"--out_dir={tmp_path / 'nothing here'}", "--threshold=2.0"])


def test_cli_analyze_prints_the_ar_ness_table(saved, tmp_path, capsys):
    d, _ = saved
    f = tmp_path / "prompts.txt"
    f.write_text("def add(a, b):\nclass Foo:\nimport os\\nprint(\n")
    main([f"--out_dir={d}", "--analyze=True", f"--analyze_file={f}", "--max_new_tokens=8", "--analyze_batch=2",
          "--analyze_temperatures=[0.0, 1.0]", "--device=cpu", "--dtype=float32", "--heatmap_png="])
    out = capsys.readouterr().out
    assert "local@4" in out and "global@4" in out and "by distance from the prompt" in out
    rows = [line for line in out.splitlines() if line.split()[1:3] in (["0.00", "|"], ["1.00", "|"])]
    assert len(rows) == 4  # one AR-ness row and one entropy-sink row per temperature


@pytest.mark.parametrize("run,chat",
                         [({"mode": "pretrain"}, "off"), ({"mode": "sft"}, "on"), ({"estimator": "coupled"}, "on")])
def test_sft_and_grpo_checkpoints_get_the_chat_template(saved, tmp_path, capsys, run, chat):
    import shutil
    d, tok = saved
    ck = tmp_path / "ck"
    shutil.copytree(d, ck)
    (ck / "meta.json").write_text(json.dumps({"tokenizer_identity": tok.identity, "config": run}))
    main([f"--out_dir={ck}", "--prompt=def f(x):", "--max_new_tokens=4", "--device=cpu", "--dtype=float32"])
    assert f"chat template {chat}" in capsys.readouterr().out


# -----------------------------------------------------------------------------
# autoregressive decoding (the AR baseline)

def test_ar_generate_equals_a_plain_greedy_loop_with_left_padding(model):
    """ar_generate at temperature 0 = for each row alone, append argmax of the causal model's last row, n times;
    left padding in a batch changes nothing; stop ids end it early and fill the rest."""
    from diffusion import training_attention_mask
    ps = prompts([5, 9, 3], seed=3)
    ids, mask = left_padded(ps)
    out = sample.ar_generate(model, ids, mask, max_new_tokens=6)
    assert out.shape == (3, ids.size(1) + 6)
    for b, p in enumerate(ps):
        x = p[None]
        for _ in range(6):
            real = torch.ones_like(x, dtype=torch.bool)
            with torch.no_grad():
                logits = model(x, attention_mask=training_attention_mask("ar", real))[0, -1]
            x = torch.cat([x, logits.argmax()[None, None]], 1)
        assert out[b, ids.size(1):].tolist() == x[0, len(p):].tolist()
    stop = int(out[0, ids.size(1) + 1])  # row 0's second token
    early = sample.ar_generate(model, ids[:1], mask[:1], max_new_tokens=6, stop_ids=(stop,))
    assert early[0, ids.size(1):].tolist() == out[0, ids.size(1):ids.size(1) + 2].tolist() + [stop] * 4
