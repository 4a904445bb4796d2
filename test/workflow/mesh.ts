// The four services of the mesh started for workflow tests, each on its own loopback port and
// talking over HTTP/2 as in production: State (Redis), Executor (the real Docker engine), Pool
// and Workflow. The Workflow service can be left out to run it as a separate process.
import { randomUUID } from "node:crypto";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ExecutorService } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { PoolService } from "../../gen/agentainer/pool/v1/pool_pb.js";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { WorkflowService } from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { startExecutorService, type RunningExecutor } from "../../services/executor/main.js";
import { connectDocker } from "../../services/executor/runtime/docker.js";
import { startPoolService, type RunningPool } from "../../services/pool/main.js";
import { startStateService, type RunningService } from "../../services/state/main.js";
import { startWorkflowService, type RunningWorkflow } from "../../services/workflow/main.js";

export const nodeImage = "agentainer/node-agent:local";
export const shellImage = "agentainer/busybox:local";
/** The flow agent (agents/flow-agent.ts): stream when run as an agent's main process. */
export const flowAgent = ["node", "/agents/flow-agent.mjs"];

export interface Mesh {
  state: RunningService;
  executor: RunningExecutor;
  pool: RunningPool;
  workflow: RunningWorkflow | undefined;
  /** Env of a Workflow service process pointed at this mesh. */
  workflowEnv: Record<string, string>;
  clients: {
    workflow: Client<typeof WorkflowService>;
    pool: Client<typeof PoolService>;
    executor: Client<typeof ExecutorService>;
    state: Client<typeof StateService>;
  };
  close(): Promise<void>;
}

export async function startMesh(opts: {
  redisUrl: string;
  natsUrl: string;
  /** Start the Workflow service in this process (default true). */
  withWorkflow?: boolean;
  /** Extra env of the Workflow service. */
  workflowEnv?: Record<string, string>;
}): Promise<Mesh> {
  const runtime = await connectDocker();
  if (runtime === undefined) throw new Error("no Docker engine: run bash scripts/setup.sh");
  const base = { PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent", NATS_URL: opts.natsUrl };
  const prefix = `t${randomUUID().slice(0, 8)}:`;
  const state = await startStateService({
    ...base,
    REDIS_URL: opts.redisUrl,
    STATE_REDIS_PREFIX: `${prefix}state:`,
  });
  const executor = await startExecutorService(
    {
      ...base,
      STATE_URL: state.url,
      EXECUTOR_NODE_ID: `wf-${randomUUID().slice(0, 8)}`,
      EXECUTOR_DEFAULT_MEMORY_BYTES: String(64 * 1024 * 1024),
    },
    { runtime },
  );
  const pool = await startPoolService({
    ...base,
    EXECUTOR_URL: executor.url,
    POOL_RECONCILE_INTERVAL_MS: "200",
  });
  const workflowEnv: Record<string, string> = {
    ...base,
    EXECUTOR_URL: executor.url,
    POOL_URL: pool.url,
    STATE_URL: state.url,
    REDIS_URL: opts.redisUrl,
    WORKFLOW_REDIS_PREFIX: `${prefix}workflow:`,
    WORKFLOW_PROGRESS_INTERVAL_MS: "100",
    ...opts.workflowEnv,
  };
  const workflow =
    opts.withWorkflow === false ? undefined : await startWorkflowService(workflowEnv);
  const client = <S extends Parameters<typeof createClient>[0]>(service: S, url: string) =>
    createClient(service, createGrpcTransport({ baseUrl: url }));
  return {
    state,
    executor,
    pool,
    workflow,
    workflowEnv,
    clients: {
      workflow: client(WorkflowService, workflow?.url ?? "http://127.0.0.1:1") as Client<
        typeof WorkflowService
      >,
      pool: client(PoolService, pool.url) as Client<typeof PoolService>,
      executor: client(ExecutorService, executor.url) as Client<typeof ExecutorService>,
      state: client(StateService, state.url) as Client<typeof StateService>,
    },
    async close() {
      await workflow?.close();
      await pool.close();
      await executor.close();
      await state.close();
    },
  };
}
