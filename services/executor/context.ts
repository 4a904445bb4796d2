import { randomUUID } from "node:crypto";
import { lstat, mkdir } from "node:fs/promises";
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

/**
 * Makes the work directory and its `tasks` and `agents` directories, and checks that each is a
 * real directory (not a link) of this user that nobody else can write to. Mailboxes are made in
 * them and mounted into containers: one that another local user could replace (the default is
 * under the shared /tmp) would let them choose what a container gets mounted read-write.
 */
export async function prepareWorkDir(workDir: string): Promise<void> {
  for (const dir of [workDir, join(workDir, "tasks"), join(workDir, "agents")]) {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const stats = await lstat(dir);
    const uid = process.getuid?.() ?? stats.uid;
    if (!stats.isDirectory() || stats.uid !== uid || (stats.mode & 0o022) !== 0) {
      throw new Error(
        `EXECUTOR_WORK_DIR: ${dir} must be a directory (not a link) owned by this user (uid ${uid}) that no one else can write to; it is ${stats.isSymbolicLink() ? "a link" : `mode ${(stats.mode & 0o777).toString(8)} owned by uid ${stats.uid}`}`,
      );
    }
  }
}

/** A fresh directory name for a task's or an agent's mailbox: its id and a random suffix. */
export function mailboxName(id: string): string {
  return `${id}-${randomUUID().slice(0, 8)}`;
}

/**
 * The mailbox `name` (see mailboxName) of a task or an agent, and how its process will see it.
 * `reuse` opens one that exists already (an adopted agent's); otherwise it must not exist.
 */
export async function openMailbox(
  ctx: ExecutorContext,
  kind: "tasks" | "agents",
  name: string,
  reuse = false,
): Promise<{ mailbox: Mailbox; mounts: Mount[]; visibleDir: string }> {
  const dir = join(ctx.workDir, kind, name);
  const mailbox = await Mailbox.create(dir, ctx.state, ctx.logger, reuse);
  // Without isolation the process sees the host's filesystem: no mount, the host path.
  if (!ctx.runtime.isolated) return { mailbox, mounts: [], visibleDir: dir };
  return {
    mailbox,
    mounts: [{ source: dir, target: mailboxMountPoint }],
    visibleDir: mailboxMountPoint,
  };
}
