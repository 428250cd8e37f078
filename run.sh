#!/usr/bin/env bash
# The project's two commands. Each makes a local virtualenv (.venv) and installs requirements.txt on first use.
#   bash run.sh          the main job on the embedded default: prepare the stdlib corpus, pre-train the tiny model
#   bash run.sh test     the test suite (what CI runs)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt .venv/.requirements.txt; then
  echo "== installing requirements into .venv"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  cp requirements.txt .venv/.requirements.txt
fi
export PYTHONUNBUFFERED=1

case "${1:-tiny}" in
  test)
    exec .venv/bin/python -m pytest "${@:2}"
    ;;
  tiny)
    start=$(date +%s)
    .venv/bin/python prepare_data.py
    .venv/bin/python train_pretrain.py config/pretrain_tiny.py
    echo "== total $(( $(date +%s) - start )) s"
    ;;
  *)
    echo "usage: bash run.sh [tiny|test [pytest args]]" >&2
    exit 2
    ;;
esac
