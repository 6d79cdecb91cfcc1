/**
 * Stop strings on streamed text, OpenAI semantics: output ends right before the first
 * occurrence of any stop string, which itself is not output. While streaming, text that
 * could still be the start of a stop string is held back until it is known not to be.
 */

export interface StopPush {
  /** Text now safe to emit. */
  readonly text: string;
  /** True once a stop string has been seen (all later pushes return ''). */
  readonly stopped: boolean;
  /** The stop string that matched. */
  readonly stop?: string;
}

export class StopMatcher {
  private held = '';
  private done = false;
  private readonly stops: readonly string[];

  constructor(stops: readonly string[]) {
    for (const s of stops) if (typeof s !== 'string' || s.length === 0) throw new RangeError('stop strings must be non-empty strings');
    this.stops = [...stops];
  }

  get stopped(): boolean {
    return this.done;
  }

  /** Length of the text held back right now. */
  get pending(): number {
    return this.held.length;
  }

  push(text: string): StopPush {
    if (this.done) return { text: '', stopped: true };
    const buf = this.held + text;
    if (this.stops.length === 0) return { text: buf, stopped: false };
    // Every occurrence lies in buf: anything earlier was emitted only once it could no
    // longer begin a stop string.
    let at = -1;
    let which = '';
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        which = s;
      }
    }
    if (at >= 0) {
      this.done = true;
      this.held = '';
      return { text: buf.slice(0, at), stopped: true, stop: which };
    }
    const keep = this.partialSuffix(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** End of the stream without a stop: the held-back text, which is ordinary output. */
  flush(): string {
    const t = this.done ? '' : this.held;
    this.held = '';
    return t;
  }

  /** Length of the longest suffix of buf that is a proper prefix of some stop string. */
  private partialSuffix(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let len = Math.min(s.length - 1, buf.length); len > best; len--) {
        if (buf.endsWith(s.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}
