import { describe, expect, it } from 'vitest';
import { chat } from './chat-helpers.js';
import { loadModel, type ChatMessage } from '../../lib/api/index.js';
import { withoutTokenizer, fixture } from '../api/helpers.js';


describe('mixattn chat', () => {
  it('streams replies and keeps the conversation through the chat template', async () => {
    const argv = ['--model', fixture('llama3'), '--greedy', '--max-tokens', '8', '--threads', '2', '--system', 'be brief'];
    const { out, err } = await chat(argv, ['hello', '', 'and again', '/exit', 'never read']);
    expect(err).toMatch(/^chatting with .*llama3 \(LlamaForCausalLM\)/);
    await using model = await loadModel(fixture('llama3'), { threads: 2 });
    const messages: ChatMessage[] = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello' }];
    const r1 = await model.complete(messages, { temperature: 0, maxTokens: 8 });
    messages.push({ role: 'assistant', content: r1.text }, { role: 'user', content: 'and again' });
    const r2 = await model.complete(messages, { temperature: 0, maxTokens: 8 });
    const suffix = (r: { finishReason: string }) => (r.finishReason === 'length' ? ' [max tokens]' : '');
    expect(out).toBe(`> ${r1.text}${suffix(r1)}\n> > ${r2.text}${suffix(r2)}\n> `);
  });

  it('/reset starts over; a model without a chat template is a one-line error', async () => {
    const argv = ['--model', fixture('llama3'), '--greedy', '--max-tokens', '4', '--threads', '2'];
    const { out } = await chat(argv, ['hi', '/reset', 'hi']);
    const replies = out.split('\n').slice(0, 2);
    expect(replies[1]).toBe(`> ${replies[0]}`);
    const { dir, cleanup } = withoutTokenizer('llama3');
    try {
      await expect(chat(['--model', dir], [])).rejects.toThrow(/has no chat template/);
      await expect(chat(['--model', dir, '--top-k', '-1'], [])).rejects.toThrow(/^--top-k must be an integer >= 0/);
    } finally {
      cleanup();
    }
  });
});
