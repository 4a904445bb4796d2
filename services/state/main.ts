import { loadConfig } from "../../lib/config.js";
import { connectEventBus, connectRedis } from "../../lib/infra.js";
import { createLogger } from "../../lib/logger.js";
import type { EventBus } from "../../lib/events/event-bus.js";
import { serveParts, type RunningService, type ServiceParts } from "../../lib/service-parts.js";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { stateConfigSchema } from "./config.js";
import { createStateChangeFeed } from "./events.js";
import { InMemoryStateStore } from "./memory-store.js";
import { RedisStateStore } from "./redis-store.js";
import { stateRoutes } from "./service.js";
import { createStateManager } from "./state.js";
import { maxMessageBytes } from "../../lib/server.js";

export type { RunningService };

export interface StateOverrides {
  /** The event bus (instead of NATS_URL); the caller closes it. */
  bus?: EventBus;
}

/** Composition root of the State service: config, Redis or memory, NATS or in-process, routes. */
export async function createStateService(
  environment: Readonly<Record<string, string | undefined>>,
  overrides: StateOverrides = {},
): Promise<ServiceParts> {
  const config = loadConfig(stateConfigSchema, environment);
  const logger = createLogger({ name: "state", level: config.LOG_LEVEL });
  const redis =
    config.REDIS_URL === undefined ? undefined : await connectRedis(config.REDIS_URL, logger);
  if (redis === undefined)
    logger.warn("REDIS_URL not set: state is kept in memory and lost when this process exits");
  const bus = overrides.bus ?? (await connectEventBus(config.NATS_URL, logger, "agentainer-state"));

  const state = createStateManager({
    store:
      redis === undefined
        ? new InMemoryStateStore()
        : new RedisStateStore(redis, config.STATE_REDIS_PREFIX),
    feed: createStateChangeFeed(bus, logger, config.STATE_EVENT_MAX_VALUE_BYTES),
    now: Date.now,
    limits: {
      maxWorkflowBytes: config.STATE_MAX_WORKFLOW_BYTES,
      maxValueBytes: config.STATE_MAX_VALUE_BYTES,
    },
    watchBufferSize: config.STATE_WATCH_BUFFER,
  });

  return {
    name: "state",
    services: [StateService],
    logger,
    routes: (router, { shutdownSignal }) => stateRoutes({ state, logger, shutdownSignal })(router),
    listen: { host: config.HOST, port: config.PORT, shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS },
    // A Batch may carry 1000 operations of a value each: that, and room for keys and framing.
    readMaxBytes: Math.max(maxMessageBytes, 1000 * config.STATE_MAX_VALUE_BYTES + 16 * 1024 * 1024),
    apiToken: config.AGENTAINER_API_TOKEN,
    async close() {
      if (overrides.bus === undefined) await bus.close();
      await redis?.quit();
    },
  };
}

/** The State service on its own port. */
export async function startStateService(
  environment: Readonly<Record<string, string | undefined>>,
  overrides: StateOverrides = {},
): Promise<RunningService> {
  return serveParts(await createStateService(environment, overrides));
}
