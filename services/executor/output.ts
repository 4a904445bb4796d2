/** One chunk of a task's output, as read. */
export interface OutputChunk {
  stream: "stdout" | "stderr";
  data: Uint8Array;
  timeMs: number;
}

/** A retained chunk; `room` is the buffer it grows in when later writes are merged into it. */
interface KeptChunk extends OutputChunk {
  room?: Buffer;
}

/**
 * Writes of one stream read within this long of the first are retained as one chunk, up to
 * `mergedChunkBytes`: a process writing a byte at a time would otherwise cost a record per byte
 * (about a hundred times the byte in memory, and a StreamTaskLogs message each).
 */
export const mergeWindowMs = 100;
export const mergedChunkBytes = 16 * 1024;

/**
 * A task's captured output: the last `maxBytes` of each stream (kept in chunks, trimmed from the
 * front; small writes close in time merged), plus live delivery of each chunk as read to
 * followers (StreamTaskLogs with follow) until the task's output ends.
 */
export class TaskOutput {
  private readonly kept: KeptChunk[] = [];
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
    const last = this.kept.at(-1);
    if (last === undefined || !merge(last, chunk)) this.kept.push(chunk);
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

  /**
   * The retained chunks of both streams, in the order they were read, as they are now: a later
   * write merged into the last one is not in it (followers get that write as its own chunk).
   */
  retained(): readonly OutputChunk[] {
    return this.kept.map(({ stream, data, timeMs }) => ({ stream, data, timeMs }));
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
        // A new record without `room`: a later merge copies the rest into a buffer of its own.
        this.kept[i] = { stream, data: first.data.subarray(excess), timeMs: first.timeMs };
        this.bytes[stream] -= excess;
      }
    }
  }
}

/**
 * Appends `chunk` to `last` when they are of one stream, read within mergeWindowMs, and fit in
 * mergedChunkBytes together. The merged data grows in a buffer of its own (doubling, so a byte at
 * a time costs no more than twice its size, and no view into a larger read buffer is kept).
 */
function merge(last: KeptChunk, chunk: OutputChunk): boolean {
  const size = last.data.length + chunk.data.length;
  if (
    last.stream !== chunk.stream ||
    chunk.timeMs - last.timeMs > mergeWindowMs ||
    size > mergedChunkBytes
  ) {
    return false;
  }
  let room = last.room;
  if (room === undefined || size > room.length) {
    // Not from the shared pool: a pooled slice would keep the whole pool alive.
    room = Buffer.allocUnsafeSlow(Math.min(mergedChunkBytes, Math.max(256, size * 2)));
    room.set(last.data, 0);
    last.room = room;
  }
  room.set(chunk.data, last.data.length);
  last.data = room.subarray(0, size);
  return true;
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
