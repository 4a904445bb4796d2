import { createClient, type Transport } from "@connectrpc/connect";
import { ConfigError, loadConfig } from "../../lib/config.js";
import { createServiceTransport } from "../../lib/transport.js";
import { fromConnectError } from "../../lib/error-interceptor.js";
import type { EventBus } from "../../lib/events/event-bus.js";
import { connectEventBus, connectRedis } from "../../lib/infra.js";
import { createLogger } from "../../lib/logger.js";
import { serveParts, type RunningService, type ServiceParts } from "../../lib/service-parts.js";
import { ExecutorService } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { PoolService } from "../../gen/agentainer/pool/v1/pool_pb.js";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { WorkflowService } from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { ExecutorTaskRunner, poolClientPort, stateClientPort, stateFacade } from "./clients.js";
import { workflowConfigSchema } from "./config.js";
import { WorkflowEngine } from "./engine.js";
import { InMemoryRunStore } from "./memory-run-store.js";
import { RedisRunStore } from "./redis-run-store.js";
import { workflowRoutes } from "./service.js";

/** A started Workflow service. */
export interface RunningWorkflow extends RunningService {
  readonly engine: WorkflowEngine;
}

export interface WorkflowOverrides {
  /** Transports to the other services (instead of EXECUTOR_URL, POOL_URL, STATE_URL). */
  executorTransport?: Transport;
  poolTransport?: Transport;
  stateTransport?: Transport;
  /** The event bus (instead of NATS_URL); the caller closes it. */
  bus?: EventBus;
}

function transportTo(
  given: Transport | undefined,
  url: string | undefined,
  name: string,
  what: string,
  apiToken: string | undefined,
): Transport {
  if (given !== undefined) return given;
  if (url === undefined) throw new ConfigError([`${name}: required: ${what}`]);
  return createServiceTransport(url, apiToken);
}

/**
 * Composition root of the Workflow service: config, clients of the Executor, Pool and State
 * services, the run store (Redis, or memory), events, the engine (which resumes the runs nobody
 * drives), and its routes.
 */
export async function createWorkflowService(
  environment: Readonly<Record<string, string | undefined>>,
  overrides: WorkflowOverrides = {},
): Promise<ServiceParts & { readonly engine: WorkflowEngine }> {
  const config = loadConfig(workflowConfigSchema, environment);
  const executorTransport = transportTo(
    overrides.executorTransport,
    config.EXECUTOR_URL,
    "EXECUTOR_URL",
    "the Executor that runs the tasks",
    config.AGENTAINER_API_TOKEN,
  );
  const poolTransport = transportTo(
    overrides.poolTransport,
    config.POOL_URL,
    "POOL_URL",
    "the Pool service that leases warm agents",
    config.AGENTAINER_API_TOKEN,
  );
  const stateTransport = transportTo(
    overrides.stateTransport,
    config.STATE_URL,
    "STATE_URL",
    "the State service of the workflows' state",
    config.AGENTAINER_API_TOKEN,
  );
  const logger = createLogger({ name: "workflow", level: config.LOG_LEVEL });
  const redis =
    config.REDIS_URL === undefined ? undefined : await connectRedis(config.REDIS_URL, logger);
  if (redis === undefined) {
    logger.warn("REDIS_URL not set: workflows are kept in memory and lost when this process exits");
  }
  const bus =
    overrides.bus ?? (await connectEventBus(config.NATS_URL, logger, "agentainer-workflow"));
  const executor = createClient(ExecutorService, executorTransport);
  const stateClient = createClient(StateService, stateTransport);
  const tasks = new ExecutorTaskRunner(executor, logger);
  const limits = {
    poolMaxSizeLimit: config.WORKFLOW_POOL_MAX_SIZE_LIMIT,
    maxMapItems: config.WORKFLOW_MAX_MAP_ITEMS,
  };
  const engine = new WorkflowEngine({
    store:
      redis === undefined
        ? new InMemoryRunStore()
        : new RedisRunStore(redis, config.WORKFLOW_REDIS_PREFIX),
    tasks,
    pools: poolClientPort(createClient(PoolService, poolTransport)),
    state: stateClientPort(stateClient),
    bus,
    logger,
    checkImage: async (image) => {
      try {
        await executor.getImage({ image });
      } catch (err) {
        throw fromConnectError(err, "executor");
      }
    },
    limits,
    settings: {
      leaseTtlMs: config.WORKFLOW_LEASE_TTL_MS,
      acquireWaitMs: config.WORKFLOW_ACQUIRE_WAIT_MS,
      leaseMaxTasks: config.WORKFLOW_LEASE_MAX_TASKS,
      leaseMaxAgeMs: config.WORKFLOW_LEASE_MAX_AGE_MS,
      progressIntervalMs: config.WORKFLOW_PROGRESS_INTERVAL_MS,
      maxMapItems: config.WORKFLOW_MAX_MAP_ITEMS,
      maxOutputBytes: config.WORKFLOW_MAX_OUTPUT_BYTES,
    },
    owner: config.WORKFLOW_INSTANCE_ID,
    claimTtlMs: config.WORKFLOW_CLAIM_TTL_MS,
  });
  await engine.start();

  return {
    name: "workflow",
    services: [WorkflowService],
    logger,
    engine,
    routes: (router, ctx) =>
      workflowRoutes({ engine, state: stateFacade(stateClient), limits })(router, ctx),
    listen: { host: config.HOST, port: config.PORT, shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS },
    apiToken: config.AGENTAINER_API_TOKEN,
    async close() {
      await engine.close();
      tasks.close();
      if (overrides.bus === undefined) await bus.close();
      await redis?.quit();
    },
  };
}

/** The Workflow service on its own port. */
export async function startWorkflowService(
  environment: Readonly<Record<string, string | undefined>>,
  overrides: WorkflowOverrides = {},
): Promise<RunningWorkflow> {
  const parts = await createWorkflowService(environment, overrides);
  return { ...(await serveParts(parts)), engine: parts.engine };
}
