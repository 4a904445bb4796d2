import { create } from "@bufbuild/protobuf";
import type { EventBus } from "../../lib/events/event-bus.js";
import { subjects } from "../../lib/events/subjects.js";
import { publishEvent } from "../../lib/events/typed.js";
import { msToTimestamp } from "../../lib/time.js";
import {
  AgentEventSchema,
  AgentEventType,
  TaskEventSchema,
  TaskEventType,
} from "../../gen/agentainer/executor/v1/events_pb.js";
import type { AgentEventName, AgentListener } from "./agent-manager.js";
import { agentModeToProto, agentStateToProto, modeToProto } from "./convert.js";
import type { TaskEventType as EventName, TaskListener } from "./task-registry.js";

const taskTypes: Record<EventName, TaskEventType> = {
  created: TaskEventType.CREATED,
  started: TaskEventType.STARTED,
  succeeded: TaskEventType.SUCCEEDED,
  failed: TaskEventType.FAILED,
  timed_out: TaskEventType.TIMED_OUT,
  cancelled: TaskEventType.CANCELLED,
  oom_killed: TaskEventType.OOM_KILLED,
};

/** Publishes task changes as TaskEvent on `agentainer.executor.task.<event>.<workflow_id>`. */
export function taskEventPublisher(bus: EventBus, now: () => number): TaskListener {
  return {
    taskChanged(task, type) {
      publishEvent(
        bus,
        subjects.executor.task(type, task.ref.workflowId),
        TaskEventSchema,
        create(TaskEventSchema, {
          type: taskTypes[type],
          ref: { ...task.ref },
          mode: modeToProto[task.mode],
          agentId: task.agentId,
          containerId: task.containerId,
          exitCode: task.outcome?.exitCode,
          error: task.outcome?.error ?? "",
          time: msToTimestamp(now()),
          nodeId: task.nodeId,
        }),
      );
    },
  };
}

const agentTypes: Record<AgentEventName, AgentEventType> = {
  created: AgentEventType.CREATED,
  ready: AgentEventType.READY,
  unhealthy: AgentEventType.UNHEALTHY,
  exited: AgentEventType.EXITED,
  destroyed: AgentEventType.DESTROYED,
};

/** Publishes agent changes as AgentEvent on `agentainer.executor.agent.<event>`. */
export function agentEventPublisher(bus: EventBus, now: () => number): AgentListener {
  return {
    agentChanged(agent, event, reason) {
      publishEvent(
        bus,
        subjects.executor.agent(event),
        AgentEventSchema,
        create(AgentEventSchema, {
          type: agentTypes[event],
          agentId: agent.agentId,
          poolId: agent.poolId,
          containerId: agent.container?.id ?? "",
          mode: agentModeToProto[agent.spec.mode],
          state: agentStateToProto[agent.state],
          exitCode: event === "exited" ? agent.exitCode : undefined,
          reason,
          time: msToTimestamp(now()),
          nodeId: agent.nodeId,
        }),
      );
    },
  };
}
