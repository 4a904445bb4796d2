import { FailedPreconditionError } from "../../lib/errors.js";

/**
 * The statuses of workflows, steps and tasks (jobs) and the only transitions allowed between
 * them, exactly as definition.proto lists them. Every status change goes through `advance`, so
 * an illegal one is a bug caught at once rather than a run in a state nobody designed.
 */
export type WorkflowStatus =
  | "pending"
  | "running"
  | "succeeded"
  | "partially_succeeded"
  | "failed"
  | "cancelling"
  | "cancelled";
export type StepStatus =
  | "pending"
  | "running"
  | "retrying"
  | "succeeded"
  | "partially_succeeded"
  | "failed"
  | "skipped"
  | "cancelled";
export type JobStatus =
  "pending" | "running" | "retrying" | "succeeded" | "failed" | "skipped" | "cancelled";

const workflowMoves: Record<WorkflowStatus, readonly WorkflowStatus[]> = {
  pending: ["running", "cancelled"],
  running: ["succeeded", "partially_succeeded", "failed", "cancelling"],
  cancelling: ["cancelled"],
  succeeded: [],
  partially_succeeded: [],
  failed: [],
  cancelled: [],
};

const stepMoves: Record<StepStatus, readonly StepStatus[]> = {
  pending: ["running", "skipped", "cancelled"],
  running: ["retrying", "succeeded", "partially_succeeded", "failed", "cancelled"],
  retrying: ["running", "succeeded", "partially_succeeded", "failed", "cancelled"],
  succeeded: [],
  partially_succeeded: [],
  failed: [],
  skipped: [],
  cancelled: [],
};

const jobMoves: Record<JobStatus, readonly JobStatus[]> = {
  pending: ["running", "skipped", "cancelled"],
  running: ["succeeded", "failed", "retrying", "cancelled"],
  retrying: ["running", "cancelled"],
  succeeded: [],
  failed: [],
  skipped: [],
  cancelled: [],
};

export const isTerminalWorkflow = (s: WorkflowStatus): boolean => workflowMoves[s].length === 0;
export const isTerminalStep = (s: StepStatus): boolean => stepMoves[s].length === 0;
export const isTerminalJob = (s: JobStatus): boolean => jobMoves[s].length === 0;

type Table<S extends string> = Record<S, readonly S[]>;

function check<S extends string>(table: Table<S>, what: string, from: S, to: S): S {
  if (!table[from].includes(to)) {
    throw new FailedPreconditionError(
      `${what} is ${from.toUpperCase()} and cannot become ${to.toUpperCase()}` +
        (table[from].length === 0
          ? " (it has ended)"
          : `; from ${from.toUpperCase()} it can become ${table[from].map((s) => s.toUpperCase()).join(", ")}`),
    );
  }
  return to;
}

/** The new status, if the move is allowed; FAILED_PRECONDITION naming both otherwise. */
export const advance = {
  workflow: (what: string, from: WorkflowStatus, to: WorkflowStatus) =>
    check(workflowMoves, what, from, to),
  step: (what: string, from: StepStatus, to: StepStatus) => check(stepMoves, what, from, to),
  job: (what: string, from: JobStatus, to: JobStatus) => check(jobMoves, what, from, to),
};
