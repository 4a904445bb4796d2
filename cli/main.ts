import { Command, CommanderError } from "commander";
import { serveCommand } from "./serve.js";
import { exampleCommand } from "./example.js";
import { poolCommand } from "./pool.js";
import { upCommand } from "./up.js";
import { globalOptions, workflowCommand } from "./workflow.js";

/** Builds the `agentainer` program; `main` runs it and returns the exit code. */
export function createProgram(): Command {
  return globalOptions(
    new Command("agentainer")
      .description("Agentainer Flow: workflows whose steps run in containers")
      .version("0.1.0")
      .showHelpAfterError(),
  )
    .addCommand(upCommand())
    .addCommand(workflowCommand())
    .addCommand(poolCommand())
    .addCommand(exampleCommand())
    .addCommand(serveCommand());
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = createProgram().exitOverride();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
}
