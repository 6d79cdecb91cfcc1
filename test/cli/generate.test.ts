import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { runGenerate, type CliIo } from '../../lib/cli/generate.js';
import { loadModel } from '../../lib/api/index.js';
import { expectedOf, fixture, FIXTURES, withoutTokenizer } from '../api/helpers.js';

function capture(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: (t) => void (out += t), stderr: (t) => void (err += t), out: () => out, err: () => err };
}

const fixtures = readdirSync(FIXTURES).filter((d) => existsSync(`${FIXTURES}/${d}/expected.json`));

describe('mixattn generate', () => {
  it.each(fixtures)('--prompt-ids … --greedy --json reproduces HF greedy on %s', async (name) => {
    for (const p of expectedOf(name)) {
      const io = capture();
      await runGenerate(['--model', fixture(name), '--prompt-ids', p.ids.join(','), '--max-tokens', '32', '--greedy', '--json', '--threads', '2'], io);
      const r = JSON.parse(io.out()) as { tokenIds: number[]; text: string; finishReason: string; usage: object; timing: { tokensPerSecond: number } };
      expect(r.tokenIds).toEqual(p.greedy);
      expect(r.finishReason).toBe('length');
      expect(r.usage).toEqual({ promptTokens: p.ids.length, completionTokens: 32 });
      expect(r.timing.tokensPerSecond).toBeGreaterThan(0);
      expect(typeof r.text).toBe('string');
      expect(io.out().trim().split('\n')).toHaveLength(1);
    }
  });

  it('streams text to stdout and a summary to stderr', async () => {
    const io = capture();
    await runGenerate(['--model', fixture('llama3'), '--prompt', 'once upon', '--greedy', '--max-tokens', '12', '--threads', '2'], io);
    await using model = await loadModel(fixture('llama3'), { threads: 2 });
    const r = await model.complete('once upon', { temperature: 0, maxTokens: 12 });
    expect(io.out()).toBe(r.text.endsWith('\n') ? r.text : `${r.text}\n`);
    expect(io.err()).toMatch(/^\[12 tokens, length; prefill \d+ ms, [\d.]+ tokens\/s\]\n$/);
  });

  it('sampling flags reach the sampler (a seed reproduces), --stop ends the text', async () => {
    const run = async (...extra: string[]) => {
      const io = capture();
      await runGenerate(['--model', fixture('qwen2'), '--prompt', 'abc', '--max-tokens', '16', '--json', '--threads', '2', ...extra], io);
      return JSON.parse(io.out()) as { tokenIds: number[]; text: string; finishReason: string; stopReason?: string };
    };
    const flags = ['--temperature', '1.1', '--top-k', '40', '--top-p', '0.9', '--min-p', '0.01', '--repetition-penalty', '1.1', '--seed', '5'];
    const a = await run(...flags);
    expect((await run(...flags)).tokenIds).toEqual(a.tokenIds);
    const greedy = await run('--greedy');
    const stop = greedy.text.slice(4, 6);
    const stopped = await run('--greedy', '--stop', 'zzzz', '--stop', stop);
    expect(stopped).toMatchObject({ finishReason: 'stop', stopReason: stop, text: greedy.text.slice(0, greedy.text.indexOf(stop)) });
  });

  it('a model without a tokenizer streams token ids', async () => {
    const { dir, cleanup } = withoutTokenizer('gemma2');
    try {
      const p = expectedOf('gemma2')[0];
      const io = capture();
      await runGenerate(['--model', dir, '--prompt-ids', p.ids.join(','), '--greedy', '--max-tokens', '32', '--threads', '2'], io);
      expect(io.out().trim().split(' ').map(Number)).toEqual(p.greedy);
      await expect(runGenerate(['--model', dir, '--prompt', 'hi'], capture())).rejects.toThrow(/no tokenizer/);
    } finally {
      cleanup();
    }
  });

  const bad: [string[], RegExp][] = [
    [['--model', fixture('llama3')], /^generate: give exactly one of --prompt and --prompt-ids$/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--prompt-ids', '1'], /exactly one of/],
    [['--model', fixture('llama3'), '--prompt-ids', '1,a'], /^--prompt-ids must be comma-separated token ids, got '1,a'$/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--temperature', 'hot'], /^--temperature must be a number, got 'hot'$/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--temperature', '-1'], /^--temperature must be a finite number >= 0, got -1$/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--top-p', '2'], /^--top-p must be a number in \(0, 1\]/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--max-tokens', '0'], /^--max-tokens must be an integer >= 1, got 0$/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--greedy', '--temperature', '1'], /--greedy and --temperature/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--backend', 'gpu'], /^--backend must be cpu or cuda, got 'gpu'$/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--threads', '-2'], /^--threads must be an integer >= 0/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--plan', 'nope'], /nope/],
    [['--model', '/nonexistent/model', '--prompt', 'x'], /nonexistent/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--presence-penalty', '-3'], /^--presence-penalty must be a number in \[-2, 2\], got -3$/],
    [['--model', fixture('llama3'), '--prompt', 'x', '--bogus'], /^generate: Unknown option '--bogus'.*--help\)$/],
  ];
  it.each(bad)('bad flags are one-line errors: %j', async (argv, msg) => {
    const err = await runGenerate(argv, capture()).then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(msg);
    expect(err?.message).not.toContain('\n');
  });

  it('runs as the installed bin', () => {
    const bin = 'dist/lib/cli/main.js';
    expect(existsSync('dist/lib/cli/generate.js'), 'dist is built by `npm install` (prepare) or `npm run build:ts`').toBe(true);
    const p = expectedOf('mixattn')[1];
    const out = execFileSync(process.execPath, [bin, 'generate', '--model', fixture('mixattn'), '--prompt-ids', p.ids.join(','), '--max-tokens', '32', '--greedy', '--json', '--threads', '2'], { encoding: 'utf8' });
    expect((JSON.parse(out) as { tokenIds: number[] }).tokenIds).toEqual(p.greedy);
  });
});
