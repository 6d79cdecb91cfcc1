/**
 * bench/trace/step-timeline.mjs on a synthetic trace: steps are grouped by graph launch
 * (correlation id), a kernel's "advance" is how far it moved the end of the step past every
 * kernel that started before it (so overlapped kernels under PDL are not double-counted, and
 * the advances sum to the span), the host gap is measured between steps, and runtime calls
 * (MIXATTN_TRACE_API=1 lines) are listed around the median gap.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'mixattn-timeline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const US = 1000;  // the trace is in ns
/** One step of three kernels (µs offsets from `t0`): A alone, B overlapping A's tail, C after a gap. */
function step(t0: number, corr: number): string[] {
  const k = (s: number, e: number, name: string) => [t0 + s * US, t0 + e * US, corr, 7, '1,1,1', 128, 32, name].join('\t');
  return [
    k(0, 10, 'void mixattn::cuda::(anonymous namespace)::gemvKernel<1, __nv_bfloat16>(float*, int)'),
    k(8, 15, 'void mixattn::cuda::decodeMmaKernel<128>(mixattn::cuda::AttnArgs)'),
    k(17, 20, 'mixattn::cuda::(anonymous namespace)::argmaxKernel(int*, float const*, int)'),
  ];
}

describe('bench/trace/step-timeline.mjs', () => {
  it('attributes each step to kernels by advance and measures the host gap', () => {
    const header = 'start\tend\tcorrelation\tgraph\tgrid\tblock\tregs\tname';
    const lines = [header];
    // A prefill kernel outside any graph (graph 0) and four steps 100 µs apart (80 µs gaps).
    lines.push([1, 5 * US, 1, 0, '1,1,1', 128, 32, 'void prefillKernel(int)'].join('\t'));
    for (let i = 0; i < 4; i++) lines.push(...step(1e6 + i * 100 * US, 10 + i));
    // A runtime call inside the gaps.
    lines.push([1e6 + 150 * US, 1e6 + 160 * US, 99, 0, '-', 0, 0, 'api:cudaGraphLaunch_v10000'].join('\t'));
    const file = join(dir, 'trace.tsv');
    writeFileSync(file, lines.join('\n') + '\n');
    const md = execFileSync(process.execPath, ['bench/trace/step-timeline.mjs', file, '--steps', '4', '--list', '3'], { encoding: 'utf8' });
    expect(md).toContain('4 steps of 3 kernels');
    expect(md).toMatch(/Step span: mean 20\.00 µs/);
    expect(md).toMatch(/median 80\.0 µs/);
    // gemv: 10 µs alone; decode: from A's end (10) to 15 = 5 µs; argmax: 3 µs after a 2 µs idle gap.
    expect(md).toMatch(/\| gemvKernel \| 1 \| 10\.00 \| 10\.00 \| 50\.0% \| 0\.00 \|/);
    expect(md).toMatch(/\| decodeMmaKernel \| 1 \| 7\.00 \| 5\.00 \| 25\.0% \| 0\.00 \|/);
    expect(md).toMatch(/\| argmaxKernel \| 1 \| 3\.00 \| 3\.00 \| 15\.0% \| 2\.00 \|/);
    expect(md).toMatch(/\| cudaGraphLaunch_v10000 \| 30\.0 \| 40\.0 \|/);
  });
});
