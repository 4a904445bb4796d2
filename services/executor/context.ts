import { join } from "node:path";
import type { Logger } from "../../lib/logger.js";
import { mailboxMountPoint } from "./contract.js";
import { Mailbox, type StateHandler } from "./mailbox.js";
import type { ContainerRuntime, Mount } from "./runtime/runtime.js";
import type { TaskRegistry } from "./task-registry.js";
import type { ValidationLimits } from "./validate.js";

/** What the Executor's domain code works with, built once in main.ts. */
export interface ExecutorContext {
  runtime: ContainerRuntime;
  tasks: TaskRegistry;
  limits: ValidationLimits;
  nodeId: string;
  /** Host directory holding the mailboxes. */
  workDir: string;
  /** Answers agents' state requests for a workflow. */
  state: StateHandler;
  logger: Logger;
  now: () => number;
}

/** A mailbox for `name` (a task or agent id) and how the process will see it. */
export async function openMailbox(
  ctx: ExecutorContext,
  kind: "tasks" | "agents",
  name: string,
): Promise<{ mailbox: Mailbox; mounts: Mount[]; visibleDir: string }> {
  const dir = join(ctx.workDir, kind, name);
  const mailbox = await Mailbox.create(dir, ctx.state, ctx.logger);
  // Without isolation the process sees the host's filesystem: no mount, the host path.
  if (!ctx.runtime.isolated) return { mailbox, mounts: [], visibleDir: dir };
  return {
    mailbox,
    mounts: [{ source: dir, target: mailboxMountPoint }],
    visibleDir: mailboxMountPoint,
  };
}
