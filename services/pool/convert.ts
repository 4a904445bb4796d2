import { create } from "@bufbuild/protobuf";
import { InvalidArgumentError } from "../../lib/errors.js";
import { msToDuration, msToTimestamp } from "../../lib/time.js";
import {
  AgentDisposition,
  LeaseSchema,
  PoolSchema,
  PoolStatus,
  TaskOutcome as ProtoOutcome,
  type Lease as ProtoLease,
  type Pool,
} from "../../gen/agentainer/pool/v1/pool_pb.js";
import { policyToProto } from "./policy.js";
import type { Disposition, TaskOutcome } from "./pool-manager.js";
import {
  latencyBoundsMs,
  type Lease,
  type PoolRecord,
  type PoolStatus as Status,
} from "./pool-state.js";
import { templateToProto } from "./template.js";

/** Protobuf ⇄ domain mappings of the Pool service, in one place. */

export const statusToProto: Record<Status, PoolStatus> = {
  active: PoolStatus.ACTIVE,
  draining: PoolStatus.DRAINING,
  drained: PoolStatus.DRAINED,
};

export function statusFromProto(s: PoolStatus, field: string): Status {
  const found = (Object.entries(statusToProto) as Array<[Status, PoolStatus]>).find(
    ([, v]) => v === s,
  );
  if (found === undefined)
    throw new InvalidArgumentError(`${field} holds an unknown status ${s}`, { field });
  return found[0];
}

export function outcomeFromProto(o: ProtoOutcome): TaskOutcome {
  switch (o) {
    case ProtoOutcome.UNSPECIFIED:
      return "unspecified";
    case ProtoOutcome.SUCCEEDED:
      return "succeeded";
    case ProtoOutcome.FAILED:
      return "failed";
    case ProtoOutcome.AGENT_BROKEN:
      return "agent_broken";
    default:
      throw new InvalidArgumentError(`outcome holds an unknown value ${String(o)}`, {
        field: "outcome",
      });
  }
}

export const outcomeToProto: Record<TaskOutcome, ProtoOutcome> = {
  unspecified: ProtoOutcome.UNSPECIFIED,
  succeeded: ProtoOutcome.SUCCEEDED,
  failed: ProtoOutcome.FAILED,
  agent_broken: ProtoOutcome.AGENT_BROKEN,
};

export const dispositionToProto: Record<Disposition, AgentDisposition> = {
  returned: AgentDisposition.RETURNED,
  recycled: AgentDisposition.RECYCLED,
  removed: AgentDisposition.REMOVED,
};

export function leaseToProto(l: Lease): ProtoLease {
  return create(LeaseSchema, {
    leaseId: l.leaseId,
    poolId: l.poolId,
    agentId: l.agentId,
    containerId: l.containerId,
    holder: l.holder,
    acquireTime: msToTimestamp(l.acquireMs),
    expireTime: msToTimestamp(l.expireMs),
    agentUses: BigInt(l.agentUsesBefore),
  });
}

export function poolToProto(p: PoolRecord, now: number): Pool {
  const agents = [...p.agents.values()];
  const count = (s: string) => agents.filter((a) => a.state === s).length;
  const c = p.counters;
  let cumulative = 0;
  const buckets = [...latencyBoundsMs, Infinity].map((bound, i) => {
    cumulative += c.latencyCounts[i] ?? 0;
    return { upperBoundMs: bound, count: BigInt(cumulative) };
  });
  const warm = p.warmUntilMs > now ? p.warmTarget : 0;
  return create(PoolSchema, {
    poolId: p.poolId,
    template: templateToProto(p.template),
    templateKey: p.templateKey,
    policy: policyToProto(p.policy),
    status: statusToProto[p.status],
    metrics: {
      size: agents.filter((a) => a.state !== "removing").length,
      idle: count("idle"),
      leased: count("leased"),
      starting: count("starting"),
      waiting: p.waiters.length,
      hits: BigInt(c.hits),
      misses: BigInt(c.misses),
      containersCreated: BigInt(c.containersCreated),
      reuseCount: BigInt(c.reuseCount),
      recycled: BigInt(c.recycled),
      evicted: BigInt(c.evicted),
      unhealthy: BigInt(c.unhealthy),
      leaseExpirations: BigInt(c.leaseExpirations),
      acquireTimeouts: BigInt(c.acquireTimeouts),
      acquireLatency: {
        buckets,
        count: BigInt(cumulative),
        sum: msToDuration(c.latencySumMs),
      },
      warmTarget: warm,
      warmUntil: warm > 0 ? msToTimestamp(p.warmUntilMs) : undefined,
    },
    createTime: msToTimestamp(p.createMs),
    updateTime: msToTimestamp(p.updateMs),
    lastError: p.lastError,
    lastErrorTime: p.lastErrorMs === undefined ? undefined : msToTimestamp(p.lastErrorMs),
  });
}
