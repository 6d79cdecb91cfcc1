import { PassThrough, Readable } from 'node:stream';
import { runChat } from '../../lib/cli/chat.js';

/** Runs `mixattn chat` with `lines` typed on stdin; what it wrote to stdout and stderr. */
export async function chat(argv: string[], lines: string[]): Promise<{ out: string; err: string }> {
  const output = new PassThrough();
  let out = '';
  output.on('data', (b: Buffer) => (out += b.toString()));
  let err = '';
  await runChat(argv, { input: Readable.from(lines.map((l) => `${l}\n`)), output, stderr: (t) => void (err += t) });
  return { out, err };
}
