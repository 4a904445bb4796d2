import { describe, expect, it } from "vitest";
import {
  attemptTaskId,
  jobTaskId,
  stepOutput,
  taskInput,
  workflowResult,
} from "../../services/workflow/task-input.js";

describe("what tasks receive and what steps output", () => {
  it("builds each kind's input document", () => {
    const base = { input: { q: 1 }, parents: { split: [1, 2] } };
    expect(taskInput({ ...base, kind: "task", index: 0 })).toEqual({
      input: { q: 1 },
      parents: { split: [1, 2] },
      index: 0,
    });
    expect(taskInput({ ...base, kind: "map", index: 4, item: "doc" })).toMatchObject({
      index: 4,
      item: "doc",
    });
    const reduce = taskInput({
      ...base,
      kind: "reduce",
      index: 0,
      fanIn: [
        { index: 0, succeeded: true, result: { n: 2 }, error: "" },
        { index: 1, succeeded: false, result: undefined, error: "exited with code 3" },
        { index: 2, succeeded: true, result: undefined, error: "" },
      ],
    });
    expect(reduce).toMatchObject({
      results: [{ n: 2 }, null, null],
      failures: [{ index: 1, error: "exited with code 3" }],
    });
  });

  describe("a MAP task whose items come from a parent step (from_step)", () => {
    const parents = { split: { items: ["a", "b", "c"] }, config: { lang: "en" } };

    it("gets its own item and every other parent, but not the parent its items come from", () => {
      expect(
        taskInput({ input: null, parents, kind: "map", index: 2, item: "c", workFrom: "split" }),
      ).toEqual({ input: null, parents: { config: { lang: "en" } }, index: 2, item: "c" });
    });

    it("keeps that parent for a MAP with another item source and for other kinds", () => {
      expect(taskInput({ input: null, parents, kind: "map", index: 0, item: "x" })).toMatchObject({
        parents,
      });
      expect(
        taskInput({ input: null, parents, kind: "task", index: 0, workFrom: "split" }),
      ).toMatchObject({ parents });
    });

    it("a REDUCE task gets its fan-out parent's results once, in results, not in parents", () => {
      const doc = taskInput({
        input: null,
        parents: { map: ["r0", "r1"], config: { lang: "en" } },
        kind: "reduce",
        index: 0,
        workFrom: "map",
        fanIn: [
          { index: 0, succeeded: true, result: "r0", error: "" },
          { index: 1, succeeded: true, result: "r1", error: "" },
        ],
      });
      expect(doc).toEqual({
        input: null,
        parents: { config: { lang: "en" } },
        index: 0,
        results: ["r0", "r1"],
        failures: [],
      });
    });

    it("has an input of the same size whatever the number of items", () => {
      const sizeOfFirstTask = (n: number) => {
        const items = Array.from({ length: n }, (_, i) => `item ${i % 10}`);
        const doc = taskInput({
          input: null,
          parents: { split: items },
          kind: "map",
          index: 0,
          item: items[0] as string,
          workFrom: "split",
        });
        return JSON.stringify(doc).length;
      };
      expect(sizeOfFirstTask(100_000)).toBe(sizeOfFirstTask(10));
    });
  });

  it("assembles step outputs in index order, nulls for failures", () => {
    const ends = [
      { index: 1, succeeded: false, result: undefined, error: "x" },
      { index: 0, succeeded: true, result: "a", error: "" },
    ];
    expect(stepOutput("map", ends)).toEqual(["a", null]);
    expect(
      stepOutput("task", [{ index: 0, succeeded: true, result: { r: 1 }, error: "" }]),
    ).toEqual({ r: 1 });
    expect(
      stepOutput("reduce", [{ index: 0, succeeded: false, result: undefined, error: "x" }]),
    ).toBeNull();
    expect(workflowResult(["only"], new Map([["only", 5]]))).toBe(5);
    expect(workflowResult(["a", "b"], new Map([["a", 1]]))).toEqual({ a: 1, b: null });
  });

  it("gives each attempt a stable Executor task id within the Executor's limits", () => {
    expect(jobTaskId("map", 7)).toBe("map-7");
    expect(attemptTaskId("wf-1", "map", 7, 2)).toBe("wf-1.map.7.2");
    const long = attemptTaskId("w".repeat(128), "s".repeat(63), 99_999, 3);
    expect(long).toMatch(/^t-[0-9a-f]{40}\.99999\.3$/);
    expect(long).toBe(attemptTaskId("w".repeat(128), "s".repeat(63), 99_999, 3));
    expect(long).not.toBe(attemptTaskId("w".repeat(128), "s".repeat(62) + "t", 99_999, 3));
  });
});
