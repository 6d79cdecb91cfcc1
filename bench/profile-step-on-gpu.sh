#!/usr/bin/env bash
# On the GPU machine: the batch-1 decode step as it runs in its CUDA graph, kernel by kernel
# (bench/trace/kernel_trace.cc, a CUPTI tracer injected into `mixattn bench`), summarised by
# bench/trace/step-timeline.mjs into $OUT/timeline-<label>.md. Needs dist/ and node carried as
# for bench/e2e-on-gpu.sh.
#   LABEL   names the output (default: step);  BATCH PROMPT NEW  the workload (1 / 4096 / 64)
#   TRACE_API=1  also the runtime calls (the host side of the steps)
#   extra environment (MIXATTN_CUDA_*) passes through to the engine
set -uo pipefail
OUT=${OUT:-/tmp/mixattn-step}
mkdir -p "$OUT"
source "$(dirname "$0")/gpu-env.sh"
LABEL=${LABEL:-step}
find_one() { find /usr/local/cuda/ /usr/local/cuda/extras/ $(python3 -c 'import site; print(" ".join(site.getsitepackages()))') -name "$1" 2>/dev/null | head -1; }
tracer=/tmp/mixattn-kernel-trace.so
if [[ ! -f $tracer ]]; then
  inc=$(find_one cupti.h); lib=$(find_one 'libcupti.so*')
  [[ -z $inc || -z $lib ]] && { echo "CUPTI not found (cupti.h: '$inc', libcupti: '$lib')"; exit 1; }
  rec=$(grep -ohE 'CUpti_ActivityKernel[0-9]+' "$(dirname "$inc")"/cupti_activity*.h | sort -V | tail -1)
  echo "CUPTI: $inc, $lib, record ${rec:-CUpti_ActivityKernel9}"
  g++ -O2 -shared -fPIC -std=c++17 -I"$(dirname "$inc")" -I/usr/local/cuda/include -DKERNEL_RECORD="${rec:-CUpti_ActivityKernel9}" \
    bench/trace/kernel_trace.cc -o $tracer -L"$(dirname "$lib")" -Wl,-rpath,"$(dirname "$lib")" -l:"$(basename "$lib")" || exit 1
fi
ensure_cuda_addon 200 || exit 1
CUDA_INJECTION64_PATH=$tracer MIXATTN_TRACE_API=${TRACE_API:-} MIXATTN_TRACE_OUT=/tmp/trace-$LABEL.tsv node dist/lib/cli/main.js bench --backend cuda \
  --batches "${BATCH:-1}" --prompt "${PROMPT:-4096}" --new "${NEW:-64}" --out /tmp/bench-$LABEL 2>&1 | grep -E "step p50|rror" | sed "s/^/[$LABEL] /"
node bench/trace/step-timeline.mjs /tmp/trace-$LABEL.tsv --steps 32 --list 30 >"$OUT/timeline-$LABEL.md"
head -30 "$OUT/timeline-$LABEL.md"
