import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  DeadlineExceededError,
  InvalidArgumentError,
  ResourceExhaustedError,
} from "../../lib/errors.js";
import { durationToMs, msToTimestamp } from "../../lib/time.js";
import { ExecutorService, LogStream } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { startColdTask } from "./cold.js";
import { createDispatchHandler } from "./dispatch.js";
import type { ExecutorContext } from "./context.js";
import {
  inputFromProto,
  keepFromProto,
  limitsFromProto,
  networkFromProto,
  refFromProto,
  statusFromProto,
  taskResult,
  taskToProto,
} from "./convert.js";
import type { AgentHandlers } from "./agent-service.js";
import type { OutputChunk } from "./output.js";
import { isFinal } from "./task.js";
import {
  checkArgv,
  checkEnv,
  checkImage,
  checkInput,
  checkLabels,
  checkLimits,
  checkNetwork,
  checkTaskRef,
  checkTimeout,
  checkWorkingDir,
} from "./validate.js";

const maxGraceMs = 5 * 60 * 1000;

/** Default of ExecutorServiceDeps.maxFollowBytes. */
const defaultMaxFollowBytes = 8 * 1024 * 1024;

export interface ExecutorServiceDeps {
  ctx: ExecutorContext;
  /** The agent RPCs (agent-service.ts). */
  agents: AgentHandlers;
  /** Aborted when the server shuts down: open log streams end. */
  shutdownSignal: AbortSignal;
  /**
   * Most bytes of live output a StreamTaskLogs follower may have waiting to be sent (it reads
   * slower than the task writes); past them its call ends RESOURCE_EXHAUSTED. Default 8 MiB.
   */
  maxFollowBytes?: number;
}

/** ExecutorService handlers: request → validation → domain → response. */
export function createExecutorService(
  deps: ExecutorServiceDeps,
): ServiceImpl<typeof ExecutorService> {
  const { ctx } = deps;
  return {
    ...deps.agents,
    ...createDispatchHandler(deps.agents, ctx.logger, deps.shutdownSignal),

    async runTask(req) {
      const ref = checkTaskRef(refFromProto(req.ref));
      const spec = req.spec;
      if (spec === undefined) throw new InvalidArgumentError("spec is required", { field: "spec" });
      checkImage(spec.image);
      checkArgv(spec.command, "spec.command", false);
      checkArgv(spec.args, "spec.args", false);
      checkEnv(spec.env, "spec.env");
      checkWorkingDir(spec.workingDir, "spec.working_dir");
      checkLabels(spec.labels, "spec.labels");
      const task = await startColdTask(ctx, ref, {
        image: spec.image,
        command: spec.command,
        args: spec.args,
        env: spec.env,
        workingDir: spec.workingDir,
        limits: checkLimits(limitsFromProto(spec.limits, "spec.limits"), ctx.limits, "spec.limits"),
        timeoutMs: checkTimeout(
          durationToMs(spec.timeout, "spec.timeout"),
          ctx.limits,
          "spec.timeout",
        ),
        network: checkNetwork(
          networkFromProto(spec.network, "spec.network"),
          ctx.limits,
          "spec.network",
        ),
        keep: keepFromProto(spec.keep, "spec.keep"),
        inputJson: checkInput(inputFromProto(spec.input, "spec.input"), ctx.limits, "spec.input"),
        labels: spec.labels,
      });
      await task.done;
      return { result: taskResult(task) };
    },

    async getImage(req) {
      checkImage(req.image, "image");
      const info = await ctx.runtime.getImage(req.image);
      return {
        imageId: info.id,
        entrypoint: info.entrypoint,
        cmd: info.cmd,
        workingDir: info.workingDir,
        sizeBytes: BigInt(info.sizeBytes),
        createTime: info.createdMs === undefined ? undefined : msToTimestamp(info.createdMs),
      };
    },

    async getTask(req, context: HandlerContext) {
      const task = ctx.tasks.get(req.taskId);
      if (req.wait && !isFinal(task.status)) {
        await Promise.race([
          task.done,
          new Promise((_, reject) =>
            context.signal.addEventListener("abort", () =>
              reject(
                new DeadlineExceededError(
                  `task "${req.taskId}" had not ended when the call's deadline passed`,
                ),
              ),
            ),
          ),
        ]);
      }
      return { task: taskToProto(task) };
    },

    async cancelTask(req) {
      const task = ctx.tasks.get(req.taskId);
      const graceMs = durationToMs(req.gracePeriod, "grace_period");
      if (graceMs > maxGraceMs) {
        throw new InvalidArgumentError("grace_period is longer than 5 minutes", {
          field: "grace_period",
        });
      }
      if (isFinal(task.status) || task.cancel === undefined) {
        return { cancelled: false, task: taskToProto(task) };
      }
      await task.cancel(req.reason, graceMs);
      await task.done;
      return { cancelled: task.status === "cancelled", task: taskToProto(task) };
    },

    listTasks(req) {
      const { tasks, nextPageToken } = ctx.tasks.list(
        {
          workflowId: req.workflowId,
          stepId: req.stepId,
          agentId: req.agentId,
          statuses: req.statuses.map((s, i) => statusFromProto(s, `statuses[${i}]`)),
        },
        req.pageSize,
        req.pageToken,
      );
      return Promise.resolve({ tasks: tasks.map((t) => taskToProto(t, false)), nextPageToken });
    },

    async *streamTaskLogs(req, context: HandlerContext) {
      const task = ctx.tasks.get(req.taskId);
      const wanted = (s: "stdout" | "stderr") =>
        req.stream === LogStream.UNSPECIFIED ||
        (req.stream === LogStream.STDOUT) === (s === "stdout");
      const toMessage = (c: OutputChunk) => ({
        stream: c.stream === "stdout" ? LogStream.STDOUT : LogStream.STDERR,
        data: c.data,
        time: msToTimestamp(c.timeMs),
      });
      const budget = deps.maxFollowBytes ?? defaultMaxFollowBytes;
      // Live chunks wait here while the caller reads slower than the task writes: one chunk, or
      // up to `budget` bytes. Past that they are dropped and the call ends RESOURCE_EXHAUSTED (the
      // response has no field to say output is missing; an error beats silent gaps).
      const queue: Array<OutputChunk | undefined> = [];
      let queuedBytes = 0;
      let fellBehind = false;
      let wake: (() => void) | undefined;
      const onChunk = (c: OutputChunk | undefined) => {
        if (fellBehind || (c !== undefined && !wanted(c.stream))) return;
        if (c !== undefined && queuedBytes > 0 && queuedBytes + c.data.length > budget) {
          fellBehind = true;
          queue.length = 0;
          queuedBytes = 0;
        } else {
          queue.push(c);
          queuedBytes += c?.data.length ?? 0;
        }
        wake?.();
      };
      // Subscribe before reading what is retained, so nothing falls in between.
      const unfollow = req.follow ? task.output.follow(onChunk) : () => undefined;
      const stop = () => wake?.();
      const signals = [context.signal, deps.shutdownSignal];
      for (const signal of signals) signal.addEventListener("abort", stop);
      const behind = () =>
        new ResourceExhaustedError(
          `this StreamTaskLogs call fell more than ${budget} bytes behind task "${req.taskId}"'s ` +
            "output, which was dropped; read faster, or call again (a call starts with the " +
            "retained tail: the last EXECUTOR_MAX_OUTPUT_BYTES of each stream)",
        );
      try {
        for (const c of task.output.retained()) if (wanted(c.stream)) yield toMessage(c);
        if (!req.follow) return;
        for (;;) {
          if (fellBehind) throw behind();
          if (queue.length > 0) {
            const c = queue.shift();
            if (c === undefined) return; // the task's output ended
            queuedBytes -= c.data.length;
            yield toMessage(c);
            continue;
          }
          if (signals.some((signal) => signal.aborted)) return;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      } finally {
        for (const signal of signals) signal.removeEventListener("abort", stop);
        unfollow();
      }
    },
  };
}

/** Registers the ExecutorService on a router. */
export function executorRoutes(deps: ExecutorServiceDeps) {
  return (router: ConnectRouter) => router.service(ExecutorService, createExecutorService(deps));
}
