// A capped, appendable text log with marks, for the output of a child process.

const DEFAULT_CAP = 8 * 1024 * 1024; // characters kept (the newest)

export class Log {
  /**
   * @param {object} [options]
   * @param {number} [options.cap]    characters kept; older output is dropped (and said so)
   * @param {string} [options.echo]   if set, every line is also written to stderr with this prefix
   */
  constructor({ cap = DEFAULT_CAP, echo } = {}) {
    this.cap = cap;
    this.echo = echo;
    this.buf = '';
    this.dropped = 0; // characters dropped from the front
    this.partial = ''; // an unfinished line, for echo
  }

  append(chunk) {
    const s = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    this.buf += s;
    if (this.buf.length > this.cap) {
      const cut = this.buf.length - this.cap;
      this.buf = this.buf.slice(cut);
      this.dropped += cut;
    }
    if (this.echo !== undefined) {
      const lines = (this.partial + s).split('\n');
      this.partial = lines.pop();
      for (const line of lines) process.stderr.write(`${this.echo}${line}\n`);
    }
  }

  /** Everything kept, with a note if older output was dropped. */
  text() {
    return this.dropped > 0 ? `[... ${this.dropped} earlier characters dropped ...]\n${this.buf}` : this.buf;
  }

  toString() {
    return this.text();
  }

  /** A position to pass to since(). */
  mark() {
    return this.dropped + this.buf.length;
  }

  /** The output after `mark` (what is still kept of it). */
  since(mark) {
    return this.buf.slice(Math.max(0, mark - this.dropped));
  }
}
