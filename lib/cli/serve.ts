/**
 * `mixattn serve`: an OpenAI-compatible HTTP server for one model directory (docs/server.md).
 * Runs until SIGINT/SIGTERM, then shuts down gracefully: no new requests, generations in
 * flight get --shutdown-grace seconds, the rest are aborted. A second signal exits at once.
 */
import { parseBytes } from '../kv/bytes.js';
import { startServer, DEFAULT_MAX_QUEUE, type MixattnServer } from '../server/index.js';
import { intOption, UsageError } from './args.js';
import { MODEL_FLAGS, MODEL_FLAGS_USAGE, loadOptionsFromFlags, openModel, parseFlags, processIo, type CliIo } from './generate.js';
import { DEFAULT_MODEL_NAME } from '../model/default-model.js';

export const SERVE_USAGE = `mixattn serve [--model DIR] [options]     (without --model: the built-in models/mixattn-tiny)
  --host H                 address to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)
  --port N                 port (default 8000; 0 picks a free one)
  --api-key KEY            require "Authorization: Bearer KEY" on /v1/* (or set MIXATTN_API_KEY)
  --served-model-name NAME the model name clients send (default: the --model argument, or mixattn-tiny)
  --max-queue N            most requests waiting for the engine; more get 429 (default ${DEFAULT_MAX_QUEUE})
  --max-model-len N        most prompt + completion tokens (default: config.json max_position_embeddings)
  --max-tokens-limit N     largest max_tokens accepted (default: --max-model-len)
  --max-body BYTES         largest request body, e.g. 4MiB (default 1MiB)
  --shutdown-grace S       seconds generations in flight get on SIGINT/SIGTERM (default 10)
${MODEL_FLAGS_USAGE}`;

const SERVE_FLAGS = {
  ...MODEL_FLAGS,
  host: { type: 'string' },
  port: { type: 'string' },
  'api-key': { type: 'string' },
  'served-model-name': { type: 'string' },
  'max-queue': { type: 'string' },
  'max-model-len': { type: 'string' },
  'max-tokens-limit': { type: 'string' },
  'max-body': { type: 'string' },
  'shutdown-grace': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface ServeIo extends CliIo {
  /** Called once the server listens (tests use it to reach and stop the server). */
  readonly onListening?: (server: MixattnServer) => void;
}

export async function runServe(argv: string[], io: ServeIo = processIo): Promise<void> {
  const { values: v } = parseFlags({ args: argv, options: SERVE_FLAGS, strict: true }, 'serve');
  if (v.help) return io.stdout(`${SERVE_USAGE}\n`);
  const opt = (name: string, min = 1) => (v[name as keyof typeof v] === undefined ? undefined : intOption(v[name as keyof typeof v] as string, name, 0, min));
  const port = opt('port', 0) ?? 8000;
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const apiKey = v['api-key'] ?? process.env.MIXATTN_API_KEY;
  if (apiKey !== undefined && apiKey.trim() === '') throw new UsageError('--api-key must not be empty');
  const grace = v['shutdown-grace'] === undefined ? 10 : Number(v['shutdown-grace']);
  if (!(grace >= 0 && Number.isFinite(grace))) throw new UsageError(`--shutdown-grace must be a number of seconds >= 0, got '${v['shutdown-grace']}'`);
  const serverOpts = {
    servedModelName: v['served-model-name'] ?? v.model ?? DEFAULT_MODEL_NAME,
    apiKey,
    maxQueue: opt('max-queue'),
    maxModelLen: opt('max-model-len', 2),
    maxTokensLimit: opt('max-tokens-limit'),
    maxBodyBytes: v['max-body'] !== undefined ? parseBytes(v['max-body']) : undefined,
    shutdownGraceMs: Math.round(grace * 1000),
    log: (line: string) => io.stderr(`${line}\n`),
  };
  loadOptionsFromFlags(v); // flag errors before the (slow) load

  const model = await openModel(v, 'serve');
  let server: MixattnServer;
  try {
    server = await startServer({ model, ...serverOpts }, { port, host: v.host ?? '127.0.0.1' });
  } catch (e) {
    model.dispose();
    throw e;
  }
  const o = server.options;
  io.stderr(`mixattn serve: ${server.url}/v1 serving '${o.servedModelName}' (plan ${model.plan.name}, max_model_len ${o.maxModelLen}${o.apiKey ? ', API key required' : ''})\n`);
  io.onListening?.(server);

  let signals = 0;
  const stop = () => {
    if (++signals > 1) process.exit(130); // a second Ctrl-C: do not wait for the grace period
    io.stderr('mixattn serve: shutting down (again to force)\n');
    void server.close();
  };
  io.signal?.addEventListener('abort', stop);
  if (!io.signal) {
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  }
  await new Promise<void>((resolve) => server.http.once('close', () => resolve()));
  await server.close(); // the model is disposed once close() has finished
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  io.signal?.removeEventListener('abort', stop);
}
