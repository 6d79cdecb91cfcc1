/**
 * `mixattn chat`: an interactive conversation through the chat template of --model (else the
 * built-in model). Replies stream as they are generated; the conversation is kept (the
 * partial reply too, when Ctrl-C stops one). /exit or Ctrl-D quits; Ctrl-C while idle quits
 * as well.
 */
import { createInterface } from 'node:readline';
import type { ChatMessage } from '../api/index.js';
import { validateSamplingParams } from '../sampling/index.js';
import { UsageError } from './args.js';
import {
  MODEL_FLAGS,
  MODEL_FLAGS_USAGE,
  SAMPLING_FLAGS,
  SAMPLING_FLAGS_USAGE,
  asFlagError,
  loadOptionsFromFlags,
  openModel,
  parseFlags,
  samplingFromFlags,
} from './generate.js';

export const CHAT_USAGE = `mixattn chat [--model DIR] [options]
  --system TEXT            a system message that opens the conversation
${MODEL_FLAGS_USAGE}
${SAMPLING_FLAGS_USAGE}
  In the chat: /exit or Ctrl-D quits, /reset starts a new conversation, Ctrl-C stops the reply being written.`;

export interface ChatIo {
  readonly input: NodeJS.ReadableStream;
  readonly output: NodeJS.WritableStream;
  readonly stderr: (text: string) => void;
}

const processChatIo: ChatIo = { input: process.stdin, output: process.stdout, stderr: (t) => void process.stderr.write(t) };

export async function runChat(argv: string[], io: ChatIo = processChatIo): Promise<void> {
  const options = { ...MODEL_FLAGS, ...SAMPLING_FLAGS, system: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;
  const { values } = parseFlags({ args: argv, options, strict: true }, 'chat');
  if (values.help) {
    io.output.write(`${CHAT_USAGE}\n`);
    return;
  }
  const sampling = samplingFromFlags(values);
  try {
    validateSamplingParams(sampling);
  } catch (e) {
    throw asFlagError(e);
  }
  loadOptionsFromFlags(values);
  await using model = await openModel(values, 'chat');
  if (!model.tokenizer?.hasChatTemplate) {
    throw new UsageError(`chat: ${model.dir} has no chat template (tokenizer_config.json "chat_template"); use mixattn generate`);
  }
  const opening: ChatMessage[] = values.system !== undefined ? [{ role: 'system', content: values.system }] : [];
  let messages = [...opening];

  const terminal = (io.input as { isTTY?: boolean }).isTTY === true;
  const rl = createInterface({ input: io.input, output: io.output, terminal, prompt: '> ' });
  let current: AbortController | undefined;
  const onInterrupt = () => (current ? current.abort() : rl.close());
  rl.on('SIGINT', onInterrupt); // a terminal in raw mode: Ctrl-C arrives here
  if (!terminal) process.on('SIGINT', onInterrupt);
  io.stderr(`chatting with ${model.dir} (${model.architecture}); /exit or Ctrl-D to quit\n`);
  rl.prompt();
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text === '/exit' || text === '/quit') break;
      if (text === '/reset') messages = [...opening];
      if (text === '' || text === '/reset') {
        rl.prompt();
        continue;
      }
      messages.push({ role: 'user', content: text });
      current = new AbortController();
      let reply = '';
      try {
        for await (const c of model.generate(messages, { ...sampling, signal: current.signal })) {
          io.output.write(c.text);
          reply += c.text;
          if (c.finishReason === 'abort') io.output.write(' [stopped]');
          if (c.finishReason === 'length') io.output.write(' [max tokens]');
        }
        io.output.write('\n');
        messages.push({ role: 'assistant', content: reply });
      } catch (e) {
        // e.g. the conversation outgrew the KV pool: report it and let the user go on
        messages.pop();
        io.stderr(`mixattn: ${(e as Error).message}${messages.length > opening.length ? ' (/reset starts over)' : ''}\n`);
      } finally {
        current = undefined;
      }
      rl.prompt();
    }
  } finally {
    if (!terminal) process.off('SIGINT', onInterrupt);
    rl.close();
  }
}
