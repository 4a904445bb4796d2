import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExecutorService, TaskStatus } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { startExecutorService, type RunningExecutor } from "../../services/executor/main.js";
import { LocalRuntime } from "../../services/executor/runtime/local.js";
import type {
  ContainerOptions,
  ContainerRuntime,
  RuntimeContainer,
} from "../../services/executor/runtime/runtime.js";
import { eventually } from "../support/await.js";

/**
 * The local runtime, with a container start the test holds, and a kill before the start that is
 * refused as Docker refuses it ("is not running": nothing happens). A cancel that lands while a
 * container starts must still stop the task.
 */
class HeldStartRuntime implements ContainerRuntime {
  readonly kind = "local" as const;
  readonly isolated = false;
  starting = false;
  release: () => void = () => undefined;
  private readonly inner = new LocalRuntime();

  getImage() {
    return this.inner.getImage();
  }
  listContainers(labels: Readonly<Record<string, string>>) {
    return this.inner.listContainers(labels);
  }
  openContainer(id: string) {
    return this.inner.openContainer(id);
  }
  close() {
    return this.inner.close();
  }
  async createContainer(options: ContainerOptions): Promise<RuntimeContainer> {
    const c = await this.inner.createContainer(options);
    let started = false;
    const held: RuntimeContainer = {
      id: c.id,
      name: c.name,
      attach: () => c.attach(),
      start: async () => {
        this.starting = true;
        await new Promise<void>((resolve) => (this.release = resolve));
        await c.start();
        started = true;
      },
      wait: () => c.wait(),
      kill: async (signal) => (started ? c.kill(signal) : undefined),
      remove: () => c.remove(),
      inspect: () => c.inspect(),
      exec: (o) => c.exec(o),
    };
    return held;
  }
}

describe("a cancel that lands while a cold task's container starts", () => {
  let executor: RunningExecutor;
  let client: Client<typeof ExecutorService>;
  const runtime = new HeldStartRuntime();
  const workDir = mkdtempSync(join(tmpdir(), "cancel-race-"));

  beforeAll(async () => {
    executor = await startExecutorService(
      { PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent", EXECUTOR_WORK_DIR: workDir },
      { runtime },
    );
    client = createClient(ExecutorService, createGrpcTransport({ baseUrl: executor.url }));
  });
  afterAll(async () => {
    await executor?.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  it("still stops the task once the container runs", async () => {
    const taskId = `race-${randomUUID()}`;
    const run = client.runTask({
      ref: { workflowId: "wf-race", stepId: "s", taskId },
      spec: { image: "ignored", command: ["sleep", "30"] },
    });
    await eventually(() => runtime.starting);
    // CancelTask answers once the task has ended: the start is released while it waits.
    const cancel = client.cancelTask({ taskId, reason: "changed my mind" });
    await new Promise((resolve) => setTimeout(resolve, 300)); // the cancel reaches the task
    runtime.release();
    const t0 = Date.now();
    expect((await cancel).cancelled).toBe(true);
    const { result } = await run;
    expect(result?.status).toBe(TaskStatus.CANCELLED);
    expect(result?.error).toBe("cancelled: changed my mind");
    expect(Date.now() - t0).toBeLessThan(20_000); // not the 30 s of its command
  });
});
