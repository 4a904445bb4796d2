import { clone, create, type JsonValue } from "@bufbuild/protobuf";
import { AgentainerError, InvalidArgumentError } from "../../lib/errors.js";
import { canonicalJson, valueToJson } from "../../lib/json-value.js";
import { parsePointer, resolvePointer } from "../../lib/json-pointer.js";
import { durationToMs } from "../../lib/time.js";
import { AgentMode, KeepContainer } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { PoolPolicySchema } from "../../gen/agentainer/pool/v1/pool_pb.js";
import {
  ExecutionMode,
  StepKind,
  type Step,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";
import type { CreateWorkflowRequest } from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { keepFromProto, limitsFromProto, networkFromProto } from "../executor/convert.js";
import { checkArgv, checkEnv, checkImage } from "../executor/validate.js";
import type { Keep } from "../executor/cold.js";
import type { Network } from "../executor/runtime/runtime.js";
import { policyFromProto, type Policy } from "../pool/policy.js";
import { checkPoolId } from "../pool/template.js";
import { checkKey, checkWorkflowId } from "../state/validate.js";
import { parseExpression, type Expression } from "./expression.js";
import { buildGraph, type StepGraph } from "./graph.js";
import { retryFromProto, type Retry } from "./retry.js";
import { settingsFromProto, type WorkflowSettings } from "./workflow-config.js";

export type Kind = "task" | "parallel" | "map" | "reduce";

export type MapSource =
  /**
   * Items given in the definition: validated here, but not kept (a run reads them from its stored
   * request when the step starts, see map-items.ts), so a definition's size does not grow with
   * its items.
   */
  | { from: "inline"; count: number }
  | { from: "input"; pointer: string[] }
  | { from: "state"; key: string }
  | { from: "step"; stepId: string; pointer: string[] };

export type PoolChoice =
  | { kind: "cold" }
  /** An inline pool; maxSize 0 in the proto became the step's concurrency. */
  | { kind: "inline"; policy: Policy; agentMode: "exec" | "stream"; agentCommand: string[] }
  /** An existing pool (checked against the Pool service when the workflow is created). */
  | { kind: "existing"; poolId: string; agentMode: "exec" | "stream" | undefined };

/** One validated step, defaults resolved. */
export interface StepDef {
  id: string;
  name: string;
  kind: Kind;
  dependsOn: string[];
  /** Empty for a step on an existing pool that left it unset (the pool's image). */
  image: string;
  command: string[];
  args: string[];
  env: Record<string, string>;
  limits: { cpuMillis: number; memoryBytes: number; pids: number };
  network: Network;
  /** 0: the Executor's default. */
  timeoutMs: number;
  /** 0: none. */
  stepTimeoutMs: number;
  retry: Retry;
  /** undefined: the workflow's input. */
  input: JsonValue | undefined;
  pool: PoolChoice;
  when: Expression | undefined;
  parallelism: number;
  maxWorkers: number;
  mapItems: MapSource | undefined;
  keep: Keep;
}

export interface WorkflowDefinition {
  name: string;
  description: string;
  labels: Record<string, string>;
  settings: WorkflowSettings;
  steps: StepDef[];
  graph: StepGraph;
  input: JsonValue;
}

export interface DefinitionLimits {
  /** Largest inline pool max_size (the Pool service's limit). */
  poolMaxSizeLimit: number;
  /** Most items a MAP step may have. */
  maxMapItems: number;
}

const labelKey = /^[a-z0-9_.\-/]{1,63}$/;
const MiB = 1024 * 1024;
const dayMs = 24 * 3600 * 1000;

function bad(field: string, message: string): InvalidArgumentError {
  return new InvalidArgumentError(`${field}: ${message}`, { field });
}

/**
 * Re-homes the errors of a reused checker whose field names start with `from` (e.g. "policy")
 * under this definition's path (e.g. "steps[1].pool_policy"); other errors pass unchanged.
 */
function under<T>(prefix: string, from: string, run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (!(err instanceof AgentainerError) || err.kind !== "invalid_argument") throw err;
    if (err.field === undefined || !err.field.startsWith(from)) throw err;
    const field = prefix + err.field.slice(from.length);
    const message = err.message.startsWith(from)
      ? prefix + err.message.slice(from.length)
      : `${field}: ${err.message}`;
    throw new InvalidArgumentError(message, { field });
  }
}

function jsonSize(value: JsonValue): number {
  return Buffer.byteLength(canonicalJson(value));
}

/**
 * Validates a whole CreateWorkflowRequest (see definition.proto and workflow.proto) and returns
 * the definition with every default resolved. Every error is INVALID_ARGUMENT naming the field
 * path; nothing is stored on failure. Checks that need other services (an existing pool's
 * template, an image's presence) are made by the caller on `existingPools()`.
 */
export function definitionFromProto(
  req: CreateWorkflowRequest,
  limits: DefinitionLimits,
): WorkflowDefinition {
  if (req.name === "" || req.name.length > 200) throw bad("name", "must be 1 to 200 characters");
  if (req.description.length > 4096) throw bad("description", "must be at most 4096 characters");
  if (req.workflowId !== "") checkWorkflowId(req.workflowId);
  const labelEntries = Object.entries(req.labels);
  if (labelEntries.length > 64)
    throw bad("labels", `has ${labelEntries.length} entries; at most 64`);
  for (const [k, v] of labelEntries) {
    if (!labelKey.test(k))
      throw bad(`labels.${k}`, "keys are 1 to 63 characters of a-z 0-9 _ . - /");
    if (v.length > 256) throw bad(`labels.${k}`, "values are at most 256 characters");
  }
  if (req.steps.length > 1000) throw bad("steps", `has ${req.steps.length} steps; at most 1000`);
  const input = req.input === undefined ? null : valueToJson(req.input, "input");
  if (jsonSize(input) > 16 * MiB) throw bad("input", "is larger than 16 MiB of JSON");
  const settings = settingsFromProto(req.config);
  const graph = buildGraph(req.steps.map((s) => ({ id: s.id, dependsOn: s.dependsOn })));
  const kinds = new Map(req.steps.map((s, i) => [s.id, kindOf(s, `steps[${i}]`)]));
  const steps = req.steps.map((s, i) =>
    stepFromProto(s, `steps[${i}]`, { graph, kinds, input, settings, limits }),
  );
  return {
    name: req.name,
    description: req.description,
    labels: { ...req.labels },
    settings,
    steps,
    graph,
    input,
  };
}

function kindOf(s: Step, field: string): Kind {
  switch (s.kind) {
    case StepKind.UNSPECIFIED:
    case StepKind.TASK:
      return "task";
    case StepKind.PARALLEL:
      return "parallel";
    case StepKind.MAP:
      return "map";
    case StepKind.REDUCE:
      return "reduce";
    default:
      throw bad(
        `${field}.kind`,
        `unknown kind ${String(s.kind)}; use TASK, PARALLEL, MAP or REDUCE`,
      );
  }
}

interface StepContext {
  graph: StepGraph;
  kinds: Map<string, Kind>;
  input: JsonValue;
  settings: WorkflowSettings;
  limits: DefinitionLimits;
}

function stepFromProto(s: Step, f: string, ctx: StepContext): StepDef {
  const kind = kindOf(s, f);
  if (s.name.length > 200) throw bad(`${f}.name`, "must be at most 200 characters");

  // Execution and pool.
  const poolCase = s.pool.case;
  let execution: "cold" | "pooled";
  if (s.execution === ExecutionMode.UNSPECIFIED) execution = poolCase ? "pooled" : "cold";
  else if (s.execution === ExecutionMode.COLD) execution = "cold";
  else if (s.execution === ExecutionMode.POOLED) execution = "pooled";
  else
    throw bad(
      `${f}.execution`,
      `unknown execution mode ${String(s.execution)}; use COLD or POOLED`,
    );
  if (execution === "cold" && poolCase !== undefined) {
    throw bad(
      `${f}.${poolCase === "poolPolicy" ? "pool_policy" : "pool_id"}`,
      "is set but the step runs COLD",
    );
  }
  let agentMode: "exec" | "stream" | undefined;
  if (s.agentMode === AgentMode.EXEC) agentMode = "exec";
  else if (s.agentMode === AgentMode.STREAM) agentMode = "stream";
  else if (s.agentMode !== AgentMode.UNSPECIFIED)
    throw bad(`${f}.agent_mode`, `unknown mode ${s.agentMode}`);
  if (execution === "cold" && agentMode !== undefined)
    throw bad(`${f}.agent_mode`, "applies to POOLED steps only");
  const onExisting = poolCase === "poolId";

  // What runs.
  if (s.image !== "") under(`${f}.image`, "image", () => checkImage(s.image, "image"));
  if (s.image === "" && !onExisting) throw bad(`${f}.image`, "is required");
  if (s.image.length > 512) throw bad(`${f}.image`, "must be at most 512 characters");
  checkArgv(s.command, `${f}.command`, false);
  checkArgv(s.args, `${f}.args`, false);
  checkEnv(s.env, `${f}.env`);
  const envEntries = Object.entries(s.env);
  if (envEntries.length > 256)
    throw bad(`${f}.env`, `has ${envEntries.length} entries; at most 256`);
  if (envEntries.reduce((n, [k, v]) => n + k.length + v.length, 0) > 32 * 1024) {
    throw bad(`${f}.env`, "is larger than 32 KiB in all");
  }
  if (onExisting && s.limits !== undefined)
    throw bad(`${f}.limits`, "must be unset with pool_id: the pool's agents have theirs");
  if (onExisting && s.network !== 0) throw bad(`${f}.network`, "must be unset with pool_id");
  const limitsGiven = limitsFromProto(s.limits, `${f}.limits`);
  const network = networkFromProto(s.network, `${f}.network`);
  if (execution === "pooled" && s.keep !== KeepContainer.UNSPECIFIED) {
    throw bad(`${f}.keep`, "must be unset for POOLED steps: agents go back to their pool");
  }
  const keep = keepFromProto(s.keep, `${f}.keep`);

  const effectiveMode = agentMode ?? "exec";
  if (execution === "pooled") {
    if (
      effectiveMode === "exec" &&
      s.command.length + s.args.length === 0 &&
      !(onExisting && agentMode === undefined)
    ) {
      throw bad(
        `${f}.command`,
        "is required for EXEC agents: it is what `docker exec` runs for each task",
      );
    }
    if (onExisting && agentMode === "stream" && (s.command.length > 0 || s.args.length > 0)) {
      throw bad(
        `${f}.command`,
        "must be empty for a STREAM step on an existing pool: the pool defines the agents' main process",
      );
    }
  }
  if (
    s.agentCommand.length > 0 &&
    !(execution === "pooled" && !onExisting && effectiveMode === "exec")
  ) {
    throw bad(`${f}.agent_command`, "applies to steps with an inline EXEC pool only");
  }
  checkArgv(s.agentCommand, `${f}.agent_command`, false);

  // Timing and retries.
  const timeoutMs = durationToMs(s.timeout, `${f}.timeout`);
  if (timeoutMs > 7 * dayMs) throw bad(`${f}.timeout`, "is longer than 7 days");
  const stepTimeoutMs = durationToMs(s.stepTimeout, `${f}.step_timeout`);
  if (stepTimeoutMs > 30 * dayMs) throw bad(`${f}.step_timeout`, "is longer than 30 days");
  const retry = retryFromProto(s.retry, `${f}.retry`);
  const input = s.input === undefined ? undefined : valueToJson(s.input, `${f}.input`);
  if (input !== undefined && jsonSize(input) > MiB)
    throw bad(`${f}.input`, "is larger than 1 MiB of JSON");

  // Fan-out.
  if (kind === "parallel") {
    if (s.parallelism < 1 || s.parallelism > 10_000)
      throw bad(`${f}.parallelism`, "is required for PARALLEL: 1 to 10000");
  } else if (s.parallelism !== 0) {
    throw bad(`${f}.parallelism`, "applies to PARALLEL steps only");
  }
  if (s.maxWorkers > 10_000) throw bad(`${f}.max_workers`, "is at most 10000");
  if (s.maxWorkers !== 0 && kind !== "parallel" && kind !== "map") {
    throw bad(`${f}.max_workers`, "applies to PARALLEL and MAP steps only (one task runs)");
  }
  const mapItems = mapSource(s, f, kind, ctx);
  if (kind === "reduce") {
    const fanOut = s.dependsOn.filter((d) => {
      const k = ctx.kinds.get(d);
      return k === "map" || k === "parallel";
    });
    if (fanOut.length !== 1) {
      throw bad(
        `${f}.depends_on`,
        `a REDUCE step needs exactly one MAP or PARALLEL dependency; it has ${fanOut.length}`,
      );
    }
  }

  // Condition.
  let when: Expression | undefined;
  if (s.when !== "") {
    when = parseExpression(s.when, `${f}.when`);
    const ancestors = ctx.graph.ancestors.get(s.id) ?? new Set<string>();
    for (const ref of when.steps) {
      if (!ancestors.has(ref)) {
        throw bad(
          `${f}.when`,
          `refers to step "${ref}", which is not one it depends on (directly or through depends_on)`,
        );
      }
    }
    if (when.usesItem && kind !== "map")
      throw bad(`${f}.when`, "uses item, which only MAP steps have");
  }

  // The pool.
  let pool: PoolChoice = { kind: "cold" };
  if (execution === "pooled") {
    if (s.pool.case === "poolId") {
      checkPoolId(s.pool.value, `${f}.pool_id`);
      pool = { kind: "existing", poolId: s.pool.value, agentMode };
    } else {
      const concurrency = stepConcurrency(s, kind, ctx, mapItems);
      const given = s.pool.case === "poolPolicy" ? s.pool.value : undefined;
      const withSize =
        given === undefined ? create(PoolPolicySchema) : clone(PoolPolicySchema, given);
      withSize.maxSize ||= Math.min(concurrency, ctx.limits.poolMaxSizeLimit);
      const policy = under(`${f}.pool_policy`, "policy", () =>
        policyFromProto(withSize, effectiveMode, ctx.limits.poolMaxSizeLimit),
      );
      pool = { kind: "inline", policy, agentMode: effectiveMode, agentCommand: s.agentCommand };
    }
  }

  return {
    id: s.id,
    name: s.name || s.id,
    kind,
    dependsOn: [...s.dependsOn],
    image: s.image,
    command: [...s.command],
    args: [...s.args],
    env: { ...s.env },
    limits: {
      cpuMillis: limitsGiven.cpuMillis ?? 0,
      memoryBytes: limitsGiven.memoryBytes ?? 0,
      pids: limitsGiven.pids ?? 0,
    },
    network,
    timeoutMs,
    stepTimeoutMs,
    retry,
    input,
    pool,
    when,
    parallelism: kind === "parallel" ? s.parallelism : 1,
    maxWorkers: s.maxWorkers,
    mapItems,
    keep,
  };
}

function mapSource(s: Step, f: string, kind: Kind, ctx: StepContext): MapSource | undefined {
  const m = s.mapItems;
  if (kind !== "map") {
    if (m !== undefined) throw bad(`${f}.map_items`, "applies to MAP steps only");
    return undefined;
  }
  if (m === undefined || m.source.case === undefined)
    throw bad(
      `${f}.map_items`,
      "is required for MAP: set inline, from_input, from_state or from_step",
    );
  const src = m.source;
  switch (src.case) {
    case "inline": {
      if (src.value.items.length > ctx.limits.maxMapItems) {
        throw bad(
          `${f}.map_items.inline`,
          `has ${src.value.items.length} items; at most ${ctx.limits.maxMapItems}`,
        );
      }
      src.value.items.forEach((v, i) => valueToJson(v, `${f}.map_items.inline.items[${i}]`));
      return { from: "inline", count: src.value.items.length };
    }
    case "fromInput": {
      const pointer = parsePointer(src.value, `${f}.map_items.from_input`);
      const items = resolvePointer(ctx.input, pointer);
      if (!Array.isArray(items)) {
        throw bad(
          `${f}.map_items.from_input`,
          `"${src.value}" does not hold a JSON array in the workflow's input`,
        );
      }
      if (items.length > ctx.limits.maxMapItems) {
        throw bad(
          `${f}.map_items.from_input`,
          `holds ${items.length} items; at most ${ctx.limits.maxMapItems}`,
        );
      }
      return { from: "input", pointer };
    }
    case "fromState":
      checkKey(src.value, `${f}.map_items.from_state`);
      return { from: "state", key: src.value };
    case "fromStep": {
      const ref = src.value;
      if (!s.dependsOn.includes(ref.stepId)) {
        throw bad(
          `${f}.map_items.from_step.step_id`,
          `"${ref.stepId}" must be one of the step's depends_on`,
        );
      }
      return {
        from: "step",
        stepId: ref.stepId,
        pointer: parsePointer(ref.path, `${f}.map_items.from_step.path`),
      };
    }
  }
}

/** Most tasks of a step that can run at once, as far as the definition tells. */
function stepConcurrency(
  s: Step,
  kind: Kind,
  ctx: StepContext,
  items: MapSource | undefined,
): number {
  let width = 1;
  if (kind === "parallel") width = s.parallelism;
  else if (kind === "map") {
    if (items?.from === "inline") width = items.count;
    else if (items?.from === "input") {
      const v = resolvePointer(ctx.input, items.pointer);
      width = Array.isArray(v) ? v.length : 1;
    } else width = ctx.settings.maxParallel;
  }
  return Math.max(1, Math.min(width, s.maxWorkers || Infinity, ctx.settings.maxParallel));
}
