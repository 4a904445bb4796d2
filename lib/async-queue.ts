/**
 * A bounded single-consumer queue bridging callbacks (event subscriptions) to `for await`.
 * When more than `capacity` items are waiting, the queue drops them all and reports an
 * overflow to the consumer, which must then resynchronise from the source of truth; memory
 * stays bounded however slow the consumer is.
 */
export type QueueItem<T> = { kind: "item"; item: T } | { kind: "overflow" };

export class AsyncQueue<T> {
  private items: T[] = [];
  private overflowed = false;
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(private readonly capacity: number) {}

  push(item: T): void {
    if (this.ended) return;
    if (this.items.length >= this.capacity) {
      this.items = [];
      this.overflowed = true;
    } else {
      this.items.push(item);
    }
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  /** Yields items (and overflow markers) until `end()` or until `signal` aborts. */
  async *drain(signal: AbortSignal): AsyncGenerator<QueueItem<T>> {
    const onAbort = () => this.end();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (!signal.aborted) {
        if (this.overflowed) {
          this.overflowed = false;
          yield { kind: "overflow" };
          continue;
        }
        const next = this.items.shift();
        if (next !== undefined) {
          yield { kind: "item", item: next };
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
