import { create } from "@bufbuild/protobuf";
import type { EventBus } from "../../lib/events/event-bus.js";
import { subjects } from "../../lib/events/subjects.js";
import { publishEvent, subscribeEvents } from "../../lib/events/typed.js";
import { canonicalJson, jsonToValue, valueToJson, type JsonValue } from "../../lib/json-value.js";
import type { Logger } from "../../lib/logger.js";
import { msToTimestamp, timestampToMs } from "../../lib/time.js";
import {
  KeyChangeSchema,
  StateChangedSchema,
  StateOperation as ProtoOperation,
  type StateChanged,
} from "../../gen/agentainer/state/v1/state_pb.js";
import type { StateChange, StateChangeFeed, StateOperation } from "./changes.js";

const operations: Record<StateOperation, ProtoOperation> = {
  snapshot: ProtoOperation.SNAPSHOT,
  create_workflow_state: ProtoOperation.CREATE_WORKFLOW_STATE,
  set: ProtoOperation.SET,
  delete: ProtoOperation.DELETE,
  put_all: ProtoOperation.PUT_ALL,
  delete_all: ProtoOperation.DELETE_ALL,
  increment: ProtoOperation.INCREMENT,
  append_to_list: ProtoOperation.APPEND_TO_LIST,
  add_to_set: ProtoOperation.ADD_TO_SET,
  compare_and_swap: ProtoOperation.COMPARE_AND_SWAP,
  expire_workflow_state: ProtoOperation.EXPIRE_WORKFLOW_STATE,
  delete_workflow_state: ProtoOperation.DELETE_WORKFLOW_STATE,
};
const fromProtoOperation = new Map<ProtoOperation, StateOperation>(
  Object.entries(operations).map(([k, v]) => [v, k as StateOperation]),
);

/** A domain change as the StateChanged message (used for events and for Watch responses). */
export function toStateChanged(change: StateChange, maxValueBytes = Infinity): StateChanged {
  return create(StateChangedSchema, {
    workflowId: change.workflowId,
    version: BigInt(change.version),
    operation: operations[change.operation],
    time: msToTimestamp(change.timeMs),
    changes: change.changes.map((c) => {
      const omit = c.omitted || (c.json !== undefined && Buffer.byteLength(c.json) > maxValueBytes);
      return create(KeyChangeSchema, {
        key: c.key,
        deleted: c.deleted,
        valueOmitted: omit,
        value:
          c.json === undefined || omit ? undefined : jsonToValue(JSON.parse(c.json) as JsonValue),
      });
    }),
  });
}

function fromStateChanged(m: StateChanged): StateChange {
  return {
    workflowId: m.workflowId,
    version: Number(m.version),
    operation: fromProtoOperation.get(m.operation) ?? "set",
    timeMs: m.time === undefined ? 0 : timestampToMs(m.time),
    changes: m.changes.map((c) => ({
      key: c.key,
      deleted: c.deleted,
      omitted: c.valueOmitted,
      json: c.value === undefined ? undefined : canonicalJson(valueToJson(c.value, "value")),
    })),
  };
}

/**
 * The StateChangeFeed over an EventBus: StateChanged protobuf on
 * `agentainer.state.workflow.changed.<workflow_id>`. Values larger than `maxValueBytes` travel
 * as `value_omitted` and watchers read them with Get.
 */
export function createStateChangeFeed(
  bus: EventBus,
  logger: Logger,
  maxValueBytes: number,
): StateChangeFeed {
  return {
    publish(change) {
      publishEvent(
        bus,
        subjects.state.workflowChanged(change.workflowId),
        StateChangedSchema,
        toStateChanged(change, maxValueBytes),
      );
    },
    subscribe(workflowId, handler) {
      return subscribeEvents(
        bus,
        subjects.state.workflowChanged(workflowId),
        StateChangedSchema,
        (m) => handler(fromStateChanged(m)),
        (err, subject) => logger.warn({ err, subject }, "undecodable state event dropped"),
      );
    },
  };
}
