"""
The order in which a diffusion model decodes: the AR-ness metrics of the paper's appendix A.2, and
pictures of the order (sample.py's --show_order, --order_html: the paper's Figure 1a). An order is the
list of generated positions in commit order (`sample.DecodeHistory.order`); the prompt counts as
decoded left to right before step 1.
"""

import html

# -----------------------------------------------------------------------------
# AR-ness

def _check_order(order):
    order = [int(p) for p in order]
    if sorted(order) != list(range(len(order))):
        raise ValueError("order must list each generated position 0..T-1 exactly once, in commit order")
    return order


def local_ar_ness(order, k):
    """Fraction of steps whose token extends a run of k in-order commits: p_{t-i} = p_t - i, i = 1..k."""
    order = _check_order(order)
    seq = list(range(-k, 0)) + order  # k prompt positions (-k..-1) committed in order first
    hits = sum(all(seq[t - i] == seq[t] - i for i in range(1, k + 1)) for t in range(k, len(seq)))
    return hits / len(order)


def global_ar_ness(order, k):
    """Fraction of steps that commit one of the k leftmost still-masked positions."""
    masked, hits = sorted(_check_order(order)), 0
    for p in order:
        hits += p in masked[:k]
        masked.remove(p)
    return hits / len(order)


# -----------------------------------------------------------------------------
# pictures of the decoding order

PALETTE = ((80, 120, 255), (0, 200, 230), (60, 210, 90), (245, 200, 40), (255, 70, 60))  # early (blue) -> late (red)


def step_colour(step, num_steps):
    f = step / max(1, num_steps - 1) * (len(PALETTE) - 1)
    a, b, w = PALETTE[int(f)], PALETTE[min(int(f) + 1, len(PALETTE) - 1)], f - int(f)
    return tuple(round(a[c] + (b[c] - a[c]) * w) for c in range(3))


def token_pieces(tok, ids):
    """Each token's bytes (ids the tokenizer lacks, e.g. padded embedding rows, become b'?')."""
    out = []
    for i in ids:
        try:
            out.append(tok.token_bytes(int(i)))
        except ValueError:
            out.append(b"?")
    return out


def token_texts(tok, ids):
    return [b.decode("utf-8", errors="replace") for b in token_pieces(tok, ids)]


def order_ansi(tok, ids, steps, num_steps):
    """The tokens coloured by commit step (24-bit ANSI), plus a legend line."""
    body = "".join(f"\x1b[1;38;2;{r};{g};{b}m{text}\x1b[0m" for text, (r, g, b) in
                   ((t, step_colour(int(s), num_steps)) for t, s in zip(token_texts(tok, ids), steps)))
    legend = "".join(f"\x1b[38;2;{r};{g};{b}m\u2588\x1b[0m" for r, g, b in (step_colour(s, 21) for s in range(21)))
    return f"{body}\n[step 0 {legend} step {num_steps - 1}]"


def order_text(tok, ids, steps, num_steps):
    """The same picture in plain text: under each line of the completion, one digit per character, the
    tenth of the decoding (0: first steps ... 9: last steps) in which its token was committed."""
    code, when = "", ""
    for text, s in zip(token_texts(tok, ids), steps):
        d = str(min(9, 10 * int(s) // max(1, num_steps)))
        code += text
        when += "".join("\n" if ch == "\n" else d for ch in text)
    return "\n".join(f"{c}\n{w}" for c, w in zip(code.split("\n"), when.split("\n")) if c.strip())


def order_html_doc(tok, samples, num_steps):
    """An HTML page: one <pre> per sample, each token's background coloured by its commit step."""
    blocks = []
    for ids, steps, conf in samples:
        spans = "".join(f'<span style="background:rgb{step_colour(int(s), num_steps)}" '
                        f'title="step {int(s)}, confidence {float(c):.3f}">{html.escape(t)}</span>'
                        for t, s, c in zip(token_texts(tok, ids), steps, conf))
        blocks.append(f"<pre>{spans}</pre>")
    return ("<!doctype html><meta charset='utf-8'><title>decoding order</title><body style='font:14px monospace'>"
            f"<p>Background: the step that committed the token (blue = early, red = late; {num_steps} steps). "
            f"Hover for the step and confidence.</p>{''.join(blocks)}</body>")


