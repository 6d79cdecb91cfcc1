#!/usr/bin/env node
// Where a captured decode step's time goes, from kernel_trace.cc's trace: each graph launch
// (one correlation id) is a step; the last --steps of the most common shape are summarised.
// A kernel's "advance" is how far it moved the end of the step's timeline past every kernel
// that started before it (under programmatic dependent launch a kernel starts early and waits,
// so its duration overstates what it costs); the advances sum to the step's span.
// Usage: node bench/trace/step-timeline.mjs trace.tsv [--steps 32] [--list 40] > timeline.md
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const file = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const wantSteps = opt('--steps', 32);
const listN = opt('--list', 40);

// "ns::(anon)::gemvKernel<1, __nv_bfloat16>(...)" → "gemvKernel<1, __nv_bfloat16>"
function shortName(full) {
  const n = full.replace(/\(anonymous namespace\)::/g, '').replace(/^void /, '');
  const paren = n.indexOf('(');
  let s = paren > 0 ? n.slice(0, paren) : n;
  let depth = 0;
  let cut = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '<') depth++;
    else if (s[i] === '>') depth--;
    else if (depth === 0 && s[i] === ':' && s[i + 1] === ':') cut = i + 2;
  }
  return s.slice(cut);
}

const rows = readFileSync(file, 'utf8').trim().split('\n').slice(1).map((l) => {
  const [start, end, corr, graph, grid, block, regs, ...name] = l.split('\t');
  return { start: Number(start), end: Number(end), corr, graph: Number(graph), grid, block, regs, name: shortName(name.join('\t')) };
});
const byCorr = new Map();
for (const r of rows) {
  if (!r.graph) continue;
  if (!byCorr.has(r.corr)) byCorr.set(r.corr, []);
  byCorr.get(r.corr).push(r);
}
const groups = [...byCorr.values()].map((g) => g.sort((a, b) => a.start - b.start));
groups.sort((a, b) => a[0].start - b[0].start);
const countOf = new Map();
for (const g of groups) countOf.set(g.length, (countOf.get(g.length) ?? 0) + 1);
const common = [...countOf.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
const steps = groups.filter((g) => g.length === common).slice(-wantSteps);
if (!steps.length) {
  console.log(`no graph launches in ${file} (${rows.length} kernels)`);
  process.exit(1);
}

function analyse(step) {
  const t0 = step[0].start;
  let maxEnd = t0;
  return step.map((k) => {
    const advance = Math.max(0, k.end - Math.max(maxEnd, k.start)) ;
    const idle = Math.max(0, k.start - maxEnd);  // the GPU ran nothing of this step before k
    maxEnd = Math.max(maxEnd, k.end);
    return { ...k, at: k.start - t0, dur: k.end - k.start, advance, idle };
  });
}
const analysed = steps.map(analyse);
const spans = analysed.map((s) => s.reduce((m, k) => Math.max(m, k.at + k.dur), 0));
const order = spans.map((s, i) => [s, i]).sort((a, b) => a[0] - b[0]);
const median = analysed[order[order.length >> 1][1]];
const us = (ns) => (ns / 1000).toFixed(2);

const classes = new Map();
for (const s of analysed)
  for (const k of s) {
    const key = k.name.replace(/<.*/, '');
    const c = classes.get(key) ?? { n: 0, dur: 0, adv: 0, idle: 0 };
    c.n++, (c.dur += k.dur), (c.adv += k.advance), (c.idle += k.idle);
    classes.set(key, c);
  }
const S = analysed.length;
const meanSpan = spans.reduce((a, b) => a + b, 0) / S;
console.log(`# Decode step timeline (${S} steps of ${common} kernels; ${file})\n`);
// The host's share: from one step's last kernel to the next step's first (the GPU runs none of
// the step meanwhile: the host reads the tokens, prepares and launches the next step).
const gaps = [];
for (let i = 1; i < steps.length; i++) {
  const prevEnd = steps[i - 1].reduce((m, k) => Math.max(m, k.end), 0);
  if (steps[i][0].start > prevEnd) gaps.push(steps[i][0].start - prevEnd);
}
const gapAt = gaps.map((g, i) => [g, i + 1]);
gaps.sort((a, b) => a - b);
if (gaps.length) console.log(`Between steps (host: tokens down, next step prepared and launched): median ${(gaps[gaps.length >> 1] / 1000).toFixed(1)} µs, min ${(gaps[0] / 1000).toFixed(1)} µs (under the tracer, whose callbacks add host time).\n`);
console.log(`Step span: mean ${us(meanSpan)} µs, min ${us(order[0][0])}, median ${us(order[order.length >> 1][0])}, max ${us(order[order.length - 1][0])}.\n`);
console.log('| kernel | per step | mean duration µs | advance µs per step | share | idle before µs per step |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const [name, c] of [...classes.entries()].sort((a, b) => b[1].adv - a[1].adv))
  console.log(`| ${name} | ${c.n / S} | ${us(c.dur / c.n)} | ${us(c.adv / S)} | ${((100 * c.adv) / S / meanSpan).toFixed(1)}% | ${us(c.idle / S)} |`);
console.log(`\n## The median step's first ${listN} kernels\n`);
console.log('| # | kernel | grid | starts at µs | duration µs | advance µs |');
console.log('|---:|---|---|---:|---:|---:|');
median.slice(0, listN).forEach((k, i) =>
  console.log(`| ${i} | ${k.name.slice(0, 60)} | ${k.grid}×${k.block} | ${us(k.at)} | ${us(k.dur)} | ${us(k.advance)} |`));

// With MIXATTN_TRACE_API=1 the runtime calls: those around the median gap, on the host clock.
const api = rows.filter((r) => r.name.startsWith('api:'));
if (api.length && gapAt.length) {
  gapAt.sort((a, b) => a[0] - b[0]);
  const i = gapAt[gapAt.length >> 1][1];
  const prevEnd = steps[i - 1].reduce((m, k) => Math.max(m, k.end), 0);
  const nextStart = steps[i][0].start;
  console.log(`\n## Runtime calls from the end of one step's kernels to the start of the next's (µs from that end)\n`);
  console.log('| call | starts at | ends at |');
  console.log('|---|---:|---:|');
  for (const r of api.filter((r) => r.end >= prevEnd - 20000 && r.start <= nextStart).sort((a, b) => a.start - b.start))
    console.log(`| ${r.name.slice(4)} | ${((r.start - prevEnd) / 1000).toFixed(1)} | ${((r.end - prevEnd) / 1000).toFixed(1)} |`);
  console.log(`| (next step's first kernel) | ${((nextStart - prevEnd) / 1000).toFixed(1)} | |`);
}
