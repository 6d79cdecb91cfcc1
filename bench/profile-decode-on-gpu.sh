#!/usr/bin/env bash
# On the GPU machine: where the time of a batch-1 decode step goes. Runs `mixattn bench` on the
# 1B config at batch 1 under Nsight Compute (one metric, gpu__time_duration, every kernel of a
# few decode steps, CUDA-graph nodes profiled one by one, clocks not locked) and sums the kernel times per kernel
# name and per step, next to the step's wall time without the profiler. Needs dist/ and the
# addon (carried or built) and node (.device-gpu/boot.sh).
#   STEPS   decode steps profiled (default 3)   PROMPT  prompt tokens (default 4096)
set -uo pipefail
OUT=${OUT:-/tmp/mixattn-profile}
mkdir -p "$OUT"
STEPS=${STEPS:-3}
PROMPT=${PROMPT:-4096}
source "$(dirname "$0")/gpu-env.sh"
bench=(node dist/lib/cli/main.js bench --backend cuda --prompt "$PROMPT" --prefill-chunk "$PROMPT")
# The kernels of a run with 1 decode step are skipped in the run with STEPS + 1 (the first
# decode step captures the graph).
ncu --csv --clock-control none --metrics gpu__time_duration.sum --graph-profiling node --target-processes all \
  "${bench[@]}" --batches 1 --new 1 >"$OUT/ncu-prefill.csv" 2>"$OUT/ncu-prefill.err"
skip=$(grep -c '"gpu__time_duration.sum"' "$OUT/ncu-prefill.csv")  # one row per kernel
echo "kernels in a prefill + 1 decode step run: $skip"
ncu --csv --clock-control none --metrics gpu__time_duration.sum --graph-profiling node --target-processes all \
  "${bench[@]}" --batches 1 --new $((STEPS + 1)) >"$OUT/ncu-decode.csv" 2>"$OUT/ncu-decode.err"
python3 - "$OUT/ncu-decode.csv" "$skip" "$STEPS" <<'PY' | tee "$OUT/profile.txt"
import csv, sys, collections, io
path, skip, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
txt = open(path).read()
txt = txt[txt.index('"ID","Process ID"'):]  # the program's own output comes first
rows = [r for r in csv.DictReader(io.StringIO(txt)) if r['Metric Name'] == 'gpu__time_duration.sum']
dec = rows[skip:]
unit = dec[0]['Metric Unit'] if dec else 'ns'
scale = {'nsecond': 1e-3, 'ns': 1e-3, 'usecond': 1.0, 'us': 1.0, 'msecond': 1e3}.get(unit, 1e-3)
by = collections.defaultdict(lambda: [0, 0.0])
for r in dec:
    name = r['Kernel Name'].split('(')[0][:90]
    by[name][0] += 1; by[name][1] += float(r['Metric Value'].replace(',', '')) * scale
total = sum(v[1] for v in by.values())
print(f'{len(dec)} kernels in {steps} decode steps; kernel time per step {total / steps:.1f} us')
for name, (n, us) in sorted(by.items(), key=lambda kv: -kv[1][1]):
    print(f'{us / steps:9.1f} us/step {n / steps:6.1f} launches/step  {name}')
PY
for g in 1 0; do
  MIXATTN_CUDA_GEMV=$g timeout 200 "${bench[@]}" --batches 1,16 --new 32 2>&1 | grep -E "decode|step" | sed "s/^/gemv=$g: /" | tee -a "$OUT/profile.txt"
done
