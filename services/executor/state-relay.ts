import type { JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { jsonToValue, responseValueToJson } from "../../lib/json-value.js";
import type { BatchingStateClient } from "../state/batching-client.js";

/**
 * Agents' state operations (docs/agent-protocol.md, "State operations"), relayed to the State
 * service on behalf of the task's own workflow. The request names no workflow, or names the
 * task's own; any other is refused with PERMISSION_DENIED. Agents never see Redis.
 */
export type StateReply =
  { ok: true; result: Record<string, JsonValue> } | { ok: false; code: string; error: string };

/** The part of the State client the relay uses (the batching client in production). */
export type StateOps = Pick<
  BatchingStateClient,
  | "get"
  | "set"
  | "delete"
  | "getAll"
  | "putAll"
  | "deleteAll"
  | "increment"
  | "appendToList"
  | "addToSet"
  | "compareAndSwap"
>;

class RequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const bad = (message: string) => new RequestError("INVALID_ARGUMENT", message);

function isObject(v: unknown): v is Record<string, JsonValue> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function stringField(req: Record<string, JsonValue>, name: string): string {
  const v = req[name];
  if (typeof v !== "string") throw bad(`"${name}" must be a string`);
  return v;
}

function valueField(req: Record<string, JsonValue>, name: string) {
  if (!(name in req)) throw bad(`"${name}" is required`);
  return jsonToValue(req[name] as JsonValue);
}

/** Canonical gRPC code names, as agents see them. */
function codeName(code: Code): string {
  return Code[code]
    .replace(/([a-z])([A-Z])/g, "$1_$2")
    .toUpperCase()
    .replace("CANCELED", "CANCELLED");
}

/** Serves one state request of an agent bound to `workflowId`. Never throws. */
export async function relayStateRequest(
  state: StateOps,
  workflowId: string,
  request: unknown,
): Promise<StateReply> {
  try {
    if (!isObject(request)) throw bad('a state request is a JSON object with an "op"');
    if ("workflow_id" in request && request.workflow_id !== workflowId) {
      throw new RequestError(
        "PERMISSION_DENIED",
        `this task may use the state of workflow "${workflowId}" only`,
      );
    }
    const op = request.op;
    const key = () => stringField(request, "key");
    switch (op) {
      case "get": {
        const r = await state.get({ workflowId, key: key() });
        return ok({
          value: r.value ? responseValueToJson(r.value, "value") : null,
          version: n(r.version),
        });
      }
      case "set": {
        const r = await state.set({ workflowId, key: key(), value: valueField(request, "value") });
        return ok({ version: n(r.version) });
      }
      case "delete": {
        const r = await state.delete({ workflowId, key: key() });
        return ok({ existed: r.existed, version: n(r.version) });
      }
      case "get_all": {
        const r = await state.getAll({ workflowId });
        return ok({ values: r.values ?? {}, version: n(r.version) });
      }
      case "put_all": {
        const values = request.values;
        if (!isObject(values)) throw bad('"values" must be a JSON object');
        const r = await state.putAll({ workflowId, values });
        return ok({ version: n(r.version) });
      }
      case "delete_all": {
        const r = await state.deleteAll({ workflowId });
        return ok({ deleted_count: n(r.deletedCount), version: n(r.version) });
      }
      case "increment": {
        const delta = request.delta ?? 1;
        if (typeof delta !== "number") throw bad('"delta" must be a number');
        const r = await state.increment({ workflowId, key: key(), delta });
        return ok({ value: r.value, version: n(r.version) });
      }
      case "append":
      case "append_to_list": {
        const values = request.values;
        if (!Array.isArray(values)) throw bad('"values" must be a JSON array');
        const r = await state.appendToList({
          workflowId,
          key: key(),
          values: values.map((v) => jsonToValue(v)),
        });
        return ok({ length: n(r.length), version: n(r.version) });
      }
      case "add_to_set": {
        const r = await state.addToSet({
          workflowId,
          key: key(),
          member: valueField(request, "member"),
        });
        return ok({ added: r.added, size: n(r.size), version: n(r.version) });
      }
      case "compare_and_swap": {
        const r = await state.compareAndSwap({
          workflowId,
          key: key(),
          expected: "expected" in request ? jsonToValue(request.expected as JsonValue) : undefined,
          newValue: valueField(request, "value"),
        });
        // "current" is left out when the key is absent (JSON null is a value).
        return ok({
          swapped: r.swapped,
          ...(r.current ? { current: responseValueToJson(r.current, "current") } : {}),
          version: n(r.version),
        });
      }
      default:
        throw bad(
          `unknown op ${JSON.stringify(op)}: use get, set, delete, get_all, put_all, delete_all, ` +
            "increment, append, add_to_set or compare_and_swap",
        );
    }
  } catch (err) {
    if (err instanceof RequestError) return { ok: false, code: err.code, error: err.message };
    const e = ConnectError.from(err);
    return { ok: false, code: codeName(e.code), error: e.rawMessage };
  }
}

const ok = (result: Record<string, JsonValue>): StateReply => ({ ok: true, result });
const n = (v: bigint): number => Number(v);
