#!/usr/bin/env bash
# On the GPU machine (../shared/device/README.md), in one call: build the addon with the CUDA
# backend, measure PyTorch's bf16 errors (the tests' bounds), run test/gpu, then
# compute-sanitizer memcheck and racecheck over every op. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/mixattn-gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
t0=$(date +%s)
if ! MIXATTN_CUDA=ON node scripts/build-native.mjs --CDMIXATTN_CUDA_ARCHS=90a >"$OUT/build.log" 2>&1; then
  tail -60 "$OUT/build.log"
  exit 1
fi
echo "build: $(($(date +%s) - t0)) s"
PYTHONUNBUFFERED=1 python3 test/gpu/torch_bf16_bounds.py test/gpu/bf16-bounds.json >"$OUT/bounds.log" 2>&1 || tail -30 "$OUT/bounds.log"
cp test/gpu/bf16-bounds.json "$OUT/" 2>/dev/null
rm -f "$OUT/twin-errors.jsonl"
MIXATTN_TWIN_REPORT="$OUT/twin-errors.jsonl" npx vitest run test/gpu --reporter=verbose >"$OUT/vitest.log" 2>&1
echo "vitest exit $?"
grep -E "×|FAIL|AssertionError|Error:|rel err|Tests " "$OUT/vitest.log" | head -60
node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);l.sort((a,b)=>b.err/b.bound-a.err/a.bound);console.log("worst err/bound:");for(const r of l.slice(0,12))console.log((r.err/r.bound).toFixed(3),r.err.toExponential(2),r.check)' "$OUT/twin-errors.jsonl"
for tool in ${SANITIZERS:-memcheck racecheck}; do
  timeout 240 compute-sanitizer --tool $tool --error-exitcode 3 node test/gpu/sanitize.mjs >"$OUT/$tool.log" 2>&1
  echo "$tool exit $?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|every op ran' "$OUT/$tool.log" | tr '\n' ' ')"
done
