import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { InvalidArgumentError } from "../../lib/errors.js";
import { jsonToValue, valueToJson } from "../../lib/json-value.js";
import { msToDuration, msToTimestamp } from "../../lib/time.js";
import {
  AgentMode,
  AgentState,
  ExecutionMode,
  KeepContainer,
  NetworkMode,
  TaskSchema,
  TaskStatus,
  type ResourceLimits,
  type TaskRef as ProtoTaskRef,
  type Task,
  type TaskResultSchema,
} from "../../gen/agentainer/executor/v1/executor_pb.js";
import type { Value } from "@bufbuild/protobuf/wkt";
import type { Keep } from "./cold.js";
import type { Limits, Network } from "./runtime/runtime.js";
import type {
  AgentStateName,
  ExecutionMode as Mode,
  TaskRecord,
  TaskStatus as Status,
} from "./task.js";
import type { TaskRefInput } from "./validate.js";

/** Protobuf ⇄ domain mappings of the Executor, in one place. */

export const statusToProto: Record<Status, TaskStatus> = {
  pending: TaskStatus.PENDING,
  running: TaskStatus.RUNNING,
  succeeded: TaskStatus.SUCCEEDED,
  failed: TaskStatus.FAILED,
  timed_out: TaskStatus.TIMED_OUT,
  cancelled: TaskStatus.CANCELLED,
  oom_killed: TaskStatus.OOM_KILLED,
};

export function statusFromProto(s: TaskStatus, field: string): Status {
  const found = (Object.entries(statusToProto) as Array<[Status, TaskStatus]>).find(
    ([, v]) => v === s,
  );
  if (found === undefined) {
    throw new InvalidArgumentError(`${field} holds an unknown task status ${s}`, { field });
  }
  return found[0];
}

export const modeToProto: Record<Mode, ExecutionMode> = {
  cold: ExecutionMode.COLD,
  exec: ExecutionMode.EXEC,
  stream: ExecutionMode.STREAM,
};

export const agentStateToProto: Record<AgentStateName, AgentState> = {
  starting: AgentState.STARTING,
  ready: AgentState.READY,
  busy: AgentState.BUSY,
  unhealthy: AgentState.UNHEALTHY,
  exited: AgentState.EXITED,
  destroyed: AgentState.DESTROYED,
};

export const networkToProto: Record<Network, NetworkMode> = {
  none: NetworkMode.NONE,
  bridge: NetworkMode.BRIDGE,
  host: NetworkMode.HOST,
};

export const agentModeToProto: Record<"exec" | "stream", AgentMode> = {
  exec: AgentMode.EXEC,
  stream: AgentMode.STREAM,
};

export function networkFromProto(n: NetworkMode, field: string): Network {
  switch (n) {
    case NetworkMode.UNSPECIFIED:
    case NetworkMode.NONE:
      return "none";
    case NetworkMode.BRIDGE:
      return "bridge";
    case NetworkMode.HOST:
      return "host";
    default:
      throw new InvalidArgumentError(`${field} holds an unknown network mode ${String(n)}`, {
        field,
      });
  }
}

export const keepToProto: Record<Keep, KeepContainer> = {
  never: KeepContainer.NEVER,
  always: KeepContainer.ALWAYS,
  on_failure: KeepContainer.ON_FAILURE,
};

export function keepFromProto(k: KeepContainer, field: string): Keep {
  switch (k) {
    case KeepContainer.UNSPECIFIED:
    case KeepContainer.NEVER:
      return "never";
    case KeepContainer.ALWAYS:
      return "always";
    case KeepContainer.ON_FAILURE:
      return "on_failure";
    default:
      throw new InvalidArgumentError(`${field} holds an unknown keep value ${String(k)}`, {
        field,
      });
  }
}

/** Limits as given (zero fields stay zero: validate.ts fills the defaults). */
export function limitsFromProto(l: ResourceLimits | undefined, field: string): Partial<Limits> {
  const num = (v: bigint, name: string): number => {
    if (v < 0n) {
      throw new InvalidArgumentError(`${field}.${name} is negative (${v})`, {
        field: `${field}.${name}`,
      });
    }
    return Number(v);
  };
  return {
    cpuMillis: num(l?.cpuMillis ?? 0n, "cpu_millis"),
    memoryBytes: num(l?.memoryBytes ?? 0n, "memory_bytes"),
    pids: num(l?.pids ?? 0n, "pids"),
  };
}

export function refFromProto(ref: ProtoTaskRef | undefined): TaskRefInput | undefined {
  return ref === undefined
    ? undefined
    : {
        workflowId: ref.workflowId,
        stepId: ref.stepId,
        taskId: ref.taskId,
        attempt: ref.attempt,
        index: ref.index,
      };
}

/** A task's input Value as JSON; unset is null. */
export function inputFromProto(v: Value | undefined, field: string) {
  return v === undefined ? null : valueToJson(v, field);
}

/** A task's result message (stdout/stderr included unless `withOutput` is false). */
export function taskResult(
  t: TaskRecord,
  withOutput = true,
): MessageInitShape<typeof TaskResultSchema> | undefined {
  const o = t.outcome;
  if (o === undefined) return undefined;
  const stdout = withOutput ? t.output.tail("stdout") : undefined;
  const stderr = withOutput ? t.output.tail("stderr") : undefined;
  return {
    taskId: t.ref.taskId,
    status: statusToProto[o.status],
    exitCode: o.exitCode,
    stdout: stdout?.data,
    stdoutTruncated: stdout?.truncated ?? false,
    stderr: stderr?.data,
    stderrTruncated: stderr?.truncated ?? false,
    result: o.result === undefined ? undefined : jsonToValue(o.result),
    error: o.error,
    containerId: t.containerId,
    containerName: t.containerName,
    agentId: t.agentId,
    agentState:
      o.agentState === undefined ? AgentState.UNSPECIFIED : agentStateToProto[o.agentState],
    timings: {
      create: msToDuration(o.timings.createMs),
      start: msToDuration(o.timings.startMs),
      run: msToDuration(o.timings.runMs),
      total: msToDuration(o.timings.totalMs),
    },
  };
}

export function taskToProto(t: TaskRecord, withOutput = true): Task {
  return create(TaskSchema, {
    ref: {
      workflowId: t.ref.workflowId,
      stepId: t.ref.stepId,
      taskId: t.ref.taskId,
      attempt: t.ref.attempt,
      index: t.ref.index,
    },
    mode: modeToProto[t.mode],
    image: t.image,
    agentId: t.agentId,
    status: statusToProto[t.status],
    containerId: t.containerId,
    containerName: t.containerName,
    createTime: msToTimestamp(t.createMs),
    startTime: t.startMs === undefined ? undefined : msToTimestamp(t.startMs),
    endTime: t.endMs === undefined ? undefined : msToTimestamp(t.endMs),
    result: taskResult(t, withOutput),
    nodeId: t.nodeId,
  });
}
