import { randomUUID } from "node:crypto";
import { lstat, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../../lib/logger.js";
import { mailboxMountPoint } from "./contract.js";
import type { FifoStock } from "./fifo-stock.js";
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
  /** Where mailboxes get their named pipes (in `workDir`). */
  fifos: FifoStock;
  /** Answers agents' state requests for a workflow. */
  state: StateHandler;
  logger: Logger;
  now: () => number;
}

/**
 * Makes the work directory and its `tasks`, `agents` and `fifos` directories, and checks that
 * each is a real directory (not a link) of this user that nobody else can write to. Mailboxes are
 * made in the first two and mounted into containers: one that another local user could replace
 * (the default is under the shared /tmp) would let them choose what a container gets mounted
 * read-write. `fifos` holds the named pipes made ahead (fifo-stock.ts); no container mounts it.
 * Returns the `fifos` directory.
 */
export async function prepareWorkDir(workDir: string): Promise<string> {
  const fifos = join(workDir, "fifos");
  for (const dir of [workDir, join(workDir, "tasks"), join(workDir, "agents"), fifos]) {
    await mkdir(dir, { recursive: true, mode: dir === fifos ? 0o700 : 0o755 });
    const stats = await lstat(dir);
    const uid = process.getuid?.() ?? stats.uid;
    if (!stats.isDirectory() || stats.uid !== uid || (stats.mode & 0o022) !== 0) {
      throw new Error(
        `EXECUTOR_WORK_DIR: ${dir} must be a directory (not a link) owned by this user (uid ${uid}) that no one else can write to; it is ${stats.isSymbolicLink() ? "a link" : `mode ${(stats.mode & 0o777).toString(8)} owned by uid ${stats.uid}`}`,
      );
    }
  }
  return fifos;
}

/** Whether a container's mailbox label can be a name mailboxName made (no path in it). */
export function isMailboxName(name: string): boolean {
  return /^[A-Za-z0-9_-]{1,140}$/.test(name);
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
  const mailbox = await Mailbox.create(dir, ctx.state, ctx.logger, ctx.fifos, reuse);
  // Without isolation the process sees the host's filesystem: no mount, the host path.
  if (!ctx.runtime.isolated) return { mailbox, mounts: [], visibleDir: dir };
  return {
    mailbox,
    mounts: [{ source: dir, target: mailboxMountPoint }],
    visibleDir: mailboxMountPoint,
  };
}
