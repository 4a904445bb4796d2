import { Command, Option } from "commander";
import { ConfigError } from "../lib/config.js";
import type { Logger } from "../lib/logger.js";
import { installShutdownHandlers } from "../lib/server.js";

const services = ["workflow", "pool", "state", "executor"] as const;
type ServiceName = (typeof services)[number];

const environmentHelp = `
Environment (every service):
  PORT                  port to listen on (workflow: 7071, pool: 7072, state: 7073, executor: 7074;
                        0 picks a free one)
  HOST                  address to bind (default 0.0.0.0)
  LOG_LEVEL             fatal|error|warn|info|debug|trace|silent (default info)
  REDIS_URL             redis://host:port; unset keeps data in memory (lost on exit)
  NATS_URL              nats://host:port; unset keeps events inside the process
  SHUTDOWN_TIMEOUT_MS   how long SIGTERM waits for calls to finish (default 10000)
  AGENTAINER_API_TOKEN  when set, every call but health needs "authorization: Bearer <token>",
                        and the service sends it to the services it calls (16+ characters)

Workflow service (port 7071):
  EXECUTOR_URL, POOL_URL, STATE_URL  the other services (required)
  WORKFLOW_CLAIM_TTL_MS        a run's claim without renewal; a crashed instance's runs are
                               resumed after it (15000)
  WORKFLOW_LEASE_TTL_MS        lease time to live asked of the Pool, renewed at a third (60000)
  WORKFLOW_ACQUIRE_WAIT_MS     how long a pooled task waits for an agent (300000)
  WORKFLOW_LEASE_MAX_TASKS     consecutive tasks of a step on one leased agent (1000)
  WORKFLOW_LEASE_MAX_AGE_MS    longest a step keeps one lease across tasks (30000)
  WORKFLOW_PROGRESS_INTERVAL_MS  progress events coalesced to one per interval (250)
  WORKFLOW_MAX_MAP_ITEMS       most items of a MAP step (1000000)
  WORKFLOW_MAX_OUTPUT_BYTES    largest step output assembled whole, JSON bytes (4194304)
  WORKFLOW_POOL_MAX_SIZE_LIMIT largest inline pool: the Pool's POOL_MAX_SIZE_LIMIT (256)
  WORKFLOW_REDIS_PREFIX        prefix of the service's Redis keys (agentainer:workflow:)
  WORKFLOW_INSTANCE_ID         this instance's name in run claims (hostname-pid-random)

Executor service (port 7074):
  EXECUTOR_RUNTIME             auto (Docker if an engine answers, else local), docker, or local
                               (child processes on the host: NO isolation)
  DOCKER_SOCKET                the Docker engine's socket (/var/run/docker.sock)
  STATE_URL                    the State service agents' state operations go to
  EXECUTOR_NODE_ID             this node's name on container labels and events (the hostname)
  EXECUTOR_WORK_DIR            host directory of task mailboxes, mounted at /agentainer
  EXECUTOR_DEFAULT_CPU_MILLIS, EXECUTOR_DEFAULT_MEMORY_BYTES, EXECUTOR_DEFAULT_PIDS
                               container limits when a request leaves them 0 (1000, 512 MiB, 512)
  EXECUTOR_DEFAULT_TASK_TIMEOUT_MS  task timeout when a request leaves it unset (3600000)
  EXECUTOR_MAX_INPUT_BYTES     largest task input (4194304)
  EXECUTOR_MAX_OUTPUT_BYTES    stdout/stderr kept per task and stream (1048576)
  EXECUTOR_TASK_RETENTION_MS   how long ended tasks stay queryable (86400000)
  EXECUTOR_TASK_RETENTION_MAX, EXECUTOR_TASK_RETENTION_BYTES
                               most ended tasks, and bytes of their output, kept; past either
                               the oldest-ended are forgotten sooner (100000, 268435456)
  EXECUTOR_ALLOW_HOST_NETWORK  allow NETWORK_MODE_HOST (false)

Pool service (port 7072):
  EXECUTOR_URL                 the Executor that runs the pools' agents (required)
  POOL_MAX_SIZE_LIMIT          largest max_size a pool may have (256)
  POOL_ACQUIRE_DEFAULT_WAIT_MS how long an Acquire waits when it does not say (60000)
  POOL_RECONCILE_INTERVAL_MS   how often pools are brought to their policy (1000)
  POOL_AGENT_STARTUP_TIMEOUT_MS  how long an agent may take to become READY (30000)
  POOL_REDIS_PREFIX            prefix of the service's Redis keys (agentainer:pool:)

State service:
  STATE_MAX_WORKFLOW_BYTES     default and maximum bytes of one workflow's state (10485760)
  STATE_MAX_VALUE_BYTES        default and maximum bytes of one value (1048576)
  STATE_EVENT_MAX_VALUE_BYTES  larger values travel in events as value_omitted (65536)
  STATE_WATCH_BUFFER           changes buffered per Watch before a resync (10000)
  STATE_REDIS_PREFIX           prefix of the service's Redis keys (agentainer:state:)

Every server speaks Connect, gRPC and gRPC-Web on one port (HTTP/2 cleartext and HTTP/1.1)
and serves grpc.health.v1.Health and gRPC server reflection, e.g.:
  grpcurl -plaintext localhost:7073 list
  buf curl --protocol grpc --http2-prior-knowledge --reflect --list-methods http://localhost:7073`;

export function serveCommand(): Command {
  return new Command("serve")
    .description("run one service of the mesh, configured from environment variables")
    .addArgument(new Command().createArgument("<service>", "the service to run").choices(services))
    .addOption(new Option("-p, --port <port>", "port to listen on (overrides PORT)"))
    .addHelpText("after", environmentHelp)
    .action(async (service: ServiceName, options: { port?: string }) => {
      const env = { ...process.env, ...(options.port === undefined ? {} : { PORT: options.port }) };
      try {
        const server = await startService(service, env);
        installShutdownHandlers(() => server.close(), server.logger);
      } catch (err) {
        if (err instanceof ConfigError || err instanceof Error) {
          process.stderr.write(`agentainer serve ${service}: ${err.message}\n`);
          // A bad variable or option is bad input (2); anything else kept it from starting (1).
          process.exitCode = err instanceof ConfigError ? 2 : 1;
          return;
        }
        throw err;
      }
    });
}

/** Starts one service by name; each lives in its own module, loaded only when asked for. */
async function startService(
  service: ServiceName,
  env: Readonly<Record<string, string | undefined>>,
): Promise<{ close(): Promise<void>; logger: Logger }> {
  switch (service) {
    case "state":
      return (await import("../services/state/main.js")).startStateService(env);
    case "executor":
      return (await import("../services/executor/main.js")).startExecutorService(env);
    case "pool":
      return (await import("../services/pool/main.js")).startPoolService(env);
    case "workflow":
      return (await import("../services/workflow/main.js")).startWorkflowService(env);
  }
}
