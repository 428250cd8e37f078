"""
Sample from a masked-diffusion LM the way DiffuCoder does, and look at the order in which it decodes.

    python sample.py                                          # the tiny model the README trains
    python sample.py --prompt="def fib(n):" --max_new_tokens=64 --show_order=True --order_html=order.html
    python sample.py --out_dir=/models/DiffuCoder-7B-Instruct --chat=True --prompt_file=q.txt --device=cuda
    python sample.py --analyze=True                           # AR-ness, entropy sink, entropy heat-map
    python sample.py --analyze=True --out_dir=[out/ar_tiny,out/sft_tiny,out/grpo_tiny]   # AR-ness of each model
    python sample.py --speedup=2                              # steps = max_new_tokens / 2 (the paper's Fig. 11)
    python sample.py --block_length=32 --cache=dual --threshold=0.9   # Fast-dLLM's approximations (decoders.py)

`diffusion_generate` (the first function below) is Dream's decoding, which DiffuCoder uses: append
max_new_tokens masks; timesteps ts = linspace(1, eps, steps + 1); at step i (t = ts[i], s = ts[i+1])
run one forward over the whole batch, take the logits that predict the masked positions, filter them
(temperature, then top-p, then top-k), pick a token per position (argmax at temperature 0, else a
sample) and a confidence ('maskgit_plus': its probability, 'topk_margin': p1 - p2, 'entropy': the
negative entropy sum p log p), then commit k = int(n_masked * (1 - s/t)) positions per row (n_masked
is the batch mean; at the last step all that remain), the k most confident ones, or k sampled from
softmax(confidence / alg_temp). 'origin' instead commits each masked position independently with
probability 1 - s/t. Committed tokens are never changed again.

The schedule quirk, kept for parity with DiffuCoder: with steps == max_new_tokens (one token per
step, DiffuCoder's default), int() flooring commits 0 tokens at step 0, one per step after that, and
2 at the last step (`commit_schedule(8, 8)` == [0, 1, 1, 1, 1, 1, 1, 2]).

With return_history=True the function also returns a `DecodeHistory`: for every generated position
the step at which it was committed and its confidence then (and every position's confidence at step
0, the "entropy sink" curve); with record_entropy=True also every step's entropy at every masked
position (the paper's Figure 9). `local_ar_ness` / `global_ar_ness` (the paper's appendix A.2) read the
commit order; `--show_order` colours each token by its step (the paper's Figure 1a); `--analyze`
(analysis.py) decodes a prompt set one token per step at several temperatures, for one model or several,
and prints AR-ness@1..4, the mean first-step confidence by distance from the prompt and the entropy heat-map.

Simplifications and deliberate differences from Dream's code:
1. Only the generated region is decoded; a mask token inside the prompt is left alone (Dream would
   fill it too). Prompts must be left-padded (checked) and non-empty.
2. The mask token's logit is set to -inf, so it can never be sampled (Dream can sample it, which
   silently leaves a mask that a later step decodes again).
3. Filtering, softmax and confidences are computed in fp32 whatever the model dtype. Random draws
   use an explicit generator (Dream: the global RNG), so seeded samples differ from Dream's;
   at temperature 0 the tokens are the same up to floating-point ties. With alg_temp > 0 the
   positions are drawn by the Gumbel-top-k trick, the same distribution as Dream's
   torch.multinomial without replacement, but it cannot fail when softmax(confidence / alg_temp)
   underflows to zeros.
4. Every step is a full forward over prompt + generation, as in Dream, but the LM head runs only on
   the rows that predict a masked position (the largest saving on a large vocabulary; Dream computes
   all T rows and keeps the masked ones). tests/test_sample.py compares tokens and history with a
   naive loop written from the definition, left-padded batches included.
5. Tokens committed in the same step have no order between them; `DecodeHistory.order` lists them
   left to right, which is what the AR-ness metrics read.
6. Semi-autoregressive blocks (LLaDA), confidence thresholds and KV caches (Fast-dLLM) are in
   decoders.py, built from this file's pieces; the CLI uses them when one of their options is set.
"""

import math
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from checkpoint import load_model, pick_model_dir
from common import autocast, cut_at_stop, resolve_device, resolve_dtype, seeded, stop_ids
from configurator import as_list, config_keys, configure, load_jsonl, print_config, run_cli
from diffusion import training_attention_mask
from model import padding_position_ids, predictor_rows
from order import order_ansi, order_html_doc, order_text, token_pieces
from tasks import generate_tasks

# -----------------------------------------------------------------------------
# model
out_dir = "out/sft_tiny"  # a training out_dir (its latest checkpoint) or an HF model dir (falls back to pretrain)
device = "auto"  # 'auto', 'cpu', 'cuda'
dtype = "auto"  # autocast dtype: 'auto' (bfloat16 where native, else float32), 'float32', 'bfloat16'
# prompt
prompt = "def fibonacci(n):\n"  # used when prompt_file is empty
prompt_file = ""  # read the prompt from this file ('-' for stdin; .jsonl: the "question" of record prompt_index)
prompt_index = 0
chat = None  # wrap the prompt in the chat template (None: yes for SFT and GRPO checkpoints)
num_samples = 1  # completions of the prompt, decoded as one batch
# decoding (DiffuCoder's defaults: entropy, alg_temp 0, top_p 0.95, temperature 0.2-0.4, steps = max_new_tokens)
max_new_tokens = 128
steps = None  # denoising steps (None: max_new_tokens, one token per step)
speedup = None  # 2: steps = max_new_tokens / 2, the paper's 2x-speed setting (Fig. 11); None: steps as set
temperature = 0.2
top_p = 0.95
top_k = None
alg = "entropy"  # 'origin' | 'maskgit_plus' | 'topk_margin' | 'entropy'
alg_temp = 0.0  # > 0: sample the positions to commit from softmax(confidence / alg_temp)
eps = 1e-3
# approximate fast decoding (decoders.py; None: off, exact Dream decoding)
block_length = None  # semi-AR block decoding (None: off, the DiffuCoder way)
threshold = None  # (0, 1]: also commit every token whose probability exceeds this (steps becomes a maximum)
cache = None  # 'prefix' | 'dual': reuse keys/values within a block (needs block_length)
cache_refresh = None  # with cache: refill it every this many steps of a block (None: at the block's start only)
seed = 1337
# pictures and analysis
show_order = False  # colour each token by the step that committed it (terminal; in a file: digits 0-9 under each line)
order_html = ""  # also write that picture as HTML to this path
analyze = False  # AR-ness, entropy-sink and entropy heat-map (analysis.py) instead of sampling; out_dir may be a list
analyze_file = ""  # prompts: .jsonl with "question" or "prompt" fields, or one prompt per line ('': tiny test tasks)
analyze_n = 16  # prompts to analyze
analyze_temperatures = [0.0, 0.4, 0.8, 1.2]
analyze_batch = 8  # prompts per decoding batch
heatmap_png = "out/entropy_heatmap.png"  # with analyze: the heat-maps as a PNG (needs matplotlib; '': none)
CONFIG_KEYS = config_keys(globals())
# -----------------------------------------------------------------------------

ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")
NUCLEUS_K = 256  # top-p first tries a partial sort of this many tokens (a full sort when a nucleus is larger)


@torch.no_grad()
def diffusion_generate(model, input_ids, attention_mask=None, *, max_new_tokens, steps, temperature=0.0, top_p=None,
                       top_k=None, alg="entropy", alg_temp=0.0, eps=1e-3, mask_token_id, generator=None,
                       return_history=False, record_entropy=False):
    """Dream's decoding (the module docstring): max_new_tokens masks after each left-padded prompt,
    unmasked in `steps` steps. Returns (B, T + max_new_tokens) ids, or (ids, DecodeHistory).
    record_entropy: the history also keeps every step's entropy of every masked position (`DecodeHistory.entropy`;
    the decoded tokens are the same)."""
    check_generate_args(model, input_ids, attention_mask, max_new_tokens, steps, alg, temperature, top_p, top_k,
                        alg_temp, eps, mask_token_id)
    B, P = input_ids.shape
    x = F.pad(input_ids, (0, max_new_tokens), value=mask_token_id)  # (B, T): the prompt, then the masks
    padding = generation_padding(attention_mask, max_new_tokens)  # (B, T) 0/1, None when no row is padded
    ts = torch.linspace(1, eps, steps + 1, device=x.device)  # the schedule: t runs from 1 down to eps
    history = DecodeHistory.empty(B, max_new_tokens, x.device, steps if record_entropy else 0)
    for i in range(steps):
        t, s, gen = ts[i], ts[i + 1], x[:, P:]  # gen (B, N): the generated region
        masked = gen == mask_token_id  # (B, N)
        # one forward; the LM head runs only on the rows that predict a masked token (row j - 1 predicts token j)
        logits = model(x, padding, output_rows=predictor_rows(F.pad(masked, (P, 0)))).float()  # (M, V)
        logits[:, mask_token_id] = -math.inf  # the mask token is never a prediction
        if record_entropy:
            history.record_entropy(i, masked, logits)
        x0, conf, _ = sample_tokens(logits, alg, temperature, top_p, top_k, generator)  # (M,) token, confidence
        score = torch.full(masked.shape, -math.inf, device=x.device).masked_scatter(masked, conf)  # (B, N)
        commit = commit_rule(score, masked, alg, alg_temp, t, s, i == steps - 1, generator)  # (B, N) bool
        x[:, P:] = torch.where(commit, gen.masked_scatter(masked, x0), gen)
        history.record(i, commit, score, masked)
    return (x, history) if return_history else x


def commit_rule(score, masked, alg, alg_temp, t, s, last, generator=None):
    """Which masked positions (B, N) bool to commit when going from time t to s < t. score (B, N): the
    confidence of each masked position (-inf elsewhere). Dream's rule: the k = int(n_masked * (1 - s/t))
    most confident per row (n_masked: the batch mean; all of them at the last step), or k drawn from
    softmax(score / alg_temp) by Gumbel-top-k; 'origin': each one with probability 1 - s/t."""
    if alg == "origin":
        p = 1.0 if last else float(1 - s / t)
        return masked & (torch.rand(masked.shape, generator=generator, device=masked.device) < p)
    n_masked = masked.sum() / masked.size(0)  # fp32, the batch mean (as Dream)
    k = int(n_masked) if last else int(n_masked * (1 - s / t))
    if k == 0:
        return torch.zeros_like(masked)
    if alg_temp > 0:  # k positions drawn without replacement from softmax(score / alg_temp)
        u = torch.rand(masked.shape, generator=generator, device=masked.device).clamp_min(1e-20)
        score = score / alg_temp - torch.log(-torch.log(u))
    idx = score.topk(k, dim=-1).indices  # (B, k)
    return torch.zeros_like(masked).scatter_(1, idx, True) & masked  # never touch a committed token


def commit_schedule(n, steps, eps=1e-3):
    """Tokens committed at each step for n masked positions: diffusion_generate's timesteps and commit_rule
    on one row (the CLI prints it; tests read it)."""
    ts, masked, out = torch.linspace(1, eps, steps + 1), torch.ones(1, n, dtype=torch.bool), []
    for i in range(steps):
        score = torch.zeros(1, n).masked_fill(~masked, -math.inf)  # (1, n)
        commit = commit_rule(score, masked, "maskgit_plus", 0.0, ts[i], ts[i + 1], i == steps - 1)
        out.append(int(commit.sum()))
        masked &= ~commit
    return out


def filter_logits(logits, temperature=0.0, top_p=None, top_k=None):
    """Dream's order: divide by temperature (if > 0), keep the top-p nucleus, then the top-k.
    Removed tokens get -inf. logits: (M, V) fp32. The nucleus comes from a partial sort when it fits
    in NUCLEUS_K tokens (the same tokens as a full sort, much faster on a trained model's logits)."""
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        V, lse = logits.size(-1), logits.logsumexp(-1, keepdim=True)  # (M, 1)
        for k in (min(NUCLEUS_K, V), V):  # a partial sort is enough when every row's nucleus is inside it
            top, order = logits.topk(k, dim=-1)  # (M, k), descending
            cum = (top - lse).exp().cumsum(-1)  # (M, k) probability mass of the first r + 1 tokens
            if k == V or bool((cum[:, -1] > top_p).all()):
                break
        keep = torch.ones_like(cum, dtype=torch.bool)
        keep[:, 1:] = cum[:, :-1] <= top_p  # every token up to and including the one that crosses top_p
        drop = torch.ones_like(logits, dtype=torch.bool).scatter_(-1, order, ~keep)
        logits = logits.masked_fill(drop, -math.inf)
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]  # (M, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    return logits


def sample_tokens(logits, alg, temperature=0.0, top_p=None, top_k=None, generator=None):
    """(M, V) fp32 logits -> tokens (M,), the alg's confidence (M,) (higher = commit first) and the
    token's probability under the filtered distribution (M,) (what decoders.py's `threshold` compares)."""
    probs = filter_logits(logits, temperature, top_p, top_k).softmax(-1)
    if temperature > 0:  # inverse-CDF sampling: one uniform per row (torch.multinomial draws V of them)
        cdf = probs.cumsum(-1)  # (M, V)
        u = torch.rand((probs.size(0), 1), generator=generator, device=probs.device) * cdf[:, -1:]
        x0 = torch.searchsorted(cdf, u, right=True).clamp_max(probs.size(-1) - 1).squeeze(-1)
        x0 = torch.where(probs.gather(-1, x0[:, None]).squeeze(-1) > 0, x0, probs.argmax(-1))  # never a removed token
        p_x0 = probs.gather(-1, x0[:, None]).squeeze(-1)
    else:
        p_x0, x0 = probs.max(dim=-1)
    if alg == "topk_margin":
        top2 = probs.topk(2, dim=-1).values
        return x0, top2[:, 0] - top2[:, 1], p_x0
    if alg == "entropy":
        return x0, (probs * torch.log(probs + 1e-10)).sum(-1), p_x0
    return x0, p_x0, p_x0  # maskgit_plus, origin


def generation_padding(attention_mask, max_new_tokens):
    """The (B, T) padding mask of prompt + generation (the masks are real tokens), or None when no prompt
    is padded (then the model needs no mask at all)."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return F.pad(attention_mask.long(), (0, max_new_tokens), value=1)


@dataclass
class DecodeHistory:
    """How the generated region was decoded. All (B, max_new_tokens):
    steps: long, the 0-based step at which each position was committed (`history[b, j]` reads it);
    confidence: fp32, the alg's confidence of the committed token at that step (origin: its probability);
    first_confidence: fp32, every position's confidence at step 0 (the entropy-sink curve; with a
    KV cache, the first block's positions only);
    entropy: with record_entropy, fp32 (B, steps, max_new_tokens): at each step, the entropy (nats) of the
    model's distribution at each still-masked position, softmax of its logits before temperature and top-p,
    the mask token excluded (the paper's Figure 9); NaN where the position was already committed. Else None."""
    steps: torch.Tensor
    confidence: torch.Tensor
    first_confidence: torch.Tensor
    entropy: torch.Tensor | None = None

    @classmethod
    def empty(cls, B, N, device, entropy_steps=0):
        return cls(torch.full((B, N), -1, dtype=torch.long, device=device), torch.zeros(B, N, device=device),
                   torch.full((B, N), math.nan, device=device),
                   torch.full((B, entropy_steps, N), math.nan, device=device) if entropy_steps else None)

    def record_entropy(self, step, masked, logits):
        """The entropy of softmax(logits) (M, V) fp32 of the `masked` positions (B, N) at step `step`."""
        h = torch.special.entr(logits.softmax(-1)).sum(-1)  # (M,) -sum p log p, 0 log 0 = 0
        self.entropy[:, step] = self.entropy[:, step].masked_scatter(masked, h)

    def record(self, step, commit, score, predicted):
        """Step `step` committed `commit` (B, N) with confidences `score` (B, N) of the `predicted` positions."""
        if step == 0:
            self.first_confidence = score.masked_fill(~predicted, math.nan)
        self.steps.masked_fill_(commit, step)
        self.confidence = torch.where(commit, score, self.confidence)

    def __getitem__(self, index):
        return self.steps[index]

    def order(self, b):
        """Generated positions of row b in commit order (same step: left to right)."""
        s = self.steps[b].tolist()
        return sorted(range(len(s)), key=lambda j: (s[j], j))


def _need(ok, msg):
    if not ok:
        raise ValueError(msg)


def check_decoding_options(max_new_tokens, steps, alg="entropy"):
    """The decoding options that do not depend on the model or the prompts (scripts check them before
    loading a model). A bad one raises a one-line ValueError that names the fix."""
    _need(alg in ALGS, f"unknown alg '{alg}'; choose one of {', '.join(ALGS)}")
    _need(isinstance(max_new_tokens, int) and max_new_tokens >= 1,
          f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    _need(isinstance(steps, int) and 1 <= steps <= max_new_tokens,
          f"steps must be between 1 and max_new_tokens={max_new_tokens}, got {steps!r}")


def resolve_steps(max_new_tokens, steps=None, speedup=None):
    """The denoising steps: `steps`, else max_new_tokens / speedup (None or 1: one token per step)."""
    if not speedup or speedup == 1:
        return steps or max_new_tokens
    _need(steps is None, f"pass steps={steps} or speedup={speedup}, not both")
    _need(isinstance(speedup, int) and speedup > 0 and max_new_tokens % speedup == 0,
          f"speedup={speedup!r} must be a whole number that divides max_new_tokens={max_new_tokens}")
    return max_new_tokens // speedup


def check_generate_args(model, input_ids, attention_mask, max_new_tokens, steps, alg, temperature, top_p, top_k,
                        alg_temp, eps, mask_token_id):
    """Bad arguments raise a one-line ValueError that names the fix."""
    _need(input_ids.dim() == 2 and input_ids.size(1) > 0,
          f"input_ids must be a non-empty (B, T) tensor, got shape {tuple(input_ids.shape)}")
    check_decoding_options(max_new_tokens, steps, alg)
    total, limit = input_ids.size(1) + max_new_tokens, model.config.max_seq_len
    _need(total <= limit, f"prompt ({input_ids.size(1)} tokens) + max_new_tokens ({max_new_tokens}) = {total} "
                          f"exceeds the model's context of {limit}; shorten one of them")
    _need(temperature >= 0 and alg_temp >= 0, "temperature and alg_temp must be >= 0")
    _need(top_p is None or 0 < top_p <= 1, f"top_p must be in (0, 1], got {top_p}")
    _need(top_k is None or top_k >= 1, f"top_k must be >= 1, got {top_k}")
    _need(0 < eps < 1, f"eps must be in (0, 1), got {eps}")
    _need(mask_token_id is not None and 0 <= mask_token_id < model.config.vocab_size,
          f"mask_token_id {mask_token_id} is not a token of this model")
    if attention_mask is not None:
        _need(attention_mask.shape == input_ids.shape, "attention_mask must have the shape of input_ids")
        m = attention_mask.long()
        _need(bool((m[:, 1:] >= m[:, :-1]).all()) and bool(m[:, -1].all()),
              "prompts must be left-padded (attention_mask zeros then ones, at least one real token)")


@torch.no_grad()
def ar_generate(model, input_ids, attention_mask=None, *, max_new_tokens, temperature=0.0, top_p=None, top_k=None,
                generator=None, stop_ids=()):
    """Left-to-right decoding of a model trained with objective='ar' (causal attention): the token after the
    last one, from its row, max_new_tokens times (no KV cache: each step runs the whole prefix). The autoregressive
    baseline the README compares the diffusion model with. Prompts left-padded. Stops early once every row holds
    one of `stop_ids` and fills the rest of the row with the first of them. Returns (B, T + max_new_tokens) ids."""
    B, P = input_ids.shape
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    x, done = input_ids, torch.zeros(B, dtype=torch.bool, device=input_ids.device)
    for _ in range(max_new_tokens):
        position_ids = padding_position_ids(real)
        rows = (torch.arange(B, device=x.device), torch.full((B,), x.size(1) - 1, device=x.device))
        logits = model(x, attention_mask=training_attention_mask("ar", real), position_ids=position_ids,
                       output_rows=rows).float()  # (B, V)
        nxt = sample_tokens(logits, "maskgit_plus", temperature, top_p, top_k, generator)[0]  # (B,)
        x = torch.cat([x, nxt[:, None]], dim=1)
        real = F.pad(real, (0, 1), value=True)
        if stop_ids:
            done |= torch.isin(nxt, torch.tensor(list(stop_ids), device=x.device))
            if bool(done.all()):
                break
    return F.pad(x, (0, P + max_new_tokens - x.size(1)), value=stop_ids[0] if stop_ids else 0)


# -----------------------------------------------------------------------------
# the CLI

def read_prompts(path, n):
    """n prompts: a .jsonl's "question" (or "prompt") fields, a text file's lines (a literal \\n is a newline),
    or, with no path, the tiny held-out tasks."""
    if not path:
        return [t.question for t in generate_tasks("test", n, seed=0)]
    if path.endswith(".jsonl"):
        return [(r.get("question") or r["prompt"]) for _, r in load_jsonl(path)][:n]
    with open(path) as f:
        prompts = [line.rstrip("\n").replace("\\n", "\n") for line in f if line.strip()]
    return prompts[:n]


def open_model(out_dir, cfg, dev):
    """The model of out_dir, its tokenizer and the prompt encoder (the chat template for SFT and GRPO
    checkpoints, unless cfg.chat says otherwise)."""
    model, tok, model_dir, meta = load_model(pick_model_dir(out_dir), dev, cfg.dtype)
    run = meta.get("config", {})  # SFT and GRPO (train_grpo.py has `estimator`) checkpoints answer chat prompts
    chat = cfg.chat if cfg.chat is not None else (run.get("mode") == "sft" or "estimator" in run)
    encode = (lambda q: tok.encode(tok.diffucoder_prompt(q))) if chat else tok.encode
    print(f"model {model_dir}: {model.num_params() / 1e6:.2f}M parameters on {dev}, {cfg.dtype}; "
          f"chat template {'on' if chat else 'off'}")
    return model, tok, encode


def main(argv=None):
    import decoders  # here, not at the top: decoders.py imports this file's pieces
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    print_config(cfg)
    steps = resolve_steps(cfg.max_new_tokens, cfg.steps, cfg.speedup)
    fast = {k: getattr(cfg, k) for k in decoders.FAST_OPTIONS}  # block_length, threshold, cache, cache_refresh
    decoders.check_fast_options(cfg.max_new_tokens, steps, cfg.alg, cfg.alg_temp, **fast)
    dirs = as_list(cfg.out_dir)
    if not dirs:
        raise ValueError("out_dir names no model; give a training out_dir or an HF model directory")
    if len(dirs) > 1 and not cfg.analyze:
        raise ValueError(f"out_dir lists {len(dirs)} models; that is for --analyze=True, sample one model at a time")
    dev = resolve_device(cfg.device)
    cfg.dtype = resolve_dtype(cfg.dtype, torch.device(dev).type)
    ctx = autocast(torch.device(dev).type, cfg.dtype)
    if cfg.analyze:
        from analysis import run_analysis  # analysis.py imports this file
        return run_analysis(cfg, dirs, lambda d: (*open_model(d, cfg, dev), dev, ctx))
    model, tok, encode = open_model(dirs[0], cfg, dev)
    text = cfg.prompt
    if cfg.prompt_file.endswith(".jsonl"):
        prompts = read_prompts(cfg.prompt_file, cfg.prompt_index + 1)
        if len(prompts) <= cfg.prompt_index:
            raise ValueError(f"{cfg.prompt_file} has {len(prompts)} prompts; pass a prompt_index below that.")
        text = prompts[cfg.prompt_index]
    elif cfg.prompt_file:
        with (sys.stdin if cfg.prompt_file == "-" else open(cfg.prompt_file)) as f:
            text = f.read()
    block = cfg.block_length or cfg.max_new_tokens
    if cfg.threshold is None:
        schedule = commit_schedule(block, steps // (cfg.max_new_tokens // block), cfg.eps)
        rule = (f"tokens committed per step{' in each block' if cfg.block_length else ''}: "
                f"{schedule[:6]}{' ...' if len(schedule) > 6 else ''}")
    else:
        rule = f"every token with probability > {cfg.threshold} committed, at least one per step"
    cached = f", {cfg.cache} KV cache over blocks of {block}" if cfg.cache else ""
    print(f"decoding {cfg.num_samples} x {cfg.max_new_tokens} tokens in {'at most ' if cfg.threshold else ''}"
          f"{steps} steps "
          f"({cfg.alg}, temperature {cfg.temperature}{cached}); {rule}")
    ids = torch.tensor([encode(text)] * cfg.num_samples, device=dev)
    g = seeded(cfg.seed, device=dev)
    forwards, tty = [0], sys.stderr.isatty() and steps >= 32

    def progress(*_):  # count the forwards (fewer than the steps with a threshold)
        forwards[0] += 1
        if tty:
            print(f"\r  forward {forwards[0]}/{steps}", end="", file=sys.stderr, flush=True)
    hook = model.register_forward_hook(progress)
    t0 = time.perf_counter()
    with ctx:
        out, hist = decoders.generate(model, ids, max_new_tokens=cfg.max_new_tokens, steps=steps,
                                      temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, alg=cfg.alg,
                                      alg_temp=cfg.alg_temp, eps=cfg.eps, mask_token_id=tok.mask_token_id, generator=g,
                                      return_history=True, **fast)
    dt = time.perf_counter() - t0
    hook.remove()
    if tty:
        print(file=sys.stderr)
    steps = int(hist.steps.max()) + 1  # the steps actually run (threshold decoding can stop early)
    P, stops, pictures = ids.size(1), stop_ids(tok), []
    for b in range(cfg.num_samples):
        kept = cut_at_stop(out[b, P:].tolist(), stops)
        steps_b, conf_b = hist.steps[b, :len(kept)].tolist(), hist.confidence[b, :len(kept)].tolist()
        print(f"--- sample {b + 1}/{cfg.num_samples} ({len(kept)} of {cfg.max_new_tokens} tokens before a stop "
              f"token) ---")
        if not cfg.show_order:
            print(b"".join(token_pieces(tok, kept)).decode(errors="replace"))
        else:  # colours on a terminal, digits when the output goes to a file
            print((order_ansi if sys.stdout.isatty() else order_text)(tok, kept, steps_b, steps))
        pictures.append((kept, steps_b, conf_b))
    if cfg.order_html:
        with open(cfg.order_html, "w") as f:
            f.write(order_html_doc(tok, pictures, steps))
        print(f"wrote {cfg.order_html}")
    n = cfg.num_samples * cfg.max_new_tokens
    print(f"decoded {cfg.num_samples} x {cfg.max_new_tokens} tokens in {steps} steps ({forwards[0]} forwards): "
          f"{dt:.2f} s, "
          f"{n / dt:,.1f} tok/s, {1000 * dt / max(1, forwards[0]):.1f} ms/forward")


if __name__ == "__main__":
    run_cli(main)
