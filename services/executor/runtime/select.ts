import { UnavailableError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/logger.js";
import { LocalRuntime } from "./local.js";
import type { ContainerRuntime } from "./runtime.js";

/**
 * The runtime EXECUTOR_RUNTIME asks for: docker (must answer), local, or auto (Docker when an
 * engine answers, else local). The local runtime is announced loudly: it isolates nothing.
 */
export async function selectRuntime(
  choice: "auto" | "docker" | "local",
  socketPath: string,
  logger: Logger,
): Promise<ContainerRuntime> {
  if (choice !== "local") {
    // Loaded only when wanted: dockerode stays out of processes that never use it.
    const { connectDocker } = await import("./docker.js");
    const docker = await connectDocker({ socketPath });
    if (docker !== undefined) return docker;
    if (choice === "docker") {
      throw new UnavailableError(
        `EXECUTOR_RUNTIME=docker but no Docker engine answers at ${socketPath}: start dockerd, or set EXECUTOR_RUNTIME=local`,
      );
    }
  }
  logger.warn(
    "NO ISOLATION: tasks run as plain child processes of this Executor on the host (local-process " +
      "runtime; images, limits and network settings are ignored). " +
      (choice === "auto"
        ? `No Docker engine answered at ${socketPath}.`
        : "EXECUTOR_RUNTIME=local."),
  );
  return new LocalRuntime();
}
