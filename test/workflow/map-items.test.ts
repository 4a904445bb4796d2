// Paged MAP items and paged task ends (services/workflow/map-items.ts, task-ends.ts): the pieces
// that keep a wide step's memory to a few pages whatever its width.
import type { JsonValue } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ItemReader, itemsPerPage, toItemPages } from "../../services/workflow/map-items.js";
import type { JobRecord } from "../../services/workflow/run-store.js";
import { collectWithin, taskEndPages } from "../../services/workflow/task-ends.js";
import type { TaskEnd } from "../../services/workflow/task-input.js";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe("MAP item pages", () => {
  it("cuts items into pages of itemsPerPage, numbered from the first page given", () => {
    const pages = toItemPages("m", range(2 * itemsPerPage + 3), 4);
    expect(pages.map((p) => [p.stepId, p.page, (JSON.parse(p.items) as number[]).length])).toEqual([
      ["m", 4, itemsPerPage],
      ["m", 5, itemsPerPage],
      ["m", 6, 3],
    ]);
    expect(JSON.parse(pages[1]!.items)[0]).toBe(itemsPerPage);
    expect(toItemPages("m", [])).toEqual([]);
  });

  it("reads items through a few cached pages, one store read per page at a time", async () => {
    const width = 5 * itemsPerPage;
    const stored = new Map(toItemPages("m", range(width)).map((p) => [p.page, p.items]));
    const loads: number[] = [];
    const reader = new ItemReader(
      "m",
      width,
      async (page) => {
        loads.push(page);
        return stored.get(page);
      },
      2,
    );
    // Concurrent reads of one page share one load.
    expect(await Promise.all([reader.get(0), reader.get(1), reader.get(999)])).toEqual([0, 1, 999]);
    expect(loads).toEqual([0]);
    expect(await reader.get(1000)).toBe(1000);
    expect(await reader.get(4999)).toBe(4999);
    // Only two pages are kept: page 0 was the least recently used, so it is read again.
    expect(await reader.get(5)).toBe(5);
    expect(loads).toEqual([0, 1, 4, 0]);
    await expect(reader.get(width)).rejects.toThrow(/has no item 5000 \(it has 5000\)/);
  });

  it("says which page is missing, and reads it again on the next call", async () => {
    let present = false;
    const reader = new ItemReader("m", 3, async () => (present ? '["a","b","c"]' : undefined));
    await expect(reader.get(1)).rejects.toThrow(/item page 0 of step m is missing/);
    present = true;
    expect(await reader.get(1)).toBe("b");
  });
});

describe("task ends in pages", () => {
  const job = (index: number, status: JobRecord["status"], result?: JsonValue): JobRecord => ({
    stepId: "m",
    index,
    status,
    attempt: 1,
    attemptTaskId: "",
    agentId: "",
    containerId: "",
    containerName: "",
    poolId: "",
    leaseId: "",
    attemptStatus: undefined,
    createMs: 0,
    startMs: undefined,
    endMs: undefined,
    exitCode: undefined,
    error: status === "failed" ? `boom ${index}` : "",
    nextAttemptMs: undefined,
    result,
  });

  it("yields every index in order, a task without a record as cancelled", async () => {
    const width = 2500;
    const reads: Array<[number, number]> = [];
    const jobs = range(width)
      .filter((i) => i % 7 !== 3)
      .map((i) => job(i, i % 11 === 0 ? "failed" : "succeeded", i % 11 === 0 ? undefined : i));
    const pages: TaskEnd[][] = [];
    for await (const page of taskEndPages(width, async (from, limit) => {
      reads.push([from, limit]);
      return jobs.filter((j) => j.index >= from && j.index < from + limit);
    }))
      pages.push(page);
    expect(reads).toEqual([
      [0, 1000],
      [1000, 1000],
      [2000, 500],
    ]);
    const ends = pages.flat();
    expect(ends.map((e) => e.index)).toEqual(range(width));
    expect(ends[3]).toEqual({ index: 3, succeeded: false, result: undefined, error: "cancelled" });
    expect(ends[11]).toEqual({ index: 11, succeeded: false, result: null, error: "boom 11" });
    expect(ends[12]).toEqual({ index: 12, succeeded: true, result: 12, error: "" });
  });

  it("collects ends while their JSON stays within the limit, and gives up past it", async () => {
    const ends: TaskEnd[] = range(10).map((i) => ({
      index: i,
      succeeded: i !== 4,
      result: i !== 4 ? "xxxxxxxx" : undefined,
      error: i === 4 ? "failed here" : "",
    }));
    async function* pages() {
      yield ends.slice(0, 5);
      yield ends.slice(5);
    }
    // The output array: 9 × "xxxxxxxx" (10 bytes) and one null, each with a comma, plus [ ].
    const output = JSON.stringify(ends.map((e) => (e.succeeded ? e.result : null)));
    expect(await collectWithin(pages(), output.length + 1)).toEqual(ends);
    expect(await collectWithin(pages(), output.length - 10)).toBeUndefined();
    // A REDUCE's input also carries the failures.
    const failures = JSON.stringify([{ index: 4, error: "failed here" }]);
    expect(await collectWithin(pages(), output.length + 1, true)).toBeUndefined();
    expect(await collectWithin(pages(), output.length + failures.length + 1, true)).toEqual(ends);
  });
});
