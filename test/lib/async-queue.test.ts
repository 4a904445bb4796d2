import { describe, expect, it } from "vitest";
import { AsyncQueue, type QueueItem } from "../../lib/async-queue.js";

/** Reads the whole drain into an array (the queue must end or the signal abort). */
async function collect<T>(queue: AsyncQueue<T>, signal = new AbortController().signal) {
  const out: QueueItem<T>[] = [];
  for await (const entry of queue.drain(signal)) out.push(entry);
  return out;
}

const items = <T>(...values: T[]): QueueItem<T>[] => values.map((item) => ({ kind: "item", item }));

/** Lets pending promise callbacks and timers run. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("AsyncQueue", () => {
  it("yields pushed items in order, then stops at end", async () => {
    const queue = new AsyncQueue<number>(10);
    queue.push(1);
    queue.push(2);
    queue.push(3);
    queue.end();
    expect(await collect(queue)).toEqual(items(1, 2, 3));
  });

  it("wakes a waiting consumer for items pushed later", async () => {
    const queue = new AsyncQueue<string>(10);
    const seen: string[] = [];
    const done = (async () => {
      for await (const entry of queue.drain(new AbortController().signal)) {
        if (entry.kind === "item") seen.push(entry.item);
      }
    })();
    await tick();
    expect(seen).toEqual([]);
    queue.push("a");
    await tick();
    expect(seen).toEqual(["a"]);
    queue.push("b");
    queue.push("c");
    await tick();
    expect(seen).toEqual(["a", "b", "c"]);
    queue.end();
    await done;
  });

  it("delivers items pushed before end, and ignores items pushed after it", async () => {
    const queue = new AsyncQueue<number>(10);
    queue.push(1);
    queue.end();
    queue.push(2);
    expect(await collect(queue)).toEqual(items(1));
  });

  it("ends a waiting consumer when end is called", async () => {
    const queue = new AsyncQueue<number>(10);
    const result = collect(queue);
    await tick();
    queue.end();
    await expect(result).resolves.toEqual([]);
  });

  it("ends iteration when the signal aborts, even with items still queued", async () => {
    const queue = new AsyncQueue<number>(10);
    const controller = new AbortController();
    queue.push(1);
    queue.push(2);
    queue.push(3);
    const seen: number[] = [];
    for await (const entry of queue.drain(controller.signal)) {
      if (entry.kind === "item") seen.push(entry.item);
      controller.abort();
    }
    expect(seen).toEqual([1]);
  });

  it("ends a waiting consumer when the signal aborts", async () => {
    const queue = new AsyncQueue<number>(10);
    const controller = new AbortController();
    queue.push(1);
    const seen: number[] = [];
    const done = (async () => {
      for await (const entry of queue.drain(controller.signal)) {
        if (entry.kind === "item") seen.push(entry.item);
      }
    })();
    await tick();
    expect(seen).toEqual([1]);
    controller.abort();
    await done;
    queue.push(2);
    expect(seen).toEqual([1]);
  });

  it("yields nothing when the signal has already aborted", async () => {
    const queue = new AsyncQueue<number>(10);
    queue.push(1);
    expect(await collect(queue, AbortSignal.abort())).toEqual([]);
  });

  it("holds up to capacity items without overflowing", async () => {
    const queue = new AsyncQueue<number>(3);
    queue.push(1);
    queue.push(2);
    queue.push(3);
    queue.end();
    expect(await collect(queue)).toEqual(items(1, 2, 3));
  });

  it("past capacity, drops the backlog and yields one overflow, then later items", async () => {
    const queue = new AsyncQueue<number>(3);
    for (let i = 1; i <= 4; i++) queue.push(i);
    for (let i = 5; i <= 6; i++) queue.push(i);
    queue.end();
    expect(await collect(queue)).toEqual([{ kind: "overflow" }, ...items(5, 6)]);
  });

  it("reports repeated overflows before the consumer reads as a single overflow", async () => {
    const queue = new AsyncQueue<number>(2);
    for (let i = 1; i <= 10; i++) queue.push(i);
    queue.end();
    // 1,2 fill it; 3 overflows; 4,5 fill it; 6 overflows; 7,8; 9 overflows; 10 waits.
    expect(await collect(queue)).toEqual([{ kind: "overflow" }, ...items(10)]);
  });

  it("keeps memory bounded: never more than capacity items are waiting", async () => {
    const capacity = 5;
    const queue = new AsyncQueue<number>(capacity);
    for (let i = 0; i < 10_000; i++) queue.push(i);
    queue.end();
    const drained = await collect(queue);
    expect(drained.filter((e) => e.kind === "item").length).toBeLessThanOrEqual(capacity);
    expect(drained[0]).toEqual({ kind: "overflow" });
  });

  it("tells a consumer that is already waiting about an overflow", async () => {
    const queue = new AsyncQueue<number>(1);
    const controller = new AbortController();
    const seen: QueueItem<number>[] = [];
    const done = (async () => {
      for await (const entry of queue.drain(controller.signal)) seen.push(entry);
    })();
    await tick();
    queue.push(1);
    queue.push(2);
    queue.push(3);
    await tick();
    queue.end();
    await done;
    expect(seen).toEqual([{ kind: "overflow" }, ...items(3)]);
  });
});
