import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  FailureMode,
  WorkflowConfigSchema,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { settingsFromProto, withinTolerance } from "../../services/workflow/workflow-config.js";

const cfg = (init: Parameters<typeof create<typeof WorkflowConfigSchema>>[1]) =>
  settingsFromProto(create(WorkflowConfigSchema, init));

describe("workflow settings", () => {
  it("fills defaults", () => {
    expect(settingsFromProto(undefined)).toEqual({
      maxParallel: 10,
      timeoutMs: 0,
      failure: { mode: "fail_fast" },
      stateTtlMs: 0,
      stateLimits: { maxWorkflowBytes: 0, maxValueBytes: 0 },
      retentionMs: 0,
    });
  });

  it("rejects what the proto forbids, naming the field", () => {
    expect(() => cfg({ maxParallel: 10_001 })).toThrow(/config\.max_parallel is 10001/);
    expect(() => cfg({ timeout: create(DurationSchema, { seconds: 31n * 86400n }) })).toThrow(
      /config\.timeout/,
    );
    expect(() => cfg({ failure: { mode: FailureMode.FAIL_FAST, maxFailedTasks: 1 } })).toThrow(
      /CONTINUE_ON_PARTIAL only/,
    );
    expect(() =>
      cfg({ failure: { mode: FailureMode.CONTINUE_ON_PARTIAL, maxFailedPercent: 101 } }),
    ).toThrow(/max_failed_percent is 101/);
    expect(() => cfg({ failure: { mode: 7 as FailureMode } })).toThrow(/config\.failure\.mode/);
  });

  it("decides whether a fan-out step's failures are tolerated", () => {
    const fast = cfg({}).failure;
    expect(withinTolerance(fast, 0, 50)).toBe(true);
    expect(withinTolerance(fast, 1, 50)).toBe(false);
    const any = cfg({ failure: { mode: FailureMode.CONTINUE_ON_PARTIAL } }).failure;
    expect(withinTolerance(any, 49, 50)).toBe(true);
    expect(withinTolerance(any, 50, 50)).toBe(false); // every task failed
    const three = cfg({
      failure: { mode: FailureMode.CONTINUE_ON_PARTIAL, maxFailedTasks: 3 },
    }).failure;
    expect([3, 4].map((n) => withinTolerance(three, n, 50))).toEqual([true, false]);
    const pct = cfg({
      failure: { mode: FailureMode.CONTINUE_ON_PARTIAL, maxFailedPercent: 10 },
    }).failure;
    expect([5, 6].map((n) => withinTolerance(pct, n, 50))).toEqual([true, false]);
  });
});
