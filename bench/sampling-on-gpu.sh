#!/usr/bin/env bash
# On the GPU machine, in one call: build the addon with the CUDA backend, run the sampling
# twin tests (test/gpu/sampling.test.ts, argmax.test.ts), compute-sanitizer memcheck and
# racecheck over the sample kernel, then the sampling benchmark (bench/sampling.mjs).
# Needs dist/ (npx tsc -p tsconfig.json here, carried) and node on PATH (.device-gpu/boot.sh).
# Results (sampling-<date>.{json,md}, logs) go to $OUT.
#   run: source .device-gpu/boot.sh && bash bench/sampling-on-gpu.sh
set -uo pipefail
OUT=${OUT:-/tmp/mixattn-sampling}
mkdir -p "$OUT"
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
source "$(dirname "$0")/gpu-env.sh"
ensure_cuda_addon || exit 1  # a carried build/Release/mixattn.node that opens this GPU is used as is
echo "build: $(($(date +%s) - t0)) s"
grep -E "ops_sampling.*(warning|spill)" "$OUT/build.log" 2>/dev/null | head
rm -f "$OUT/twin-errors.jsonl"
MIXATTN_TWIN_REPORT="$OUT/twin-errors.jsonl" npx vitest run test/gpu/sampling.test.ts test/gpu/argmax.test.ts --reporter=verbose >"$OUT/vitest.log" 2>&1
echo "vitest exit $? (seed: $(grep -o 'seed [0-9]*' "$OUT/vitest.log" | head -1))"
grep -E "✓|×|FAIL|AssertionError|Error:|Tests " "$OUT/vitest.log" | head -40
node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);l.sort((a,b)=>b.err-a.err);console.log("worst logprob errors:");for(const r of l.slice(0,5))console.log(r.err.toExponential(2),"bound",r.bound,r.check)' "$OUT/twin-errors.jsonl"
for tool in memcheck racecheck; do
  MIXATTN_SANITIZE_SAMPLE=1 timeout 240 compute-sanitizer --tool $tool --error-exitcode 3 node test/gpu/sanitize.mjs >"$OUT/$tool.log" 2>&1
  echo "$tool exit $?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|every op ran' "$OUT/$tool.log" | tr '\n' ' ')"
done
node bench/sampling.mjs --out "$OUT" 2>&1 | tee "$OUT/bench.log"
echo "bench exit ${PIPESTATUS[0]}, total $(($(date +%s) - t0)) s"
