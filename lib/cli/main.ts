#!/usr/bin/env node
/** The `mixattn` command line: generate, chat, serve, inspect, demo, bench, eval, calibrate. */
import { runInspect, INSPECT_USAGE } from './inspect.js';
import { runDemo, DEMO_USAGE } from './demo.js';
import { runGenerate, GENERATE_USAGE } from './generate.js';
import { runChat, CHAT_USAGE } from './chat.js';
import { runServe, SERVE_USAGE } from './serve.js';
import { runBench, BENCH_USAGE } from './bench.js';
import { runEval, EVAL_USAGE } from './eval.js';
import { runCalibrate, CALIBRATE_USAGE } from './calibrate.js';

const USAGE = `mixattn <command> [options]

Commands:
  generate  generate text from a Hugging Face model directory or the built-in model (streams; --json for scripts)
  chat      talk to a model through its chat template
  serve     an OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions, /metrics)
  demo      the built-in model writing English: tokens/s and the KV memory its plan held (--random: random weights, every plan)
  inspect   KV memory of layer plans: bytes per token, at a context, max concurrent sequences
  bench     end-to-end greedy decode speed of a random 1B-class model (tokens/s, weight-read floor)
  eval      quality and cost of models through the engine: perplexity, retrieval, KV bytes, speed
  calibrate make a low-rank K/V (Eigen Attention) model from a model directory and calibration text

${GENERATE_USAGE}

${CHAT_USAGE}

${SERVE_USAGE}

${DEMO_USAGE}

${INSPECT_USAGE}

${BENCH_USAGE}

${EVAL_USAGE}

${CALIBRATE_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'generate':
      await runGenerate(rest);
      return 0;
    case 'chat':
      await runChat(rest);
      return 0;
    case 'serve':
      await runServe(rest);
      return 0;
    case 'inspect':
      console.log(runInspect(rest));
      return 0;
    case 'demo':
      await runDemo(rest);
      return 0;
    case 'bench':
      await runBench(rest, (line) => console.log(line));
      return 0;
    case 'eval':
      await runEval(rest);
      return 0;
    case 'calibrate':
      await runCalibrate(rest);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`mixattn: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  // exit once stdout has taken everything written (a pipe may still hold streamed text)
  (code) => void process.stdout.write('', () => process.exit(code)),
  (err: unknown) => {
    console.error(`mixattn: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
