#!/usr/bin/env bash
# The project's two commands. Each makes a local virtualenv (.venv) and installs requirements.txt on first use.
#   bash run.sh          the main job on the embedded default: data -> masked-diffusion pre-training -> SFT -> eval
#   bash run.sh test     the test suite (what CI runs)
# Every stage skips work already done (prepare_data.py is idempotent, training resumes from its last
# checkpoint and stops at once when it is complete, eval.py reuses its samples), so a killed run just reruns.
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
    stage() { local t0; t0=$(date +%s); echo "== $1"; "${@:2}"; echo "== $1: $(( $(date +%s) - t0 )) s"; }
    stage "data: stdlib corpus + tokenizer" .venv/bin/python prepare_data.py
    stage "data: tiny code tasks" .venv/bin/python prepare_data.py --kind=tasks
    stage "masked-diffusion pre-training" .venv/bin/python train_pretrain.py config/pretrain_tiny.py
    stage "conditional SFT on the tiny tasks" .venv/bin/python train_pretrain.py config/sft_tiny.py
    stage "eval: held-out tiny tasks, greedy pass@1" .venv/bin/python eval.py --out_dir=out/sft_tiny --benchmark=tiny
    echo "== total $(( $(date +%s) - start )) s"
    ;;
  *)
    echo "usage: bash run.sh [tiny|test [pytest args]]" >&2
    exit 2
    ;;
esac
