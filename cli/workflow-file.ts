import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { isMap, isSeq, LineCounter, parseDocument, type Document } from "yaml";
import {
  CreateWorkflowRequestSchema,
  type CreateWorkflowRequest,
} from "../gen/agentainer/workflow/v1/workflow_pb.js";
import { CliError } from "./client.js";

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

const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

function duration(v: JsonValue): JsonValue {
  if (typeof v === "number") return `${v}s`;
  if (typeof v !== "string") return v;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(v.trim());
  if (!m) return v;
  const seconds = Number(m[1]) * (units[m[2] as string] as number);
  return `${Number(seconds.toFixed(9))}s`;
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
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, 2);
  }
  const lines = new LineCounter();
  let data: JsonValue;
  let doc: Document | undefined;
  if (extname(path).toLowerCase() === ".json") {
    try {
      data = JSON.parse(text) as JsonValue;
    } catch (err) {
      throw new CliError(`${path}: not valid JSON: ${(err as Error).message}`, 2);
    }
  } else {
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
    const first = doc.errors[0];
    if (first !== undefined) {
      const at = lines.linePos(first.pos[0]);
      throw new CliError(`${path}:${at.line}: ${first.message.split("\n")[0]}`, 2);
    }
    data = doc.toJS() as JsonValue;
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new CliError(`${path}: a workflow file holds a mapping (name, config, steps, ...)`, 2);
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
  try {
    request = fromJson(CreateWorkflowRequestSchema, normalize(data, "", ""));
  } catch (err) {
    const message = (err as Error).message.replace(/^cannot decode [^:]+ from JSON: /, "");
    const key = /key "([^"]+)"/.exec(message)?.[1];
    const line = key === undefined ? undefined : findKey(doc, lines, key);
    throw new CliError(`${path}${line === undefined ? "" : `:${line}`}: ${message}`, 2);
  }
  return { request, lineOf };
}

function findKey(doc: Document | undefined, lines: LineCounter, key: string): number | undefined {
  let found: number | undefined;
  const visit = (node: unknown): void => {
    if (found !== undefined) return;
    if (isMap(node)) {
      for (const pair of node.items) {
        const k = pair.key as { value?: unknown; range?: [number, number] };
        if (k?.value === key && k.range) {
          found = lines.linePos(k.range[0]).line;
          return;
        }
        visit(pair.value);
      }
    } else if (isSeq(node)) node.items.forEach(visit);
  };
  visit(doc?.contents);
  return found;
}
