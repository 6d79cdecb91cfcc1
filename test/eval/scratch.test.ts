import { it } from 'vitest';
import { Tokenizer } from '../../lib/tokenizer/index.js';
it('x', async () => {
const t = await Tokenizer.fromDir('test/fixtures/hf/llama3');
const s = 'The pass code of Alice is 4821.\nQuestion: what is it?\nAnswer: The pass code of Alice is';
const ids = t.encode(s); console.log(ids.length, ids.slice(0,10), JSON.stringify(t.decode(ids)));
console.log(t.encode(' 4821', {addSpecialTokens:false}), t.vocabSize, t.bosTokenId);
for (const d of ['mixattn','mistral','qwen2','gemma2']) { const u = await Tokenizer.fromDir('test/fixtures/hf/'+d); console.log(d, u.encode('hello world').slice(0,5), u.vocabSize); }
});
