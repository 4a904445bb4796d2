/**
 * Splits a byte stream into lines (LF; a CR before it is dropped) without ever holding more than
 * `maxBytes` of one line: past that, the line is dropped as it arrives and `onTooLong` is called
 * once its end comes (or at once, with `head`, its first bytes, for an excerpt). A reader that
 * buffered a line without end unboundedly could be made to run out of memory by whoever writes.
 * With `stopped`, a reader can stop mid-chunk (it serves as many requests as it can at once, or
 * gave up on the writer): `push` then returns what it did not read.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private bytes = 0;
  private skipping = false;

  constructor(
    private readonly maxBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onTooLong: (head: string) => void,
    private readonly stopped: () => boolean = () => false,
  ) {}

  /**
   * Reads the lines of `chunk`, keeping a last partial line. Returns the rest of the chunk, from
   * the first line not read, when `stopped` said so (checked before each line and at the end);
   * undefined when all of it was read.
   */
  push(chunk: Buffer): Buffer | undefined {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      if (this.stopped()) return chunk.subarray(start);
      const part = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      const line = this.bytes === 0 ? part : Buffer.concat([...this.parts, part]);
      this.parts = [];
      this.bytes = 0;
      if (line.length > this.maxBytes) {
        this.onTooLong(line.subarray(0, 200).toString("utf8"));
        continue;
      }
      this.onLine(line.toString("utf8").replace(/\r$/, ""));
    }
    if (start >= chunk.length) return undefined;
    if (this.stopped()) return chunk.subarray(start);
    if (this.skipping) return undefined;
    const rest = chunk.subarray(start);
    this.parts.push(rest);
    this.bytes += rest.length;
    if (this.bytes > this.maxBytes) {
      const head = Buffer.concat(this.parts).subarray(0, 200).toString("utf8");
      this.parts = [];
      this.bytes = 0;
      this.skipping = true;
      this.onTooLong(head);
    }
    return undefined;
  }

  /** Bytes of an unfinished line held now (never more than maxBytes). */
  get held(): number {
    return this.bytes;
  }

  /** Drops a partial line (the writer changed). */
  reset(): void {
    this.parts = [];
    this.bytes = 0;
    this.skipping = false;
  }
}
