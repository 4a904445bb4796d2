import { create } from "@bufbuild/protobuf";
import type { EventBus } from "../../lib/events/event-bus.js";
import { subjects } from "../../lib/events/subjects.js";
import { publishEvent } from "../../lib/events/typed.js";
import { msToTimestamp } from "../../lib/time.js";
import {
  AgentLifecycleEventSchema,
  AgentLifecycleEventType,
  PoolEventSchema,
  PoolEventType,
} from "../../gen/agentainer/pool/v1/events_pb.js";
import { AgentDisposition, TaskOutcome } from "../../gen/agentainer/pool/v1/pool_pb.js";
import { dispositionToProto, outcomeToProto, poolToProto } from "./convert.js";
import type { AgentEventName, PoolEventName, PoolListener } from "./pool-manager.js";

const agentTypes: Record<AgentEventName, AgentLifecycleEventType> = {
  created: AgentLifecycleEventType.CREATED,
  ready: AgentLifecycleEventType.READY,
  leased: AgentLifecycleEventType.LEASED,
  released: AgentLifecycleEventType.RELEASED,
  lease_expired: AgentLifecycleEventType.LEASE_EXPIRED,
  recycled: AgentLifecycleEventType.RECYCLED,
  unhealthy: AgentLifecycleEventType.UNHEALTHY,
  removed: AgentLifecycleEventType.REMOVED,
};

const poolTypes: Record<PoolEventName, PoolEventType> = {
  created: PoolEventType.CREATED,
  updated: PoolEventType.UPDATED,
  warm_requested: PoolEventType.WARM_REQUESTED,
  drain_started: PoolEventType.DRAIN_STARTED,
  drained: PoolEventType.DRAINED,
  deleted: PoolEventType.DELETED,
};

/** Publishes pool and agent changes on `agentainer.pool.<entity>.<event>.<pool_id>`. */
export function poolEventPublisher(bus: EventBus, now: () => number): PoolListener {
  return {
    agentChanged(pool, agent, event, extra) {
      publishEvent(
        bus,
        subjects.pool.agent(event, pool.poolId),
        AgentLifecycleEventSchema,
        create(AgentLifecycleEventSchema, {
          type: agentTypes[event],
          poolId: pool.poolId,
          agentId: agent.agentId,
          containerId: agent.containerId,
          leaseId: extra.lease?.leaseId ?? "",
          holder: extra.lease?.holder ?? "",
          outcome: extra.outcome ? outcomeToProto[extra.outcome] : TaskOutcome.UNSPECIFIED,
          disposition: extra.disposition
            ? dispositionToProto[extra.disposition]
            : AgentDisposition.UNSPECIFIED,
          uses: BigInt(agent.uses),
          reason: extra.reason ?? "",
          time: msToTimestamp(now()),
        }),
      );
    },
    poolChanged(pool, event, reason) {
      publishEvent(
        bus,
        subjects.pool.pool(event, pool.poolId),
        PoolEventSchema,
        create(PoolEventSchema, {
          type: poolTypes[event],
          poolId: pool.poolId,
          pool: poolToProto(pool, now()),
          reason,
          time: msToTimestamp(now()),
        }),
      );
    },
  };
}
