import { describe, expect, it } from "vitest";
import { FailedPreconditionError } from "../../lib/errors.js";
import {
  advance,
  isTerminalJob,
  isTerminalStep,
  isTerminalWorkflow,
} from "../../services/workflow/lifecycle.js";

describe("statuses and transitions", () => {
  it("allows exactly the workflow transitions the proto lists", () => {
    expect(advance.workflow("workflow w", "pending", "running")).toBe("running");
    expect(advance.workflow("workflow w", "pending", "cancelled")).toBe("cancelled");
    expect(advance.workflow("workflow w", "running", "cancelling")).toBe("cancelling");
    expect(advance.workflow("workflow w", "cancelling", "cancelled")).toBe("cancelled");
    expect(() => advance.workflow("workflow w", "running", "running")).toThrow(
      FailedPreconditionError,
    );
    expect(() => advance.workflow("workflow w", "running", "cancelled")).toThrow(
      /RUNNING and cannot become CANCELLED; from RUNNING it can become SUCCEEDED, PARTIALLY_SUCCEEDED, FAILED, CANCELLING/,
    );
    expect(() => advance.workflow("workflow w", "succeeded", "running")).toThrow(/it has ended/);
    expect(
      ["succeeded", "partially_succeeded", "failed", "cancelled"].every((s) =>
        isTerminalWorkflow(s as never),
      ),
    ).toBe(true);
    expect(isTerminalWorkflow("cancelling")).toBe(false);
  });

  it("lets steps go back and forth between RUNNING and RETRYING only", () => {
    expect(advance.step("step s", "running", "retrying")).toBe("retrying");
    expect(advance.step("step s", "retrying", "running")).toBe("running");
    expect(() => advance.step("step s", "pending", "retrying")).toThrow(FailedPreconditionError);
    expect(() => advance.step("step s", "skipped", "running")).toThrow(/it has ended/);
    expect(isTerminalStep("skipped")).toBe(true);
  });

  it("lets a job retry, but never come back from an end", () => {
    expect(advance.job("task map-3", "running", "retrying")).toBe("retrying");
    expect(advance.job("task map-3", "retrying", "running")).toBe("running");
    expect(() => advance.job("task map-3", "retrying", "succeeded")).toThrow(
      FailedPreconditionError,
    );
    expect(() => advance.job("task map-3", "failed", "running")).toThrow(/task map-3 is FAILED/);
    expect(isTerminalJob("cancelled")).toBe(true);
    expect(isTerminalJob("retrying")).toBe(false);
  });
});
