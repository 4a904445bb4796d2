import type { Kind } from "./definition.js";
import type { StepStatus, WorkflowStatus } from "./lifecycle.js";
import { withinTolerance, type Failure } from "./workflow-config.js";

/** How a step's tasks ended, counted. */
export interface TaskTally {
  width: number;
  succeeded: number;
  failed: number;
  skipped: number;
  cancelled: number;
}

/**
 * How a step ends once none of its tasks runs any more (the FailureMode rules of
 * definition.proto): a single-task step whose task failed, a fan-out step where every task
 * failed or whose failures pass the tolerance, FAILED; a fan-out step with tolerated failures,
 * PARTIALLY_SUCCEEDED; otherwise SUCCEEDED. Cancelled tasks count as failed here (a step whose
 * run was cancelled is ended CANCELLED by the caller, not by this rule).
 */
export function stepEnd(kind: Kind, tally: TaskTally, failure: Failure): StepStatus {
  const failed = tally.failed + tally.cancelled;
  if (failed === 0) return "succeeded";
  if (kind === "task" || kind === "reduce") return "failed";
  const ran = tally.width - tally.skipped;
  if (failed >= ran) return "failed";
  return withinTolerance(failure, failed, tally.width) ? "partially_succeeded" : "failed";
}

/** Whether a fan-out step must stop now: its failures already pass the tolerance. */
export function stepMustStop(kind: Kind, tally: TaskTally, failure: Failure): boolean {
  const failed = tally.failed + tally.cancelled;
  if (failed === 0) return false;
  if (failure.mode === "fail_fast" || kind === "task" || kind === "reduce") return true;
  if (failed >= tally.width - tally.skipped) return true;
  return !withinTolerance(failure, failed, tally.width);
}

/**
 * How a run ends when no step can make progress: FAILED if any step FAILED (or the run timed
 * out: the caller says so), PARTIALLY_SUCCEEDED if any step is, else SUCCEEDED.
 */
export function workflowEnd(steps: readonly StepStatus[]): WorkflowStatus {
  if (steps.some((s) => s === "failed")) return "failed";
  if (steps.some((s) => s === "partially_succeeded")) return "partially_succeeded";
  return "succeeded";
}
