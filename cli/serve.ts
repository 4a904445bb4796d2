import { Command, Option } from "commander";
import { ConfigError } from "../lib/config.js";
import { installShutdownHandlers } from "../lib/server.js";

const services = ["workflow", "pool", "state", "executor"] as const;
type ServiceName = (typeof services)[number];

/** Services whose implementation has not landed yet, and the issue that brings each. */
const pending: Partial<Record<ServiceName, string>> = {
  executor: "issue #3 (Executor service)",
  pool: "issue #4 (Pool service)",
  workflow: "issue #5 (Workflow service)",
};

const environmentHelp = `
Environment (every service):
  PORT                  port to listen on (state: 7073; 0 picks a free one)
  HOST                  address to bind (default 0.0.0.0)
  LOG_LEVEL             fatal|error|warn|info|debug|trace|silent (default info)
  REDIS_URL             redis://host:port; unset keeps data in memory (lost on exit)
  NATS_URL              nats://host:port; unset keeps events inside the process
  SHUTDOWN_TIMEOUT_MS   how long SIGTERM waits for calls to finish (default 10000)

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
      const missing = pending[service];
      if (missing !== undefined) {
        process.stderr.write(
          `agentainer: the ${service} service is not available yet; it arrives with ${missing}\n`,
        );
        process.exitCode = 2;
        return;
      }
      try {
        const { startStateService } = await import("../services/state/main.js");
        const server = await startStateService(env);
        installShutdownHandlers(() => server.close(), server.logger);
      } catch (err) {
        if (err instanceof ConfigError || err instanceof Error) {
          process.stderr.write(`agentainer serve ${service}: ${err.message}\n`);
          process.exitCode = 1;
          return;
        }
        throw err;
      }
    });
}
