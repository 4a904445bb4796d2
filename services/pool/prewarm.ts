import type { EventBus, Subscription } from "../../lib/events/event-bus.js";
import { subscribeEvents } from "../../lib/events/typed.js";
import type { Logger } from "../../lib/logger.js";
import { ExecutionMode } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { WorkflowEventSchema } from "../../gen/agentainer/workflow/v1/events_pb.js";
import type { PoolManager } from "./pool-manager.js";

/** Subject of every workflow's step_starting events. */
export const stepStartingSubject = "agentainer.workflow.step.starting.*";

/**
 * Pre-warming from the DAG: when a workflow announces that a pooled step of some concurrency is
 * about to start, the pool is asked to hold min(concurrency, max_size) agents for its idle
 * timeout, so the step's first Acquires find warm agents. An event for an unknown or inactive
 * pool is ignored (the Acquire will say what is wrong); a lost event only costs cold starts.
 */
export function subscribePrewarming(
  bus: EventBus,
  pools: PoolManager,
  logger: Logger,
): Subscription {
  return subscribeEvents(
    bus,
    stepStartingSubject,
    WorkflowEventSchema,
    (event) => {
      if (event.payload.case !== "stepStarting") return;
      const step = event.payload.value;
      if (step.execution !== ExecutionMode.POOLED || step.poolId === "" || step.concurrency < 1)
        return;
      try {
        const pool = pools.get(step.poolId);
        if (pool.status !== "active") return;
        pools.warm(
          step.poolId,
          step.concurrency,
          pool.policy.idleTimeoutMs,
          `workflow ${event.workflowId} step ${step.stepId} width ${step.width}`,
        );
      } catch (err) {
        logger.debug({ err, poolId: step.poolId }, "step_starting for a pool that cannot warm");
      }
    },
    (err, subject) => logger.warn({ err, subject }, "undecodable workflow event dropped"),
  );
}
