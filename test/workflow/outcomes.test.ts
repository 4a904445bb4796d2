import { describe, expect, it } from "vitest";
import { stepEnd, stepMustStop, workflowEnd } from "../../services/workflow/outcomes.js";

const tally = (width: number, failed: number, skipped = 0, cancelled = 0) => ({
  width,
  succeeded: width - failed - skipped - cancelled,
  failed,
  skipped,
  cancelled,
});
const fast = { mode: "fail_fast" } as const;
const partial = (maxFailedTasks?: number, maxFailedPercent?: number) => ({
  mode: "continue_on_partial" as const,
  ...(maxFailedTasks === undefined ? {} : { maxFailedTasks }),
  ...(maxFailedPercent === undefined ? {} : { maxFailedPercent }),
});

describe("how steps and runs end", () => {
  it("ends steps by the failure strategy's rules", () => {
    expect(stepEnd("map", tally(50, 0), fast)).toBe("succeeded");
    expect(stepEnd("map", tally(50, 1), fast)).toBe("failed");
    expect(stepEnd("map", tally(50, 3), partial())).toBe("partially_succeeded");
    expect(stepEnd("map", tally(50, 3), partial(2))).toBe("failed");
    expect(stepEnd("map", tally(50, 5), partial(undefined, 10))).toBe("partially_succeeded");
    expect(stepEnd("map", tally(50, 6), partial(undefined, 10))).toBe("failed");
    expect(stepEnd("map", tally(3, 2, 1), partial())).toBe("failed"); // every task that ran failed
    expect(stepEnd("task", tally(1, 1), partial())).toBe("failed");
    expect(stepEnd("parallel", tally(4, 0, 0, 1), partial())).toBe("partially_succeeded");
  });

  it("stops a fan-out step once its failures pass the tolerance", () => {
    expect(stepMustStop("map", tally(50, 1), fast)).toBe(true);
    expect(stepMustStop("map", tally(50, 2), partial(2))).toBe(false);
    expect(stepMustStop("map", tally(50, 3), partial(2))).toBe(true);
    expect(stepMustStop("map", tally(50, 0), partial(0))).toBe(false);
  });

  it("ends runs: any failed step fails it, any partial makes it partial", () => {
    expect(workflowEnd(["succeeded", "skipped"])).toBe("succeeded");
    expect(workflowEnd(["succeeded", "partially_succeeded"])).toBe("partially_succeeded");
    expect(workflowEnd(["partially_succeeded", "failed", "cancelled"])).toBe("failed");
    expect(workflowEnd([])).toBe("succeeded");
  });
});
