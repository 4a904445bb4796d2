import { cpus, totalmem } from "node:os";
import { createClient, type Transport } from "@connectrpc/connect";
import { createServiceTransport } from "../../lib/transport.js";
import { loadConfig } from "../../lib/config.js";
import type { EventBus } from "../../lib/events/event-bus.js";
import { connectEventBus } from "../../lib/infra.js";
import { createLogger, type Logger } from "../../lib/logger.js";
import { serveParts, type RunningService, type ServiceParts } from "../../lib/service-parts.js";
import { ExecutorService } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { createBatchingStateClient } from "../state/batching-client.js";
import { AgentManager } from "./agent-manager.js";
import { createAgentHandlers } from "./agent-service.js";
import { executorConfigSchema, type ExecutorConfig } from "./config.js";
import { prepareWorkDir, type ExecutorContext } from "./context.js";
import { agentEventPublisher, taskEventPublisher } from "./events.js";
import { FifoStock } from "./fifo-stock.js";
import type { StateHandler } from "./mailbox.js";
import { selectRuntime } from "./runtime/select.js";
import type { ContainerRuntime } from "./runtime/runtime.js";
import { relayStateRequest } from "./state-relay.js";
import { executorRoutes } from "./service.js";
import { TaskRegistry } from "./task-registry.js";

/** A started Executor: its server, plus the logger and runtime it uses. */
export interface RunningExecutor extends RunningService {
  readonly runtime: ContainerRuntime;
}

/** What a caller may supply instead of the environment (tests, the one-process mode). */
export interface ExecutorOverrides {
  runtime?: ContainerRuntime;
  /** Transport to the State service (instead of STATE_URL). */
  stateTransport?: Transport;
  /** The event bus (instead of NATS_URL); the caller closes it. */
  bus?: EventBus;
}

/** The state handler agents' requests go to: relayed to the State service, or refused. */
function stateHandler(config: ExecutorConfig, overrides: ExecutorOverrides): StateHandler {
  const transport =
    overrides.stateTransport ??
    (config.STATE_URL === undefined
      ? undefined
      : createServiceTransport(config.STATE_URL, config.AGENTAINER_API_TOKEN));
  if (transport === undefined) {
    return () =>
      Promise.resolve({
        ok: false,
        code: "UNAVAILABLE",
        error: "this Executor has no State service configured (STATE_URL)",
      });
  }
  const state = createBatchingStateClient(createClient(StateService, transport));
  return (workflowId, request) => relayStateRequest(state, workflowId, request);
}

/** Composition root of the Executor: config, runtime, registries, routes. */
export async function createExecutorService(
  environment: Readonly<Record<string, string | undefined>>,
  overrides: ExecutorOverrides = {},
): Promise<ServiceParts & { readonly runtime: ContainerRuntime }> {
  const config = loadConfig(executorConfigSchema, environment);
  const logger = createLogger({ name: "executor", level: config.LOG_LEVEL });
  // What this function made, closed again (last first) if a later step of the start fails.
  const made: Array<() => Promise<void>> = [];
  try {
    return await compose(config, logger, overrides, made);
  } catch (err) {
    for (const close of made.reverse()) {
      await close().catch((closeErr: unknown) =>
        logger.warn({ err: closeErr }, "could not undo a step of a failed start"),
      );
    }
    throw err;
  }
}

/** The steps of createExecutorService; each thing it makes is pushed on `made` once made. */
async function compose(
  config: ExecutorConfig,
  logger: Logger,
  overrides: ExecutorOverrides,
  made: Array<() => Promise<void>>,
): Promise<ServiceParts & { readonly runtime: ContainerRuntime }> {
  const runtime =
    overrides.runtime ??
    (await selectRuntime(config.EXECUTOR_RUNTIME, config.DOCKER_SOCKET, logger));
  if (overrides.runtime === undefined) made.push(() => runtime.close());
  const bus =
    overrides.bus ?? (await connectEventBus(config.NATS_URL, logger, "agentainer-executor"));
  if (overrides.bus === undefined) made.push(() => bus.close());
  const now = Date.now;
  const tasks = new TaskRegistry({
    nodeId: config.EXECUTOR_NODE_ID,
    maxOutputBytes: config.EXECUTOR_MAX_OUTPUT_BYTES,
    retention: {
      ms: config.EXECUTOR_TASK_RETENTION_MS,
      maxTasks: config.EXECUTOR_TASK_RETENTION_MAX,
      maxOutputBytes: config.EXECUTOR_TASK_RETENTION_BYTES,
    },
    listener: taskEventPublisher(bus, now),
  });
  made.push(async () => tasks.close());
  const fifos = await FifoStock.create(await prepareWorkDir(config.EXECUTOR_WORK_DIR));
  made.push(() => fifos.close());
  const ctx: ExecutorContext = {
    runtime,
    tasks,
    limits: {
      defaults: {
        cpuMillis: Math.min(config.EXECUTOR_DEFAULT_CPU_MILLIS, cpus().length * 1000),
        memoryBytes: config.EXECUTOR_DEFAULT_MEMORY_BYTES,
        pids: config.EXECUTOR_DEFAULT_PIDS,
      },
      defaultTimeoutMs: config.EXECUTOR_DEFAULT_TASK_TIMEOUT_MS,
      maxInputBytes: config.EXECUTOR_MAX_INPUT_BYTES,
      allowHostNetwork: config.EXECUTOR_ALLOW_HOST_NETWORK,
      hostCpus: cpus().length,
      hostMemoryBytes: totalmem(),
    },
    nodeId: config.EXECUTOR_NODE_ID,
    workDir: config.EXECUTOR_WORK_DIR,
    fifos,
    state: stateHandler(config, overrides),
    logger,
    now,
  };
  const agents = new AgentManager(ctx, agentEventPublisher(bus, now));
  made.push(() => agents.close());
  const recovered = await agents.recover();
  if (recovered.adopted + recovered.removed > 0) {
    logger.info(recovered, "containers of a previous run: exec agents adopted, the rest removed");
  }
  logger.info(
    { runtime: runtime.kind, nodeId: config.EXECUTOR_NODE_ID, workDir: config.EXECUTOR_WORK_DIR },
    "executor ready",
  );

  return {
    name: "executor",
    services: [ExecutorService],
    logger,
    runtime,
    routes: (router, { shutdownSignal }) =>
      executorRoutes({ ctx, agents: createAgentHandlers(ctx, agents), shutdownSignal })(router),
    listen: { host: config.HOST, port: config.PORT, shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS },
    apiToken: config.AGENTAINER_API_TOKEN,
    async close() {
      // Live tasks end CANCELLED and their containers go; agents are destroyed.
      await Promise.all(
        tasks.live().map(async (t) => {
          await t.cancel?.("executor shutting down", 0);
          await t.done;
        }),
      );
      await agents.close();
      tasks.close();
      await fifos.close();
      if (overrides.bus === undefined) await bus.close();
      if (overrides.runtime === undefined) await runtime.close();
    },
  };
}

/** The Executor on its own port. */
export async function startExecutorService(
  environment: Readonly<Record<string, string | undefined>>,
  overrides: ExecutorOverrides = {},
): Promise<RunningExecutor> {
  const parts = await createExecutorService(environment, overrides);
  return { ...(await serveParts(parts)), runtime: parts.runtime };
}
