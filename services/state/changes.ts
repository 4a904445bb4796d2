import type { Subscription } from "../../lib/events/event-bus.js";

/** Domain view of a state change; events.ts maps it to the StateChanged protobuf event. */
export type StateOperation =
  | "snapshot"
  | "create_workflow_state"
  | "set"
  | "delete"
  | "put_all"
  | "delete_all"
  | "increment"
  | "append_to_list"
  | "add_to_set"
  | "compare_and_swap"
  | "expire_workflow_state"
  | "delete_workflow_state";

export interface KeyChange {
  readonly key: string;
  /** Canonical JSON of the new value; undefined when deleted or omitted. */
  readonly json: string | undefined;
  readonly deleted: boolean;
  /** The value exists but was too large to carry in an event. */
  readonly omitted: boolean;
}

export interface StateChange {
  readonly workflowId: string;
  readonly version: number;
  readonly operation: StateOperation;
  readonly changes: readonly KeyChange[];
  readonly timeMs: number;
}

/** Where changes are announced and heard: the event bus, behind a domain-shaped port. */
export interface StateChangeFeed {
  publish(change: StateChange): void;
  subscribe(workflowId: string, handler: (change: StateChange) => void): Subscription;
}
