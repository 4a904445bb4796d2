import { getEventListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import { createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ResourceExhaustedError } from "../../lib/errors.js";
import {
  ExecutorService,
  LogStream,
  StreamTaskLogsRequestSchema,
} from "../../gen/agentainer/executor/v1/executor_pb.js";
import type { AgentHandlers } from "../../services/executor/agent-service.js";
import type { ExecutorContext } from "../../services/executor/context.js";
import { createExecutorService } from "../../services/executor/service.js";
import { TaskRegistry } from "../../services/executor/task-registry.js";
import type { TaskRecord } from "../../services/executor/task.js";

// StreamTaskLogs with follow, driven through its handler so the test decides when the caller
// reads: what a caller that falls behind gets, and what a long follow leaves on its signals.
describe("StreamTaskLogs with follow", () => {
  const budget = 64 * 1024;
  const registries: TaskRegistry[] = [];
  afterEach(() => registries.splice(0).forEach((r) => r.close()));

  function setUp() {
    const tasks = new TaskRegistry({
      nodeId: "n",
      maxOutputBytes: 1024 * 1024,
      retention: { ms: 60_000, maxTasks: 100, maxOutputBytes: 1 << 24 },
      listener: { taskChanged: () => undefined },
    });
    registries.push(tasks);
    const shutdown = new AbortController();
    const service = createExecutorService({
      ctx: { tasks } as unknown as ExecutorContext,
      agents: {} as AgentHandlers,
      shutdownSignal: shutdown.signal,
      maxFollowBytes: budget,
    });
    const { task } = tasks.create({
      ref: { workflowId: "w", stepId: "s", taskId: "t1", attempt: 1, index: 0 },
      mode: "cold",
      image: "i",
      agentId: "",
      fingerprint: "f",
    });
    tasks.started(task);
    const context = createHandlerContext({
      service: ExecutorService,
      method: ExecutorService.method.streamTaskLogs,
      protocolName: "grpc",
      requestMethod: "POST",
      url: "http://executor.test/",
    });
    const follow = (ctx: HandlerContext = context) => {
      const logs = service.streamTaskLogs;
      if (logs === undefined) throw new Error("no streamTaskLogs handler");
      return logs(create(StreamTaskLogsRequestSchema, { taskId: "t1", follow: true }), ctx)[
        Symbol.asyncIterator
      ]();
    };
    return { task, follow, context, shutdown };
  }

  const chunk = (n: number) => Buffer.alloc(16 * 1024, n % 256);
  const write = (task: TaskRecord, from: number, count: number) => {
    for (let n = from; n < from + count; n++) task.output.write("stdout", chunk(n));
  };

  it("sends a caller that keeps up everything, however much the task writes", async () => {
    const { task, follow } = setUp();
    const logs = follow();
    let received = 0;
    const total = 200; // 3.2 MiB in all, 50 times the budget
    for (let n = 0; n < total; n++) {
      const next = logs.next();
      write(task, n, 1);
      const { value } = await next;
      expect(value?.stream).toBe(LogStream.STDOUT);
      received += value?.data?.length ?? 0;
    }
    task.output.end();
    expect((await logs.next()).done).toBe(true);
    expect(received).toBe(total * 16 * 1024);
  });

  it("drops what waits past the budget for a caller that stopped reading, and ends its call RESOURCE_EXHAUSTED", async () => {
    const { task, follow } = setUp();
    const logs = follow();
    const first = logs.next();
    write(task, 0, 1);
    expect((await first).value?.data?.[0]).toBe(0);
    // The caller reads no more while the task writes 150 times the budget.
    write(task, 1, 600);
    // The waiting chunks are gone: the next read is the error, not the first of them.
    const next = logs.next();
    await expect(next).rejects.toThrow(ResourceExhaustedError);
    await expect(next).rejects.toThrow(
      /^this StreamTaskLogs call fell more than 65536 bytes behind task "t1"'s output, which was dropped; read faster, or call again/,
    );
    expect((await logs.next()).done).toBe(true);
  });

  it("keeps one abort listener on each signal however often it waits, and none after", async () => {
    const { task, follow, context, shutdown } = setUp();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      const listeners = () => ({
        context: getEventListeners(context.signal, "abort").length,
        shutdown: getEventListeners(shutdown.signal, "abort").length,
      });
      const before = listeners();
      const logs = follow();
      for (let n = 0; n < 50; n++) {
        const next = logs.next();
        await new Promise((resolve) => setImmediate(resolve)); // it waits for output
        write(task, n, 1);
        await next;
      }
      expect(listeners()).toEqual({ context: before.context + 1, shutdown: before.shutdown + 1 });
      const last = logs.next();
      shutdown.abort();
      expect((await last).done).toBe(true);
      expect(listeners()).toEqual(before);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).not.toContain("MaxListenersExceededWarning");
    } finally {
      process.off("warning", onWarning);
    }
  });
});
