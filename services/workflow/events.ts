import { create, toBinary, type JsonValue } from "@bufbuild/protobuf";
import type { EventBus } from "../../lib/events/event-bus.js";
import { subjects } from "../../lib/events/subjects.js";
import { canonicalJson, jsonToValue } from "../../lib/json-value.js";
import { msToDuration, msToTimestamp } from "../../lib/time.js";
import {
  WorkflowEventSchema,
  type WorkflowEvent,
} from "../../gen/agentainer/workflow/v1/events_pb.js";
import { WorkflowStatus as ProtoWorkflowStatus } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import {
  attemptStatusToProto,
  countsToProto,
  jobStatusToProto,
  stepProgressToProto,
  stepStatusToProto,
  workflowStatusToProto,
} from "./convert.js";
import type { JobCounts } from "./counts.js";
import type { WorkflowStatus } from "./lifecycle.js";
import type { JobRecord, StepRecord } from "./run-store.js";

/** Builders of the WorkflowEvents a run stores and announces (see events.proto). */

type Payload = WorkflowEvent["payload"];

function event(workflowId: string, timeMs: number, payload: Payload): WorkflowEvent {
  return create(WorkflowEventSchema, { workflowId, time: msToTimestamp(timeMs), payload });
}

const maxEventResultBytes = 1024 * 1024;

export const workflowEvents = {
  statusChanged(
    workflowId: string,
    timeMs: number,
    status: WorkflowStatus,
    previous: WorkflowStatus | undefined,
    message: string,
    counts: JobCounts,
    result?: JsonValue,
  ): WorkflowEvent {
    const withResult =
      result !== undefined && Buffer.byteLength(canonicalJson(result)) <= maxEventResultBytes;
    return event(workflowId, timeMs, {
      case: "workflowStatusChanged",
      value: {
        $typeName: "agentainer.workflow.v1.WorkflowStatusChanged",
        status: workflowStatusToProto[status],
        previousStatus:
          previous === undefined
            ? ProtoWorkflowStatus.UNSPECIFIED
            : workflowStatusToProto[previous],
        statusMessage: message,
        counts: countsToProto(counts),
        ...(withResult ? { result: jsonToValue(result) } : {}),
      },
    });
  },
  stepFinished(workflowId: string, timeMs: number, s: StepRecord): WorkflowEvent {
    return event(workflowId, timeMs, {
      case: "stepFinished",
      value: {
        $typeName: "agentainer.workflow.v1.StepFinished",
        stepId: s.stepId,
        status: stepStatusToProto[s.status],
        counts: countsToProto(s.counts),
        statusMessage: s.statusMessage,
        duration: msToDuration(
          s.startMs === undefined || s.endMs === undefined ? 0 : s.endMs - s.startMs,
        ),
      },
    });
  },
  taskStarted(workflowId: string, timeMs: number, j: JobRecord): WorkflowEvent {
    return event(workflowId, timeMs, {
      case: "taskStarted",
      value: {
        $typeName: "agentainer.workflow.v1.TaskStarted",
        stepId: j.stepId,
        taskId: `${j.stepId}-${j.index}`,
        index: j.index,
        attempt: j.attempt,
        agentId: j.agentId,
        containerId: j.containerId,
        containerName: j.containerName,
        poolId: j.poolId,
        attemptTaskId: j.attemptTaskId,
      },
    });
  },
  taskFinished(
    workflowId: string,
    timeMs: number,
    j: JobRecord,
    durationMs: number,
  ): WorkflowEvent {
    return event(workflowId, timeMs, {
      case: "taskFinished",
      value: {
        $typeName: "agentainer.workflow.v1.TaskFinished",
        stepId: j.stepId,
        taskId: `${j.stepId}-${j.index}`,
        index: j.index,
        attempt: j.attempt,
        status: jobStatusToProto[j.status],
        attemptStatus: j.attemptStatus === undefined ? 0 : attemptStatusToProto[j.attemptStatus],
        ...(j.exitCode === undefined ? {} : { exitCode: j.exitCode }),
        error: j.error,
        duration: msToDuration(Math.max(0, durationMs)),
        ...(j.nextAttemptMs === undefined
          ? {}
          : { nextAttemptTime: msToTimestamp(j.nextAttemptMs) }),
        attemptTaskId: j.attemptTaskId,
      },
    });
  },
  progress(
    workflowId: string,
    timeMs: number,
    steps: readonly StepRecord[],
    counts: JobCounts,
  ): WorkflowEvent {
    return event(workflowId, timeMs, {
      case: "progress",
      value: {
        $typeName: "agentainer.workflow.v1.ProgressUpdated",
        steps: steps.map((s) => stepProgressToProto(s, false)),
        counts: countsToProto(counts),
      },
    });
  },
  deleted(workflowId: string, timeMs: number): WorkflowEvent {
    return event(workflowId, timeMs, {
      case: "workflowDeleted",
      value: { $typeName: "agentainer.workflow.v1.WorkflowDeleted" },
    });
  },
};

/** The NATS subject of an event (see events.proto). */
export function subjectOf(e: WorkflowEvent): string {
  const id = e.workflowId;
  const p = e.payload;
  switch (p.case) {
    case "workflowStatusChanged": {
      const s = p.value.status;
      const name =
        s === ProtoWorkflowStatus.PENDING
          ? "created"
          : s === ProtoWorkflowStatus.RUNNING
            ? "started"
            : s === ProtoWorkflowStatus.CANCELLING
              ? "cancelling"
              : "completed";
      return subjects.workflow.event("workflow", name, id);
    }
    case "stepStarting":
      return subjects.workflow.event("step", "starting", id);
    case "stepFinished":
      return subjects.workflow.event("step", "finished", id);
    case "progress":
      return subjects.workflow.event("step", "progress", id);
    case "taskStarted":
      return subjects.workflow.event("task", "started", id);
    case "taskFinished":
      return subjects.workflow.event("task", "finished", id);
    case "workflowDeleted":
      return subjects.workflow.event("workflow", "deleted", id);
    default:
      return subjects.workflow.event("workflow", "other", id);
  }
}

export function encodeEvent(e: WorkflowEvent): Uint8Array {
  return toBinary(WorkflowEventSchema, e);
}

/** Announces stored events on the bus (after they are stored: see events.proto). */
export function publishWorkflowEvent(bus: EventBus, e: WorkflowEvent): void {
  bus.publish(subjectOf(e), toBinary(WorkflowEventSchema, e));
}
