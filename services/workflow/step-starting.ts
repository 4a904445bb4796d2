import { create } from "@bufbuild/protobuf";
import { msToTimestamp } from "../../lib/time.js";
import { agentModeToProto } from "../executor/convert.js";
import { policyToProto } from "../pool/policy.js";
import { PoolPolicySchema } from "../../gen/agentainer/pool/v1/pool_pb.js";
import { ExecutionMode, StepKind } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import {
  WorkflowEventSchema,
  type WorkflowEvent,
} from "../../gen/agentainer/workflow/v1/events_pb.js";
import type { Kind, StepDef } from "./definition.js";
import type { StepRecord } from "./run-store.js";

const kindToProto: Record<Kind, StepKind> = {
  task: StepKind.TASK,
  parallel: StepKind.PARALLEL,
  map: StepKind.MAP,
  reduce: StepKind.REDUCE,
};

/**
 * The step_starting event: what the step will run and how wide, so that the Pool service can
 * warm `concurrency` agents of its pool before the first Acquire (see events.proto).
 */
export function stepStarting(
  workflowId: string,
  timeMs: number,
  d: StepDef,
  record: StepRecord,
  maxParallel: number,
  mode: "exec" | "stream" | undefined,
): WorkflowEvent {
  const pooled = d.pool.kind !== "cold";
  const caps = [record.width, maxParallel];
  if (d.maxWorkers > 0) caps.push(d.maxWorkers);
  if (d.pool.kind === "inline") caps.push(d.pool.policy.maxSize);
  return create(WorkflowEventSchema, {
    workflowId,
    time: msToTimestamp(timeMs),
    payload: {
      case: "stepStarting",
      value: {
        stepId: d.id,
        kind: kindToProto[d.kind],
        width: BigInt(record.width),
        concurrency: Math.max(0, Math.min(...caps)),
        execution: pooled ? ExecutionMode.POOLED : ExecutionMode.COLD,
        poolId: record.poolId,
        ...(d.pool.kind === "inline"
          ? { poolPolicy: create(PoolPolicySchema, policyToProto(d.pool.policy)) }
          : {}),
        ...(pooled && mode !== undefined ? { agentMode: agentModeToProto[mode] } : {}),
        image: d.image,
      },
    },
  });
}
