import { Command, Option } from "commander";
import { ConfigError } from "../lib/config.js";
import { installShutdownHandlers } from "../lib/server.js";

const upHelp = `
All four services (workflow, pool, state, executor) run in this process and answer on one port,
so every client and CLI command points at one address (--server http://127.0.0.1:7070).

Environment (--port and --host win over PORT and HOST):
  REDIS_URL   keep state, pools and workflow runs in Redis (they survive a restart); unset: memory
  NATS_URL    publish events on NATS; unset: events stay inside the process
  EXECUTOR_RUNTIME  auto (Docker if an engine answers, else local child processes with NO
              isolation), docker, or local
  LOG_LEVEL   fatal|error|warn|info|debug|trace|silent (default info)
Every variable of \`agentainer serve --help\` applies to its service here too.`;

export function upCommand(): Command {
  return new Command("up")
    .description("run the whole suite in one process on one port (the embedded default)")
    .addOption(
      new Option("-p, --port <port>", "port of the API (0: a free one)")
        .env("PORT")
        .default("7070"),
    )
    .addOption(new Option("--host <address>", "address to bind").env("HOST").default("127.0.0.1"))
    .addHelpText("after", upHelp)
    .action(async (options: { port: string; host: string }) => {
      // An empty PORT or HOST counts as unset, as for every service.
      const env = {
        ...process.env,
        PORT: options.port || "7070",
        HOST: options.host || "127.0.0.1",
      };
      try {
        const { startEmbedded } = await import("../services/embedded.js");
        const up = await startEmbedded(env);
        process.stderr.write(
          `agentainer up: listening on ${up.url} (runtime: ${up.runtime}); Ctrl-C stops it\n`,
        );
        installShutdownHandlers(() => up.close(), up.logger);
      } catch (err) {
        if (err instanceof ConfigError || err instanceof Error) {
          process.stderr.write(`agentainer up: ${err.message}\n`);
          // A bad variable or option is bad input (2); anything else kept it from starting (1).
          process.exitCode = err instanceof ConfigError ? 2 : 1;
          return;
        }
        throw err;
      }
    });
}
