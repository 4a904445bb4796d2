import { AlreadyExistsError, InvalidArgumentError } from "../../lib/errors.js";
import { contractEnv, labels } from "./contract.js";
import { mailboxName, openMailbox, type ExecutorContext } from "./context.js";
import type { Mailbox } from "./mailbox.js";
import { containerName, withSuffix } from "./names.js";
import { decideOutcome } from "./outcome.js";
import { capture } from "./output.js";
import type { ContainerOptions, Limits, Network, RuntimeContainer } from "./runtime/runtime.js";
import type { TaskRecord, TaskRef } from "./task.js";
import { atMost, withDeadline } from "./timing.js";

export type Keep = "never" | "always" | "on_failure";

/** A validated cold task (validate.ts filled the defaults). */
export interface ColdSpec {
  image: string;
  command: string[];
  args: string[];
  env: Record<string, string>;
  workingDir: string;
  limits: Limits;
  timeoutMs: number;
  network: Network;
  keep: Keep;
  /** Canonical JSON of the input. */
  inputJson: string;
  labels: Record<string, string>;
}

/** The contract's identity variables of a task. */
export function identityEnv(ref: TaskRef): Record<string, string> {
  return {
    [contractEnv.workflowId]: ref.workflowId,
    [contractEnv.stepId]: ref.stepId,
    [contractEnv.taskId]: ref.taskId,
    [contractEnv.attempt]: String(ref.attempt),
    [contractEnv.index]: String(ref.index),
  };
}

/**
 * Starts a cold task: checks the image, registers the task (or finds the one a repeated call
 * made) and runs it in the background, detached from the caller's request. Returns the task;
 * its `done` settles with the outcome.
 */
export async function startColdTask(
  ctx: ExecutorContext,
  ref: TaskRef,
  spec: ColdSpec,
): Promise<TaskRecord> {
  const fingerprint = JSON.stringify(["cold", ref.workflowId, ref.stepId, ref.index, ref.attempt]);
  const image = await ctx.runtime.getImage(spec.image); // NotFoundError names a missing image
  if (
    spec.command.length === 0 &&
    spec.args.length === 0 &&
    image.entrypoint.length === 0 &&
    image.cmd.length === 0
  ) {
    throw new InvalidArgumentError(
      `image "${spec.image}" has neither ENTRYPOINT nor CMD: give spec.command`,
      { field: "spec.command" },
    );
  }
  const { task, created } = ctx.tasks.create({
    ref,
    mode: "cold",
    image: spec.image,
    agentId: "",
    fingerprint,
  });
  if (created) void runCold(ctx, task, spec);
  return task;
}

async function runCold(ctx: ExecutorContext, task: TaskRecord, spec: ColdSpec): Promise<void> {
  const t0 = ctx.now();
  const ref = task.ref;
  let mailbox: Mailbox | undefined;
  let container: RuntimeContainer | undefined;
  let cancelled = false;
  let timedOut = false;
  let tCreated = t0;
  let tStarted = t0;
  let tEnded = t0;

  // Cancel at any point: before the container exists it just marks the task; after, it kills.
  task.cancel = async (reason, graceMs) => {
    cancelled = true;
    task.cancelReason = reason;
    if (container === undefined) return;
    if (graceMs > 0) {
      await container.kill("SIGTERM");
      setTimeout(() => void container?.kill("SIGKILL"), graceMs).unref();
    } else {
      await container.kill("SIGKILL");
    }
  };

  let exit: { exitCode: number; oomKilled: boolean } | undefined;
  let runError: string | undefined;
  try {
    const boxName = mailboxName(ref.taskId);
    const box = await openMailbox(ctx, "tasks", boxName);
    mailbox = box.mailbox;
    await mailbox.bind({ workflowId: ref.workflowId, inputJson: spec.inputJson });
    if (cancelled) throw new Cancelled();

    const options: ContainerOptions = {
      name: containerName(ref.workflowId, ref.stepId, ref.index),
      image: spec.image,
      command: spec.command,
      args: spec.args,
      env: {
        ...spec.env,
        ...identityEnv(ref),
        ...mailbox.env(box.visibleDir, {
          workflowId: ref.workflowId,
          inputJson: spec.inputJson,
        }),
      },
      workingDir: spec.workingDir,
      limits: spec.limits,
      network: spec.network,
      labels: {
        ...spec.labels,
        [labels.managed]: "true",
        [labels.kind]: "task",
        [labels.nodeId]: ctx.nodeId,
        [labels.workflowId]: ref.workflowId,
        [labels.stepId]: ref.stepId,
        [labels.taskId]: ref.taskId,
        [labels.attempt]: String(ref.attempt),
        [labels.kept]: spec.keep,
        [labels.mailbox]: boxName,
      },
      mounts: box.mounts,
      openStdin: false,
    };
    container = await createUnique(ctx, options);
    if (ctx.runtime.isolated) task.containerId = container.id; // no container id without one
    task.containerName = container.name;
    if (cancelled) throw new Cancelled();

    const io = await container.attach();
    const output = capture(task.output, io);
    if (cancelled) throw new Cancelled();
    tCreated = ctx.now();
    await container.start();
    tStarted = ctx.now();
    ctx.tasks.started(task);
    // A cancel that came while the container was starting found it not running yet: its kill
    // may have been refused, so it is repeated now that the container runs.
    if (cancelled) void container.kill("SIGKILL").catch(() => undefined);

    exit = await withDeadline(container.wait(), spec.timeoutMs, () => {
      timedOut = true;
      void container?.kill("SIGKILL");
    });
    tEnded = ctx.now();
    await atMost(output.ended, 2000);
  } catch (err) {
    if (!(err instanceof Cancelled)) {
      runError = `could not run the task: ${err instanceof Error ? err.message : String(err)}`;
      ctx.logger.warn({ err, taskId: ref.taskId }, "cold task could not run");
    }
    tEnded = ctx.now();
  }

  const mailboxOut = mailbox
    ? await mailbox.collect()
    : { result: undefined, resultTooLarge: false, error: undefined };
  const decided = decideOutcome({
    exitCode: exit?.exitCode,
    oomKilled: exit?.oomKilled ?? false,
    timedOut: timedOut && !cancelled,
    cancelReason: cancelled ? (task.cancelReason ?? "") : undefined,
    runError,
    mailbox: mailboxOut,
    stdout: task.output.tail("stdout").data,
    stderr: task.output.tail("stderr").data,
    memoryBytes: spec.limits.memoryBytes,
    timeoutMs: spec.timeoutMs,
  });

  const keep =
    spec.keep === "always" || (spec.keep === "on_failure" && decided.status !== "succeeded");
  if (container !== undefined && !keep) {
    await container
      .remove()
      .catch((err: unknown) =>
        ctx.logger.error({ err, container: container?.name }, "could not remove a task container"),
      );
  } else if (container !== undefined) {
    await container.kill("SIGKILL").catch(() => undefined);
  }
  await mailbox?.close().catch(() => undefined);

  ctx.tasks.finish(task, {
    ...decided,
    exitCode: exit?.exitCode,
    agentState: undefined,
    timings: {
      createMs: tCreated - t0,
      startMs: tStarted - tCreated,
      runMs: Math.max(0, tEnded - tStarted),
      totalMs: ctx.now() - t0,
    },
  });
}

class Cancelled extends Error {}

/** Creates the container under its plain name, or with a suffix when that name is taken. */
async function createUnique(
  ctx: ExecutorContext,
  options: ContainerOptions,
): Promise<RuntimeContainer> {
  for (let attempt = 0; ; attempt++) {
    const name = attempt === 0 ? options.name : withSuffix(options.name);
    try {
      return await ctx.runtime.createContainer({ ...options, name });
    } catch (err) {
      if (!(err instanceof AlreadyExistsError) || attempt >= 5) throw err;
    }
  }
}
