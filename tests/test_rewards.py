"""Tests for rewards.py: the format reward against the official pattern (and our one deliberate difference),
code extraction, and the code reward, which runs only when the format holds.

Run: .venv/bin/python -m pytest tests/test_rewards.py -q   (a few seconds)
"""
import pytest

from rewards import extract_code, format_reward, score_completions

GOOD = "def f(x):\n    return x + 1\n"
TESTS = ["assert f(1) == 2", "assert f(2) == 3", "assert f(10) == 11"]

FORMAT_TABLE = [
    ("```python\ndef f():\n    return 1\n```\n", 1.0),             # the canonical shape
    ("```python\ndef f():\n    return 1\n```", 1.0),               # no final newline: accepted (official: 0)
    ("Here is the code:\n```python\nx = 1\n```\n", 1.0),           # prose before the block
    ("  ```python\n    x = 1\n```\n", 1.0),                        # code is stripped before ast.parse
    ("```python\n```\n", 1.0),                                     # empty code parses
    ("```python\ndef f(:\n    pass\n```\n", 0.5),                  # format holds, syntax error
    ("```python\nx = '\0'\n```\n", 0.5),                           # NUL byte: ast.parse refuses
    ("```python\nx = 1\n```\nDone.", 0.0),                         # text after the fence
    ("```python\nx = 1\n```\n\n", 0.0),                            # more than one newline after
    ("```python\nx = 1\n```\n```python\ny = 2\n```\n", 0.0),       # two blocks
    ("See `a` and ```b```.\n```python\nx = 1\n```\n", 0.0),        # ``` in the prose before
    ("```\nx = 1\n```\n", 0.0),                                    # no language
    ("```py\nx = 1\n```\n", 0.0),                                  # ```py is not ```python
    ("```python3\nx = 1\n```\n", 0.0),
    ("```python x = 1```\n", 0.0),                                 # no newline after the tag
    ("```python\nx = 1\n", 0.0),                                   # unterminated
    ("x = 1\n", 0.0),                                              # no fence at all
    ("", 0.0),
]


@pytest.mark.parametrize("completion,expected", FORMAT_TABLE)
def test_format_reward_table(completion, expected):
    assert format_reward(completion) == expected


def test_extract_code():
    assert extract_code("Sure:\n```python\nx = 1\n```\n") == "x = 1\n"
    assert extract_code("```python\na\n```\ntext\n```python\nb\n```") == "a\n"  # the first block
    assert extract_code("no code") is None and extract_code("```py\nx\n```") is None


def test_code_reward_only_when_format_is_right():
    good = "Here you go:\n```python\n" + GOOD + "```\n"
    half = "```python\ndef f(x):\n    return 2\n```\n"
    completions = [good, half, good + "Hope this helps!", "```python\n" + GOOD + "def (:\n```\n",
                   "```python\nimport os; os._exit(0)\n```\n"]
    scored = score_completions(completions, [TESTS] * len(completions))
    assert scored[:2] == [(1.0, 1.0), (1.0, pytest.approx(1 / 3))]
    assert scored[2:] == [(0.0, 0.0), (0.5, 0.0), (1.0, 0.0)]  # format 0 and 0.5: not run; os._exit: fails
