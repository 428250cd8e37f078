"""
Tiny code tasks: a deterministic generator of small Python function-writing problems.

Each task asks for a one-argument function (`x` int, `xs` list of ints, `s` str, or `n` int >= 0) and
has five assert tests (the question shows the first two as examples), a reference solution, and the
reference answer in DiffuCoder's format ("```python\\n{solution}```\\n"). Expected values come from
exec'ing the reference at generation time, so they are right by construction; test inputs hit both
sides of every condition (the threshold itself, just above it, far on each side, the empty list).
The constants are baked into the function (one argument only), and questions are short (about
40-60 tokens) so that a 256-512 token context holds question and answer.

Families, with their difficulty (1 = easiest), each a set of templates built from shared primitives:
1. arith   (1) an expression of x composing two operations: `3 * x + 5`, `(x - 2) * 4`, `x % 3 + 7`
2. string  (1) one string primitive: upper, reverse, replace, remove, prefix, suffix, slice, count, ...
3. list    (2) map / filter / sum / count over xs with one primitive: `[v + 3 for v in xs]`, `v > 4`
4. cond    (2) `e1 if pred(x) else e2`: a predicate (> c, < c, even) and two unary expressions
5. loop    (3) a loop over i = 1..n (sum / product / count / conditional sum) or over the digits of n
6. compose (4) two primitives from different families: filter then map, a conditional inside a map,
   an arithmetic step then a conditional, two string steps in sequence

Split rule. A template is keyed by its family and its primitives ("compose:filter_map+even+mul").
1. Held-out templates: in every family, 25% of the templates that combine two or more primitives
   (ranked by the sha256 of their key) are reserved for the test split; train never uses them.
   Single-primitive templates (`string:upper`, `loop:digitsum`) are never held out.
2. Held-out constants: on the other templates, a (template, constants) instance goes to test when the
   sha256 of "key|constants" falls in a 20% bucket; constant-free instances always go to train.
3. In each family with held-out templates, half of its test tasks use them, half use seen templates
   with test constants (string has no held-out template: all its test tasks are of the second kind).
So no test solution body (up to the function name) occurs in train, and no test question does.
Names are verb_noun from a word list and carry no meaning. `generate_tasks(split, n, seed)` cycles
through the families and is fully determined by its arguments.
"""
import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass
from functools import lru_cache

from configurator import load_jsonl

# -----------------------------------------------------------------------------
# split
HELDOUT_FRAC = 0.25       # fraction of each family's multi-primitive templates reserved for test
TEST_CONST_FRAC = 0.2     # fraction of a seen template's constant instances reserved for test
TEST_HELDOUT_FRAC = 0.5   # fraction of test tasks drawn from held-out templates
# tasks
NUM_TESTS = 5             # hidden asserts per task
NUM_EXAMPLES = 2          # the first NUM_EXAMPLES tests are shown in the question
DIFFICULTY = {"arith": 1, "string": 1, "list": 2, "cond": 2, "loop": 3, "compose": 4}
FAMILIES = tuple(DIFFICULTY)

VERBS = ("get", "make", "find", "build", "take", "load", "run", "check", "set", "add",
         "read", "parse", "update", "count", "sort", "copy", "match", "show", "save", "fix")
NOUNS = ("value", "result", "item", "level", "size", "data", "key", "name", "path", "line",
         "text", "node", "index", "type", "group", "mode", "info", "code", "time", "error")
LETTERS = "abcd"          # alphabet of string constants and string inputs

# primitives: unary int expressions of a variable {v} with an optional constant {k}
UNARY = {"id": "{v}", "add": "{v} + {k}", "sub": "{v} - {k}", "mul": "{k} * {v}",
         "sq": "{v} * {v}", "neg": "-{v}"}
UNARY_K = {"add": (1, 9), "sub": (1, 9), "mul": (2, 5)}
# predicates: (code, text)
PRED = {"gt": ("{v} > {k}", "{v} > {k}"), "lt": ("{v} < {k}", "{v} < {k}"),
        "even": ("{v} % 2 == 0", "{v} is even"), "odd": ("{v} % 2 == 1", "{v} is odd"),
        "div": ("{v} % {k} == 0", "{v} is divisible by {k}")}
PRED_K = {"gt": (0, 9), "lt": (0, 9), "div": (2, 5)}
# arithmetic of x: expression, range of {a}, range of {b}
ARITH = {
    "mul+add": ("{a} * x + {b}", (2, 9), (1, 9)),
    "mul+sub": ("{a} * x - {b}", (2, 9), (1, 9)),
    "add+mul": ("(x + {a}) * {b}", (1, 9), (2, 9)),
    "sub+mul": ("(x - {a}) * {b}", (1, 9), (2, 9)),
    "sq+add": ("x * x + {b}", None, (1, 9)),
    "sq+sub": ("x * x - {b}", None, (1, 9)),
    "sq+mul": ("{b} * x * x", None, (2, 9)),
    "add+sq": ("(x + {a}) * (x + {a})", (1, 9), None),
    "sub+sq": ("(x - {a}) * (x - {a})", (1, 9), None),
    "div+add": ("x // {a} + {b}", (2, 5), (1, 9)),
    "div+sub": ("x // {a} - {b}", (2, 5), (1, 9)),
    "mod+add": ("x % {a} + {b}", (2, 5), (1, 9)),
    "mod+mul": ("(x % {a}) * {b}", (2, 5), (2, 9)),
}
# string primitives: code on {s}, noun phrase, step (for compositions; None = not composable)
STR_OPS = {
    "upper": ("{s}.upper()", "s in upper case", "convert it to upper case"),
    "reverse": ("{s}[::-1]", "s reversed", "reverse it"),
    "replace": ("{s}.replace('{a}', '{b}')", "s with every '{a}' replaced by '{b}'",
                "replace every '{a}' with '{b}'"),
    "remove": ("{s}.replace('{a}', '')", "s with every '{a}' removed", "remove every '{a}'"),
    "prefix": ("'{p}' + {s}", "'{p}' followed by s", "put '{p}' in front"),
    "suffix": ("{s} + '{p}'", "s followed by '{p}'", "append '{p}'"),
    "head": ("{s}[:{k}]", "the first {k} characters of s", "keep the first {k} characters"),
    "drop": ("{s}[{k}:]", "s without its first {k} characters", "drop the first {k} characters"),
    "count": ("{s}.count('{a}')", "the number of times '{a}' occurs in s", None),
    "repeat": ("{s} * {k}", "s repeated {k} times", None),
    "starts": ("{s}.startswith('{p}')", "True if s starts with '{p}', otherwise False", None),
}
STR_STEPS = [op for op, (_, _, step) in STR_OPS.items() if step]
STR_BAD_PAIRS = {("upper", "replace"), ("upper", "remove"), ("prefix", "head"), ("prefix", "drop")}


@dataclass
class Task:
    task_id: str          # "tiny/train/000123"
    family: str
    difficulty: int
    entry_point: str      # the function name
    question: str         # the user message (plain text; the chat template is applied elsewhere)
    tests: list           # assert statements, e.g. "assert add_three(4) == 7"
    solution: str         # the reference function source, ending with a newline
    answer: str           # "```python\n" + solution + "```\n"
    template: str         # the template key the split rule works on, e.g. "cond:gt+add+mul"

# -----------------------------------------------------------------------------
# templates and the split


@lru_cache(maxsize=None)
def templates():
    """family -> list of template part tuples; the key of a template is family:part+part."""
    cmp3, u_map, u_cond = ("gt", "lt", "even"), ("add", "sub", "mul", "sq", "neg"), tuple(UNARY)
    preds = ("gt", "lt", "even", "odd")
    return {
        "arith": [tuple(k.split("+")) for k in ARITH],
        "string": [(op,) for op in STR_OPS],
        "list": [("map", u) for u in u_map] + [(s, p) for s in ("filter", "sum", "count") for p in preds]
                + [("max",), ("min",)],
        "cond": [(p, a, b) for p in cmp3 for a in u_cond for b in u_cond if a != b],
        "loop": [("sum", u) for u in ("id", "add", "mul", "sq")] + [("prod", u) for u in ("id", "add")]
                + [(s, p) for s in ("count", "sumif") for p in ("even", "odd", "div")] + [("digitsum",), ("pow",)],
        "compose": [(s, p, u) for s in ("filter_map", "sum_map") for p in preds for u in u_map]
                   + [("map_cond", p, a, b) for p in cmp3 for a in u_cond for b in u_cond if a != b]
                   + [("arith_cond", u0, p, u) for u0 in ("add", "sub", "mul", "sq") for p in cmp3 for u in u_map]
                   + [("str_str", a, b) for a in STR_STEPS for b in STR_STEPS
                      if a != b and (a, b) not in STR_BAD_PAIRS],
    }


def template_key(family, parts):
    return family + ":" + "+".join(parts)


def _sha(text):
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


@lru_cache(maxsize=None)
def split_keys():
    """(seen, heldout): family -> sorted list of template keys. heldout is test-only."""
    seen, heldout = {}, {}
    for family, parts_list in templates().items():
        keys = [template_key(family, p) for p in parts_list]
        multi = sorted((template_key(family, p) for p in parts_list if len(p) >= 2), key=_sha)
        held = set(multi[:round(HELDOUT_FRAC * len(multi))])
        seen[family] = sorted(k for k in keys if k not in held)
        heldout[family] = sorted(held)
    return seen, heldout


def _instance_in_test(key, consts):
    return bool(consts) and _sha(f"{key}|{consts!r}") % 1000 < TEST_CONST_FRAC * 1000

# -----------------------------------------------------------------------------
# builders: (parts, rng, consts) -> (param, description, body, inputs)


class _Consts:
    """Draws the constants of one instance and records them (they decide the instance's split)."""
    def __init__(self, rng):
        self.rng, self.values = rng, []

    def int(self, lo, hi):
        return self.keep(self.rng.randint(lo, hi))

    def choice(self, seq):
        return self.keep(self.rng.choice(seq))

    def keep(self, v):
        self.values.append(v)
        return v


def _unary(name, v, c):
    k = c.int(*UNARY_K[name]) if name in UNARY_K else None
    return UNARY[name].format(v=v, k=k)


def _pred(name, v, c, k=None):
    """(code, text, center): center is the threshold, or a random centre for the test inputs."""
    if name in PRED_K:
        k = c.int(*PRED_K[name]) if k is None else c.keep(k)
    code, text = PRED[name]
    return code.format(v=v, k=k), text.format(v=v, k=k), c.rng.randint(2, 8) if k is None else k


def _paren(e):
    return f"({e})" if " + " in e or " - " in e else e


def _str_fill(op, c):
    code, f = STR_OPS[op][0], {}
    if "{a}" in code:
        f["a"] = c.choice(LETTERS)
    if "{b}" in code:
        f["b"] = c.choice([x for x in LETTERS if x != f["a"]])
    if "{p}" in code:
        f["p"] = c.choice([x + y for x in LETTERS for y in LETTERS])
    if "{k}" in code:
        f["k"] = c.int(2, 3) if op == "repeat" else c.int(1, 3)
    return f


def _distinct(first, fill, n=NUM_TESTS):
    out = []
    for v in first:
        if v not in out:
            out.append(v)
    while len(out) < n:
        v = fill()
        if v not in out:
            out.append(v)
    return out[:n]


def _ints(rng, center):
    """Far above, far below, the boundary, just above, then random."""
    first = [center + rng.randint(2, 5), center - rng.randint(1, 5), center, center + 1]
    return _distinct(first, lambda: rng.randint(-6, 15))


def _lists(rng, center):
    def rand(lo, hi):
        return [rng.randint(center - 5, center + 5) for _ in range(rng.randint(lo, hi))]
    first = rand(0, 1) + [center, center + 1]  # boundaries; the examples are short lists
    rng.shuffle(first)
    return _distinct([first, rand(2, 3), []], lambda: rand(3, 5))


def _strs(rng, prefix=None):
    def rand(lo, hi):
        return "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))
    first = prefix + rand(1, 3) if prefix else rand(3, 6)
    return _distinct([first, rand(3, 6), "", rand(4, 7)], lambda: rand(2, 7))


def _arith(parts, rng, c):
    expr, a_range, b_range = ARITH["+".join(parts)]
    a = c.int(*a_range) if a_range else None
    b = c.int(*b_range) if b_range else None
    expr = expr.format(a=a, b=b)
    return "x", expr, f"    return {expr}\n", _distinct([], lambda: rng.randint(-6, 15))


def _string(parts, rng, c):
    op = parts[0]
    code, noun, _ = STR_OPS[op]
    f = _str_fill(op, c)
    inputs = _strs(rng, f["p"] if op == "starts" else None)
    return "s", noun.format(**f), f"    return {code.format(s='s', **f)}\n", inputs


def _list(parts, rng, c):
    kind = parts[0]
    if kind == "map":
        e = _unary(parts[1], "v", c)
        return "xs", f"a list with {e} for each element v of xs", f"    return [{e} for v in xs]\n", \
            _lists(rng, rng.randint(0, 8))
    if kind in ("max", "min"):
        d = c.int(-9, 0)
        desc = f"the {'largest' if kind == 'max' else 'smallest'} element of xs, or {d} if xs is empty"
        return "xs", desc, f"    return {kind}(xs) if xs else {d}\n", _lists(rng, rng.randint(0, 8))
    pc, pt, center = _pred(parts[1], "v", c)
    desc, body = {
        "filter": (f"a list of the elements v of xs for which {pt}", f"[v for v in xs if {pc}]"),
        "sum": (f"the sum of the elements v of xs for which {pt}", f"sum(v for v in xs if {pc})"),
        "count": (f"the number of elements v of xs for which {pt}", f"sum(1 for v in xs if {pc})"),
    }[kind]
    return "xs", desc, f"    return {body}\n", _lists(rng, center)


def _cond(parts, rng, c):
    pc, pt, center = _pred(parts[0], "x", c)
    e1, e2 = _unary(parts[1], "x", c), _unary(parts[2], "x", c)
    body = f"    if {pc}:\n        return {e1}\n    return {e2}\n"
    return "x", f"{e1} if {pt}, otherwise {e2}", body, _ints(rng, center)


def _loop(parts, rng, c):
    kind, loop = parts[0], "    total = {init}\n    for i in range(1, n + 1):\n"
    n_max, first = 10, []
    if kind in ("sum", "prod"):
        e = _unary(parts[1], "i", c)
        desc = f"the {'sum' if kind == 'sum' else 'product'} of {_paren(e)} for i from 1 to n"
        init, op = (0, "+=") if kind == "sum" else (1, "*=")
        body = loop.format(init=init) + f"        total {op} {e}\n"
        n_max = 10 if kind == "sum" else 6
    elif kind in ("count", "sumif"):
        pc, pt, k = _pred(parts[1], "i", c)
        first = [2 * k - 1] if parts[1] == "div" else []  # n + 1 divisible by k: an off-by-one range end
        what = "the number of integers" if kind == "count" else "the sum of the integers"
        desc = f"{what} i from 1 to n for which {pt}"
        term = "1" if kind == "count" else "i"
        body = loop.format(init=0) + f"        if {pc}:\n            total += {term}\n"
    elif kind == "pow":
        k = c.int(2, 5)
        desc, n_max = f"{k} to the power n", 8
        body = f"    total = 1\n    for _ in range(n):\n        total *= {k}\n"
    else:  # digitsum
        desc = "the sum of the decimal digits of n"
        body = "    total = 0\n    while n > 0:\n        total += n % 10\n        n //= 10\n"
        first = [rng.randint(10, 999), rng.randint(1000, 99999), 0, rng.randint(1, 9), rng.randint(10, 19)]
        return "n", desc, body + "    return total\n", _distinct(first, lambda: rng.randint(100, 9999))
    first = [rng.randint(2, 4), rng.randint(5, n_max), 0, 1] + first
    return "n", desc, body + "    return total\n", _distinct(first, lambda: rng.randint(2, n_max))


def _compose(parts, rng, c):
    kind = parts[0]
    if kind in ("filter_map", "sum_map"):
        pc, pt, center = _pred(parts[1], "v", c)
        e = _unary(parts[2], "v", c)
        if kind == "filter_map":
            desc, body = f"a list of {e} for each element v of xs for which {pt}", f"[{e} for v in xs if {pc}]"
        else:
            desc = f"the sum of {_paren(e)} over the elements v of xs for which {pt}"
            body = f"sum({e} for v in xs if {pc})"
        return "xs", desc, f"    return {body}\n", _lists(rng, center)
    if kind == "map_cond":
        pc, pt, center = _pred(parts[1], "v", c)
        e1, e2 = _unary(parts[2], "v", c), _unary(parts[3], "v", c)
        desc = f"a list with, for each element v of xs, {e1} if {pt}, otherwise {e2}"
        return "xs", desc, f"    return [{e1} if {pc} else {e2} for v in xs]\n", _lists(rng, center)
    if kind == "arith_cond":  # the threshold is y at some x0, so x0 is the boundary input
        y = _unary(parts[1], "x", c)
        x0 = rng.randint(-3, 8)
        pc, pt, _ = _pred(parts[2], "y", c, k=eval(y, {"x": x0}))
        e = _unary(parts[3], "y", c)
        body = f"    y = {y}\n    if {pc}:\n        return y\n    return {e}\n"
        return "x", f"y if {pt}, otherwise {e}, where y = {y}", body, _ints(rng, x0)
    # str_str
    (code1, _, step1), (code2, _, step2) = STR_OPS[parts[1]], STR_OPS[parts[2]]
    f1, f2 = _str_fill(parts[1], c), _str_fill(parts[2], c)
    desc = f"s after two steps: first {step1.format(**f1)}, then {step2.format(**f2)}"
    body = f"    t = {code1.format(s='s', **f1)}\n    return {code2.format(s='t', **f2)}\n"
    return "s", desc, body, _strs(rng)


BUILDERS = {"arith": _arith, "string": _string, "list": _list, "cond": _cond, "loop": _loop, "compose": _compose}

# -----------------------------------------------------------------------------
# tasks


def make_task(task_id, family, parts, name, rng):
    """One task from a template; returns (task, constants). Expected values come from the reference."""
    c = _Consts(rng)
    param, desc, body, inputs = BUILDERS[family](parts, rng, c)
    solution = f"def {name}({param}):\n{body}"
    namespace = {}
    exec(solution, namespace)  # trusted: we wrote it
    checks = [f"{name}({v!r}) == {namespace[name](v)!r}" for v in inputs]
    # the signature is shown as `def name(arg):` so that it tokenizes as in the answer (" take" after "def",
    # not "take" after a backtick): a tiny model can then copy it, and the task is about the body
    question = (f"Write a Python function `def {name}({param}):` that returns {desc}.\nExamples:\n"
                + "\n".join(checks[:NUM_EXAMPLES]))
    task = Task(task_id=task_id, family=family, difficulty=DIFFICULTY[family], entry_point=name,
                question=question, tests=["assert " + ch for ch in checks], solution=solution,
                answer=f"```python\n{solution}```\n", template=template_key(family, parts))
    return task, c.values


def generate_tasks(split, n, seed):
    """n tasks of the split ('train' or 'test'), cycling through FAMILIES; determined by (split, n, seed)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = random.Random(f"tiny-tasks/{split}/{seed}")
    seen, heldout = split_keys()
    parts_of = {template_key(f, p): p for f, ps in templates().items() for p in ps}
    tasks, questions = [], set()
    for i in range(n):
        family = FAMILIES[i % len(FAMILIES)]
        held = split == "test" and bool(heldout[family]) and rng.random() < TEST_HELDOUT_FRAC
        for _ in range(1000):
            key = rng.choice(heldout[family] if held else seen[family])
            name = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"
            task, consts = make_task(f"tiny/{split}/{i:06d}", family, parts_of[key], name, rng)
            in_test = held or _instance_in_test(key, consts)
            if in_test == (split == "test") and task.question not in questions:
                break
        else:
            raise RuntimeError(f"could not draw a new {split} task of family {family}; lower n")
        questions.add(task.question)
        tasks.append(task)
    return tasks


def check_reference(task):
    """Run the reference solution and its tests in-process (trusted code: the generator's self-check only;
    untrusted completions go through execution.run_tests)."""
    namespace = {}
    try:
        exec(task.solution, namespace)
        for test in task.tests:
            exec(test, namespace)
    except Exception:
        return False
    return True


def write_jsonl(tasks, path):
    """One JSON record per task (all fields), written to a temp file and renamed."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        for task in tasks:
            f.write(json.dumps(asdict(task)) + "\n")
    os.replace(tmp, path)


def read_jsonl(path):
    return [Task(**r) for _, r in load_jsonl(path)]


if __name__ == "__main__":
    seen, heldout = split_keys()
    splits = {"train": generate_tasks("train", 3000, seed=0), "test": generate_tasks("test", 600, seed=0)}
    print("family   difficulty  templates  held-out  train tasks  test tasks (held-out template)")
    for f in FAMILIES:
        n_test = [t for t in splits["test"] if t.family == f]
        print(f"{f:8s} {DIFFICULTY[f]:10d} {len(seen[f]) + len(heldout[f]):10d} {len(heldout[f]):9d} "
              f"{sum(t.family == f for t in splits['train']):12d} {len(n_test):11d} "
              f"({sum(t.template in heldout[f] for t in n_test)})")
    for split, ts in splits.items():
        for f in FAMILIES:
            t = next(t for t in ts if t.family == f)
            print(f"\n--- {t.task_id} {t.template} (difficulty {t.difficulty})\n{t.question}\n{t.answer}"
                  + "\n".join(t.tests))
