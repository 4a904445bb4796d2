import { createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { loadConfig, ConfigError } from "../../lib/config.js";
import { createErrorInterceptor } from "../../lib/error-interceptor.js";
import { connectEventBus, connectRedis } from "../../lib/infra.js";
import { createLogger, type Logger } from "../../lib/logger.js";
import { startServer, type RunningServer } from "../../lib/server.js";
import { ExecutorService } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { PoolService } from "../../gen/agentainer/pool/v1/pool_pb.js";
import { poolConfigSchema } from "./config.js";
import { poolEventPublisher } from "./events.js";
import { executorBackend } from "./executor-backend.js";
import { InMemoryPoolStore } from "./memory-store.js";
import { PoolManager } from "./pool-manager.js";
import { subscribePrewarming } from "./prewarm.js";
import { RedisPoolStore } from "./redis-store.js";
import { poolRoutes } from "./service.js";

/** A started Pool service. */
export interface RunningPool extends RunningServer {
  readonly logger: Logger;
}

export interface PoolOverrides {
  /** Transport to the Executor (instead of EXECUTOR_URL). */
  executorTransport?: Transport;
}

/** Composition root of the Pool service: config, Executor client, events, manager, server. */
export async function startPoolService(
  environment: Readonly<Record<string, string | undefined>>,
  overrides: PoolOverrides = {},
): Promise<RunningPool> {
  const config = loadConfig(poolConfigSchema, environment);
  const transport =
    overrides.executorTransport ??
    (config.EXECUTOR_URL === undefined
      ? undefined
      : createGrpcTransport({ baseUrl: config.EXECUTOR_URL }));
  if (transport === undefined) {
    throw new ConfigError(["EXECUTOR_URL: required: the Executor that runs the pool's agents"]);
  }
  const logger = createLogger({ name: "pool", level: config.LOG_LEVEL });
  const bus = await connectEventBus(config.NATS_URL, logger, "agentainer-pool");
  const executor = createClient(ExecutorService, transport);
  const backend = executorBackend(executor, bus, config.POOL_AGENT_STARTUP_TIMEOUT_MS);
  const now = Date.now;
  const redis =
    config.REDIS_URL === undefined ? undefined : await connectRedis(config.REDIS_URL, logger);
  if (redis === undefined) {
    logger.warn(
      "REDIS_URL not set: pools and leases are kept in memory and lost when this process exits",
    );
  }
  const pools = new PoolManager({
    backend,
    store:
      redis === undefined
        ? new InMemoryPoolStore()
        : new RedisPoolStore(redis, config.POOL_REDIS_PREFIX),
    listener: poolEventPublisher(bus, now),
    logger,
    now,
    reconcileIntervalMs: config.POOL_RECONCILE_INTERVAL_MS,
  });

  const recovered = await pools.restore();
  if (recovered.pools > 0 || recovered.strays > 0) {
    logger.info(
      recovered,
      "pools restored: agents adopted, strays destroyed, lost agents forgotten",
    );
  }
  const prewarming = subscribePrewarming(bus, pools, logger);

  const server = await startServer({
    name: "pool",
    services: [PoolService],
    routes: poolRoutes({
      pools,
      backend,
      checkImage: async (image) => {
        await executor.getImage({ image });
      },
      maxSizeLimit: config.POOL_MAX_SIZE_LIMIT,
      defaultWaitMs: config.POOL_ACQUIRE_DEFAULT_WAIT_MS,
      now,
    }),
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
      prewarming.unsubscribe();
      await pools.close();
      await bus.close();
      await redis?.quit();
    },
  };
}
