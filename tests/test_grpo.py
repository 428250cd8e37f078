"""
coupled-GRPO (train_grpo.py, estimators.py): the estimators' masks and formula, the loss, advantages, and the
whole loop: gradient accumulation and 2-process torchrun equal to one process, FSDP2, exact resume.

Run: .venv/bin/python -m pytest tests/test_grpo.py      (about two minutes on 2 CPU cores)
"""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import train_grpo
import train_pretrain
from checkpoint import load_pretrained, save_pretrained
from model import ModelConfig, Transformer
from estimators import estimator_masks, per_token_logps
from train_grpo import compute_advantages, completion_mask, grpo_loss

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASK = 7


# ---------------------------------------------------------------------------------------------
# estimators

def batch(B=3, P=5, C=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, 50, (B, P + C), generator=g), P


@pytest.mark.parametrize("num_pairs", [1, 3])
def test_coupled_masks_are_complementary(num_pairs):
    ids, P = batch()
    masked, coef = estimator_masks(ids, P, "coupled", num_pairs=num_pairs, generator=torch.Generator().manual_seed(1))
    assert masked.shape == (2 * num_pairs + 1, 3, ids.size(1))
    assert not masked[:, :, :P].any()  # prompt tokens never masked
    comp = masked[:, :, P:]
    for j in range(num_pairs):
        # each token masked exactly once per pair
        assert torch.equal(comp[2 * j] ^ comp[2 * j + 1], torch.ones_like(comp[0]))
    assert comp[-1].all()  # the full-mask pass
    assert torch.equal(coef != 0, comp)  # only masked tokens are scored
    # coefficients: 1/t and 1/(1-t) with t in [0.2, 0.8], full pass 1, all over (lambda + 1)
    w = coef[:-1] * (num_pairs + 1)
    assert ((w[comp[:-1]] >= 1 / 0.8 - 1e-6) & (w[comp[:-1]] <= 1 / 0.2 + 1e-6)).all()
    assert torch.allclose(coef[-1], torch.full_like(coef[-1], 1 / (num_pairs + 1)))


def test_other_estimators_masks():
    ids, P = batch(B=64)
    m, c = estimator_masks(ids, P, "full_mask")
    assert m.shape[0] == 1 and m[0, :, P:].all() and not m[0, :, :P].any() and (c == 1).all()
    prompt_mask = torch.ones_like(ids)
    prompt_mask[:, :2] = 0  # left padding is never masked
    m, c = estimator_masks(ids, P, "d1", p_mask_prompt=0.5, prompt_mask=prompt_mask,
                           generator=torch.Generator().manual_seed(0))
    assert m[0, :, P:].all() and not m[0, :, :2].any()
    assert 0.3 < m[0, :, 2:P].float().mean() < 0.7
    m, c = estimator_masks(ids, P, "decoupled", generator=torch.Generator().manual_seed(0))
    both = m[0, :, P:] & m[1, :, P:]
    assert both.any() and (~m[0, :, P:] & ~m[1, :, P:]).any()  # independent: some tokens twice, some never
    with pytest.raises(ValueError, match="estimator must be one of"):
        estimator_masks(ids, P, "nope")


def test_row_generators_make_masks_independent_of_the_batch():
    ids, P = batch(B=4)
    gens = lambda: [torch.Generator().manual_seed(100 + i) for i in range(4)]  # noqa: E731
    m_all, c_all = estimator_masks(ids, P, "coupled", generator=gens())
    m_two, c_two = estimator_masks(ids[2:], P, "coupled", generator=gens()[2:])
    assert torch.equal(m_all[:, 2:], m_two) and torch.equal(c_all[:, 2:], c_two)


class ToyModel(torch.nn.Module):
    """Logits that depend on the context through one number: a row predicting a token puts
    logit (1 + #unmasked tokens in its sequence) on the true token (read from a fixed clean copy)."""

    def __init__(self, clean, V=64):
        super().__init__()
        self.clean, self.V = clean, V

    def forward(self, x, attention_mask=None, output_rows=None):
        B, T = x.shape
        clean = self.clean.repeat(B // self.clean.size(0), 1)
        logits = torch.zeros(B, T, self.V)
        strength = 1.0 + (x != MASK).sum(1).float()  # (B,)
        nxt = torch.roll(clean, -1, dims=1)  # row i predicts token i+1
        logits.scatter_(2, nxt[:, :, None], strength[:, None, None].expand(B, T, 1))
        return logits[output_rows]


def test_coupled_estimate_equals_hand_computation():
    ids, P = batch(B=2, C=6)
    C, V = ids.size(1) - P, 64
    model = ToyModel(ids, V)
    est = per_token_logps(model, ids, None, P, MASK, estimator="coupled", generator=torch.Generator().manual_seed(3))
    masked, _ = estimator_masks(ids, P, "coupled", generator=torch.Generator().manual_seed(3))
    first_pass = masked[0, :, P:]
    tt = 0.2 + 0.6 * torch.rand((2, 1), generator=torch.Generator().manual_seed(3))  # t: the generator's first draw

    def lp(n_unmasked):  # log-softmax of the true token with logit s = 1 + n_unmasked, others 0
        s = 1.0 + n_unmasked
        return s - torch.log(torch.exp(s) + (V - 1))
    T = ids.size(1)
    for b in range(2):
        n1 = T - masked[0, b].sum().item()
        n2 = T - masked[1, b].sum().item()
        full = lp(torch.tensor(float(P)))
        for k in range(C):
            in_first = bool(first_pass[b, k])
            pair = lp(torch.tensor(float(n1))) / tt[b, 0] if in_first else lp(torch.tensor(float(n2))) / (1 - tt[b, 0])
            assert abs(est[b, k].item() - 0.5 * (full + pair).item()) < 1e-4


def test_full_mask_estimate_is_the_plain_log_prob():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, n_layer=1, n_head=2, n_kv_head=1, n_embd=16, intermediate_size=32,
                                    max_seq_len=32)).eval()
    ids, P = batch(B=2, C=5)
    with torch.no_grad():
        est = per_token_logps(model, ids, None, P, MASK, estimator="full_mask")
        x = ids.clone()
        x[:, P:] = MASK
        from model import shift_logits
        ref = torch.log_softmax(shift_logits(model(x)), -1)[:, P:].gather(-1, ids[:, P:, None]).squeeze(-1)
    assert torch.allclose(est, ref, atol=1e-5)


def test_padding_does_not_change_the_estimate():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, n_layer=1, n_head=2, n_kv_head=1, n_embd=16, intermediate_size=32,
                                    max_seq_len=32)).eval()
    ids, P = batch(B=1, C=5)
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
    attn = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones_like(ids)], 1)
    with torch.no_grad():
        a = per_token_logps(model, ids, None, P, MASK, generator=[torch.Generator().manual_seed(5)])
        b = per_token_logps(model, padded, attn, P + 3, MASK, generator=[torch.Generator().manual_seed(5)])
    assert torch.allclose(a, b, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# loss and advantages

def test_ratio_one_gives_the_advantage_weighted_gradient():
    torch.manual_seed(0)
    B, C = 4, 6
    theta = torch.randn(B, C, requires_grad=True)
    logps = torch.log_softmax(theta, -1)
    adv = torch.tensor([1.0, -0.5, 0.0, 2.0])
    mask = torch.rand(B, C) < 0.8
    loss, stats = grpo_loss(logps, logps.detach(), None, adv, mask, 0.5, 0.5, 0.0, normalizer=mask.sum())
    (g,) = torch.autograd.grad(loss, theta, retain_graph=True)
    expected_loss = -(adv[:, None] * logps * mask).sum() / mask.sum()
    (g_ref,) = torch.autograd.grad(expected_loss, theta)
    assert torch.allclose(loss, -(adv[:, None] * mask).sum() / mask.sum())  # ratio 1 everywhere
    assert torch.allclose(g, g_ref, atol=1e-7)
    assert stats["clip_low"] == 0 and stats["clip_high"] == 0


def test_clipping_only_outside_the_trust_region():
    ratios = torch.tensor([[0.3, 0.6, 1.0, 1.4, 1.7]])
    for a in (1.0, -1.0):
        old = torch.zeros(1, 5)
        logps = torch.log(ratios).clone().requires_grad_(True)
        loss, stats = grpo_loss(logps, old, None, torch.tensor([a]), torch.ones(1, 5, dtype=torch.bool),
                                0.5, 0.5, 0.0, 5)
        (g,) = torch.autograd.grad(loss, logps)
        inside = (ratios > 0.5) & (ratios < 1.5)
        assert (g[inside] != 0).all()
        # positive advantage: clipped above 1.5; negative: clipped below 0.5
        clipped = ratios >= 1.5 if a > 0 else ratios <= 0.5
        assert (g[clipped] == 0).all() and (g[~inside & ~clipped] != 0).all()
        assert stats["clip_high" if a > 0 else "clip_low"] == 1


def test_one_update_moves_probability_toward_the_better_completion():
    """The learning signal end to end on a real model: one SGD step on grpo_loss over the coupled estimate of two
    completions (advantage +1 and -1) raises the advantage-weighted log-likelihood, re-estimated with the same
    masks. A planted bug that flips a sign (the advantage, the loss, the 1/t weights) or detaches the estimate
    fails it."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, n_layer=1, n_head=2, n_kv_head=1, n_embd=16, intermediate_size=32,
                                    max_seq_len=32))
    ids, P = batch(B=2, C=6, seed=4)
    adv, mask = torch.tensor([1.0, -1.0]), torch.ones(2, 6, dtype=torch.bool)

    def estimate():
        return per_token_logps(model, ids, None, P, MASK,
                               generator=[torch.Generator().manual_seed(9 + b) for b in range(2)])
    before = estimate()
    loss, _ = grpo_loss(before, before.detach(), None, adv, mask, 0.2, 0.2, 0.0, mask.sum())
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.05 * p.grad
        gain = (adv[:, None] * (estimate() - before)).sum()
    assert gain > 1e-3, gain


def test_k3_kl_zero_at_the_reference():
    logps = torch.randn(2, 5, requires_grad=True)
    mask = torch.ones(2, 5, dtype=torch.bool)
    loss, stats = grpo_loss(logps, logps.detach(), logps.detach(), torch.zeros(2), mask, 0.5, 0.5, 0.01, 10)
    assert stats["kl"] == 0 and loss.item() == 0
    (g,) = torch.autograd.grad(loss, logps)
    assert (g == 0).all()
    _, stats = grpo_loss(logps, logps.detach(), logps.detach() + 0.3, torch.zeros(2), mask, 0.5, 0.5, 0.01, 10)
    assert stats["kl"] > 0


def test_advantages():
    r = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    assert torch.allclose(compute_advantages(r, 3), torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    loo = compute_advantages(r, 3, baseline="loo")
    assert torch.allclose(loo[:3], torch.tensor([1 - 2.5, 2 - 2.0, 3 - 1.5]))  # r_i - mean of the others
    assert torch.allclose(compute_advantages(r, 3, scale_std=True)[:3], torch.tensor([-1.0, 0.0, 1.0]) / (1 + 1e-4))


def test_reward_weights_are_the_papers():
    assert (train_grpo.code_weight, train_grpo.format_weight) == (2.0, 0.5)  # reward = 2 * pass rate + 0.5 * format


def test_completion_mask():
    ids = torch.tensor([[5, 6, 9, 4, 4], [5, 6, 7, 8, 3]])
    mask, truncated = completion_mask(ids, stop_ids=[9])
    assert mask.tolist() == [[True, True, True, False, False], [True] * 5]
    assert truncated.tolist() == [False, True]
    # the first of several stop tokens ends it (an answer closed by <|dlm_pad|> without <|im_end|>)
    mask, truncated = completion_mask(torch.tensor([[5, 8, 4, 9, 4], [9, 8, 8, 8, 8]]), stop_ids=[9, 8])
    assert mask.tolist() == [[True, True, False, False, False], [True, False, False, False, False]]
    assert truncated.tolist() == [False, False]


# ---------------------------------------------------------------------------------------------
# the whole loop on a tiny model that was taught (SFT) to answer in DiffuCoder's format

TINY = ["--prompts_per_step=2", "--num_generations=4", "--max_prompt_length=96", "--max_completion_length=32",
        "--eval_n=0", "--micro_batch_size=8", "--learning_rate=1e-3", "--dtype=float32", "--temperature=1.0",
        "--grad_clip=0.0", "--beta=0.05", "--ref_sync_steps=2"]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """A tiny model + tokenizer, SFT'd on short tiny-task answers until ~40% of its samples are well formatted
    (at 200 steps ~3%: a group of 8 then often has no reward variance), and task files."""
    from tasks import generate_tasks, write_jsonl
    from tokenizer import Tokenizer
    root = tmp_path_factory.mktemp("grpo")
    tasks = [t for t in generate_tasks("train", 600, 0) if t.family == "arith"]
    tok = Tokenizer.train(iter([t.question + t.answer for t in tasks] * 3), 1000)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=1024, n_layer=2, n_head=2, n_kv_head=1, n_embd=48, intermediate_size=96,
                                    max_seq_len=128, mask_token_id=tok.mask_token_id))
    save_pretrained(model, root / "init")
    tok.save(root / "init")
    write_jsonl(tasks, root / "tasks.jsonl")
    train_pretrain.main(["--mode=sft", f"--sft_file={root / 'tasks.jsonl'}", f"--init_from={root / 'init'}",
                         f"--out_dir={root / 'sft'}", "--block_size=128", "--batch_size=8", "--max_steps=400",
                         "--learning_rate=5e-3", "--warmup_steps=5", "--dtype=float32", "--eval_interval=1000",
                         "--eval_batches=1", "--log_interval=200", "--ckpt_interval=0"])
    return root


def run_grpo(policy, out, *extra):
    return train_grpo.main([f"--init_from={policy / 'sft'}", f"--train_file={policy / 'tasks.jsonl'}",
                            f"--eval_file={policy / 'tasks.jsonl'}", f"--out_dir={out}", *TINY, *extra])


def final_weights(out):
    ckpts = sorted(d for d in os.listdir(out) if re.fullmatch(r"ckpt-\d+", d))
    return load_file(os.path.join(out, ckpts[-1], "model.safetensors"))


def assert_same_update(a, b):
    """Weights equal to 1e-6, up to Adam's amplification of float noise: Adam divides each gradient
    by its own magnitude, so an element whose gradient is ~0 (the k_proj biases, to which softmax is
    invariant, have a true gradient of exactly 0) turns summation-order noise into steps of up to lr.
    So: k_proj biases excluded, at most 1 element in 1000 above 1e-6, none above 1e-4 (a tenth of one step at
    the tests' lr 1e-3; a 2-core Xeon's kernels gave 6 elements up to 1.4e-5, AMD's none above 1e-5)."""
    keys = [k for k in a if not k.endswith("k_proj.bias")]
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in keys])
    assert diff.max() < 1e-4 and (diff > 1e-6).float().mean() < 1e-3, (diff.max(), (diff > 1e-6).sum())


def test_loop_moves_the_policy_and_accumulation_is_exact(policy, tmp_path, capsys):
    """One step of the real loop has a gradient (reward variance) and moves the weights; micro-batches of 3
    give the one-batch update. (Whether an update helps is test_one_update_moves_probability_toward_...)"""
    run_grpo(policy, tmp_path / "big", "--max_steps=1")
    out = capsys.readouterr().out
    groups = [int(x) for x in re.findall(r"zero-std groups (\d+)/2", out)]
    assert len(groups) == 1 and min(groups) < 2, out  # the rewards vary: there is a gradient
    run_grpo(policy, tmp_path / "accum", "--max_steps=1", "--micro_batch_size=3")
    a, b = final_weights(tmp_path / "big"), final_weights(tmp_path / "accum")
    init = load_file(os.path.join(train_grpo_init(policy), "model.safetensors"))
    assert max((a[k] - init[k]).abs().max().item() for k in a) > 1e-4  # the policy moved
    assert_same_update(a, b)


def test_log_splits_the_solved_rate_by_task_family(policy, tmp_path, capsys):
    """With tasks of two families the log adds a line per logged step: each family's solved rate over its
    completions, which together give the step's solved rate; a one-family file prints no such line."""
    from tasks import generate_tasks, write_jsonl
    tasks = generate_tasks("train", 60, 0)
    two = [next(t for t in tasks if t.family == "arith"), next(t for t in tasks if t.family == "cond")]
    write_jsonl(two, tmp_path / "two.jsonl")
    run_grpo(policy, tmp_path / "two", "--max_steps=2", f"--train_file={tmp_path / 'two.jsonl'}", "--beta=0")
    out = capsys.readouterr().out
    steps = [float(x) for x in re.findall(r"^step \d/2 \|.*\| solved ([.\d]+)", out, re.M)]
    lines = re.findall(r"^  solved by family: arith ([.\d]+) \(4, (\d) zero-std\) \| cond ([.\d]+) \(4, (\d) zero-std\)$",
                       out, re.M)
    assert len(steps) == 2 and len(lines) == 2, out
    for solved, (arith, _, cond, _) in zip(steps, lines):
        assert abs((float(arith) + float(cond)) / 2 - solved) < 0.01
    run_grpo(policy, tmp_path / "one", "--max_steps=1", "--beta=0")
    assert "solved by family" not in capsys.readouterr().out


def test_rollouts_with_an_approximate_decoder(policy, tmp_path, capsys):
    """threshold / block_length / cache reach the rollouts: the threshold decoder runs fewer forwards, so the
    rollout completions (and so the rewards and the update) differ from the exact decoder's."""
    run_grpo(policy, tmp_path / "exact", "--max_steps=1", "--beta=0")
    run_grpo(policy, tmp_path / "fast", "--max_steps=1", "--beta=0", "--threshold=0.5", "--block_length=8",
             "--cache=dual")
    out = capsys.readouterr().out
    assert len(re.findall(r"step 1/1 \| reward", out)) == 2, out
    a, b = final_weights(tmp_path / "exact"), final_weights(tmp_path / "fast")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def train_grpo_init(policy):
    from checkpoint import resolve_model_dir
    return resolve_model_dir(str(policy / "sft"))


def torchrun(args, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           os.path.join(REPO, "train_grpo.py"), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"),
                       cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def grpo_args(policy, out):
    return [f"--init_from={policy / 'sft'}", f"--train_file={policy / 'tasks.jsonl'}",
            f"--eval_file={policy / 'tasks.jsonl'}", f"--out_dir={out}", *TINY, "--device=cpu"]


def test_ddp_two_processes_equal_one_process(policy, tmp_path):
    run_grpo(policy, tmp_path / "single", "--max_steps=2")
    out = torchrun(grpo_args(policy, tmp_path / "ddp") + ["--max_steps=2", "--parallel=ddp"])
    assert "on 2 rank(s)" in out
    assert_same_update(final_weights(tmp_path / "single"), final_weights(tmp_path / "ddp"))


def test_fsdp2_runs_two_steps(policy, tmp_path):
    out = torchrun(grpo_args(policy, tmp_path / "fsdp")
                   + ["--max_steps=2", "--parallel=fsdp", "--activation_checkpointing=True"])
    assert "step 2/2" in out
    model = load_pretrained(tmp_path / "fsdp" / "ckpt-000002")
    assert model.config.n_layer == 2


def test_resume_is_exact(policy, tmp_path, capsys):
    run_grpo(policy, tmp_path / "straight", "--max_steps=3", "--ckpt_interval=1")
    straight = re.findall(r"^step \d/3 \| reward.*\| loss ([-+.\d]+)", capsys.readouterr().out, re.M)
    run_grpo(policy, tmp_path / "resumed", "--max_steps=3", "--ckpt_interval=1")
    import shutil
    shutil.rmtree(tmp_path / "resumed" / "ckpt-000003")  # as if the run had died after step 2
    capsys.readouterr()
    run_grpo(policy, tmp_path / "resumed", "--max_steps=3", "--ckpt_interval=1")
    out = capsys.readouterr().out
    assert "resuming from" in out and "at step 2" in out
    resumed = re.findall(r"^step \d/3 \| reward.*\| loss ([-+.\d]+)", out, re.M)
    assert resumed == straight[2:]
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ra = load_file(tmp_path / "straight" / "ckpt-000003" / "ref_model.safetensors")
    rb = load_file(tmp_path / "resumed" / "ckpt-000003" / "ref_model.safetensors")
    assert all(torch.equal(ra[k], rb[k]) for k in ra)


def test_bad_input(policy, tmp_path):
    from configurator import ConfigError
    with pytest.raises(ValueError, match="estimator must be one of"):
        run_grpo(policy, tmp_path / "x", "--estimator=coupld")
    with pytest.raises(FileNotFoundError, match="prepare_data.py --kind=tasks"):
        train_grpo.main([f"--init_from={policy / 'sft'}", f"--train_file={tmp_path / 'none.jsonl'}",
                         f"--out_dir={tmp_path / 'y'}", *TINY])
    with pytest.raises(ValueError, match="set block_length too"):
        run_grpo(policy, tmp_path / "c", "--cache=dual")
    with pytest.raises(ConfigError, match="did you mean 'num_generations'"):
        run_grpo(policy, tmp_path / "z", "--num_generation=3")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match="non-empty 'tests' list"):
        train_grpo.main([f"--init_from={policy / 'sft'}", f"--train_file={bad}", f"--out_dir={tmp_path / 'w'}", *TINY])
