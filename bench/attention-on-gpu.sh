#!/usr/bin/env bash
# On the GPU machine (../shared/device/README.md), in one call: the CUDA addon (prebuilt and
# carried, or built here), the attention twin tests of every prefill configuration, the
# attention benchmark against PyTorch (bench/attention.py), the rest of test/gpu (ops, whole
# models, HF fixtures), compute-sanitizer on the prefill kernels. Logs and results go to $OUT
# (at most 8 files come back). Every step runs under what is left of DEADLINE_S.
#
#   MIXATTN_PREBUILT  a mixattn.node built elsewhere for this GPU (copied to build/Release/);
#                     built here when absent or when it cannot open the GPU
#   SKIP_BENCH=1      tests only;  SKIP_SANITIZE=1  no compute-sanitizer;  SKIP_REST=1  attention tests only
#   NCU=1             Nsight Compute on the default prefill kernel (causal 8k, via
#                     bench/profile-attention.sh) and its SASS mix
#   DEADLINE_S        wall seconds for the whole script (default 560)
#   MIXATTN_COMMIT    recorded in the benchmark's results
set -uo pipefail
OUT=${OUT:-/tmp/mixattn-attn}
mkdir -p "$OUT"
t0=$(date +%s)
DEADLINE_S=${DEADLINE_S:-560}
source "$(dirname "$0")/gpu-env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$OUT/summary.log"
ensure_cuda_addon || exit 1
export MIXATTN_TWIN_REPORT="$OUT/twin-errors.jsonl"
rm -f "$MIXATTN_TWIN_REPORT"
WG='128:5,128:6,128:7,128:8,128:9,128:10,128:11,128:12'  # the wgmma configurations: in a process of their own (a fault spoils the context)
{
  step attn 120 env MIXATTN_PREFILL_SKIP=$WG npx vitest run test/gpu/attention.test.ts --reporter=verbose
  step attn-wgmma 90 env MIXATTN_PREFILL_ONLY=$WG npx vitest run test/gpu/attention.test.ts --reporter=verbose
} >"$OUT/vitest.log" 2>&1
grep -E "^\[attn|✓|×|FAIL|rel err|Tests " "$OUT/vitest.log" | grep -vE "^ +✓" | tee -a "$OUT/summary.log" | head -60
if [[ "${SKIP_BENCH:-}" != 1 ]]; then
  step bench 300 env PYTHONUNBUFFERED=1 python3 bench/attention.py >"$OUT/bench.log" 2>&1
  tail -3 "$OUT/bench.log" | tee -a "$OUT/summary.log"
  cp bench/results/attention-"$(date +%F)".{json,md} "$OUT/" 2>/dev/null
  cat bench/results/attention-"$(date +%F)".md
fi
[[ "${SKIP_REST:-}" != 1 ]] && step rest 150 npx vitest run test/gpu/ops.test.ts test/gpu/model.test.ts test/gpu/hf.test.ts --reporter=verbose >>"$OUT/vitest.log" 2>&1
grep -E "^\[rest|×|FAIL|rel err|Tests " "$OUT/vitest.log" | tail -30 | tee -a "$OUT/summary.log"
node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);l.sort((a,b)=>b.err/b.bound-a.err/a.bound);console.log("worst err/bound:");for(const r of l.slice(0,15))console.log((r.err/r.bound).toFixed(3),r.err.toExponential(2),r.check)' "$MIXATTN_TWIN_REPORT" 2>&1 | tee -a "$OUT/summary.log"
if [[ "${SKIP_SANITIZE:-}" != 1 ]]; then
  for tool in memcheck racecheck; do
    step $tool 75 env MIXATTN_SANITIZE_PREFILL=1 compute-sanitizer --tool $tool --error-exitcode 3 node test/gpu/sanitize.mjs >>"$OUT/sanitize.log" 2>&1
    echo "$tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|every op ran|^\[' "$OUT/sanitize.log" | tail -3 | tr '\n' ' ')" | tee -a "$OUT/summary.log"
  done
fi
if [[ "${NCU:-}" == 1 ]]; then
  # Where the default prefill kernel's time goes (one launch, causal 8k: bench/profile-attention.sh),
  # and its SASS mix.
  step ncu 90 env SHAPES='[{"name":"prefill-causal-8k","kind":"prefill","batch":1,"ctx":8192}]' OUT="$OUT" \
    bash "$(dirname "$0")/profile-attention.sh" >"$OUT/ncu.txt" 2>&1
  fn=$(cuobjdump -symbols build/Release/mixattn.node 2>/dev/null | grep -oE '_ZN7mixattn4cuda13prefillKernelINS0_10PrefillCfgILi128ELi4ELi1ELi64ELb1ELi3ELb1ELb0E[A-Za-z0-9_]*' | head -1)
  { echo "== SASS opcodes of $fn"; cuobjdump -sass -fun "$fn" build/Release/mixattn.node 2>/dev/null | grep -oE '^ +/\*[0-9a-f]{4}\*/ +(@!?U?P[0-9T] +)?[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)*' | awk '{print $NF}' | sort | uniq -c | sort -rn | head -45; } >>"$OUT/ncu.txt" 2>&1
  head -120 "$OUT/ncu.txt" | tee -a "$OUT/summary.log"
fi
echo "total $(($(date +%s) - t0)) s" | tee -a "$OUT/summary.log"
