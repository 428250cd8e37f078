"""
The copy probes (probes.py) on hand-built data: which answer tokens are copies, and the accuracies of an
oracle model (1 everywhere: the shift, the masks and the bookkeeping line up) and of a model that always
predicts one token.

Run: .venv/bin/python -m pytest tests/test_probes.py
"""

import json

import pytest
import torch

from probes import Probes, copy_spans, format_probes, induction_rows, token_kinds
from tokenizer import Tokenizer
from tasks import generate_tasks
from dataclasses import asdict


@pytest.fixture(scope="module")
def tok():
    texts = [t.question + "\n" + t.answer for t in generate_tasks("train", 300, seed=1)]
    return Tokenizer.train(iter(texts * 3), vocab_size=400)


def test_copy_spans_and_token_kinds(tok):
    answer = "```python\ndef get_value(s):\n    return s.replace('ab', 'c') * 12\n```\n"
    spans = copy_spans(answer, "get_value")
    text = {kind: [answer[a:b] for a, b, k in spans if k == kind] for kind in ("name", "literal", "digit")}
    assert text == {"name": ["get_value"], "literal": ["ab", "c"], "digit": ["12"]}
    ids = tok.encode(answer)
    kinds = token_kinds(tok, ids, spans)
    pieces = {kind: "".join(tok.decode([i]) for i, k in zip(ids, kinds) if k == kind)
              for kind in ("name", "literal", "digit")}
    assert "get_value" in pieces["name"] and "def" not in pieces["name"] and "return" not in pieces["name"]
    assert "ab" in pieces["literal"] and "c" in pieces["literal"] and "12" in pieces["digit"]
    assert all(k is None for i, k in zip(ids, kinds) if tok.decode([i]) in ("```", "python", " return"))


class Oracle(torch.nn.Module):
    """Knows the clean rows; given an input with some tokens masked, finds the clean row that agrees with it
    everywhere else and predicts its next token from every row (row i -> token i + 1), with the mask token
    ranked even higher (decoding never predicts it). `wrong=True` predicts token 0 everywhere instead."""

    def __init__(self, clean, vocab, mask_id, wrong=False):
        super().__init__()
        self.clean, self.vocab, self.mask_id, self.wrong = clean, vocab, mask_id, wrong

    def forward(self, x, attention_mask=None, position_ids=None, output_rows=None):
        B, T = x.shape
        rows = []
        for b in range(B):
            cands = [c for c in self.clean if len(c) == T and bool(((x[b] == c) | (x[b] == self.mask_id)).all())]
            assert len(cands) == 1
            rows.append(cands[0])
        nxt = torch.stack(rows)[:, 1:]  # (B, T - 1): the token each row predicts
        nxt = torch.cat([nxt, torch.zeros(B, 1, dtype=torch.long)], 1)
        if self.wrong:
            nxt = torch.zeros_like(nxt)
        logits = torch.nn.functional.one_hot(nxt, self.vocab).float() * 5  # (B, T, V)
        logits[..., self.mask_id] = 10.0
        return logits[output_rows]


def test_probes_of_an_oracle_are_one_and_of_a_constant_model_zero(tok, tmp_path):
    tasks = generate_tasks("train", 40, seed=2)
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(asdict(t)) + "\n" for t in tasks))
    probes = Probes.build(tok, str(path), n=40, val_fraction=1.0, answer_length=64, seed=0)
    assert len(probes.rows) == 40 and (probes.kinds == 0).sum() >= 40  # every answer copies its function name
    clean = list(probes.rows.x) + list(probes.induction)
    for objective in ("diffusion", "ar"):
        p = probes.run(Oracle(clean, tok.vocab_size, tok.mask_token_id), objective, "cpu")
        expected = {"copy/name", "copy/literal", "copy/digit", "induction"}
        if objective == "diffusion":
            expected |= {"answer/name", "answer/literal", "answer/digit", "answer/all"}
        assert set(p) == expected and all(v == 1.0 for v in p.values()), p
        wrong = probes.run(Oracle(clean, tok.vocab_size, tok.mask_token_id, wrong=True), objective, "cpu")
        assert all(v < 0.05 for v in wrong.values()), wrong
    line = format_probes({"copy/name": 0.5, "copy/digit": 0.25, "induction": 0.125})
    assert line == "copy name 0.50 digit 0.25 | induction 0.12"


def test_induction_rows_repeat_their_span():
    x = induction_rows(100, 3, 8, torch.Generator().manual_seed(0))
    assert x.shape == (3, 16) and torch.equal(x[:, :8], x[:, 8:]) and int(x.max()) < 100
