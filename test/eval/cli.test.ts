/**
 * `mixattn eval` end to end on two fixture models (Llama with llama3 RoPE; the MixAttention
 * checkpoint) with small synthetic inputs: the JSON, markdown and SVG agree with each other,
 * the SVG is well-formed with one series per model, progress goes to stderr, and bad inputs
 * are one-line errors naming what is wrong.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEval } from '../../lib/cli/eval.js';
import type { CliIo } from '../../lib/cli/generate.js';
import type { EvalReport } from '../../lib/eval/report.js';
import { EvalProgress } from '../../lib/eval/progress.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { fixtureDir, writeEvalInputs } from './helpers.js';

/** Checks XML well-formedness: balanced, properly nested tags, quoted attributes, known entities. */
function xmlProblems(xml: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<!--[\s\S]*?-->|<\?[\s\S]*?\?>/g;
  let last = 0;
  const checkText = (t: string, at: number) => {
    if (/[<>]/.test(t)) problems.push(`stray < or > near offset ${at}`);
    for (const m of t.matchAll(/&([^;\s]*);?/g)) if (!/^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);$/i.test(m[0])) problems.push(`bad entity ${m[0]} near ${at}`);
  };
  for (const m of xml.matchAll(tag)) {
    checkText(xml.slice(last, m.index), last);
    last = m.index! + m[0].length;
    if (m[2] === undefined) continue; // comment or declaration
    checkText(m[3].replace(/"[^"]*"/g, (a) => a.replace(/[<>]/g, '')), m.index!);
    if (m[1]) {
      const open = stack.pop();
      if (open !== m[2]) problems.push(`</${m[2]}> closes <${open}> at ${m.index}`);
    } else if (!m[4]) stack.push(m[2]);
  }
  checkText(xml.slice(last), last);
  if (stack.length > 0) problems.push(`unclosed <${stack.join('>, <')}>`);
  return problems;
}

function captureIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => void out.push(t), stderr: (t) => void err.push(t) };
}

describe('xmlProblems (the checker itself)', () => {
  it('finds what is wrong', () => {
    expect(xmlProblems('<svg><g><rect x="1"/></g></svg>')).toEqual([]);
    expect(xmlProblems('<svg><g></svg>')).not.toEqual([]);
    expect(xmlProblems('<svg><text>a & b</text></svg>')).not.toEqual([]);
    expect(xmlProblems('<svg><text>a < b</text></svg>')).not.toEqual([]);
    expect(xmlProblems('<svg><g x=1></g></svg>')).not.toEqual([]);
  });
});

describe('mixattn eval', () => {
  let root: string;
  let inputs: { heldout: string; retrieval: string };
  let report: EvalReport;
  let io: ReturnType<typeof captureIo>;
  const models = ['llama3', 'mixattn'].map(fixtureDir);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'mixattn-eval-'));
    const tok = await Tokenizer.fromDir(fixtureDir('llama3'));
    inputs = writeEvalInputs(join(root, 'data'), tok, { contexts: [24, 48], depths: [0, 0.5, 1], perCell: 2, paragraphs: 12 });
    io = captureIo();
    const args = ['--heldout', inputs.heldout, '--retrieval', inputs.retrieval, '--max-heldout-tokens', '300', '--context', '64'];
    const speed = ['--speed-prompt', '24', '--speed-tokens', '4', '--speed-batch', '1,3', '--threads', '2', '--backend', 'cpu'];
    report = (await runEval([...models.flatMap((m) => ['--model', m]), ...args, ...speed, '--out', join(root, 'out', 'quality')], io))!;
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('measures every model', () => {
    expect(report.models.map((m) => m.label)).toEqual(['llama3', 'mixattn']);
    expect(report.backend).toBe('cpu');
    expect(report.retrievalItems).toBe(12);
    expect(report.command).toContain('mixattn eval --model');
    for (const m of report.models) {
      expect(m.heldout.tokens).toBe(300);
      expect(m.heldout.windows).toBe(5); // 64 × 4 + 44
      expect(m.heldout.scoredTokens).toBe(295);
      // Random weights over 300 ids: perplexity of the order of the vocabulary.
      expect(m.heldout.ppl).toBeGreaterThan(50);
      expect(m.heldout.ppl).toBeLessThan(3000);
      expect(m.retrieval.n).toBe(12);
      expect(m.retrieval.byCell).toHaveLength(6);
      expect(m.speed.map((s) => s.batch)).toEqual([1, 3]);
      for (const s of m.speed) {
        expect(s.decodeSteps).toBe(4);
        expect(s.decodeTokensPerS).toBeGreaterThan(0);
        expect(s.prefillTokensPerS).toBeGreaterThan(0);
      }
      expect(m.config.maxPositions).toBe(256);
      expect(m.kv.maxContext).toBe(256);
    }
    const [llama, mix] = report.models;
    expect(llama.plan.preset).toBe('standard');
    expect(llama.kv.vsStandardAt1024).toBe(1);
    expect(mix.plan.preset).toBe('custom');
    expect(mix.plan.notation).toBe('w=8 0 1s 1s 0 4s 4s');
    // Two KV heads × 16, bf16: one global cache (every token) + two sliding caches of window 8 (at most 2 blocks of 16).
    expect(mix.kv.bytesAt1024).toBe((1024 + 2 * 2 * 16) * 2 * 16 * 2 * 2);
    expect(mix.kv.vsStandardAt1024).toBeCloseTo((1024 + 64) / (6 * 1024), 12);
  });

  it('writes JSON, markdown and SVG that agree', () => {
    const base = join(root, 'out', 'quality');
    const json = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as EvalReport;
    expect(json.models.map((m) => m.heldout.ppl)).toEqual(report.models.map((m) => m.heldout.ppl));
    const md = readFileSync(`${base}.md`, 'utf8');
    const header = md.split('\n').find((l) => l.startsWith('| model | plan |'))!;
    expect(header).toContain('acc @48');
    expect(header).toContain('decode tok/s b3');
    for (const m of report.models) {
      const row = md.split('\n').find((l) => l.startsWith(`| ${m.label} |`))!.split('|').map((c) => c.trim());
      expect(row[2]).toBe(m.plan.preset);
      expect(row[4]).toBe(m.heldout.ppl.toFixed(3));
      expect(row[5]).toBe(`${(100 * m.retrieval.accuracy).toFixed(1)}%`);
      expect(row[6]).toBe(`${(100 * m.retrieval.byContext.find((c) => c.contextTokens === 48)!.accuracy).toFixed(1)}%`);
      expect(row[7]).toBe((m.kv.bytesAt1024 / 2 ** 20).toFixed(3));
      expect(md).toContain(`## Retrieval accuracy of ${m.label}`);
    }
    expect(io.out.join('')).toContain(md.split('\n')[0]);

    const svg = readFileSync(`${base}.svg`, 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(xmlProblems(svg)).toEqual([]);
    const series = [...svg.matchAll(/<g class="series" data-model="([^"]+)"/g)].map((m) => m[1]);
    expect(series).toEqual(['llama3', 'mixattn']);
    // Each series: its four bars with the report's values, and a 2 × 3 heatmap.
    const groups = svg.split('<g class="series"').slice(1);
    groups.forEach((g, i) => {
      const m = report.models[i];
      const bar = (metric: string) => Number(new RegExp(`data-metric="${metric}" data-value="([^"]+)"`).exec(g)![1]);
      expect(bar('ppl')).toBe(m.heldout.ppl);
      expect(bar('retrieval')).toBe(m.retrieval.accuracy);
      expect(bar('kv')).toBe(m.kv.bytesAt1024 / 2 ** 20);
      expect(bar('decode')).toBe(m.speed.find((s) => s.batch === 3)!.decodeTokensPerS);
      const cells = [...g.matchAll(/class="cell" data-context="(\d+)" data-depth="([\d.]+)" data-value="([^"]+)"/g)];
      expect(cells.map((c) => [Number(c[1]), Number(c[2]), Number(c[3])])).toEqual(m.retrieval.byCell.map((c) => [c.contextTokens, c.depth, c.accuracy]));
    });
  });

  it('reports progress on stderr, one finished line per phase when not on a terminal', () => {
    const lines = io.err.join('').split('\n').filter((l) => l.length > 0);
    expect(lines[0]).toMatch(/^mixattn eval: 2 model\(s\) on CPU/);
    expect(lines.filter((l) => l.startsWith('[1/2 llama3] '))).toHaveLength(3);
    expect(lines.filter((l) => l.startsWith('[2/2 mixattn] '))).toHaveLength(3);
    expect(io.err.join('')).not.toContain('\r');
  });

  describe('bad input', () => {
    const run = (args: string[]) => runEval(args, captureIo());
    const base = () => ['--heldout', inputs.heldout, '--retrieval', inputs.retrieval, '--out', join(root, 'never')];

    it('names missing flags and files', async () => {
      await expect(run(base())).rejects.toThrow(/^eval: --model DIR is required/);
      await expect(run(['--model', models[0], '--retrieval', inputs.retrieval])).rejects.toThrow(/^eval: --heldout FILE is required/);
      await expect(run(['--model', models[0], ...base(), '--heldout', join(root, 'nope.txt')])).rejects.toThrow(/^--heldout .*nope\.txt: does not exist$/);
      await expect(run(['--model', join(root, 'no-model'), ...base()])).rejects.toThrow(/no-model: model directory does not exist/);
      await expect(run(['--model', models[0], ...base(), '--backend', 'tpu'])).rejects.toThrow(/--backend must be cpu, cuda or auto, got 'tpu'/);
      await expect(run(['--model', models[0], ...base(), '--speed-batch', '1,x'])).rejects.toThrow(/--speed-batch must be an integer >= 1, got 'x'/);
      await expect(run(['--model', models[0], ...base(), '--frobnicate'])).rejects.toThrow(/^eval: Unknown option '--frobnicate'/);
      expect(existsSync(join(root, 'never.json'))).toBe(false);
    });

    it('names the JSONL line and field', async () => {
      const bad = join(root, 'bad.jsonl');
      const good = readFileSync(inputs.retrieval, 'utf8').split('\n')[0];
      const cases: [string, RegExp][] = [
        [`${good}\n\n{"id": 2, "prompt": "x", "answer": " 1", "context_tokens": 16}\n`, /bad\.jsonl line 3: field "depth" must be a number in \[0, 1\], got nothing$/],
        [`${good}\n{oops\n`, /bad\.jsonl line 2: not valid JSON/],
        [`{"id": "a", "prompt": "x", "answer": "", "context_tokens": 16, "depth": 0}\n`, /line 1: field "answer" must be a non-empty string, got ""/],
        [`{"id": "a", "prompt": "x", "answer": " 1", "context_tokens": 1.5, "depth": 0}\n`, /line 1: field "context_tokens" must be a positive integer, got 1\.5/],
        [`${good}\n${good}\n`, /line 2: field "id" "s0" repeats line 1/],
        [`[1, 2]\n`, /line 1: expected a JSON object/],
        [`\n\n`, /bad\.jsonl: has no items/],
      ];
      for (const [text, re] of cases) {
        writeFileSync(bad, text);
        await expect(run(['--model', models[0], ...base(), '--retrieval', bad]), text).rejects.toThrow(re);
      }
    });

    it('refuses a model without a tokenizer, and runs that do not fit its positions', async () => {
      const dir = join(root, 'no-tokenizer');
      mkdirSync(dir);
      for (const f of ['config.json', 'model.safetensors']) cpSync(join(models[0], f), join(dir, f));
      await expect(run(['--model', dir, ...base()])).rejects.toThrow(/no-tokenizer: has no tokenizer\.json/);
      await expect(run(['--model', models[0], ...base(), '--speed-prompt', '250'])).rejects.toThrow(
        /--speed-prompt \+ --speed-tokens = 314 exceeds .*llama3's max_position_embeddings \(256\)/,
      );
      await expect(run(['--model', models[0], ...base(), '--context', '512'])).rejects.toThrow(/--context 512 exceeds .*max_position_embeddings \(256\)/);
    });
  });
});

describe('the installed bin', () => {
  it('knows the eval command', () => {
    const bin = 'dist/lib/cli/main.js';
    expect(existsSync(bin), 'dist is built by `npm install` (prepare)').toBe(true);
    const usage = execFileSync(process.execPath, [bin, 'eval', '--help'], { encoding: 'utf8' });
    expect(usage).toMatch(/^mixattn eval --model DIR \[--model DIR \.\.\.\] --heldout FILE\.txt --retrieval FILE\.jsonl/);
    expect(execFileSync(process.execPath, [bin, 'help'], { encoding: 'utf8' })).toContain('eval      quality and cost of models');
  });
});

describe('EvalProgress on a terminal', () => {
  it('redraws one line at most every interval and ends it with the finished line', () => {
    const written: string[] = [];
    let t = 0;
    const p = new EvalProgress({ write: (s) => void written.push(s), isTTY: true, columns: 60 }, () => t, 100);
    p.update('[1/1 m] perplexity, tokens', 10, 100);
    t = 50;
    p.update('[1/1 m] perplexity, tokens', 20, 100); // too soon: skipped
    t = 150;
    p.update('[1/1 m] perplexity, tokens', 30, 100);
    p.update('[1/1 m] perplexity, tokens', 100, 100); // the last one always drawn
    p.line('done');
    expect(written).toEqual([
      '\r[1/1 m] perplexity, tokens 10/100 (10%)\x1b[K',
      '\r[1/1 m] perplexity, tokens 30/100 (30%)\x1b[K',
      '\r[1/1 m] perplexity, tokens 100/100 (100%)\x1b[K',
      '\r\x1b[Kdone\n',
    ]);
  });
});
