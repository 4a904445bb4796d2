import type { JsonValue } from "@bufbuild/protobuf";
import type { JobStatus, StepStatus, WorkflowStatus } from "./lifecycle.js";

/** A workflow as stored: its definition request and where its run stands. */
export interface WorkflowRecord {
  workflowId: string;
  name: string;
  labels: Record<string, string>;
  /** The CreateWorkflowRequest as received (binary protobuf); re-validated when loaded. */
  request: Uint8Array;
  status: WorkflowStatus;
  statusMessage: string;
  createMs: number;
  startMs: number | undefined;
  endMs: number | undefined;
  result: JsonValue | undefined;
}

export interface StepRecord {
  stepId: string;
  status: StepStatus;
  statusMessage: string;
  /** Tasks the step runs (1, parallelism, or the item count once known). */
  width: number;
  poolId: string;
  startMs: number | undefined;
  endMs: number | undefined;
  /** Set once the step has ended. */
  output: JsonValue | undefined;
}

/** One task of a step (a "job") and its latest attempt. */
export interface JobRecord {
  stepId: string;
  index: number;
  status: JobStatus;
  attempt: number;
  /** The Executor's id of the latest attempt (deterministic: see task-input.ts). */
  attemptTaskId: string;
  agentId: string;
  containerId: string;
  containerName: string;
  poolId: string;
  createMs: number;
  startMs: number | undefined;
  endMs: number | undefined;
  exitCode: number | undefined;
  error: string;
  nextAttemptMs: number | undefined;
  result: JsonValue | undefined;
}

export interface StoredEvent {
  /** 1, 2, 3, ... per workflow, without gaps. */
  sequence: number;
  timeMs: number;
  /** The binary WorkflowEvent (its sequence field is filled in by the reader). */
  data: Uint8Array;
}

/** What one step of the engine changes, applied all at once or not at all. */
export interface RunChange {
  workflow?: Partial<
    Pick<WorkflowRecord, "status" | "statusMessage" | "startMs" | "endMs" | "result">
  >;
  /** Step records to write whole. */
  steps?: StepRecord[];
  /** Job records to write whole. */
  jobs?: JobRecord[];
  /**
   * Applied only if every listed job still has this attempt and status, so that a completion
   * delivered twice (after a crash, or by a retried call) is applied once.
   */
  expect?: Array<{ stepId: string; index: number; attempt: number; status: JobStatus }>;
  /** Events to append, numbered after the last one. */
  events?: Array<{ timeMs: number; data: Uint8Array }>;
}

/**
 * Where workflow runs are kept: Redis in the mesh, memory in the one-process mode; both pass
 * test/workflow/run-store-contract.ts. Only the holder of a run's claim (its fencing token) may
 * change it, so two Workflow instances never drive the same run: a claim not renewed within its
 * time to live can be taken over, and the old holder's later writes are refused.
 */
export interface RunStore {
  /** ALREADY_EXISTS when the id is taken. */
  create(record: WorkflowRecord): Promise<void>;
  /** NOT_FOUND when unknown. */
  get(workflowId: string): Promise<WorkflowRecord>;
  list(): Promise<WorkflowRecord[]>;
  steps(workflowId: string): Promise<StepRecord[]>;
  /** Jobs of a step by index, from `fromIndex`, at most `limit`. */
  jobs(workflowId: string, stepId: string, fromIndex: number, limit: number): Promise<JobRecord[]>;
  /** Events after `afterSequence`, at most `limit`, in order. */
  events(workflowId: string, afterSequence: number, limit: number): Promise<StoredEvent[]>;
  /**
   * Takes the run for `owner` until `nowMs + ttlMs`, or renews the owner's claim. Returns the
   * fencing token (it grows with every change of owner), or undefined when another owner's claim
   * is still live.
   */
  claim(
    workflowId: string,
    owner: string,
    ttlMs: number,
    nowMs: number,
  ): Promise<number | undefined>;
  /**
   * Applies a change under `token`. Returns applied = false (nothing changed) when an
   * expectation does not hold. Throws FailedPreconditionError when the token is not the
   * current one (the run was taken over).
   */
  apply(
    workflowId: string,
    token: number,
    change: RunChange,
  ): Promise<{ applied: boolean; lastSequence: number }>;
  /** Removes the run and everything of it; false when unknown. */
  delete(workflowId: string): Promise<boolean>;
}
