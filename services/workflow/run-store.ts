import type { JsonValue } from "@bufbuild/protobuf";
import type { AttemptStatus } from "./ports.js";
import type { JobCounts } from "./counts.js";
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
  /**
   * The result was not assembled: a sink's output is larger than the engine's output limit
   * (`result` is then undefined). Its per-task results are in the sink's jobs.
   */
  resultOmitted?: boolean;
}

export interface StepRecord {
  stepId: string;
  status: StepStatus;
  statusMessage: string;
  /** Tasks the step runs (1, parallelism, or the item count once known). */
  width: number;
  poolId: string;
  /** Its tasks by status (tasks not yet dispatched count as pending). */
  counts: JobCounts;
  startMs: number | undefined;
  endMs: number | undefined;
  /** Set once the step has ended. */
  output: JsonValue | undefined;
  /**
   * MAP / PARALLEL: the output was not assembled because it is larger than the engine's output
   * limit (`output` is then null); its entries are the step's job results, read in pages.
   */
  outputOmitted?: boolean;
}

/** One stored page of a MAP step's items, written when the step starts (see map-items.ts). */
export interface ItemPage {
  stepId: string;
  /** Page number from 0: it holds items [page * pageSize, (page + 1) * pageSize). */
  page: number;
  /** The page's items as the JSON text of an array. */
  items: string;
}

/** One task of a step (a "job") and its latest attempt. */
export interface JobRecord {
  stepId: string;
  index: number;
  status: JobStatus;
  attempt: number;
  /**
   * The Executor's id of the latest attempt (deterministic: see task-input.ts). Empty when that
   * attempt never became an Executor task because its item was skipped, or because its per-item
   * `when` could not be evaluated: such an item is still undecided, and its retry (after a resume
   * too) decides it again.
   */
  attemptTaskId: string;
  agentId: string;
  containerId: string;
  containerName: string;
  poolId: string;
  /** The pool lease the latest attempt runs under (pooled tasks), so a restarted service can end it. */
  leaseId: string;
  /** How the executor saw the latest attempt end; undefined while it runs. */
  attemptStatus: AttemptStatus | undefined;
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
    Pick<
      WorkflowRecord,
      "status" | "statusMessage" | "startMs" | "endMs" | "result" | "resultOmitted"
    >
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
  /** MAP item pages to store (each replaces a stored page of the same step and number). */
  itemPages?: ItemPage[];
}

/**
 * Where workflow runs are kept: Redis in the mesh, memory in the one-process mode; both pass
 * test/workflow/run-store-contract.ts. Only the holder of a run's claim (its fencing token) may
 * change it, so two Workflow instances never drive the same run: a claim not renewed within its
 * time to live can be taken over, and the old holder's later writes are refused.
 */
export interface RunStore {
  /** Stores a new run with its first events (numbered 1, 2, ...). ALREADY_EXISTS when the id is taken. */
  create(
    record: WorkflowRecord,
    events?: ReadonlyArray<{ timeMs: number; data: Uint8Array }>,
  ): Promise<void>;
  /** NOT_FOUND when unknown. */
  get(workflowId: string): Promise<WorkflowRecord>;
  list(): Promise<WorkflowRecord[]>;
  steps(workflowId: string): Promise<StepRecord[]>;
  /** Jobs of a step with an index in [fromIndex, fromIndex + limit), by index (absent ones left out). */
  jobs(workflowId: string, stepId: string, fromIndex: number, limit: number): Promise<JobRecord[]>;
  /** The JSON text of one stored page of a MAP step's items; undefined when absent. */
  itemPage(workflowId: string, stepId: string, page: number): Promise<string | undefined>;
  /** Events after `afterSequence`, at most `limit`, in order. */
  events(workflowId: string, afterSequence: number, limit: number): Promise<StoredEvent[]>;
  /** Sequence of the run's last stored event (0 before the first). NOT_FOUND when unknown. */
  lastSequence(workflowId: string): Promise<number>;
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
