import { Command, CommanderError, Option } from "commander";
import { defaultServer, exit } from "./client.js";
import { exampleCommand } from "./example.js";
import { poolCommand } from "./pool.js";
import { serveCommand } from "./serve.js";
import { upCommand } from "./up.js";
import { workflowCommand } from "./workflow.js";

/** The options every command takes, before or after its name. */
export const globalOptions = (program: Command): Command =>
  program
    .addOption(
      new Option(
        "-s, --server <url>",
        "the Agentainer server (agentainer up, or the Workflow service)",
      )
        .env("AGENTAINER_SERVER")
        .default(defaultServer),
    )
    .addOption(
      new Option(
        "--pool-server <url>",
        "the Pool service, for `pool` commands (default: --server)",
      ).env("AGENTAINER_POOL_SERVER"),
    )
    .addOption(
      new Option(
        "--state-server <url>",
        "the State service, for `workflow state incr` (default: --server)",
      ).env("AGENTAINER_STATE_SERVER"),
    )
    .option(
      "--json",
      "machine-readable output: one JSON document (JSON lines when following)",
      false,
    )
    .option("--debug", "print stack traces", false);

/** Builds the `agentainer` program; `main` runs it and returns the exit code. */
export function createProgram(): Command {
  return globalOptions(
    new Command("agentainer")
      .description("Agentainer Flow: workflows whose steps run in containers")
      .version("0.1.0")
      .showHelpAfterError()
      .addHelpText(
        "after",
        "\nEnvironment:\n  AGENTAINER_API_TOKEN  sent as `authorization: Bearer <token>` on every call (servers started\n                        with the same variable require it)\n\nExit codes: 0 done or succeeded, 1 refused by the server, 2 bad input, 3 server unreachable or\nnot serving the service, 4 partially succeeded, 5 failed, 6 cancelled (docs/cli.md).",
      ),
  )
    .addCommand(upCommand())
    .addCommand(workflowCommand())
    .addCommand(poolCommand())
    .addCommand(exampleCommand())
    .addCommand(serveCommand());
}

/** Every command throws its usage errors to `main` instead of exiting on its own. */
function throwUsageErrors(cmd: Command): Command {
  cmd.exitOverride();
  cmd.commands.forEach(throwUsageErrors);
  return cmd;
}

export async function main(argv: readonly string[]): Promise<number> {
  // A reader that stops early (`agentainer --json workflow watch ID | head -1`) ends the command
  // quietly instead of with an EPIPE stack trace.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
  const program = throwUsageErrors(createProgram());
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    // Help and --version end 0; a usage error (unknown option, missing argument) is bad input.
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : exit.badInput;
    throw err;
  }
}
