#!/usr/bin/env bash
# Nsight Compute on our attention kernels (one launch each) at two benchmark shapes: where the
# time goes (throughputs, occupancy, warp stalls). GPU machine; writes $OUT/ncu-*.txt.
set -uo pipefail
OUT=${OUT:-/tmp/mixattn-ncu}
mkdir -p "$OUT"
S='--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section SchedulerStats --section LaunchStats --section ComputeWorkloadAnalysis'
dec='[{"name":"decode 16 x 8k","kind":"decode","batch":16,"ctx":8192,"window":0,"repeat":0,"heads":32,"kvHeads":8,"dim":128}]'
pre='[{"name":"prefill causal 8k","kind":"prefill","batch":1,"ctx":8192,"window":0,"repeat":0,"heads":32,"kvHeads":8,"dim":128}]'
ncu $S --kernel-name regex:decodeMmaKernel --launch-count 1 node bench/attention.mjs "$dec" >"$OUT/ncu-decode.txt" 2>&1
ncu $S --kernel-name regex:prefillKernel --launch-count 1 node bench/attention.mjs "$pre" >"$OUT/ncu-prefill.txt" 2>&1
for f in "$OUT"/ncu-*.txt; do
  echo "== $f"
  grep -iE "Duration|Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|stall|Hit Rate|Issued Ipc|Eligible|Warp Cycles|Bank" "$f" | head -60
done
