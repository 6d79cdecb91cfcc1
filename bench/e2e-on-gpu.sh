#!/usr/bin/env bash
# On the GPU machine (../shared/device/README.md), in one call: the CUDA addon (a prebuilt
# build/Release/mixattn.node carried from here, or built here when it cannot open the GPU),
# then HF transformers `generate` (bench/e2e_hf.py: decode tok/s and the device copy
# bandwidth), then `mixattn bench` on the same config with that bandwidth for the weight-read
# floor and HF's numbers beside its own. Results (e2e-<date>.{json,md}, hf.json, logs) go to $OUT.
#   DEADLINE_S   wall seconds for the whole script (default 330); each step runs under what is left
#   BATCHES PROMPT NEW   as `mixattn bench` --batches/--prompt/--new (default 1,16,64 / 4096 / 64)
# Needs dist/ (npx tsc -p tsconfig.json here) and node (.device-gpu/boot.sh), both carried:
#   run (carry .device-gpu, dist, build/Release/mixattn.node):
#     source .device-gpu/boot.sh && MIXATTN_COMMIT=<sha> bash bench/e2e-on-gpu.sh
set -uo pipefail
OUT=${OUT:-/tmp/mixattn-e2e}
mkdir -p "$OUT"
t0=$(date +%s)
DEADLINE_S=${DEADLINE_S:-330}
BATCHES=${BATCHES:-1,16,64}
PROMPT=${PROMPT:-4096}
NEW=${NEW:-64}
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$OUT/summary.log"
source "$(dirname "$0")/gpu-env.sh"
ensure_cuda_addon $(($(left) - 120)) || exit 1
echo "addon ready: $(($(date +%s) - t0)) s" | tee -a "$OUT/summary.log"

# HF first (its own process, GPU memory back before ours starts); it skips the batch sizes
# that would start too late, and is cut off well before the end in any case.
hf_limit=$(( $(left) * 45 / 100 ))
timeout "$hf_limit" env PYTHONUNBUFFERED=1 python3 bench/e2e_hf.py --batches "$BATCHES" --prompt "$PROMPT" --new "$NEW" \
  --deadline $((hf_limit - 40)) --out "$OUT/hf.json" 2>&1 | tee "$OUT/hf.log"
echo "hf exit ${PIPESTATUS[0]}, at $(($(date +%s) - t0)) s (limit $hf_limit)" | tee -a "$OUT/summary.log"

hfarg=()
[[ -s "$OUT/hf.json" ]] && hfarg=(--hf "$OUT/hf.json")
ours_limit=$(($(left) - 5))
timeout "$ours_limit" node dist/lib/cli/main.js bench --backend cuda --batches "$BATCHES" --prompt "$PROMPT" --new "$NEW" \
  --deadline $((ours_limit - 60)) --out "$OUT" "${hfarg[@]}" 2>&1 | tee "$OUT/bench.log"
echo "bench exit ${PIPESTATUS[0]}, total $(($(date +%s) - t0)) s" | tee -a "$OUT/summary.log"
