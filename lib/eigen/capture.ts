/**
 * Calibration data: deterministic token samples from a plain-text file, and each layer's
 * attention input (the normalised hidden state that feeds q/k/v) for every sample's tokens,
 * captured from a forward pass of the engine (Engine.stepCapture).
 */
import type { Engine } from '../engine/engine.js';
import type { Tokenizer } from '../tokenizer/index.js';

/** Characters tokenized per try: ~8 per token is plenty for natural text; doubled when short. */
const CHARS_PER_TOKEN = 8;

/**
 * `samples` sequences of `seqLen` tokens from `text`. Sample i starts at the first line start
 * at or after i/samples of the text (so the samples spread over the whole file, the same on
 * every run), moved earlier when too little text follows; each begins with the model's BOS
 * when its tokenizer adds one. Only the text around the samples is tokenized, so a big file
 * costs no more than a small one. Throws when the whole text has fewer tokens than a sample
 * needs.
 */
export function sampleTokens(text: string, tokenizer: Tokenizer, samples: number, seqLen: number, source: string): number[][] {
  const probe = tokenizer.encode('a');
  const prefix = tokenizer.bosTokenId !== undefined && probe[0] === tokenizer.bosTokenId && probe.length > 1 ? [tokenizer.bosTokenId] : [];
  const need = seqLen - prefix.length;
  if (need < 1) throw new RangeError(`seq-len ${seqLen} leaves no room for text after the BOS token`);
  const encodeFrom = (start: number): number[] => {
    for (let chars = need * CHARS_PER_TOKEN; ; chars *= 2) {
      const ids = tokenizer.encode(text.slice(start, start + chars), { addSpecialTokens: false });
      // A slice end can cut a word: keep a margin of tokens past what is used.
      if (ids.length >= need + 8 || start + chars >= text.length) return ids;
    }
  };
  const total = encodeFrom(0).length;
  if (total < need) {
    throw new RangeError(`${source} holds ${total} tokens; one calibration sample needs ${need} (seq-len ${seqLen}): give more text or a smaller --seq-len`);
  }
  const out: number[][] = [];
  for (let i = 0; i < samples; i++) {
    let start = lineStartAtOrAfter(text, Math.floor((i * text.length) / samples));
    let ids = encodeFrom(start);
    // Too little text after this start: step back, a line at a time, until a sample fits.
    while (ids.length < need && start > 0) {
      start = lineStartBefore(text, start - Math.max(1, (need - ids.length) * CHARS_PER_TOKEN));
      ids = encodeFrom(start);
    }
    out.push([...prefix, ...ids.slice(0, need)]);
  }
  return out;
}

function lineStartAtOrAfter(text: string, pos: number): number {
  if (pos <= 0) return 0;
  if (text[pos - 1] === '\n') return pos;
  const nl = text.indexOf('\n', pos);
  return nl < 0 ? pos : nl + 1;
}

function lineStartBefore(text: string, pos: number): number {
  if (pos <= 0) return 0;
  return text.lastIndexOf('\n', pos - 1) + 1;
}

/**
 * Runs every sample through the engine (one sequence per step) and returns, per layer, the
 * attention inputs of all samples' tokens: [samples·seqLen, hidden] fp32, samples back to back.
 */
export async function captureAttentionInputs(
  engine: Engine,
  samples: readonly (readonly number[])[],
  onSample?: (done: number) => void,
): Promise<Float32Array[]> {
  const L = engine.config.numLayers;
  const H = engine.config.hiddenSize;
  const T = samples[0].length;
  const perLayer = Array.from({ length: L }, () => new Float32Array(samples.length * T * H));
  for (const [s, tokens] of samples.entries()) {
    if (tokens.length !== T) throw new RangeError(`calibration sample ${s} has ${tokens.length} tokens, expected ${T}`);
    const seq = engine.addSequence();
    try {
      const { attentionInputs } = await engine.stepCapture([{ seq, tokens }]);
      for (let l = 0; l < L; l++) perLayer[l].set(attentionInputs.subarray(l * T * H, (l + 1) * T * H), s * T * H);
    } finally {
      engine.releaseSequence(seq);
    }
    onSample?.(s + 1);
  }
  return perLayer;
}
