import type { JsonValue } from "@bufbuild/protobuf";
import { nestsDeeperThan } from "../../lib/json-value.js";
import { maxResultDepth, resultTooDeep } from "./outcome.js";

/**
 * The stream protocol (docs/agent-protocol.md, "Stream agents"), version 1: one JSON object per
 * line, the Executor writing to the agent's stdin and the agent to its stdout.
 */
export const protocolVersion = 1;

/** Longest line the Executor reads from an agent (a result plus framing). */
export const maxLineBytes = 8 * 1024 * 1024;

/** Executor → agent. */
export type ToAgent =
  | {
      type: "task";
      task_id: string;
      workflow_id: string;
      step_id: string;
      attempt: number;
      index: number;
      env: Record<string, string>;
      input: JsonValue;
    }
  | { type: "cancel"; task_id: string; reason: string }
  | { type: "ping"; id: string }
  | ({ type: "state_result"; request_id: string } & (
      { ok: true; result: Record<string, JsonValue> } | { ok: false; code: string; error: string }
    ));

/** Agent → Executor. */
export type FromAgent =
  | { type: "ready"; protocol: number }
  | { type: "result"; task_id: string; result: JsonValue }
  | { type: "error"; task_id: string; error: string }
  | { type: "log"; task_id: string; message: string }
  | { type: "heartbeat"; task_id: string }
  | { type: "state"; task_id: string; request_id: string; request: Record<string, JsonValue> }
  | { type: "pong"; id: string };

/** A line the agent should not have written; `reason` says why, for the task's error. */
export class ProtocolError extends Error {
  constructor(
    readonly reason: string,
    readonly line: string,
  ) {
    super(reason);
  }
}

export function encode(message: ToAgent): string {
  return JSON.stringify(message) + "\n";
}

const isObject = (v: unknown): v is Record<string, JsonValue> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Parses and checks one line from an agent; throws ProtocolError when it breaks the protocol. A
 * `result` nesting deeper than maxResultDepth is returned as the task's `error` (the agent
 * spoke the protocol; its result cannot be carried).
 */
export function decode(line: string): FromAgent {
  let m: unknown;
  try {
    m = JSON.parse(line);
  } catch {
    throw new ProtocolError(
      "a line on stdout is not JSON (stdout carries the protocol only; log to stderr)",
      line,
    );
  }
  if (!isObject(m)) throw new ProtocolError("a message is not a JSON object", line);
  const str = (name: string): string => {
    const v = m[name];
    if (typeof v !== "string" || v === "") {
      throw new ProtocolError(`a "${String(m.type)}" message needs a string "${name}"`, line);
    }
    return v;
  };
  switch (m.type) {
    case "ready": {
      const protocol = m.protocol ?? protocolVersion;
      if (protocol !== protocolVersion) {
        throw new ProtocolError(
          `the agent speaks protocol ${JSON.stringify(protocol)}; this Executor speaks ${protocolVersion}`,
          line,
        );
      }
      return { type: "ready", protocol };
    }
    case "result": {
      const result = m.result ?? null;
      if (nestsDeeperThan(result, maxResultDepth)) {
        return { type: "error", task_id: str("task_id"), error: resultTooDeep };
      }
      return { type: "result", task_id: str("task_id"), result };
    }
    case "error": {
      const error = m.error;
      if (typeof error !== "string") {
        throw new ProtocolError('an "error" message needs a string "error"', line);
      }
      return { type: "error", task_id: str("task_id"), error };
    }
    case "log": {
      const message = m.message;
      if (typeof message !== "string") {
        throw new ProtocolError('a "log" message needs a string "message"', line);
      }
      return { type: "log", task_id: str("task_id"), message };
    }
    case "heartbeat":
      return { type: "heartbeat", task_id: str("task_id") };
    case "state": {
      const { type: _type, task_id: _task, request_id: _req, ...request } = m;
      return { type: "state", task_id: str("task_id"), request_id: str("request_id"), request };
    }
    case "pong":
      return { type: "pong", id: str("id") };
    default:
      throw new ProtocolError(`unknown message type ${JSON.stringify(m.type)}`, line);
  }
}
