"""
nanoGPT's configuration pattern, hardened.

Each script defines its defaults as module-level variables at the top, then calls

    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:])

which applies, in order, an optional config file (`config/xxx.py`, plain Python assignments) and
`--key=value` overrides, and returns the resolved values as a SimpleNamespace (the module globals
are left untouched, so a script's `main` can run twice in one process, e.g. in tests).

Rules: unknown keys (in a file or on the command line) are errors that suggest the nearest valid
key; values are parsed as Python literals; an int may be given for a float; a key whose default
is None takes any literal; otherwise the type must match the default's. Config paths are tried
relative to the working directory, then to this repository, so scripts work from anywhere.

A string option may take a list on the command line (`--out_dir=[out/a,out/b]`, `as_list` reads it).
`run_cli` prints a user error as one line, `error: ...`; `load_json` / `load_jsonl` read JSON files with
errors that name the file and the line.
"""

import ast
import difflib
import json
import os
import sys
import types
from types import SimpleNamespace

REPO_DIR = os.path.dirname(os.path.abspath(__file__))
_CONFIG_TYPES = (int, float, bool, str, list, tuple, dict, type(None))


class ConfigError(ValueError):
    """Bad user input: a wrong key, value or file. Scripts print it as one line and exit 1."""


def config_keys(namespace):
    """The names of a script's configuration variables: the public module globals of plain types.
    Call it right after the defaults block, before anything else is defined."""
    return [k for k, v in namespace.items() if not k.startswith("_") and isinstance(v, _CONFIG_TYPES)]


def _unknown(key, keys, where):
    near = difflib.get_close_matches(key, keys, n=1)
    hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(sorted(keys))}"
    return ConfigError(f"unknown config key '{key}' {where}{hint}")


def _coerce(key, value, default):
    """Check `value` against the type of the default; ints promote to floats."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return type(default)(value)
    elif isinstance(value, type(default)):
        return value
    raise ConfigError(f"config key '{key}' expects a {type(default).__name__} (default {default!r}), got {value!r}")


def as_list(value):
    """A string option that may name several things: '[a, b]' (how --key=[a,b] arrives when its items are not
    Python literals; quotes optional) or a list -> ['a', 'b']; '[]' -> []; any other string -> [value]."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = value.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return [value]
    if not text[1:-1].strip():
        return []
    items = [v.strip().strip("'\"") for v in text[1:-1].split(",")]
    if not all(items):
        raise ConfigError(f"'{value}' has an empty item; write a list as [a,b,c]")
    return items


def find_config_file(path):
    for candidate in (path, os.path.join(REPO_DIR, path), os.path.join(REPO_DIR, "config", path)):
        if os.path.isfile(candidate):
            return candidate
    raise ConfigError(f"config file '{path}' not found (looked in the working directory and in {REPO_DIR}/config)")


def configure(namespace, keys, argv):
    """Resolve defaults (from `namespace`, restricted to `keys`), then a config file, then --key=value."""
    values = {k: namespace[k] for k in keys}
    for arg in argv:
        if not arg.startswith("--"):
            file = find_config_file(arg)
            scope = {}
            with open(file) as f:
                code = compile(f.read(), file, "exec")
            try:
                exec(code, scope)
            except Exception as e:
                raise ConfigError(f"config file {file} failed to run: {type(e).__name__}: {e}") from None
            for k, v in scope.items():
                if k.startswith("_") or isinstance(v, (types.ModuleType, types.FunctionType, type)):
                    continue
                if k not in values:
                    raise _unknown(k, keys, f"in {file}")
                values[k] = _coerce(k, v, namespace[k])
        else:
            if "=" not in arg:
                raise ConfigError(f"override '{arg}' must look like --key=value")
            k, raw = arg[2:].split("=", 1)
            if k not in values:
                raise _unknown(k, keys, "on the command line")
            try:
                v = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                v = raw  # a bare string
            if isinstance(namespace[k], str) and not isinstance(v, str):
                v = raw  # --out_dir=123 stays a string
            values[k] = _coerce(k, v, namespace[k])
    return SimpleNamespace(**values)


def print_config(cfg):
    width = max(len(k) for k in vars(cfg))
    for k, v in vars(cfg).items():
        print(f"  {k:<{width}} = {v!r}")


def check_exists(path, missing):
    """A missing file raises FileNotFoundError(missing): one sentence that says what is missing and the fix."""
    if missing is not None and not os.path.isfile(path):
        raise FileNotFoundError(missing)


def load_json(path, missing=None):
    """json.load of a file; malformed JSON raises a one-line ConfigError that names the file and the line;
    missing: the error message when the file does not exist."""
    check_exists(path, missing)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} line {e.lineno}: malformed JSON ({e.msg}); fix or regenerate the file") from None


def load_jsonl(path, missing=None):
    """The records of a .jsonl file as (line number, record) pairs, blank lines skipped; a malformed line raises
    a one-line ConfigError that names the file and the line; missing: the error message when the file does
    not exist."""
    check_exists(path, missing)
    records = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append((i, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ConfigError(f"{path} line {i}: malformed JSON ({e.msg}); fix or remove that line") from None
    return records


def run_cli(main):
    """Run `main()`; user errors (bad config, missing or mismatched files) print one line and exit 1.
    Set DEBUG=1 for the full traceback."""
    try:
        main()
    except (ConfigError, FileNotFoundError, ValueError) as e:
        if os.environ.get("DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
