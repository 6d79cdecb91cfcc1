#!/usr/bin/env bash
# The GPU half of the trained-model pipeline (issue 7), run from the repo root on the GPU machine
# with the data already prepared and carried in train/build/data (python3 train/data/prepare.py).
#
#   bash train/run-on-gpu.sh [DEADLINE_S]     # train + export (default deadline 300 s)
#   bash train/run-on-gpu.sh --probe          # only the checks and a compile on/off timing
#
# 1. checks: CUDA attention self-test (flex and mask vs a float64 reference), each model's
#    flex-vs-mask forward/backward at T=1024;
# 2. trains the six 12-layer plan models in lockstep in one process and the embedded tiny
#    model in a second, concurrent process, both ending by the deadline (seconds from start);
# 3. exports each to train/build/models/<name>/ (bf16 HF directories with the tokenizer);
# 4. copies run.json and every train-log.json to $OUT/logs/, the tiny model to $OUT/models/tiny
#    (COPY_MODELS=all: every model, ~45 MB each).
# Everything is logged to $OUT/train.log. Extra train.py flags: TRAIN_ARGS="--compile ...".
# CHECK_ENGINE=1 also runs export.py --check-engine (needs node, dist/ and the addon built).
# SKIP_CHECKS=1 skips step 1. TINY_ARGS: extra train.py flags for tiny alone (e.g. --steps N: it
# overfits the 3.7M-token corpus long before a shared deadline).
# SMOKE=1 runs the same pipeline on the CPU at smoke sizes (train.py --smoke), to test this script.
set -euo pipefail
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-train/build/gpu-out}
PLANS=standard,ma,ma-endslide,ma-offset,ma-pairs,sliding
RUNS=train/build/runs
MODELS=train/build/models
mkdir -p "$OUT/logs"
exec > >(tee -a "$OUT/train.log") 2>&1

MODE=train
DEADLINE=300
case "${1:-}" in
  --probe) MODE=probe ;;
  "") ;;
  *[!0-9.]*) echo "run-on-gpu: the argument must be a deadline in seconds or --probe (got '$1')"; exit 2 ;;
  *) DEADLINE=$1 ;;
esac

for f in train.bin heldout.bin train.txt retrieval-eval.jsonl meta.json; do
  [[ -f train/build/data/$f ]] || { echo "run-on-gpu: train/build/data/$f is missing (run train/data/prepare.py and carry train/build/data)"; exit 1; }
done
DEVICE=cuda CHECK_LEN=1024
if [[ ${SMOKE:-} == 1 ]]; then
  DEVICE=cpu CHECK_LEN=200 TRAIN_ARGS="--smoke ${TRAIN_ARGS:-}"
else
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi
$PY -c 'import torch, tokenizers, safetensors; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())'

t0=$(date +%s)
if [[ ${SKIP_CHECKS:-} != 1 ]]; then  # SKIP_CHECKS=1: they passed on this machine before; the minute goes to training
  $PY train/model.py --self-test --device $DEVICE --seq-len $CHECK_LEN train/configs/ma.json train/configs/sliding.json
  echo "checks: $(($(date +%s) - t0)) s"
fi

if [[ $MODE == probe ]]; then
  # Does torch.compile pay? Same 2 models, 40 steps, with and without; compare ms/step and s/run.
  for flag in "" "--compile"; do
    s=$(date +%s)
    $PY train/train.py --models standard,ma --steps 40 --evals 0 --retrieval-eval 0 --log-every 10 \
      --out "$RUNS/probe$flag" $flag | { grep -E "step +40 |saved" || true; }
    echo "probe ${flag:-eager}: $(($(date +%s) - s)) s wall; per-model tokens/s:"
    $PY -c 'import json,sys; [print(" ", m["name"], m["tokens_per_s"], "tok/s,", m["seconds"], "s") for m in json.load(open(sys.argv[1]))["models"]]' "$RUNS/probe$flag/run.json"
  done
  exit 0
fi

echo "training: plans ($PLANS) and tiny, deadline ${DEADLINE} s each"
# shellcheck disable=SC2086
$PY train/train.py --models "$PLANS" --out "$RUNS/plans" --deadline-s "$DEADLINE" ${TRAIN_ARGS:-} \
  > >(sed -u 's/^/[plans] /') 2>&1 &
plans_pid=$!
# shellcheck disable=SC2086
$PY train/train.py --models tiny --out "$RUNS/tiny" --deadline-s "$DEADLINE" ${TRAIN_ARGS:-} ${TINY_ARGS:-} \
  > >(sed -u 's/^/[tiny] /') 2>&1 &
tiny_pid=$!
plans_rc=0; tiny_rc=0
wait "$plans_pid" || plans_rc=$?
wait "$tiny_pid" || tiny_rc=$?
echo "training done in $(($(date +%s) - t0)) s (plans exit $plans_rc, tiny exit $tiny_rc)"
[[ $plans_rc == 0 && $tiny_rc == 0 ]] || exit 1

# CHECK_ENGINE=1 (node and a built addon on this machine): our engine's greedy == model.py's.
CHECK=()
[[ ${CHECK_ENGINE:-} == 1 ]] && CHECK=(--check-engine)
for name in ${PLANS//,/ }; do
  $PY train/export.py "$RUNS/plans/$name" "$MODELS/$name" "${CHECK[@]}"
done
$PY train/export.py "$RUNS/tiny/tiny" "$MODELS/tiny" "${CHECK[@]}"

for run in plans tiny; do
  cp "$RUNS/$run/run.json" "$OUT/logs/run-$run.json"
done
for d in "$MODELS"/*/; do
  name=$(basename "$d")
  cp "$d/train-log.json" "$OUT/logs/$name.train-log.json"
  if [[ $name == tiny || ${COPY_MODELS:-} == all ]]; then
    mkdir -p "$OUT/models/$name" && cp "$d"/* "$OUT/models/$name/"
  fi
done
$PY - "$RUNS" <<'EOF'
import json, sys
for run in ("plans", "tiny"):
    r = json.load(open(f"{sys.argv[1]}/{run}/run.json"))
    print(f"{run}: {r['steps']} steps in {r['wall_seconds']} s" + (" (stopped early by the deadline guard)" if r["stopped_early_by_deadline"] else ""))
    for m in r["models"]:
        print(f"  {m['name']:12s} {m['params']:>11,} params  {m['tokens_seen'] / 1e6:6.1f}M tokens  {m['tokens_per_s']:>8} tok/s"
              f"  train {m['final_train_loss']:.4f}  held-out {m['final_heldout_loss']:.4f}  retrieval {m['retrieval_accuracy']}")
EOF
echo "run-on-gpu: done in $(($(date +%s) - t0)) s; models in $MODELS, logs in $OUT"
