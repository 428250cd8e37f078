"""
Tests for tasks.py, the embedded tiny code-task generator.

Run: .venv/bin/python -m pytest tests/test_tasks.py
Hermetic (no network, files only under pytest's tmp_path), a few seconds on a CPU.
"""
import ast
import collections
import os
import random

import pytest

import tasks


@pytest.fixture(scope="module")
def train():
    return tasks.generate_tasks("train", 3000, seed=0)


@pytest.fixture(scope="module")
def heldout():
    return tasks.generate_tasks("test", 1000, seed=0)


def body(task):
    """The solution without its def line: the template + constants, up to the function name."""
    return task.solution.split("\n", 1)[1]


def test_determinism():
    a, b = tasks.generate_tasks("train", 200, seed=3), tasks.generate_tasks("train", 200, seed=3)
    assert a == b
    assert a != tasks.generate_tasks("train", 200, seed=4)
    assert tasks.generate_tasks("test", 50, seed=3) == tasks.generate_tasks("test", 50, seed=3)
    assert tasks.generate_tasks("train", 50, seed=3) == a[:50]  # a prefix does not depend on n


def test_bad_split():
    with pytest.raises(ValueError):
        tasks.generate_tasks("valid", 10, seed=0)


def test_references_pass(train, heldout):
    failed = [t.task_id for t in train + heldout if not tasks.check_reference(t)]
    assert failed == []


def test_check_reference_rejects_wrong_solution(train):
    t = train[0]
    wrong = tasks.Task(**{**t.__dict__, "solution": f"def {t.entry_point}(*args):\n    return None\n"})
    assert not tasks.check_reference(wrong)


def test_fields(train, heldout):
    for split, ts in (("train", train), ("test", heldout)):
        assert [t.task_id for t in ts] == [f"tiny/{split}/{i:06d}" for i in range(len(ts))]
        assert len({t.question for t in ts}) == len(ts)
        for t in ts:
            assert t.family in tasks.FAMILIES and t.difficulty == tasks.DIFFICULTY[t.family]
            assert t.template.startswith(t.family + ":")
            assert 3 <= len(t.tests) <= 6 and len(set(t.tests)) == len(t.tests)
            assert all(x.startswith(f"assert {t.entry_point}(") for x in t.tests)
            assert t.question.startswith(f"Write a Python function `def {t.entry_point}(")
            for x in t.tests[:tasks.NUM_EXAMPLES]:  # the examples shown are the first tests
                assert x[len("assert "):] in t.question
            assert len(t.question) < 320 and len(t.solution) < 200  # fits a 256-512 token context


def _mutable(tree):
    """Int and str constants, and > / < comparisons except loop conditions (>= could loop forever)."""
    loops = {id(n.test) for n in ast.walk(tree) if isinstance(n, ast.While)}
    return [n for n in ast.walk(tree) if (isinstance(n, ast.Constant) and type(n.value) in (int, str))
            or (isinstance(n, ast.Compare) and type(n.ops[0]) in (ast.Gt, ast.Lt) and id(n) not in loops)]


def _mutants(solution):
    """Perturbed copies of a solution, as (source, is_return_none): each int constant +1, each str
    constant + 'z', each > / < made >= / <=, and the body replaced by `return None`."""
    out = []
    for i in range(len(_mutable(ast.parse(solution))) + 1):
        tree = ast.parse(solution)
        nodes = _mutable(tree)
        if i == len(nodes):
            tree.body[0].body = [ast.Return(ast.Constant(None))]
        elif isinstance(nodes[i], ast.Compare):
            nodes[i].ops = [ast.GtE() if isinstance(nodes[i].ops[0], ast.Gt) else ast.LtE()]
        else:
            nodes[i].value = nodes[i].value + (1 if isinstance(nodes[i].value, int) else "z")
        out.append((ast.unparse(ast.fix_missing_locations(tree)) + "\n", i == len(nodes)))
    return out


def _probes(task, rng):
    """Many inputs of the parameter's type, to tell a real mutant from an equivalent one."""
    param = task.solution.split("(", 1)[1].split(")", 1)[0]
    if param == "x":
        return list(range(-12, 30))
    if param == "n":  # large n only for the digit loop: 5 ** 99999 by repeated products is slow
        return list(range(0, 15)) + [rng.randint(10, 99999) for _ in range(30 * ("while" in task.solution))]
    if param == "xs":
        return [[rng.randint(-6, 15) for _ in range(rng.randint(0, 6))] for _ in range(40)]
    return [""] + ["".join(rng.choice("abcd") for _ in range(rng.randint(1, 8))) for _ in range(40)]


def _run(solution, name, inputs):
    namespace = {}
    exec(solution, namespace)
    out = []
    for v in inputs:
        try:
            out.append(repr(namespace[name](v)))
        except Exception as e:
            out.append(type(e).__name__)
    return out


def test_tests_are_discriminative(train, heldout):
    """Every mutant that behaves differently from the reference on some input (not an equivalent
    mutant such as range(2, n + 1) for a count of even i) fails a hidden test, for > 98% of mutants."""
    rng = random.Random(0)
    detected, total = collections.Counter(), collections.Counter()
    for t in train[:1200] + heldout[:300]:
        probes = _probes(t, rng)
        reference = _run(t.solution, t.entry_point, probes)
        for solution, is_none in _mutants(t.solution):
            if _run(solution, t.entry_point, probes) == reference:
                continue  # equivalent mutant
            caught = not tasks.check_reference(tasks.Task(**{**t.__dict__, "solution": solution}))
            assert caught or not is_none, f"`return None` passes the tests of {t.task_id}"
            detected[t.family] += caught
            total[t.family] += 1
    for family in tasks.FAMILIES:
        assert total[family] > 200
        rate = detected[family] / total[family]
        assert rate > 0.98, f"{family}: only {rate:.1%} of mutants fail a test"


def test_split_disjoint(train, heldout):
    seen_keys, held_keys = tasks.split_keys()
    held = {k for ks in held_keys.values() for k in ks}
    train = train + tasks.generate_tasks("train", 2000, seed=1)  # another seed: the rule is seed-free
    assert held and not held & {t.template for t in train}
    assert all(set(seen_keys[f]).isdisjoint(held_keys[f]) for f in tasks.FAMILIES)
    assert not {t.question for t in heldout} & {t.question for t in train}
    assert not {body(t) for t in heldout} & {body(t) for t in train}  # not even under another name
    # every family in both splits; about half of the test tasks come from held-out templates
    assert {t.family for t in train} == {t.family for t in heldout} == set(tasks.FAMILIES)
    frac = sum(t.template in held for t in heldout) / len(heldout)
    expected = tasks.TEST_HELDOUT_FRAC * sum(bool(held_keys[f]) for f in tasks.FAMILIES) / len(tasks.FAMILIES)
    assert abs(frac - expected) < 0.06
    # the held-out templates are compositions: at least one primitive pairing per multi-part family
    for family in tasks.FAMILIES:
        if any(len(p) >= 2 for p in tasks.templates()[family]):
            assert held_keys[family] and all("+" in k for k in held_keys[family])


def test_answer_format(train, heldout):
    for t in train + heldout:
        assert t.answer == "```python\n" + t.solution + "```\n"
        assert t.answer.count("```") == 2 and t.solution.endswith("\n")
        tree = ast.parse(t.solution)
        assert f"def {t.entry_point}(" in t.solution
        assert len(tree.body) == 1 and isinstance(tree.body[0], ast.FunctionDef)


def test_jsonl_round_trip(tmp_path, heldout):
    path = tmp_path / "sub" / "tiny_test.jsonl"
    tasks.write_jsonl(heldout[:100], str(path))
    assert tasks.read_jsonl(str(path)) == heldout[:100]
    assert os.listdir(path.parent) == ["tiny_test.jsonl"]  # no temp file left behind
