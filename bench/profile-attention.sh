#!/usr/bin/env bash
# Nsight Compute on our attention kernels (one launch each) at benchmark shapes: where the time
# goes (throughputs, occupancy, warp stall reasons per issued instruction, instructions
# executed). GPU machine, addon built; writes $OUT/ncu-<name>.txt and prints a digest.
#   SHAPES  JSON list of bench/attention.mjs shapes (default: the decode shapes the issue's
#           targets name, 64 x 2k the one below 90% of copy bandwidth, the batch-1 4k decode of
#           the end-to-end step, and causal 8k prefill); heads 32/8, dim 128 unless given
set -uo pipefail
OUT=${OUT:-/tmp/mixattn-ncu}
mkdir -p "$OUT"
S=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats
   --section SchedulerStats --section LaunchStats --section ComputeWorkloadAnalysis
   --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,smsp__inst_executed.sum,dram__bytes_read.sum,lts__t_sector_hit_rate.pct')
SHAPES=${SHAPES:-'[{"name":"decode-64x2k","kind":"decode","batch":64,"ctx":2048},{"name":"decode-16x8k","kind":"decode","batch":16,"ctx":8192},{"name":"decode-1x4k","kind":"decode","batch":1,"ctx":4096,"heads":16},{"name":"prefill-causal-8k","kind":"prefill","batch":1,"ctx":8192}]'}
n=$(node -e 'console.log(JSON.parse(process.argv[1]).length)' "$SHAPES")
for ((i = 0; i < n; i++)); do
  shape=$(node -e 'const s=JSON.parse(process.argv[1])[+process.argv[2]]; console.log(JSON.stringify([{heads:32,kvHeads:8,dim:128,window:0,...s,repeat:0}]))' "$SHAPES" "$i")
  name=$(node -e 'console.log(JSON.parse(process.argv[1])[0].name)' "$shape")
  kind=$(node -e 'console.log(JSON.parse(process.argv[1])[0].kind)' "$shape")
  kernel=$([[ $kind == decode ]] && echo decodeMmaKernel || echo prefillKernel)
  ncu "${S[@]}" --kernel-name "regex:$kernel" --launch-count 1 node bench/attention.mjs "$shape" >"$OUT/ncu-$name.txt" 2>&1
  echo "== $name"
  grep -iE "Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Grid Size|Issued Ipc|Eligible Warps|inst_executed|dram__bytes|hit_rate|stalled_(wait|long|barrier|mio|short|not_sel|no_inst|math|branch|dispatch|gmma|lg)" "$OUT/ncu-$name.txt" | sed -E 's/ +/ /g' | head -40
done
