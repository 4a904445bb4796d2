import { create, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { AgentainerError, InvalidArgumentError } from "../../lib/errors.js";
import { parsePointer, resolvePointer } from "../../lib/json-pointer.js";
import { valueToJson } from "../../lib/json-value.js";
import { AgentMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  ExecutionMode,
  StepKind,
  type MapItemsSchema,
  type StepSchema,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";
import {
  CreateWorkflowRequestSchema,
  type CreateMapReduceRequest,
  type CreateWorkflowRequest,
} from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import {
  definitionFromProto,
  type DefinitionLimits,
  type WorkflowDefinition,
} from "./definition.js";

/**
 * Paths of the built definition, as the MapReduce request names them. The steps keep their
 * places with or without a splitter (map, reduce, then split), so one table serves both shapes.
 */
const requestPaths: Array<[string, string]> = [
  ["steps[0].pool_policy.max_size", "pool_size"],
  ["steps[0].pool_policy.min_size", "pool_size"],
  ["steps[0].max_workers", "max_parallel"],
  ["steps[0].map_items.from_input", "items_input_path"],
  ["steps[0].map_items.from_state", "items_state_key"],
  ["steps[0].map_items.inline", "inline_items"],
  ["steps[0].map_items.from_step.path", "splitter_items_path"],
  ["steps[0].image", "mapper_image"],
  ["steps[1].image", "reducer_image"],
  ["steps[2].image", "splitter_image"],
  ["steps[0].command", "mapper_command"],
  ["steps[1].command", "reducer_command"],
  ["steps[2].command", "splitter_command"],
  ["steps[0].timeout", "task_timeout"],
  ["steps[1].timeout", "task_timeout"],
  ["steps[2].timeout", "task_timeout"],
  ["steps[0].retry", "retry"],
  ["steps[1].retry", "retry"],
  ["steps[2].retry", "retry"],
  ["steps[0].env", "env"],
  ["steps[1].env", "env"],
  ["steps[2].env", "env"],
  ["steps[0].limits", "limits"],
  ["steps[1].limits", "limits"],
  ["steps[2].limits", "limits"],
  ["steps[0].agent_mode", "agent_mode"],
  ["config.max_parallel", "max_parallel"],
  ["config.timeout", "timeout"],
  ["config.failure", "failure"],
  ["config.state_ttl", "state_ttl"],
];

export function renamed(path: string): string {
  for (const [from, to] of requestPaths) {
    if (path === from || path.startsWith(`${from}.`) || path.startsWith(`${from}[`)) {
      return to + path.slice(from.length);
    }
  }
  return path;
}

/** Number of items known at create (inline or in the input), else undefined. */
function knownWidth(req: CreateMapReduceRequest): number | undefined {
  switch (req.items.case) {
    case "inlineItems":
      return req.items.value.items.length;
    case "itemsInputPath": {
      if (req.input === undefined) return undefined;
      let items: JsonValue | undefined;
      try {
        items = resolvePointer(
          valueToJson(req.input, "input"),
          parsePointer(req.items.value, "items_input_path"),
        );
      } catch {
        return undefined; // reported by the definition's own checks
      }
      return Array.isArray(items) ? items.length : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * The workflow a CreateMapReduce call stands for (see workflow.proto): with a splitter, a cold
 * TASK step `split` whose output holds the items; a pooled MAP step `map` over the items on a
 * pool warmed to pool_size as the workflow starts; then a cold REDUCE step `reduce` whose output
 * is the result. Validated as a whole, with errors naming the MapReduce request's own fields
 * (`mapper_image`, `pool_size`).
 */
export function mapReduceWorkflow(
  req: CreateMapReduceRequest,
  limits: DefinitionLimits,
): { request: CreateWorkflowRequest; definition: WorkflowDefinition } {
  const required = (value: string, field: string) => {
    if (value === "") throw new InvalidArgumentError(`${field} is required`, { field });
  };
  required(req.mapperImage, "mapper_image");
  required(req.reducerImage, "reducer_image");
  if (req.items.case === undefined) {
    throw new InvalidArgumentError(
      "items: set exactly one of inline_items, items_state_key, items_input_path or splitter_image",
      { field: "items" },
    );
  }
  const split = req.items.case === "splitterImage";
  if (req.items.case === "splitterImage") required(req.items.value, "splitter_image");
  const onlyWithSplitter = (set: boolean, field: string) => {
    if (set && !split) {
      throw new InvalidArgumentError(`${field} applies only with splitter_image`, { field });
    }
  };
  onlyWithSplitter(req.splitterCommand.length > 0, "splitter_command");
  onlyWithSplitter(req.splitterItemsPath !== "", "splitter_items_path");
  if (req.items.case === "itemsInputPath" && req.input === undefined) {
    throw new InvalidArgumentError("input is required with items_input_path", { field: "input" });
  }
  if (req.maxParallel > 10_000) {
    throw new InvalidArgumentError(`max_parallel is ${req.maxParallel}; at most 10000`, {
      field: "max_parallel",
    });
  }
  if (req.poolSize > limits.poolMaxSizeLimit) {
    throw new InvalidArgumentError(
      `pool_size is ${req.poolSize}; the Pool service allows at most ${limits.poolMaxSizeLimit}`,
      { field: "pool_size" },
    );
  }
  const stream = req.agentMode !== AgentMode.EXEC;
  if (!stream && req.mapperCommand.length === 0) {
    throw new InvalidArgumentError(
      "mapper_command is required with AGENT_MODE_EXEC: it is what runs for each item",
      { field: "mapper_command" },
    );
  }
  const maxParallel = req.maxParallel || 10;
  // One warm agent per mapper task that can run at once, unless the caller chose.
  const poolSize = Math.min(
    req.poolSize || Math.max(1, Math.min(maxParallel, knownWidth(req) ?? maxParallel)),
    limits.poolMaxSizeLimit,
  );
  let mapItems: MessageInitShape<typeof MapItemsSchema>;
  switch (req.items.case) {
    case "inlineItems":
      mapItems = { source: { case: "inline", value: req.items.value } };
      break;
    case "itemsStateKey":
      mapItems = { source: { case: "fromState", value: req.items.value } };
      break;
    case "itemsInputPath":
      mapItems = { source: { case: "fromInput", value: req.items.value } };
      break;
    case "splitterImage":
      mapItems = {
        source: { case: "fromStep", value: { stepId: "split", path: req.splitterItemsPath } },
      };
      break;
  }
  const shared = {
    env: req.env,
    limits: req.limits,
    timeout: req.taskTimeout,
    retry: req.retry,
  };
  const steps: Array<MessageInitShape<typeof StepSchema>> = [
    {
      id: "map",
      kind: StepKind.MAP,
      dependsOn: split ? ["split"] : [],
      image: req.mapperImage,
      command: req.mapperCommand,
      execution: ExecutionMode.POOLED,
      agentMode: stream ? AgentMode.STREAM : AgentMode.EXEC,
      pool: {
        case: "poolPolicy",
        value: { minSize: poolSize, maxSize: poolSize, warmUp: true },
      },
      maxWorkers: maxParallel,
      mapItems,
      ...shared,
    },
    {
      id: "reduce",
      kind: StepKind.REDUCE,
      dependsOn: ["map"],
      image: req.reducerImage,
      command: req.reducerCommand,
      execution: ExecutionMode.COLD,
      ...shared,
    },
  ];
  if (req.items.case === "splitterImage") {
    steps.push({
      id: "split",
      kind: StepKind.TASK,
      image: req.items.value,
      command: req.splitterCommand,
      execution: ExecutionMode.COLD,
      ...shared,
    });
  }
  const request = create(CreateWorkflowRequestSchema, {
    name: req.name,
    description: req.description,
    labels: req.labels,
    workflowId: req.workflowId,
    input: req.input,
    start: true,
    config: {
      maxParallel,
      timeout: req.timeout,
      failure: req.failure,
      stateTtl: req.stateTtl,
    },
    steps,
  });
  try {
    return { request, definition: definitionFromProto(request, limits) };
  } catch (err) {
    if (!(err instanceof AgentainerError) || err.kind !== "invalid_argument" || !err.field)
      throw err;
    const field = renamed(err.field);
    throw new InvalidArgumentError(err.message.replace(err.field, field), { field });
  }
}
