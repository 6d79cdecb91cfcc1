// Kernel launches with programmatic dependent launch (PDL, sm_90+).
//
// Why: a batch-1 decode step is ~170 small kernels in a CUDA graph, and each paid a fixed
// launch gap (~1.5-3 us) during which the GPU idled. With PDL (Ctx::pdl) every kernel is
// launched with programmatic stream serialization: its blocks may be scheduled while the
// kernel before it still runs, so the gap overlaps that kernel's tail, and the GEMVs start
// streaming their (constant) weights before the activations they multiply exist.
//
// The rule every kernel launched through launchKernel follows (correctness rests on it):
// every block executes gridDepWait() before it reads any memory that an earlier op
// of the step may write (activations, new KV rows, scratch, outputs), before it writes
// anything but the DeviceError record (an atomicCAS), and before any return, so that a kernel
// completes only after the one before it has; waiting is then transitive along the stream.
// Only reads of data no op of the step writes may precede it: weights, constant tables,
// kernel parameters, the step's metadata and block tables (uploaded before the step's first
// kernel; a copy waits for the kernels before it), and K/V rows of keys below pastLen[s]
// (written by earlier steps: appends write rows at pastLen[s] and above, and pages are never
// copied on the device). Each use names what it reads early.
// gridDepLaunchDependents() only lets the next kernel's blocks be scheduled (it is a hint and
// implies nothing about memory), so kernels call it first thing.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "cuda/ops.h"

namespace mixattn {
namespace cuda {

// griddepcontrol exists from sm_90 on; no-ops in the sm_80 build (never launched with PDL).
__device__ __forceinline__ void gridDepWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void gridDepLaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Diagnostic only (MIXATTN_CUDA_SKIP_OPS=name,name,...): true for an op whose name starts with
// one of the names, whose launches launchKernel then drops. A benchmark measures what a kernel
// class costs inside a captured step this way (ncu times kernels alone, without the overlap
// PDL gives them); the step's outputs are then wrong. errors.cc.
bool skipOp(const char* op);

// Launches kernel<<<grid, block, smem, c.stream>>>(args...), with programmatic stream
// serialization when c.pdl; a failed launch throws Error naming `op` (as checkLaunch does).
template <typename... Params, typename... Args>
void launchKernel(const Ctx& c, const char* op, void (*kernel)(Params...), dim3 grid, dim3 block,
                  size_t smem, Args&&... args) {
  if (skipOp(op)) return;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = c.stream;
  cudaLaunchAttribute attr[1];
  if (c.pdl) {
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
  check(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), op);
  checkLaunch(op);
}

}  // namespace cuda
}  // namespace mixattn
