import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel, type ChatMessage } from '../../lib/api/index.js';
import { chat } from './chat-helpers.js';
import { runGenerate, type CliIo } from '../../lib/cli/generate.js';
import { defaultModelDir, requireDefaultModel } from '../../lib/model/default-model.js';
import { SHIPPED_MODEL_DIR, standInModel } from './default-model-helpers.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(REPO, 'dist/lib/cli/main.js');

function capture(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: (t) => void (out += t), stderr: (t) => void (err += t), out: () => out, err: () => err };
}


const missingMessage = (command: string, dir: string) =>
  `${command}: the built-in model is missing: no config.json in ${dir} (from MIXATTN_DEFAULT_MODEL); pass --model DIR (a Hugging Face model directory)`;

describe('where the built-in model is found', () => {
  it('under the package root (not the working directory), unless MIXATTN_DEFAULT_MODEL says otherwise', () => {
    expect(defaultModelDir({})).toBe(join(REPO, 'models', 'mixattn-tiny'));
    expect(defaultModelDir({ MIXATTN_DEFAULT_MODEL: '' })).toBe(join(REPO, 'models', 'mixattn-tiny'));
    expect(defaultModelDir({ MIXATTN_DEFAULT_MODEL: 'some/dir' })).toBe(resolve('some/dir'));
    const m = standInModel();
    try {
      expect(requireDefaultModel('generate', { MIXATTN_DEFAULT_MODEL: m.dir })).toBe(m.dir);
      expect(() => requireDefaultModel('generate', { MIXATTN_DEFAULT_MODEL: m.missing })).toThrow(missingMessage('generate', m.missing));
    } finally {
      m.cleanup();
    }
  });

  it('the installed bin finds it from another working directory, or says in one line that it is missing (exit 1)', () => {
    const env = { ...process.env };
    delete env.MIXATTN_DEFAULT_MODEL;
    const r = spawnSync(process.execPath, [BIN, 'generate', '--prompt-ids', '0', '--max-tokens', '1', '--greedy', '--json', '--threads', '2'], { cwd: tmpdir(), env, encoding: 'utf8' });
    // The trained model is a build artefact the lead adds; both states of a checkout are checked.
    if (existsSync(join(SHIPPED_MODEL_DIR, 'config.json'))) {
      expect(r.status, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as { usage: unknown }).usage).toEqual({ promptTokens: 1, completionTokens: 1 });
    } else {
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        `mixattn: generate: the built-in model is missing: no config.json in ${join(REPO, 'models', 'mixattn-tiny')}; pass --model DIR (a Hugging Face model directory)\n`,
      );
    }
  });
});

describe('generate and chat without --model', () => {
  let model: ReturnType<typeof standInModel>;
  beforeAll(() => void (model = standInModel()));
  afterAll(() => model.cleanup());
  beforeEach(() => void vi.stubEnv('MIXATTN_DEFAULT_MODEL', model.dir));
  afterEach(() => void vi.unstubAllEnvs());

  it('generate runs the built-in model (greedy and seeded sampling)', async () => {
    const run = async (...flags: string[]) => {
      const io = capture();
      await runGenerate(['--prompt', 'The river', '--max-tokens', '12', '--json', '--threads', '2', ...flags], io);
      return JSON.parse(io.out()) as { tokenIds: number[]; text: string };
    };
    await using m = await loadModel(model.dir, { threads: 2 });
    const greedy = await m.complete('The river', { temperature: 0, maxTokens: 12 });
    expect(await run('--greedy')).toMatchObject({ tokenIds: greedy.tokenIds, text: greedy.text });
    const sampled = await run('--temperature', '0.8', '--top-p', '0.95', '--seed', '4');
    expect((await run('--temperature', '0.8', '--top-p', '0.95', '--seed', '4')).tokenIds).toEqual(sampled.tokenIds);
    expect(sampled.tokenIds).toEqual((await m.complete('The river', { temperature: 0.8, topP: 0.95, seed: 4, maxTokens: 12 })).tokenIds);
  });

  it('chat talks through the model chat template and stops on <|end|> as well as <|endoftext|>', async () => {
    const { out, err } = await chat(['--greedy', '--max-tokens', '6', '--threads', '2'], ['hello', 'and again', '/exit']);
    expect(err).toBe(`chatting with ${model.dir} (LlamaForCausalLM); /exit or Ctrl-D to quit\n`);
    await using m = await loadModel(model.dir, { threads: 2 });
    expect([...m.eosTokenIds].sort()).toEqual([0, 3]); // generation_config.json's eos_token_id list
    const messages: ChatMessage[] = [{ role: 'user', content: 'hello' }];
    expect(m.encode(messages)).toEqual(m.tokenizer!.encode('<|user|>\nhello<|end|>\n<|assistant|>\n'));
    expect(m.encode(messages).slice(0, 1)).toEqual([1]);
    const r1 = await m.complete(messages, { temperature: 0, maxTokens: 6 });
    messages.push({ role: 'assistant', content: r1.text }, { role: 'user', content: 'and again' });
    const r2 = await m.complete(messages, { temperature: 0, maxTokens: 6 });
    const suffix = (r: { finishReason: string }) => (r.finishReason === 'length' ? ' [max tokens]' : '');
    expect(out).toBe(`> ${r1.text}${suffix(r1)}\n> ${r2.text}${suffix(r2)}\n> `);
  });

  it('without the built-in model, generate and chat say what is missing in one line', async () => {
    vi.stubEnv('MIXATTN_DEFAULT_MODEL', model.missing);
    const g = await runGenerate(['--prompt', 'x'], capture()).then(() => undefined, (e: Error) => e);
    expect(g?.message).toBe(missingMessage('generate', model.missing));
    await expect(chat([], ['hi'])).rejects.toThrow(missingMessage('chat', model.missing));
    // Flag errors still come first, before looking for a model.
    await expect(runGenerate(['--prompt', 'x', '--top-p', '2'], capture())).rejects.toThrow(/^--top-p must be a number in \(0, 1\]/);
  });

  it('the installed bin: demo without the model exits 1 with one line on stderr', () => {
    const r = spawnSync(process.execPath, [BIN, 'demo'], { env: { ...process.env, MIXATTN_DEFAULT_MODEL: model.missing }, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`mixattn: ${missingMessage('demo', model.missing)}\n`);
  });
});
