"""
Cheap probes of copying, logged by train_pretrain.py at every eval: a few seconds each, and they predict
whether a model will solve tasks long before a decoding eval does.

Every tiny task needs copying: the function name, the constants and the string literals of the answer
appear in the question and nowhere else. A model that has not learned an induction-like lookup writes
the family's template with the most common constants and solves nothing (the README's results log).

1. cloze-copy: held-out (val) tasks laid out as SFT rows (left-padded prompt + answer canvas). The
   answer tokens that must be copied from the question are tagged by kind: 'name' (the function name
   after `def`), 'literal' (inside quotes), 'digit' (a number). Top-1 accuracy per kind:
   - copy: only the copy tokens masked, the rest of the answer clean (diffusion models); for an AR
     model, teacher-forced next-token accuracy on the same tokens (causal attention, clean input);
   - answer: the whole canvas masked, as at the first step of decoding (diffusion models only), on the
     copy tokens and on all answer tokens ('all').
2. induction: rows of a random token span followed by the same span; diffusion: half of the copy masked
   (a random half), AR: teacher-forced on the copy after its first token. Chance is ~1 / vocabulary.

Positions are predicted with the model's shift (row i predicts token i+1) and the mask token is never
a prediction, as in decoding.
"""

import math
import re

import torch

from common import seeded
from configurator import load_jsonl
from diffusion import training_attention_mask
from model import padding_position_ids, predictor_rows
from prepare_data import is_val

KINDS = ("name", "literal", "digit")  # copy-token kinds, in priority order when a token overlaps two spans
INDUCTION_SPAN = 32  # tokens per random span (rows are 2 x span)
INDUCTION_ROWS = 64
BATCH = 32  # rows per forward


def copy_spans(answer, entry_point):
    """Character spans (start, end, kind) of what an answer copies from its question: the function name
    after `def`, quoted literals' contents, numbers."""
    spans = []
    at = answer.find(f"def {entry_point}(")
    if at >= 0:
        spans.append((at + 4, at + 4 + len(entry_point), "name"))
    spans += [(m.start(1), m.end(1), "literal") for m in re.finditer(r"'([^'\n]+)'", answer)]
    spans += [(m.start(), m.end(), "digit") for m in re.finditer(r"\d+", answer)]
    return spans


def token_kinds(tok, ids, spans):
    """The copy kind of each token of `ids` (a token overlapping a span gets its kind, name before literal
    before digit), or None."""
    out, pos = [], 0
    for i in ids:
        n = len(tok.token_bytes(int(i)))
        hit = {kind for a, b, kind in spans if a < pos + n and pos < b}
        out.append(next((k for k in KINDS if k in hit), None))
        pos += n
    return out


def induction_rows(vocab, n, span, generator):
    """(n, 2 * span) rows: a random span of regular token ids (0 .. vocab-1), then the same span again."""
    first = torch.randint(vocab, (n, span), generator=generator)
    return torch.cat([first, first], dim=1)


def _accuracy(logits, targets, mask_token_id):
    logits = logits.float()
    logits[:, mask_token_id] = -math.inf
    return (logits.argmax(-1) == targets).float()


class Probes:
    """The probe batches, built once (CPU tensors), and `run(model, objective, device)` -> {name: accuracy}."""

    def __init__(self, rows, kinds, induction, mask_token_id):
        self.rows, self.kinds, self.induction, self.mask_token_id = rows, kinds, induction, mask_token_id

    @classmethod
    def build(cls, tok, path, n=128, val_fraction=0.05, answer_length=None, seed=0):
        """From the held-out (val) records of a tasks jsonl (question, answer, entry_point), as the SFT split
        sees them; answer_length: the canvas (None: 64)."""
        from train_pretrain import sft_tensors  # here: train_pretrain.py imports this file
        missing = f"probe_file '{path}' not found; run `python prepare_data.py --kind=tasks` or set probe_file=''."
        records = [r for _, r in load_jsonl(path, missing)]
        if not records or "entry_point" not in records[0]:
            raise ValueError(f"probe_file '{path}' needs task records with 'question', 'answer' "
                             f"and 'entry_point' fields.")
        records = [r for r in records if is_val(r["question"], val_fraction)][:n] or records[:n]
        canvas = answer_length or 64
        prompts = [len(tok.encode(tok.diffucoder_prompt(r["question"]))) for r in records]
        rows, _ = sft_tensors([(r["question"], r["answer"]) for r in records], tok, max(prompts) + canvas, canvas)
        kinds = torch.full(rows.x.shape, -1)  # (N, T): index into KINDS, -1 for none
        kept = [r for r in records if len(tok.encode(r["answer"])) < canvas]  # the records sft_tensors kept
        for b, r in enumerate(kept):
            start = int(rows.canvas[b].nonzero()[0])
            ids = tok.encode(r["answer"])
            for j, kind in enumerate(token_kinds(tok, ids, copy_spans(r["answer"], r["entry_point"]))):
                if kind is not None:
                    kinds[b, start + j] = KINDS.index(kind)
        regular = min(tok.special_tokens.values()) if tok.special_tokens else tok.vocab_size
        g = seeded(seed)
        return cls(rows, kinds, induction_rows(regular, INDUCTION_ROWS, INDUCTION_SPAN, g), tok.mask_token_id)

    @torch.no_grad()
    def run(self, model, objective, device):
        """Accuracies (fractions) by probe name, e.g. {'copy/name': 0.9, 'answer/all': 0.7, 'induction': 0.1}."""
        was_training = model.training
        model.eval()
        hits = {}

        def score(name, x, real, where, targets):
            attn = training_attention_mask(objective, real)
            pos = None if bool(real.all()) else padding_position_ids(real)
            logits = model(x, attention_mask=attn, position_ids=pos, output_rows=predictor_rows(where))
            acc = _accuracy(logits, targets[where], self.mask_token_id)
            for key, sel in name(where):
                h = hits.setdefault(key, [0.0, 0])
                h[0] += float(acc[sel].sum())
                h[1] += int(sel.sum())

        for b in range(0, len(self.rows), BATCH):
            rows, kinds = self.rows[b:b + BATCH], self.kinds[b:b + BATCH].to(device)
            x, real, answer, canvas = (v.to(device) for v in (rows.x, rows.real, rows.answer, rows.canvas))
            copy = kinds >= 0

            def by_kind(prefix, with_all=False):
                def split(where):
                    k = kinds[where]
                    out = [(f"{prefix}/{kind}", k == i) for i, kind in enumerate(KINDS)]
                    return out + ([(f"{prefix}/all", torch.ones_like(k, dtype=torch.bool))] if with_all else [])
                return split
            if objective == "ar":
                score(by_kind("copy"), x, real, copy, x)
            else:
                masked = torch.where(copy, self.mask_token_id, x)
                score(by_kind("copy"), masked, real, copy, x)
                blank = torch.where(canvas, self.mask_token_id, x)
                score(by_kind("answer", with_all=True), blank, real, answer, x)
        g = seeded(1)
        for b in range(0, len(self.induction), BATCH):
            x = self.induction[b:b + BATCH].to(device)
            real = torch.ones_like(x, dtype=torch.bool)
            where = torch.zeros_like(real)
            if objective == "ar":
                where[:, INDUCTION_SPAN + 1:] = True
                inp = x
            else:
                where[:, INDUCTION_SPAN:] = torch.rand(x.size(0), INDUCTION_SPAN, generator=g).to(device) < 0.5
                inp = torch.where(where, self.mask_token_id, x)
            score(lambda w: [("induction", torch.ones(int(w.sum()), dtype=torch.bool, device=device))],
                  inp, real, where, x)
        model.train(was_training)
        return {k: h[0] / h[1] for k, h in hits.items() if h[1]}


def format_probes(p):
    """One log line: 'copy name 0.85 literal 0.40 digit 0.31 | answer ... | induction 0.05'."""
    groups = {}
    for key, v in p.items():
        group, _, kind = key.partition("/")
        groups.setdefault(group, []).append(f"{kind} {v:.2f}" if kind else f"{v:.2f}")
    return " | ".join(f"{g} {' '.join(vs)}" for g, vs in groups.items())
