import type { JsonValue } from "@bufbuild/protobuf";
import { Command } from "commander";
import { IncrementResponseSchema } from "../gen/agentainer/state/v1/state_pb.js";
import { PutWorkflowStateResponseSchema } from "../gen/agentainer/workflow/v1/workflow_pb.js";
import { action, out } from "./action.js";
import { parseNumber } from "./args.js";
import { CliError, exit } from "./client.js";
import { json } from "./output.js";

function parseJsonArg(text: string, what: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    // A bare word is a string: `state set wf key hello`.
    if (/^[^{["\d-]/.test(text) && !["true", "false", "null"].includes(text)) return text;
    throw new CliError(`${what} is not JSON: ${text}`, exit.badInput);
  }
}

/**
 * `agentainer workflow state ...`: get and set go through the Workflow service (--server);
 * incr is the State service's atomic Increment (--state-server, by default --server).
 */
export function stateCommand(): Command {
  const state = new Command("state").description("read and write a workflow's state");
  const get = state
    .command("get")
    .description("print the state (or one key's value) as JSON")
    .argument("<id>")
    .argument("[key]");
  get.action(
    action(
      () => get,
      async (c, _g, id: string, key?: string) => {
        const r = await c.workflow.getWorkflowState({ workflowId: id, keys: key ? [key] : [] });
        const values = (r.values ?? {}) as Record<string, JsonValue>;
        if (key !== undefined && !(key in values))
          throw new CliError(`not found: key "${key}" is not set`, exit.refused);
        out(JSON.stringify(key === undefined ? values : values[key], null, 2) + "\n");
      },
    ),
  );
  const set = state
    .command("set")
    .description("set a key to a JSON value (a bare word is a string); prints the state's version")
    .argument("<id>")
    .argument("<key>")
    .argument("<json>");
  set.action(
    action(
      () => set,
      async (c, g, id: string, key: string, text: string) => {
        const r = await c.workflow.putWorkflowState({
          workflowId: id,
          values: { [key]: parseJsonArg(text, "the value") },
        });
        out(g.json ? json(PutWorkflowStateResponseSchema, r) : `version ${r.version}\n`);
      },
    ),
  );
  const incr = state
    .command("incr")
    .description("add to a numeric key atomically (State service) and print the new value")
    .argument("<id>")
    .argument("<key>")
    .argument("[delta]", "a number, may be negative or fractional", "1");
  incr.action(
    action(
      () => incr,
      async (c, g, id: string, key: string, delta: string) => {
        const r = await c.state.increment({
          workflowId: id,
          key,
          delta: parseNumber(delta, "the delta"),
        });
        out(g.json ? json(IncrementResponseSchema, r) : `${r.value}\n`);
      },
    ),
  );
  return state;
}
