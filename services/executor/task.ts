import type { JsonValue } from "@bufbuild/protobuf";
import type { TaskOutput } from "./output.js";

/** Where a task is in its life; the first two are live, the rest final. */
export type TaskStatus =
  "pending" | "running" | "succeeded" | "failed" | "timed_out" | "cancelled" | "oom_killed";

export const isFinal = (s: TaskStatus): boolean => s !== "pending" && s !== "running";

export type ExecutionMode = "cold" | "exec" | "stream";

export type AgentStateName = "starting" | "ready" | "busy" | "unhealthy" | "exited" | "destroyed";

/** Who a task is (validated: see validate.ts). */
export interface TaskRef {
  workflowId: string;
  stepId: string;
  taskId: string;
  attempt: number;
  index: number;
}

export interface TaskTimings {
  createMs: number;
  startMs: number;
  runMs: number;
  totalMs: number;
}

/** How a task ended. */
export interface TaskOutcome {
  status: TaskStatus;
  exitCode: number | undefined;
  /** The agent's JSON result; undefined when it wrote none or the task did not succeed. */
  result: JsonValue | undefined;
  /** Why it did not succeed, for the user; empty on success. */
  error: string;
  /** For warm tasks, the agent's state after the task. */
  agentState: AgentStateName | undefined;
  timings: TaskTimings;
}

/** A task as the Executor keeps it. */
export interface TaskRecord {
  readonly ref: TaskRef;
  readonly mode: ExecutionMode;
  readonly image: string;
  readonly agentId: string;
  readonly nodeId: string;
  /** Identifies the request that created it, so a repeated call can be told from a clash. */
  readonly fingerprint: string;
  readonly output: TaskOutput;
  status: TaskStatus;
  containerId: string;
  containerName: string;
  readonly createMs: number;
  startMs: number | undefined;
  endMs: number | undefined;
  outcome: TaskOutcome | undefined;
  /** Settles when the task has ended. */
  readonly done: Promise<TaskOutcome>;
  /** Stops the task; set by whoever runs it. Returns once the stop has been asked for. */
  cancel: ((reason: string, graceMs: number) => Promise<void>) | undefined;
  /** Why it was cancelled, when it was. */
  cancelReason: string | undefined;
}
