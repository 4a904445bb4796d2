import { describe, expect, it } from "vitest";
import { planDispatch, type StepDemand } from "../../services/workflow/slots.js";

const d = (
  stepId: string,
  waiting: number,
  running = 0,
  maxWorkers = 0,
  poolSize?: number,
): StepDemand => ({
  stepId,
  waiting,
  running,
  maxWorkers,
  ...(poolSize === undefined ? {} : { poolSize }),
});

describe("sharing max_parallel among running steps", () => {
  it("hands out slots round-robin, one at a time", () => {
    expect(planDispatch([d("a", 10), d("b", 10)], 5, -1).picks).toEqual(["a", "b", "a", "b", "a"]);
  });

  it("continues after the step served last, so none starves", () => {
    const first = planDispatch([d("a", 10), d("b", 10), d("c", 10)], 1, -1);
    expect(first).toEqual({ picks: ["a"], cursor: 0 });
    const second = planDispatch([d("a", 10, 1), d("b", 10), d("c", 10)], 2, first.cursor);
    expect(second.picks).toEqual(["b"]);
  });

  it("respects max_parallel, max_workers, pool size and what is waiting", () => {
    expect(planDispatch([d("a", 10, 3)], 4, -1).picks).toEqual(["a"]);
    expect(planDispatch([d("a", 10, 0, 2), d("b", 1)], 10, -1).picks).toEqual(["a", "b", "a"]);
    expect(planDispatch([d("a", 10, 4, 0, 5)], 10, -1).picks).toEqual(["a"]);
    expect(planDispatch([d("a", 0), d("b", 0)], 10, -1).picks).toEqual([]);
    expect(planDispatch([], 10, -1)).toEqual({ picks: [], cursor: -1 });
  });
});
