/** One chunk of a task's output, as read. */
export interface OutputChunk {
  stream: "stdout" | "stderr";
  data: Uint8Array;
  timeMs: number;
}

/**
 * A task's captured output: the last `maxBytes` of each stream (kept in chunks, trimmed from the
 * front), plus live delivery of new chunks to followers (StreamTaskLogs with follow) until the
 * task's output ends.
 */
export class TaskOutput {
  private readonly kept: OutputChunk[] = [];
  private readonly bytes = { stdout: 0, stderr: 0 };
  private readonly truncated = { stdout: false, stderr: false };
  private readonly followers = new Set<(chunk: OutputChunk | undefined) => void>();
  private ended = false;

  constructor(
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  write(stream: "stdout" | "stderr", data: Uint8Array): void {
    if (this.ended || data.length === 0) return;
    const chunk: OutputChunk = { stream, data, timeMs: this.now() };
    for (const f of this.followers) f(chunk);
    this.kept.push(chunk);
    this.bytes[stream] += data.length;
    this.trim(stream);
  }

  /** No more output: followers are told and stop. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const f of this.followers) f(undefined);
    this.followers.clear();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Bytes retained, both streams together. */
  get size(): number {
    return this.bytes.stdout + this.bytes.stderr;
  }

  /** The retained tail of one stream, and whether older output was dropped. */
  tail(stream: "stdout" | "stderr"): { data: Buffer; truncated: boolean } {
    const parts = this.kept.filter((c) => c.stream === stream).map((c) => c.data);
    return { data: Buffer.concat(parts), truncated: this.truncated[stream] };
  }

  /** The retained chunks of both streams, in the order they were read. */
  retained(): readonly OutputChunk[] {
    return [...this.kept];
  }

  /**
   * Calls `onChunk` with each new chunk and with undefined once output ends (at once if it
   * already has). Returns the unsubscribe function.
   */
  follow(onChunk: (chunk: OutputChunk | undefined) => void): () => void {
    if (this.ended) {
      onChunk(undefined);
      return () => undefined;
    }
    this.followers.add(onChunk);
    return () => this.followers.delete(onChunk);
  }

  private trim(stream: "stdout" | "stderr"): void {
    while (this.bytes[stream] > this.maxBytes) {
      const i = this.kept.findIndex((c) => c.stream === stream);
      const first = this.kept[i];
      if (first === undefined) return;
      const excess = this.bytes[stream] - this.maxBytes;
      this.truncated[stream] = true;
      if (first.data.length <= excess) {
        this.kept.splice(i, 1);
        this.bytes[stream] -= first.data.length;
      } else {
        this.kept[i] = { ...first, data: first.data.subarray(excess) };
        this.bytes[stream] -= excess;
      }
    }
  }
}

/**
 * Copies a process's stdout and stderr into `output`; `ended` resolves once both have ended
 * (callers bound the wait with `atMost`: a process's children can hold its streams open).
 */
export function capture(
  output: TaskOutput,
  io: { stdout: NodeJS.ReadableStream; stderr: NodeJS.ReadableStream },
): { ended: Promise<void> } {
  const ends = (["stdout", "stderr"] as const).map(
    (name) =>
      new Promise<void>((resolve) => {
        const stream = io[name];
        stream.on("data", (data: Buffer | string) =>
          output.write(name, typeof data === "string" ? Buffer.from(data) : data),
        );
        stream.once("end", resolve);
        stream.once("close", resolve);
        stream.once("error", () => resolve());
      }),
  );
  return { ended: Promise.all(ends).then(() => undefined) };
}
