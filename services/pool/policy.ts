import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  PoolPolicySchema,
  type HealthCheck,
  type PoolPolicy,
} from "../../gen/agentainer/pool/v1/pool_pb.js";
import { InvalidArgumentError } from "../../lib/errors.js";
import { durationToMs, msToDuration } from "../../lib/time.js";
import { checkArgv } from "../executor/validate.js";

/** HealthCheck with its defaults resolved. */
export interface HealthPolicy {
  intervalMs: number;
  timeoutMs: number;
  /** Empty: a protocol ping (stream) or a check that the container runs (exec). */
  command: string[];
  failureThreshold: number;
  checkOnRelease: boolean;
}

/** PoolPolicy with its defaults resolved and its ranges checked. */
export interface Policy {
  minSize: number;
  maxSize: number;
  idleTimeoutMs: number;
  /** 0: no limit. */
  maxAgentUses: number;
  warmUp: boolean;
  health: HealthPolicy;
  /** Empty: no reset. Always empty for stream pools. */
  resetCommand: string[];
  leaseTtlMs: number;
  recycleOnFailure: boolean;
}

const second = 1000;
const minute = 60 * second;
const hour = 60 * minute;
const day = 24 * hour;

const maxAgentUsesLimit = 1_000_000_000;
const maxFailureThreshold = 100;

const defaults = {
  idleTimeoutMs: 5 * minute,
  intervalMs: 30 * second,
  timeoutMs: 5 * second,
  failureThreshold: 3,
  leaseTtlMs: 10 * minute,
};

/** A duration for messages: "90 s", "0.5 s", "5 minutes", "24 h", "7 days". */
function describeMs(ms: number): string {
  if (ms >= day && ms % day === 0) return ms === day ? "1 day" : `${ms / day} days`;
  if (ms >= hour && ms % hour === 0) return `${ms / hour} h`;
  if (ms >= minute && ms % minute === 0) return `${ms / minute} minutes`;
  if (ms >= second) return `${ms / second} s`;
  return `${ms} ms`;
}

/** A duration field: unset or zero takes `dflt`; otherwise `min` to `max`, inclusive. */
function durationField(
  d: Duration | undefined,
  field: string,
  dflt: number,
  min: number,
  max: number,
  maxName?: string,
): number {
  const ms = durationToMs(d, field);
  if (ms === 0) return dflt;
  if (ms < min || ms > max) {
    const upper = maxName === undefined ? describeMs(max) : `${maxName} (${describeMs(max)})`;
    throw new InvalidArgumentError(
      `${field} is ${describeMs(ms)}; use ${describeMs(min)} to ${upper}, or 0 (unset) for the default ${describeMs(dflt)}`,
      { field },
    );
  }
  return ms;
}

function healthFromProto(h: HealthCheck | undefined, field: string): HealthPolicy {
  const intervalMs = durationField(
    h?.interval,
    `${field}.interval`,
    defaults.intervalMs,
    second,
    hour,
  );
  // The 5 s default timeout is capped to the interval, so that a short interval alone is valid.
  const timeoutMs = durationField(
    h?.timeout,
    `${field}.timeout`,
    Math.min(defaults.timeoutMs, intervalMs),
    10,
    intervalMs,
    `${field}.interval`,
  );
  const command = [...(h?.command ?? [])];
  checkArgv(command, `${field}.command`, false);
  const given = h?.failureThreshold ?? 0;
  if (given < 0 || given > maxFailureThreshold) {
    throw new InvalidArgumentError(
      `${field}.failure_threshold is ${given}; use 1 to ${maxFailureThreshold}, or 0 for the default ${defaults.failureThreshold}`,
      { field: `${field}.failure_threshold` },
    );
  }
  return {
    intervalMs,
    timeoutMs,
    command,
    failureThreshold: given === 0 ? defaults.failureThreshold : given,
    checkOnRelease: h?.checkOnRelease ?? false,
  };
}

/**
 * Checks a request's PoolPolicy against the rules of pool.proto and resolves its defaults.
 * `mode` is the pool's template mode (reset_command is for exec pools only); `maxSizeLimit` is
 * POOL_MAX_SIZE_LIMIT.
 */
export function policyFromProto(
  p: PoolPolicy | undefined,
  mode: "exec" | "stream",
  maxSizeLimit: number,
): Policy {
  if (p === undefined) {
    throw new InvalidArgumentError("policy is required", { field: "policy" });
  }
  if (p.maxSize === 0) {
    throw new InvalidArgumentError(
      `policy.max_size is required: the most agents the pool may have at once, 1 to ${maxSizeLimit}`,
      { field: "policy.max_size" },
    );
  }
  if (p.maxSize < 1 || p.maxSize > maxSizeLimit) {
    throw new InvalidArgumentError(
      `policy.max_size is ${p.maxSize}; use 1 to ${maxSizeLimit} (POOL_MAX_SIZE_LIMIT)`,
      { field: "policy.max_size" },
    );
  }
  if (p.minSize < 0) {
    throw new InvalidArgumentError(
      `policy.min_size is ${p.minSize}; use 0 to policy.max_size (${p.maxSize})`,
      { field: "policy.min_size" },
    );
  }
  if (p.minSize > p.maxSize) {
    throw new InvalidArgumentError(
      `policy.min_size (${p.minSize}) is greater than policy.max_size (${p.maxSize}); use 0 to max_size`,
      { field: "policy.min_size" },
    );
  }
  const idleTimeoutMs = durationField(
    p.idleTimeout,
    "policy.idle_timeout",
    defaults.idleTimeoutMs,
    second,
    7 * day,
  );
  if (p.maxAgentUses < 0 || p.maxAgentUses > maxAgentUsesLimit) {
    throw new InvalidArgumentError(
      `policy.max_agent_uses is ${p.maxAgentUses}; use 1 to ${maxAgentUsesLimit}, or 0 for no limit`,
      { field: "policy.max_agent_uses" },
    );
  }
  const health = healthFromProto(p.healthCheck, "policy.health_check");
  if (p.resetCommand.length > 0 && mode === "stream") {
    throw new InvalidArgumentError(
      "policy.reset_command applies to exec pools only: stream agents reset themselves between tasks (docs/agent-protocol.md); leave it empty",
      { field: "policy.reset_command" },
    );
  }
  const resetCommand = [...p.resetCommand];
  checkArgv(resetCommand, "policy.reset_command", false);
  const leaseTtlMs = durationField(
    p.leaseTtl,
    "policy.lease_ttl",
    defaults.leaseTtlMs,
    second,
    day,
  );
  return {
    minSize: p.minSize,
    maxSize: p.maxSize,
    idleTimeoutMs,
    maxAgentUses: p.maxAgentUses,
    warmUp: p.warmUp,
    health,
    resetCommand,
    leaseTtlMs,
    recycleOnFailure: p.recycleOnFailure,
  };
}

/** Copies one top-level field of PoolPolicy, named as in an update_mask path. */
const maskFields: Record<string, (to: PoolPolicy, from: PoolPolicy) => void> = {
  min_size: (to, from) => (to.minSize = from.minSize),
  max_size: (to, from) => (to.maxSize = from.maxSize),
  idle_timeout: (to, from) => (to.idleTimeout = from.idleTimeout),
  max_agent_uses: (to, from) => (to.maxAgentUses = from.maxAgentUses),
  warm_up: (to, from) => (to.warmUp = from.warmUp),
  health_check: (to, from) => (to.healthCheck = from.healthCheck),
  reset_command: (to, from) => (to.resetCommand = [...from.resetCommand]),
  lease_ttl: (to, from) => (to.leaseTtl = from.leaseTtl),
  recycle_on_failure: (to, from) => (to.recycleOnFailure = from.recycleOnFailure),
};

/** The update_mask paths UpdatePool accepts: the top-level fields of PoolPolicy. */
export const policyMaskPaths: readonly string[] = Object.keys(maskFields);

/**
 * UpdatePool's new policy. An empty mask replaces the whole policy with `update`; otherwise the
 * listed top-level fields come from `update` (a message field replaced whole, unset meaning its
 * defaults) and the others keep their current values. The result is checked as a whole, as at
 * CreatePool.
 */
export function mergePolicy(
  current: Policy,
  update: PoolPolicy | undefined,
  mask: readonly string[],
  mode: "exec" | "stream",
  maxSizeLimit: number,
): Policy {
  if (update === undefined) {
    throw new InvalidArgumentError("policy is required", { field: "policy" });
  }
  if (mask.length === 0) return policyFromProto(update, mode, maxSizeLimit);
  const copies = mask.map((path, i) => {
    const copy = Object.hasOwn(maskFields, path) ? maskFields[path] : undefined;
    if (copy !== undefined) return copy;
    const field = `update_mask.paths[${i}]`;
    const top = path.split(".")[0] ?? "";
    if (path.includes(".") && Object.hasOwn(maskFields, top)) {
      throw new InvalidArgumentError(
        `${field} "${path}" is a nested path; name the top-level field "${top}", which is replaced whole`,
        { field },
      );
    }
    throw new InvalidArgumentError(
      `${field} "${path.slice(0, 140)}" is not a field of PoolPolicy; use one of ${policyMaskPaths.join(", ")}`,
      { field },
    );
  });
  const merged = create(PoolPolicySchema, policyToProto(current));
  for (const copy of copies) copy(merged, update);
  return policyFromProto(merged, mode, maxSizeLimit);
}

/** The policy as sent back (Pool.policy), with every default resolved. */
export function policyToProto(p: Policy): MessageInitShape<typeof PoolPolicySchema> {
  return {
    minSize: p.minSize,
    maxSize: p.maxSize,
    idleTimeout: msToDuration(p.idleTimeoutMs),
    maxAgentUses: p.maxAgentUses,
    warmUp: p.warmUp,
    healthCheck: {
      interval: msToDuration(p.health.intervalMs),
      timeout: msToDuration(p.health.timeoutMs),
      command: [...p.health.command],
      failureThreshold: p.health.failureThreshold,
      checkOnRelease: p.health.checkOnRelease,
    },
    resetCommand: [...p.resetCommand],
    leaseTtl: msToDuration(p.leaseTtlMs),
    recycleOnFailure: p.recycleOnFailure,
  };
}
