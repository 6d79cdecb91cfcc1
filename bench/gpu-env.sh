# Sourced by the *-on-gpu.sh scripts (bench/, train/): the call's time budget, the commit the
# results name, the CUDA libraries on the loader path, and the CUDA addon. Expects OUT; sets t0 and DEADLINE_S when
# the script has not.
#   left                 seconds left of DEADLINE_S
#   step NAME MAX_S cmd  runs cmd under min(MAX_S, time left - 5), then prints its exit and time
#   ensure_cuda_addon [MAX_S]  MIXATTN_PREBUILT (a mixattn.node built elsewhere) copied in; else a
#                        build/ left by an earlier call on this (warm) machine brought up to date;
#                        else the addon built here with sm_90a (within MAX_S, default 300);
#                        logs to $OUT/summary.log and $OUT/build.log; non-zero when it fails
t0=${t0:-$(date +%s)}
# The commit the results name: MIXATTN_COMMIT, else .device-commit (git-ignored: written on
# the machine the run is sent from, `git rev-parse --short HEAD > .device-commit`, and named in
# the run's carry list; the GPU machine's copy of .git can be older than the tree it runs).
if [[ -z "${MIXATTN_COMMIT:-}" && -s .device-commit ]]; then
  MIXATTN_COMMIT=$(head -c 64 .device-commit | tr -cd '0-9a-zA-Z+._-')
  export MIXATTN_COMMIT
fi
DEADLINE_S=${DEADLINE_S:-560}
left() { echo $((DEADLINE_S - ($(date +%s) - t0))); }
step() {
  local name=$1 max=$2 l
  shift 2
  l=$(($(left) - 5))
  ((l > max)) && l=$max
  if ((l < 10)); then echo "[$name] skipped: out of time"; return 124; fi
  local s=$(date +%s)
  timeout "$l" "$@"
  local rc=$?
  echo "[$name] exit $rc, $(($(date +%s) - s)) s (limit $l)"
  return $rc
}
sitelib=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${sitelib:-/nonexistent}:${LD_LIBRARY_PATH:-}
have_cuda() { node -e 'const a=require("node-gyp-build")(process.cwd()).backendInfo().cuda; console.log("cuda:", JSON.stringify(a)); process.exit(a.available?0:1)'; }
ensure_cuda_addon() {
  if [[ -n "${MIXATTN_PREBUILT:-}" && -f "$MIXATTN_PREBUILT" ]]; then
    mkdir -p build/Release && cp "$MIXATTN_PREBUILT" build/Release/mixattn.node
    have_cuda 2>&1 | tee -a "$OUT/summary.log" && return 0
  elif [[ -f build/CMakeCache.txt ]]; then
    # A machine kept warm between calls keeps build/ from the last call, whose addon can be
    # older than the sources carried now: bring it up to date (nothing to do when it is).
    echo "updating the addon built here before" | tee -a "$OUT/summary.log"
    step build "${1:-300}" cmake --build build --config Release >"$OUT/build.log" 2>&1 &&
      have_cuda 2>&1 | tee -a "$OUT/summary.log" && return 0
  fi
  echo "building the addon here" | tee -a "$OUT/summary.log"
  rm -rf build
  step build "${1:-300}" env MIXATTN_CUDA=ON node scripts/build-native.mjs --CDMIXATTN_CUDA_ARCHS=90a >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; return 1; }
  have_cuda 2>&1 | tee -a "$OUT/summary.log"
}
