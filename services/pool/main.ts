import { createClient, type Transport } from "@connectrpc/connect";
import { createServiceTransport } from "../../lib/transport.js";
import { loadConfig, ConfigError } from "../../lib/config.js";
import type { EventBus } from "../../lib/events/event-bus.js";
import { connectEventBus, connectRedis } from "../../lib/infra.js";
import { createLogger } from "../../lib/logger.js";
import { serveParts, type RunningService, type ServiceParts } from "../../lib/service-parts.js";
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
export type RunningPool = RunningService;

export interface PoolOverrides {
  /** Transport to the Executor (instead of EXECUTOR_URL). */
  executorTransport?: Transport;
  /** The event bus (instead of NATS_URL); the caller closes it. */
  bus?: EventBus;
}

/** Composition root of the Pool service: config, Executor client, events, manager, routes. */
export async function createPoolService(
  environment: Readonly<Record<string, string | undefined>>,
  overrides: PoolOverrides = {},
): Promise<ServiceParts> {
  const config = loadConfig(poolConfigSchema, environment);
  const transport =
    overrides.executorTransport ??
    (config.EXECUTOR_URL === undefined
      ? undefined
      : createServiceTransport(config.EXECUTOR_URL, config.AGENTAINER_API_TOKEN));
  if (transport === undefined) {
    throw new ConfigError(["EXECUTOR_URL: required: the Executor that runs the pool's agents"]);
  }
  const logger = createLogger({ name: "pool", level: config.LOG_LEVEL });
  const bus = overrides.bus ?? (await connectEventBus(config.NATS_URL, logger, "agentainer-pool"));
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

  return {
    name: "pool",
    services: [PoolService],
    logger,
    routes: (router, { shutdownSignal }) =>
      poolRoutes({
        pools,
        backend,
        checkImage: async (image) => {
          await executor.getImage({ image });
        },
        maxSizeLimit: config.POOL_MAX_SIZE_LIMIT,
        defaultWaitMs: config.POOL_ACQUIRE_DEFAULT_WAIT_MS,
        now,
        logger,
        shutdownSignal,
      })(router),
    listen: { host: config.HOST, port: config.PORT, shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS },
    apiToken: config.AGENTAINER_API_TOKEN,
    async close() {
      prewarming.unsubscribe();
      await pools.close();
      if (overrides.bus === undefined) await bus.close();
      await redis?.quit();
    },
  };
}

/** The Pool service on its own port. */
export async function startPoolService(
  environment: Readonly<Record<string, string | undefined>>,
  overrides: PoolOverrides = {},
): Promise<RunningPool> {
  return serveParts(await createPoolService(environment, overrides));
}
