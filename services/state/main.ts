import { loadConfig } from "../../lib/config.js";
import { createErrorInterceptor } from "../../lib/error-interceptor.js";
import { connectEventBus, connectRedis } from "../../lib/infra.js";
import { createLogger } from "../../lib/logger.js";
import { startServer, type RunningServer } from "../../lib/server.js";
import type { Logger } from "../../lib/logger.js";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { stateConfigSchema } from "./config.js";
import { createStateChangeFeed } from "./events.js";
import { InMemoryStateStore } from "./memory-store.js";
import { RedisStateStore } from "./redis-store.js";
import { stateRoutes } from "./service.js";
import { createStateManager } from "./state.js";

/** A started service: its server, plus the logger its shutdown reports to. */
export interface RunningService extends RunningServer {
  readonly logger: Logger;
}

/** Composition root of the State service: config, Redis or memory, NATS or in-process, server. */
export async function startStateService(
  environment: Readonly<Record<string, string | undefined>>,
): Promise<RunningService> {
  const config = loadConfig(stateConfigSchema, environment);
  const logger = createLogger({ name: "state", level: config.LOG_LEVEL });
  const redis =
    config.REDIS_URL === undefined ? undefined : await connectRedis(config.REDIS_URL, logger);
  if (redis === undefined)
    logger.warn("REDIS_URL not set: state is kept in memory and lost when this process exits");
  const bus = await connectEventBus(config.NATS_URL, logger, "agentainer-state");

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

  const server = await startServer({
    name: "state",
    services: [StateService],
    routes: (router, { shutdownSignal }) => stateRoutes({ state, logger, shutdownSignal })(router),
    host: config.HOST,
    port: config.PORT,
    logger,
    interceptors: [createErrorInterceptor(logger)],
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
  });

  return {
    port: server.port,
    url: server.url,
    health: server.health,
    logger,
    async close() {
      await server.close();
      await bus.close();
      await redis?.quit();
    },
  };
}
