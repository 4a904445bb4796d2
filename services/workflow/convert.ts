import { create, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { InvalidArgumentError } from "../../lib/errors.js";
import { canonicalJson, jsonToValue } from "../../lib/json-value.js";
import { msToTimestamp } from "../../lib/time.js";
import { TaskStatus } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  JobStatus as ProtoJobStatus,
  StepProgressSchema,
  StepStatus as ProtoStepStatus,
  TaskCountsSchema,
  WorkflowStatus as ProtoWorkflowStatus,
  type StepProgress,
  type TaskCounts,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";
import {
  JobSchema,
  WorkflowSchema,
  type CreateWorkflowRequest,
  type Job,
  type Workflow,
} from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { sumCounts, totalOf, type JobCounts } from "./counts.js";
import type { JobStatus, StepStatus, WorkflowStatus } from "./lifecycle.js";
import type { AttemptStatus } from "./ports.js";
import type { JobRecord, StepRecord, WorkflowRecord } from "./run-store.js";

/** Protobuf ⇄ domain mappings of the Workflow service, in one place. */

export const workflowStatusToProto: Record<WorkflowStatus, ProtoWorkflowStatus> = {
  pending: ProtoWorkflowStatus.PENDING,
  running: ProtoWorkflowStatus.RUNNING,
  succeeded: ProtoWorkflowStatus.SUCCEEDED,
  partially_succeeded: ProtoWorkflowStatus.PARTIALLY_SUCCEEDED,
  failed: ProtoWorkflowStatus.FAILED,
  cancelling: ProtoWorkflowStatus.CANCELLING,
  cancelled: ProtoWorkflowStatus.CANCELLED,
};

export const stepStatusToProto: Record<StepStatus, ProtoStepStatus> = {
  pending: ProtoStepStatus.PENDING,
  running: ProtoStepStatus.RUNNING,
  retrying: ProtoStepStatus.RETRYING,
  succeeded: ProtoStepStatus.SUCCEEDED,
  partially_succeeded: ProtoStepStatus.PARTIALLY_SUCCEEDED,
  failed: ProtoStepStatus.FAILED,
  skipped: ProtoStepStatus.SKIPPED,
  cancelled: ProtoStepStatus.CANCELLED,
};

export const jobStatusToProto: Record<JobStatus, ProtoJobStatus> = {
  pending: ProtoJobStatus.PENDING,
  running: ProtoJobStatus.RUNNING,
  retrying: ProtoJobStatus.RETRYING,
  succeeded: ProtoJobStatus.SUCCEEDED,
  failed: ProtoJobStatus.FAILED,
  skipped: ProtoJobStatus.SKIPPED,
  cancelled: ProtoJobStatus.CANCELLED,
};

export const attemptStatusToProto: Record<AttemptStatus, TaskStatus> = {
  succeeded: TaskStatus.SUCCEEDED,
  failed: TaskStatus.FAILED,
  timed_out: TaskStatus.TIMED_OUT,
  cancelled: TaskStatus.CANCELLED,
  oom_killed: TaskStatus.OOM_KILLED,
};

function fromProto<D extends string, P extends number>(
  table: Record<D, P>,
  value: P,
  field: string,
  what: string,
): D {
  const found = (Object.entries(table) as Array<[D, P]>).find(([, v]) => v === value);
  if (found === undefined) {
    throw new InvalidArgumentError(`${field} holds an unknown ${what} ${String(value)}`, {
      field,
    });
  }
  return found[0];
}

export const workflowStatusFromProto = (s: ProtoWorkflowStatus, field: string) =>
  fromProto(workflowStatusToProto, s, field, "workflow status");
export const jobStatusFromProto = (s: ProtoJobStatus, field: string) =>
  fromProto(jobStatusToProto, s, field, "job status");

export function countsToProto(c: JobCounts): TaskCounts {
  return create(TaskCountsSchema, {
    total: BigInt(totalOf(c)),
    pending: BigInt(c.pending),
    running: BigInt(c.running),
    retrying: BigInt(c.retrying),
    succeeded: BigInt(c.succeeded),
    failed: BigInt(c.failed),
    skipped: BigInt(c.skipped),
    cancelled: BigInt(c.cancelled),
  });
}

/** Largest step output sent inline (StepProgress.output_omitted beyond). */
export const maxInlineOutputBytes = 1024 * 1024;

export function stepProgressToProto(s: StepRecord, withOutput: boolean): StepProgress {
  const progress: MessageInitShape<typeof StepProgressSchema> = {
    stepId: s.stepId,
    status: stepStatusToProto[s.status],
    counts: countsToProto(s.counts),
    poolId: s.poolId,
    statusMessage: s.statusMessage,
    ...(s.startMs === undefined ? {} : { startTime: msToTimestamp(s.startMs) }),
    ...(s.endMs === undefined ? {} : { endTime: msToTimestamp(s.endMs) }),
  };
  if (s.outputOmitted === true) {
    // Never assembled (see definition.proto, "What a step outputs"): said whether asked or not.
    progress.outputOmitted = true;
  } else if (withOutput && s.output !== undefined) {
    if (Buffer.byteLength(canonicalJson(s.output)) > maxInlineOutputBytes) {
      progress.outputOmitted = true;
    } else {
      progress.output = jsonToValue(s.output);
    }
  }
  return create(StepProgressSchema, progress);
}

export interface WorkflowView {
  record: WorkflowRecord;
  /** The stored request (its definition as given). */
  request: CreateWorkflowRequest;
  /** Step records in definition order (pending ones included). */
  steps: StepRecord[];
  lastSequence: number;
  /** For the expiry times. */
  stateTtlMs: number;
  retentionMs: number;
}

/** A workflow as the API shows it; `summary` leaves out what ListWorkflows does not return. */
export function workflowToProto(
  v: WorkflowView,
  opts: { summary: boolean; withOutputs: boolean },
): Workflow {
  const r = v.record;
  const total = sumCounts(v.steps.map((s) => s.counts));
  return create(WorkflowSchema, {
    id: r.workflowId,
    name: r.name,
    description: v.request.description,
    labels: { ...r.labels },
    ...(v.request.config === undefined ? {} : { config: v.request.config }),
    steps: opts.summary ? [] : v.request.steps,
    ...(opts.summary || v.request.input === undefined ? {} : { input: v.request.input }),
    status: workflowStatusToProto[r.status],
    statusMessage: r.statusMessage,
    stepProgress: opts.summary ? [] : v.steps.map((s) => stepProgressToProto(s, opts.withOutputs)),
    counts: countsToProto(total),
    ...(!opts.summary && r.result !== undefined ? { result: jsonToValue(r.result) } : {}),
    resultOmitted: r.resultOmitted === true,
    createTime: msToTimestamp(r.createMs),
    ...(r.startMs === undefined ? {} : { startTime: msToTimestamp(r.startMs) }),
    ...(r.endMs === undefined ? {} : { endTime: msToTimestamp(r.endMs) }),
    ...(r.endMs !== undefined && v.stateTtlMs > 0
      ? { stateExpireTime: msToTimestamp(r.endMs + v.stateTtlMs) }
      : {}),
    ...(r.endMs !== undefined && v.retentionMs > 0
      ? { expireTime: msToTimestamp(r.endMs + v.retentionMs) }
      : {}),
    lastSequence: BigInt(v.lastSequence),
  });
}

export function jobToProto(
  workflowId: string,
  j: JobRecord,
  maxAttempts: number,
  withResult: boolean,
): Job {
  return create(JobSchema, {
    workflowId,
    stepId: j.stepId,
    taskId: `${j.stepId}-${j.index}`,
    index: j.index,
    status: jobStatusToProto[j.status],
    ...(j.attemptStatus === undefined
      ? {}
      : { attemptStatus: attemptStatusToProto[j.attemptStatus] }),
    attempt: j.attempt,
    maxAttempts,
    agentId: j.agentId,
    containerId: j.containerId,
    containerName: j.containerName,
    poolId: j.poolId,
    createTime: msToTimestamp(j.createMs),
    ...(j.startMs === undefined ? {} : { startTime: msToTimestamp(j.startMs) }),
    ...(j.endMs === undefined ? {} : { endTime: msToTimestamp(j.endMs) }),
    ...(j.exitCode === undefined ? {} : { exitCode: j.exitCode }),
    error: j.error,
    ...(j.nextAttemptMs === undefined ? {} : { nextAttemptTime: msToTimestamp(j.nextAttemptMs) }),
    ...(withResult && j.status === "succeeded" && j.result !== undefined
      ? { result: jsonToValue(j.result as JsonValue) }
      : {}),
    attemptTaskId: j.attemptTaskId,
  });
}
