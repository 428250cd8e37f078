"""
The rewards of a completion, as GRPO trains on them and eval.py reports them: a format reward (one
well-placed ```python block whose code parses) and a code reward (the fraction of the task's tests that
the extracted code passes, run in execution.py's sandbox).

The format pattern is the official one (DiffuCoder's get_code_format_reward): optional prose without ```
before the block, exactly one ```python block whose code holds no ```, and the closing fence last.
Deliberate difference: the official pattern demands exactly one "\n" after the closing fence; we accept
zero or one, since whether that newline survives depends on where decoding stopped. ```py, ```python3 or
"```python " do not count.
"""
import ast
import re
import warnings

from execution import run_tests_batch

_FORMAT = re.compile(r"(?:(?!```)[\s\S])*?```python\n((?:(?!```)[\s\S])*?)```\n?")
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def format_reward(completion: str) -> float:
    """1.0: one well-placed ```python block whose code parses; 0.5: the format holds but it does not parse; 0."""
    match = _FORMAT.fullmatch(completion)
    if match is None:
        return 0.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(match.group(1).strip())   # .strip() as the official code
        return 1.0
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return 0.5


def extract_code(completion: str):
    """The code of the first ```python block (as the official extract_code), or None if there is none."""
    match = _BLOCK.search(completion)
    return match.group(1) if match else None


def score_completions(completions, tests, timeout_s=5.0, workers=None, packages=False):
    """[(format reward (format_reward: 1, 0.5 or 0), code reward (the fraction of its `tests` that the
    extracted code passes; 0 unless the format reward is 1))] per completion; the programs run in parallel
    (run_tests_batch). train_grpo.py's reward is code_weight x code + format_weight x format."""
    fmt = [format_reward(c) for c in completions]
    jobs = [(extract_code(c), t) for c, t, f in zip(completions, tests, fmt) if f == 1.0]
    results = iter(run_tests_batch(jobs, timeout_s, workers, packages))
    return [(f, next(results).pass_rate if f == 1.0 else 0.0) for f in fmt]
