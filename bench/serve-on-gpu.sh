#!/usr/bin/env bash
# On the GPU machine (../shared/device/README.md), in one call: build the addon with the CUDA
# backend, then run the serving benchmark (bench/serve.mjs) on the 1B-class random model.
# Needs dist/ (npx tsc -p tsconfig.json here, carried) and node on PATH (.device-gpu/boot.sh).
# Results (serve-<date>.{json,md}, logs) go to $OUT. Extra arguments go to bench/serve.mjs.
#   BUDGET_S   wall seconds for the whole script (default 420): the bench skips the runs
#              that would end past it (whole rates, last ones first).
# Run with the device tool, carrying .device-gpu and dist (bench/results/serve-2026-11-22*.md):
#   npx tsc -p tsconfig.json
#   git archive HEAD native bindings cmake CMakeLists.txt > bench/serve-head-src.tar   # only if native/ has uncommitted edits
#   run: source .device-gpu/boot.sh && MIXATTN_COMMIT=<sha> BUDGET_S=400 bash bench/serve-on-gpu.sh [--kv-budget 4GiB --rates 8,16 --tag kv4g]
set -uo pipefail
OUT=${OUT:-/tmp/mixattn-serve}
BUDGET_S=${BUDGET_S:-420}
mkdir -p "$OUT"
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader | tee "$OUT/device.txt"
# bench/serve-head-src.tar (when present): the committed native sources (git archive HEAD
# native bindings cmake CMakeLists.txt), replacing whatever was being edited in the checkout
# this was sent from: the bench measures the commit, not work in progress.
if [[ -f bench/serve-head-src.tar ]]; then
  # build/ too: a warm machine may keep objects newer than these sources' archive times.
  rm -rf build native bindings cmake CMakeLists.txt && tar -xf bench/serve-head-src.tar && echo "native sources: HEAD ($(tar -tf bench/serve-head-src.tar | wc -l) entries)"
fi
if ! MIXATTN_CUDA=ON node scripts/build-native.mjs --CDMIXATTN_CUDA_ARCHS=90 >"$OUT/build.log" 2>&1; then
  tail -60 "$OUT/build.log"
  exit 1
fi
echo "build: $(($(date +%s) - t0)) s"
left=$((BUDGET_S - ($(date +%s) - t0)))
node bench/serve.mjs --out "$OUT" --deadline "$left" "$@" 2>&1 | tee "$OUT/serve.log"
echo "bench exit ${PIPESTATUS[0]}, total $(($(date +%s) - t0)) s"
