#!/usr/bin/env bash
# On the GPU machine, in one call: the low-rank attention kernels (attentionLowRankKeys, and
# attention() with V narrower than K) end to end: the addon (prebuilt and carried, or built
# here with sm_90a), PyTorch's bf16 errors (test/gpu/bf16-bounds.json gains the
# attention_lowrank_* entries the twin tests are bounded by), the twin tests
# (test/gpu/lowrank.test.ts, and test/gpu/attention.test.ts, whose V-narrower-than-K cases now
# run on these kernels), compute-sanitizer memcheck/racecheck over every op (sanitize.mjs) and
# the decode benchmark (bench/lowrank-attention.mjs). Logs and results go to $OUT.
#
#   MIXATTN_PREBUILT  a mixattn.node built elsewhere for this GPU (copied to build/Release/)
#   SKIP_BOUNDS=1     keep test/gpu/bf16-bounds.json as it is (it must hold attention_lowrank_*)
#   SKIP_SANITIZE=1   no compute-sanitizer;   DEADLINE_S  wall seconds for all (default 560)
#   MIXATTN_COMMIT    recorded in the benchmark's results
set -uo pipefail
OUT=${OUT:-/tmp/mixattn-lowrank}
mkdir -p "$OUT"
t0=$(date +%s)
DEADLINE_S=${DEADLINE_S:-560}
source "$(dirname "$0")/gpu-env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/summary.log"
ensure_cuda_addon || exit 1
if [[ "${SKIP_BOUNDS:-}" != 1 ]]; then
  step bounds 200 env PYTHONUNBUFFERED=1 python3 test/gpu/torch_bf16_bounds.py test/gpu/bf16-bounds.json >"$OUT/bounds.log" 2>&1
  grep -E "attention_" "$OUT/bounds.log" | tee -a "$OUT/summary.log"
  cp test/gpu/bf16-bounds.json "$OUT/"
fi
export MIXATTN_TWIN_REPORT="$OUT/twin-errors.jsonl"
rm -f "$MIXATTN_TWIN_REPORT"
step twins 240 npx vitest run test/gpu/lowrank.test.ts test/gpu/attention.test.ts --reporter=verbose >"$OUT/vitest.log" 2>&1
grep -E "^\[twins|×|FAIL|rel err|Error|Tests " "$OUT/vitest.log" | head -60 | tee -a "$OUT/summary.log"
node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);l.sort((a,b)=>b.err/b.bound-a.err/a.bound);console.log("worst err/bound:");for(const r of l.slice(0,15))console.log((r.err/r.bound).toFixed(3),r.err.toExponential(2),r.check)' "$MIXATTN_TWIN_REPORT" 2>&1 | tee -a "$OUT/summary.log"
step bench 150 node bench/lowrank-attention.mjs >"$OUT/bench.log" 2>&1
tail -16 "$OUT/bench.log" | tee -a "$OUT/summary.log"
cp bench/results/lowrank-attention-"$(date +%F)".json "$OUT/" 2>/dev/null
if [[ "${SKIP_SANITIZE:-}" != 1 ]]; then
  for tool in memcheck racecheck; do
    step $tool 90 compute-sanitizer --tool $tool --error-exitcode 3 node test/gpu/sanitize.mjs >"$OUT/$tool.log" 2>&1
    echo "$tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|every op ran|^\[' "$OUT/$tool.log" | tail -3 | tr '\n' ' ')" | tee -a "$OUT/summary.log"
  done
fi
echo "total $(($(date +%s) - t0)) s" | tee -a "$OUT/summary.log"
