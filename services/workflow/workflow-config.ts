import { InvalidArgumentError } from "../../lib/errors.js";
import { durationToMs } from "../../lib/time.js";
import {
  FailureMode,
  type WorkflowConfig as ProtoConfig,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";

const dayMs = 24 * 3600 * 1000;

export type Failure =
  | { mode: "fail_fast" }
  | { mode: "continue_on_partial"; maxFailedTasks?: number; maxFailedPercent?: number };

/** A validated WorkflowConfig (see definition.proto), defaults resolved. */
export interface WorkflowSettings {
  maxParallel: number;
  /** 0: no deadline. */
  timeoutMs: number;
  failure: Failure;
  /** 0: kept until the workflow is deleted. */
  stateTtlMs: number;
  stateLimits: { maxWorkflowBytes: number; maxValueBytes: number };
  /** 0: kept until DeleteWorkflow. */
  retentionMs: number;
}

function duration(
  d: Parameters<typeof durationToMs>[0],
  field: string,
  maxMs: number,
  maxText: string,
): number {
  const ms = durationToMs(d, field);
  if (ms > maxMs) throw new InvalidArgumentError(`${field} is longer than ${maxText}`, { field });
  return ms;
}

/** Checks a workflow's config and fills its defaults; every error names `config.<field>`. */
export function settingsFromProto(c: ProtoConfig | undefined): WorkflowSettings {
  const maxParallel = c?.maxParallel || 10;
  if (maxParallel > 10_000) {
    throw new InvalidArgumentError(`config.max_parallel is ${maxParallel}; at most 10000`, {
      field: "config.max_parallel",
    });
  }
  const f = c?.failure;
  let failure: Failure;
  if (f === undefined || f.mode === FailureMode.UNSPECIFIED || f.mode === FailureMode.FAIL_FAST) {
    if (f?.maxFailedTasks !== undefined || f?.maxFailedPercent !== undefined) {
      throw new InvalidArgumentError(
        "config.failure: max_failed_tasks and max_failed_percent apply to CONTINUE_ON_PARTIAL only",
        {
          field:
            f.maxFailedTasks !== undefined
              ? "config.failure.max_failed_tasks"
              : "config.failure.max_failed_percent",
        },
      );
    }
    failure = { mode: "fail_fast" };
  } else if (f.mode === FailureMode.CONTINUE_ON_PARTIAL) {
    const pct = f.maxFailedPercent;
    if (pct !== undefined && !(pct >= 0 && pct <= 100)) {
      throw new InvalidArgumentError(`config.failure.max_failed_percent is ${pct}; use 0 to 100`, {
        field: "config.failure.max_failed_percent",
      });
    }
    failure = {
      mode: "continue_on_partial",
      ...(f.maxFailedTasks === undefined ? {} : { maxFailedTasks: f.maxFailedTasks }),
      ...(pct === undefined ? {} : { maxFailedPercent: pct }),
    };
  } else {
    throw new InvalidArgumentError(
      `config.failure.mode holds an unknown value ${String(f.mode)}; use FAIL_FAST or CONTINUE_ON_PARTIAL`,
      { field: "config.failure.mode" },
    );
  }
  const limits = c?.stateLimits;
  return {
    maxParallel,
    timeoutMs: duration(c?.timeout, "config.timeout", 30 * dayMs, "30 days"),
    failure,
    stateTtlMs: duration(c?.stateTtl, "config.state_ttl", 366 * dayMs, "366 days"),
    stateLimits: {
      maxWorkflowBytes: Number(limits?.maxWorkflowBytes ?? 0n),
      maxValueBytes: Number(limits?.maxValueBytes ?? 0n),
    },
    retentionMs: duration(c?.retention, "config.retention", 366 * dayMs, "366 days"),
  };
}

/** Whether a fan-out step with `failed` of `width` tasks failed stays within the tolerance. */
export function withinTolerance(failure: Failure, failed: number, width: number): boolean {
  if (failed === 0) return true;
  if (failure.mode === "fail_fast" || failed >= width) return false;
  if (failure.maxFailedTasks !== undefined && failed > failure.maxFailedTasks) return false;
  if (failure.maxFailedPercent !== undefined && (failed / width) * 100 > failure.maxFailedPercent) {
    return false;
  }
  return true;
}
