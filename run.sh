#!/usr/bin/env bash
# The project's two commands. Each makes a local virtualenv (.venv) and installs requirements.txt on first use.
#   bash run.sh          the main job on the embedded default: data -> autoregressive training -> AR->diffusion
#                        adaptation + diffusion SFT -> eval (+ RL headroom) -> coupled-GRPO -> eval -> samples with their
#                        decoding order -> AR-ness -> out/report/report.md
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
    # one stage = one command; its output goes to the terminal and to out/report/<stage>.log, its seconds are
    # appended to out/report/times.tsv (an interrupted attempt too, so a resumed stage adds up). Stages that
    # are already done only check and skip (each script is idempotent). `bash run.sh tiny sft` runs one stage.
    # `extra` stages run only when named: `bash run.sh tiny ar_baseline eval_ar_baseline` (the AR comparison).
    R=out/report
    ONLY=" ${*:2} "
    mkdir -p "$R"
    start=$(date +%s)
    STAGE=""
    trap '[ -z "$STAGE" ] || printf "%s\t%s\tinterrupted\n" "$STAGE" "$(( $(date +%s) - T0 ))" >> "$R/times.tsv"; exit 130' INT TERM
    stage() {
      local name=$1; shift
      [ "$ONLY" = "  " ] || [[ "$ONLY" == *" $name "* ]] || return 0
      STAGE=$name T0=$(date +%s)
      echo "== $name: $*"
      "$@" 2>&1 | tee -a "$R/$name.log"
      echo "== $name: $(( $(date +%s) - T0 )) s"
      printf '%s\t%s\tdone\n' "$name" "$(( $(date +%s) - T0 ))" >> "$R/times.tsv"
      STAGE=""
    }
    extra() {
      [[ "$ONLY" == *" $1 "* ]] && stage "$@"
      return 0
    }
    P=.venv/bin/python
    HELD=data/tasks/test.jsonl
    stage data       $P prepare_data.py
    stage tasks      $P prepare_data.py --kind=tasks
    stage ar         $P train_pretrain.py config/ar_tiny.py
    stage sft        $P train_pretrain.py config/sft_tiny.py
    stage eval_sft   $P eval.py --out_dir=out/sft_tiny --benchmark=tiny --batch_size=32 --results_dir=out/sft_tiny/eval
    # RL headroom: pass@8 on 50 train prompts with the rollouts' decoding (temperature 0.7, top-p 0.95, 64 steps)
    stage headroom   $P eval.py --out_dir=out/sft_tiny --benchmark=tiny --tiny_file=data/tasks/train.jsonl --limit=50 \
                        --n_samples=8 --temperature=0.7 --top_p=0.95 --steps=64 --batch_size=32 --results_dir=out/sft_tiny/headroom
    stage grpo       $P train_grpo.py config/grpo_tiny.py --eval_n=0  # eval_sft / eval_grpo measure it
    stage eval_grpo  $P eval.py --out_dir=out/grpo_tiny --benchmark=tiny --batch_size=32 --results_dir=out/grpo_tiny/eval
    stage samples    $P sample.py --out_dir=out/grpo_tiny --prompt_file=$HELD --prompt_index=1 --max_new_tokens=64 \
                        --temperature=0 --show_order=True --order_html=$R/order.html
    stage arness     $P sample.py --out_dir=out/grpo_tiny --analyze=True --analyze_file=$HELD --analyze_n=32 \
                        --analyze_temperatures=[0.0,1.0] --max_new_tokens=64
    # the autoregressive baseline at the diffusion model's budget: the AR stage for ar + sft steps, decoded left to right
    extra ar_baseline      $P train_pretrain.py config/ar_tiny.py --max_steps=2700 --out_dir=out/ar_baseline_tiny
    extra eval_ar_baseline $P eval.py --out_dir=out/ar_baseline_tiny --benchmark=tiny --decoder=ar --batch_size=32 \
                              --results_dir=out/ar_baseline_tiny/eval
    $P report.py > /dev/null
    echo "== total $(( $(date +%s) - start )) s; report: $R/report.md"
    ;;
  *)
    echo "usage: bash run.sh [tiny [stage ...] | test [pytest args]]" >&2
    exit 2
    ;;
esac
