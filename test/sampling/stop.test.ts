import { describe, expect, it } from 'vitest';
import { StopMatcher } from '../../lib/sampling/index.js';

/** Feeds chunks; returns everything emitted and whether it stopped. */
function run(stops: string[], chunks: string[]): { out: string; stopped: boolean; emitted: string[] } {
  const m = new StopMatcher(stops);
  const emitted: string[] = [];
  for (const c of chunks) {
    const r = m.push(c);
    emitted.push(r.text);
    if (r.stopped) return { out: emitted.join(''), stopped: true, emitted };
  }
  emitted.push(m.flush());
  return { out: emitted.join(''), stopped: false, emitted };
}

describe('StopMatcher', () => {
  it('finds a stop string split across chunks and trims it', () => {
    const r = run(['###'], ['Hello #', '#', '# world']);
    expect(r).toMatchObject({ out: 'Hello ', stopped: true });
    // the partial '#' and '##' were held back, not emitted
    expect(r.emitted).toEqual(['Hello ', '', '']);
  });

  it('releases held text once it can no longer start a stop string', () => {
    const r = run(['###'], ['a #', '#b', 'c']);
    expect(r.emitted).toEqual(['a ', '##b', 'c', '']);
    expect(r.stopped).toBe(false);
  });

  it('handles overlapping prefixes: the earliest occurrence wins', () => {
    expect(run(['abc', 'bcd'], ['xab', 'cd']).out).toBe('x');
    expect(run(['bcd', 'abc'], ['xab', 'cd']).out).toBe('x');
    expect(run(['aab'], ['a', 'a', 'a', 'b', 'z']).out).toBe('a');
    expect(run(['abab'], ['ab', 'a', 'cab', 'ab']).out).toBe('abac');
    expect(run(['abab'], ['ab', 'a', 'bab']).out).toBe('');
  });

  it('multiple stops: whichever occurs first; the matched one is reported', () => {
    const m = new StopMatcher(['\n\n', 'END', 'User:']);
    expect(m.push('one two U').text).toBe('one two ');
    expect(m.push('ser').text).toBe('');
    const r = m.push(': hi END');
    expect(r).toEqual({ text: '', stopped: true, stop: 'User:' });
    expect(m.push('more')).toEqual({ text: '', stopped: true });
    expect(m.flush()).toBe('');
  });

  it('a stop string inside one chunk, and text after it, are dropped', () => {
    expect(run(['STOP'], ['abcSTOPdef']).out).toBe('abc');
    expect(run(['STOP'], ['STOP']).out).toBe('');
  });

  it('without stops, text passes straight through; flush returns held text', () => {
    expect(run([], ['a', 'b']).emitted).toEqual(['a', 'b', '']);
    const m = new StopMatcher(['<|end|>']);
    expect(m.push('text <|en').text).toBe('text ');
    expect(m.pending).toBe(4);
    expect(m.flush()).toBe('<|en');
  });

  it('works on multi-code-unit text (emoji)', () => {
    expect(run(['🙂🙂'], ['héllo 🙂', '🙃', '🙂', '🙂!']).out).toBe('héllo 🙂🙃');
  });
});
