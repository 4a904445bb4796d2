import { commonConfigSchema, env, loadConfig } from "../lib/config.js";
import type { EventBus } from "../lib/events/event-bus.js";
import { connectEventBus } from "../lib/infra.js";
import { createLogger, type Logger } from "../lib/logger.js";
import { inMemoryTransport, serverInterceptors, type ServiceParts } from "../lib/service-parts.js";
import { maxMessageBytes, startServer, type RunningServer } from "../lib/server.js";
import { createExecutorService } from "./executor/main.js";
import { createPoolService } from "./pool/main.js";
import { createStateService } from "./state/main.js";
import type { WorkflowEngine } from "./workflow/engine.js";
import { createWorkflowService } from "./workflow/main.js";

/** The one-process mode's own settings; each service reads the rest of the environment. */
const embeddedConfigSchema = commonConfigSchema.extend({
  /** The one port all four services share. */
  PORT: env.port(7070),
});

/** The four services running in this process. */
export interface Embedded extends RunningServer {
  readonly logger: Logger;
  readonly engine: WorkflowEngine;
  /** The container runtime the Executor chose ("docker" or "local"). */
  readonly runtime: string;
}

/**
 * The embedded default (`agentainer up`): State, Executor, Pool and Workflow in one process, on
 * one port, calling each other through in-memory transports (the same handlers as over HTTP/2,
 * without a socket) and sharing one event bus. With REDIS_URL and NATS_URL set they use Redis and
 * NATS exactly as the mesh does; otherwise state, pools, runs and events live in memory. The
 * Executor uses Docker when an engine answers, else the local-process runtime (no isolation, said
 * loudly in the log).
 */
export async function startEmbedded(
  environment: Readonly<Record<string, string | undefined>>,
): Promise<Embedded> {
  const config = loadConfig(embeddedConfigSchema, environment);
  const logger = createLogger({ name: "agentainer", level: config.LOG_LEVEL });
  const bus: EventBus = await connectEventBus(config.NATS_URL, logger, "agentainer");
  const shutdown = new AbortController();
  const built: ServiceParts[] = [];
  try {
    const state = await createStateService(environment, { bus });
    built.push(state);
    const stateTransport = inMemoryTransport(state, shutdown.signal);
    const executor = await createExecutorService(environment, { bus, stateTransport });
    built.push(executor);
    const executorTransport = inMemoryTransport(executor, shutdown.signal);
    const pool = await createPoolService(environment, { bus, executorTransport });
    built.push(pool);
    const workflow = await createWorkflowService(environment, {
      bus,
      stateTransport,
      executorTransport,
      poolTransport: inMemoryTransport(pool, shutdown.signal),
    });
    built.push(workflow);
    const server = await startServer({
      name: "agentainer",
      services: built.flatMap((p) => p.services),
      routes: (router, ctx) => {
        for (const p of built) p.routes(router, ctx);
      },
      host: config.HOST,
      port: config.PORT,
      logger,
      interceptors: serverInterceptors(logger, config.AGENTAINER_API_TOKEN),
      shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
      // One server for all: it reads what the most demanding of them needs.
      readMaxBytes: Math.max(maxMessageBytes, ...built.map((p) => p.readMaxBytes ?? 0)),
    });
    logger.info(
      { url: server.url, runtime: executor.runtime.kind },
      "agentainer up: workflow, pool, state and executor services on one port",
    );
    return {
      port: server.port,
      url: server.url,
      health: server.health,
      logger,
      engine: workflow.engine,
      runtime: executor.runtime.kind,
      async close() {
        await server.close();
        shutdown.abort();
        await closeAll(built);
        await bus.close();
      },
    };
  } catch (err) {
    shutdown.abort();
    await closeAll(built);
    await bus.close();
    throw err;
  }
}

/** Stops services in the reverse order of their start (the workflow first, the state last). */
async function closeAll(parts: ServiceParts[]): Promise<void> {
  for (const p of [...parts].reverse()) {
    await p.close().catch((err: unknown) => p.logger.error({ err }, "close failed"));
  }
}
