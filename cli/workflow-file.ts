import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { LineCounter, parseDocument, type Document } from "yaml";
import {
  CreateWorkflowRequestSchema,
  type CreateWorkflowRequest,
} from "../gen/agentainer/workflow/v1/workflow_pb.js";
import { durationSeconds } from "./args.js";
import { CliError, exit } from "./client.js";
import { locateJsonProblem, type PathPart } from "./json-errors.js";

/**
 * Workflow files (docs/workflow-files.md): YAML or JSON in the shape of CreateWorkflowRequest
 * (proto field names), with a few conveniences: enum values by their short names (`map`,
 * `pooled`, `stream`, `continue_on_partial`, `exponential`), durations as `500ms`, `30s`, `5m`,
 * `2h`, and `map_items: { inline: [...] }` as a plain list. Errors name the file and line.
 */
export interface WorkflowFile {
  request: CreateWorkflowRequest;
  /** The line (from 1) of a field path such as `steps[1].image`, when the file has it. */
  lineOf(path: string): number | undefined;
}

const enums: Record<string, string> = {
  kind: "STEP_KIND_",
  execution: "EXECUTION_MODE_",
  agent_mode: "AGENT_MODE_",
  network: "NETWORK_MODE_",
  keep: "KEEP_CONTAINER_",
  backoff: "BACKOFF_",
  mode: "", // failure.mode and template.mode: resolved by the parent below
};

const durations = new Set([
  "timeout",
  "step_timeout",
  "initial_delay",
  "max_delay",
  "state_ttl",
  "retention",
  "idle_timeout",
  "lease_ttl",
  "interval",
]);

function duration(v: JsonValue): JsonValue {
  if (typeof v === "number") return `${v}s`;
  if (typeof v !== "string") return v;
  const seconds = durationSeconds(v);
  return seconds === undefined ? v : `${seconds}s`;
}

function normalize(v: JsonValue, key: string, parent: string): JsonValue {
  if (Array.isArray(v)) return v.map((x) => normalize(x, "", key));
  if (v !== null && typeof v === "object") {
    const out: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === "inline" && key === "map_items" && Array.isArray(x)) out[k] = { items: x };
      else out[k] = normalize(x, k, key);
    }
    return out;
  }
  if (typeof v === "string" && key in enums && !v.includes("_MODE_") && /^[a-z_]+$/i.test(v)) {
    const prefix =
      key === "mode" ? (parent === "failure" ? "FAILURE_MODE_" : "AGENT_MODE_") : enums[key];
    if (!v.toUpperCase().startsWith(prefix as string)) return `${prefix}${v.toUpperCase()}`;
    return v.toUpperCase();
  }
  if (durations.has(key)) return duration(v);
  return v;
}

/** Splits `steps[1].image` into ["steps", 1, "image"]. */
function pathParts(path: string): Array<string | number> {
  const parts: Array<string | number> = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    parts.push(m[2] !== undefined ? Number(m[2]) : (m[1] as string));
  }
  return parts;
}

export function readWorkflowFile(path: string): WorkflowFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, exit.badInput);
  }
  const lines = new LineCounter();
  let data: JsonValue;
  let doc: Document | undefined;
  if (extname(path).toLowerCase() === ".json") {
    try {
      data = JSON.parse(text) as JsonValue;
    } catch (err) {
      throw new CliError(`${path}: not valid JSON: ${(err as Error).message}`, exit.badInput);
    }
  } else {
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
    const first = doc.errors[0];
    if (first !== undefined) {
      const at = lines.linePos(first.pos[0]);
      throw new CliError(`${path}:${at.line}: ${first.message.split("\n")[0]}`, exit.badInput);
    }
    data = doc.toJS() as JsonValue;
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new CliError(
      `${path}: a workflow file holds a mapping (name, config, steps, ...)`,
      exit.badInput,
    );
  }
  const lineOf = (field: string): number | undefined => {
    if (doc === undefined) return undefined;
    const parts = pathParts(field);
    for (let n = parts.length; n > 0; n--) {
      const node = doc.getIn(parts.slice(0, n), true) as { range?: [number, number] } | undefined;
      if (node?.range) return lines.linePos(node.range[0]).line;
    }
    return undefined;
  };
  let request: CreateWorkflowRequest;
  const normalized = normalize(data, "", "");
  try {
    request = fromJson(CreateWorkflowRequestSchema, normalized);
  } catch (err) {
    const found = locateJsonProblem(CreateWorkflowRequestSchema, normalized, (p) => rawAt(data, p));
    if (found === undefined) {
      const message = (err as Error).message.replace(/^cannot decode [^:]+ from JSON: /, "");
      throw new CliError(`${path}: ${message}`, exit.badInput);
    }
    const line = lineOf(found.path);
    throw new CliError(
      `${path}${line === undefined ? "" : `:${line}`}: ${found.path}: ${found.problem}`,
      exit.badInput,
    );
  }
  return { request, lineOf };
}

/** The value the file holds at a path (`map_items.inline.items[0]` is `map_items.inline[0]`). */
function rawAt(data: JsonValue, parts: readonly PathPart[]): JsonValue | undefined {
  let v: JsonValue | undefined = data;
  for (const p of parts) {
    if (v === null || typeof v !== "object") return undefined;
    if (Array.isArray(v)) {
      if (p === "items") continue;
      v = typeof p === "number" ? v[p] : undefined;
    } else v = typeof p === "string" ? v[p] : undefined;
  }
  return v;
}
