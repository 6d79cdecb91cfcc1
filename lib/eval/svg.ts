/**
 * The evaluation chart as a self-contained SVG, drawn here (no dependency): one row of bars
 * per model in four panels (held-out perplexity, retrieval accuracy, KV MiB per sequence at
 * 1024 tokens, decode tokens/s at the largest batch), and below them one heatmap per model of
 * retrieval accuracy by context length × needle depth. Everything a model contributes sits
 * in one `<g class="series" data-model=...>`.
 */
import type { ModelEval } from './model.js';
import { decodeAt, fixed, type EvalReport } from './report.js';

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
const MARGIN = 16;
const LABEL_W = 170;
const PANEL_W = 190;
const PANEL_GAP = 18;
const ROW_H = 26;
const BAR_H = 14;
const HEADER_H = 40;
const AXIS_H = 22;
const CELL_W = 36;
const CELL_H = 20;
const HEAT_LABEL_W = 44;
const MiB = 1024 * 1024;

export const modelColor = (i: number): string => PALETTE[i % PALETTE.length];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const n = (x: number): string => String(Math.round(x * 10) / 10);

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${n(x)}" y="${n(y)}"${attrs ? ' ' + attrs : ''}>${escapeXml(s)}</text>`;
}

interface Metric {
  readonly key: string;
  readonly title: string;
  readonly note: string;
  readonly value: (m: ModelEval) => number | undefined;
  readonly label: (v: number) => string;
  /** Fixed axis maximum (accuracy), else a round number above the largest value. */
  readonly max?: number;
  /**
   * Dots on an axis fitted to the values instead of bars from 0: perplexities of plans differ
   * by a few percent, which bars from 0 would hide (a dot implies no zero baseline).
   */
  readonly dots?: boolean;
}

function metrics(r: EvalReport): Metric[] {
  const big = Math.max(...r.settings.speedBatches);
  return [
    { key: 'ppl', title: 'held-out perplexity', note: 'lower is better (axis not from 0)', value: (m) => m.heldout.ppl, label: (v) => fixed(v, 2), dots: true },
    { key: 'retrieval', title: 'retrieval accuracy', note: 'higher is better', value: (m) => m.retrieval.accuracy, label: (v) => `${(100 * v).toFixed(1)}%`, max: 1 },
    { key: 'kv', title: 'KV MiB / sequence @1024', note: 'lower is better (bf16)', value: (m) => m.kv.bytesAt1024 / MiB, label: (v) => fixed(v, v < 10 ? 3 : 1) },
    { key: 'decode', title: `decode tok/s, batch ${big}`, note: 'higher is better', value: (m) => decodeAt(m, big), label: (v) => fixed(v, v < 100 ? 1 : 0) },
  ];
}

/** Round axis maximum (1, 2, 2.5 or 5 × 10^k) at or above x. */
export function niceMax(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= x) return f * p;
  return 10 * p;
}

/** A round step (1, 2, 2.5 or 5 × 10^k) near x. */
function niceStep(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x));
  for (const f of [1, 2, 2.5, 5]) if (f * p >= x) return f * p;
  return 10 * p;
}

/** An axis [lo, hi] for dots: the values' range padded and rounded out to round steps, never below 0. */
export function fittedAxis(values: readonly number[]): { lo: number; hi: number } {
  const min = Math.min(...values);
  const max = Math.max(...values);
  const pad = max > min ? (max - min) * 0.15 : Math.max(Math.abs(max) * 0.05, 1e-9);
  const step = niceStep((max - min + 2 * pad) / 2);
  return { lo: Math.max(0, Math.floor((min - pad) / step) * step), hi: Math.ceil((max + pad) / step) * step };
}

/** White → dark blue. */
function heatColor(v: number): string {
  const lo = [247, 251, 255];
  const hi = [8, 48, 107];
  const t = Math.min(1, Math.max(0, v));
  return `rgb(${lo.map((c, i) => Math.round(c + (hi[i] - c) * t)).join(',')})`;
}

export function evalSvg(r: EvalReport): string {
  const ms = metrics(r);
  const models = r.models;
  const width = MARGIN * 2 + LABEL_W + ms.length * (PANEL_W + PANEL_GAP);
  const barsTop = MARGIN + 44;
  const barsH = HEADER_H + models.length * ROW_H + AXIS_H;

  // Heatmaps flow left to right under the bars.
  const contexts = [...new Set(models.flatMap((m) => m.retrieval.byContext.map((c) => c.contextTokens)))].sort((a, b) => a - b);
  const depths = [...new Set(models.flatMap((m) => m.retrieval.byCell.map((c) => c.depth!)))].sort((a, b) => a - b);
  const heatW = HEAT_LABEL_W + depths.length * CELL_W + 24;
  const heatH = 22 + contexts.length * CELL_H + 26;
  const perRow = Math.max(1, Math.floor((width - 2 * MARGIN) / heatW));
  const heatTop = barsTop + barsH + 40;
  const heatRows = Math.ceil(models.length / perRow);
  const height = heatTop + heatRows * heatH + MARGIN;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${n(height)}" viewBox="0 0 ${width} ${n(height)}" font-family="${FONT}" font-size="11">`,
  );
  out.push(`<title>${escapeXml(`mixattn eval ${r.date}: quality and cost per plan`)}</title>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${n(height)}" fill="#ffffff"/>`);
  out.push(text(MARGIN, MARGIN + 14, `Quality and cost per plan — ${r.date}, ${r.backend}, commit ${r.commit}`, 'font-size="15" font-weight="bold"'));
  out.push(text(MARGIN, MARGIN + 32, r.device, 'font-size="11" fill="#555555"'));

  // Panel frames, titles and axes.
  const panelX = (k: number) => MARGIN + LABEL_W + k * (PANEL_W + PANEL_GAP);
  const barSpan = PANEL_W - 56; // room for the value after the longest bar
  const axes = ms.map((mt) => {
    const vals = models.map((m) => mt.value(m)).filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (mt.dots && vals.length > 0) return fittedAxis(vals);
    return { lo: 0, hi: mt.max ?? niceMax(Math.max(0, ...vals)) };
  });
  const xOf = (k: number, v: number) => panelX(k) + ((v - axes[k].lo) / (axes[k].hi - axes[k].lo)) * barSpan;
  out.push('<g class="axes">');
  ms.forEach((mt, k) => {
    const x0 = panelX(k);
    out.push(text(x0, barsTop + 14, mt.title, 'font-weight="bold"'));
    out.push(text(x0, barsTop + 28, mt.note, 'fill="#666666" font-size="10"'));
    const yAxis = barsTop + HEADER_H + models.length * ROW_H;
    for (const f of [0, 0.5, 1]) {
      const x = x0 + f * barSpan;
      out.push(`<line x1="${n(x)}" y1="${barsTop + HEADER_H - 4}" x2="${n(x)}" y2="${yAxis}" stroke="${f === 0 && !mt.dots ? '#333333' : '#dddddd'}" stroke-width="1"/>`);
      const tick = axes[k].lo + f * (axes[k].hi - axes[k].lo);
      const digits = axes[k].hi - axes[k].lo < 10 ? 2 : axes[k].hi - axes[k].lo < 100 ? 1 : 0;
      out.push(text(x, yAxis + 14, mt.max === 1 ? `${Math.round(100 * tick)}%` : fixed(tick, digits), 'text-anchor="middle" fill="#555555" font-size="10"'));
    }
  });
  out.push('</g>');

  // One group per model: its label, its bars, its heatmap.
  models.forEach((m, i) => {
    const color = modelColor(i);
    const y = barsTop + HEADER_H + i * ROW_H;
    out.push(`<g class="series" data-model="${escapeXml(m.label)}" data-plan="${escapeXml(m.plan.preset)}">`);
    out.push(`<rect x="${MARGIN}" y="${n(y + (ROW_H - BAR_H) / 2)}" width="10" height="${BAR_H}" fill="${color}"/>`);
    out.push(text(MARGIN + 16, y + ROW_H / 2 - 1, m.label, 'font-weight="bold"'));
    out.push(text(MARGIN + 16, y + ROW_H / 2 + 10, m.plan.preset + (m.plan.lowRank ? ' (low-rank)' : ''), 'fill="#555555" font-size="10"'));
    ms.forEach((mt, k) => {
      const v = mt.value(m);
      const x0 = panelX(k);
      if (v === undefined || !Number.isFinite(v)) {
        out.push(text(x0 + 4, y + ROW_H / 2 + 4, 'n/a', 'fill="#999999"'));
        return;
      }
      const x = xOf(k, v);
      if (mt.dots) {
        out.push(`<line x1="${n(x0)}" y1="${n(y + ROW_H / 2)}" x2="${n(x0 + barSpan)}" y2="${n(y + ROW_H / 2)}" stroke="#eeeeee" stroke-width="1"/>`);
        out.push(`<circle class="bar" data-metric="${mt.key}" data-value="${v}" cx="${n(x)}" cy="${n(y + ROW_H / 2)}" r="5" fill="${color}"/>`);
        out.push(text(x0 + barSpan + 6, y + ROW_H / 2 + 4, mt.label(v)));
        return;
      }
      const w = Math.max(0.5, x - x0);
      out.push(
        `<rect class="bar" data-metric="${mt.key}" data-value="${v}" x="${n(x0)}" y="${n(y + (ROW_H - BAR_H) / 2)}" width="${n(w)}" height="${BAR_H}" fill="${color}"/>`,
      );
      out.push(text(x0 + w + 4, y + ROW_H / 2 + 4, mt.label(v)));
    });
    out.push(heatmap(m, contexts, depths, MARGIN + (i % perRow) * heatW, heatTop + Math.floor(i / perRow) * heatH, color));
    out.push('</g>');
  });

  out.push(text(MARGIN, heatTop - 14, 'Retrieval accuracy (%) by context length (rows, tokens) × needle depth (columns, 0 = start, 1 = end)', 'font-weight="bold" font-size="12"'));
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function heatmap(m: ModelEval, contexts: number[], depths: number[], x: number, y: number, color: string): string {
  const o: string[] = [`<g class="heatmap" data-model="${escapeXml(m.label)}">`];
  o.push(`<rect x="${n(x)}" y="${n(y + 2)}" width="10" height="10" fill="${color}"/>`);
  o.push(text(x + 14, y + 11, `${m.label} (${m.plan.preset})`, 'font-weight="bold"'));
  const gx = x + HEAT_LABEL_W;
  const gy = y + 20;
  contexts.forEach((ctx, r) => {
    o.push(text(gx - 4, gy + r * CELL_H + CELL_H / 2 + 4, String(ctx), 'text-anchor="end" fill="#555555" font-size="10"'));
    depths.forEach((d, c) => {
      const cell = m.retrieval.byCell.find((b) => b.contextTokens === ctx && b.depth === d);
      const cx = gx + c * CELL_W;
      const cy = gy + r * CELL_H;
      if (!cell) {
        o.push(`<rect x="${n(cx)}" y="${n(cy)}" width="${CELL_W - 1}" height="${CELL_H - 1}" fill="#eeeeee"/>`);
        return;
      }
      o.push(
        `<rect class="cell" data-context="${ctx}" data-depth="${d}" data-value="${cell.accuracy}" x="${n(cx)}" y="${n(cy)}" width="${CELL_W - 1}" height="${CELL_H - 1}" fill="${heatColor(cell.accuracy)}"/>`,
      );
      o.push(text(cx + (CELL_W - 1) / 2, cy + CELL_H / 2 + 3, `${Math.round(100 * cell.accuracy)}`, `text-anchor="middle" font-size="9" fill="${cell.accuracy > 0.55 ? '#ffffff' : '#222222'}"`));
    });
  });
  depths.forEach((d, c) => o.push(text(gx + c * CELL_W + (CELL_W - 1) / 2, gy + contexts.length * CELL_H + 11, String(d), 'text-anchor="middle" fill="#555555" font-size="10"')));
  o.push('</g>');
  return o.join('\n');
}
