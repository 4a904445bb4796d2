import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startExecutorService } from "../../services/executor/main.js";
import { LocalRuntime } from "../../services/executor/runtime/local.js";
import type { ContainerSummary } from "../../services/executor/runtime/runtime.js";

/** A runtime whose engine stops answering once the Executor lists its containers at start. */
class GoneRuntime extends LocalRuntime {
  override listContainers(): Promise<ContainerSummary[]> {
    return Promise.reject(new Error("the engine went away"));
  }
}

// A start that fails half-way must not leave what it made: the named-pipe stock in the work
// directory (and the connections) would otherwise stay until the process exits.
describe("an Executor whose start fails", () => {
  let workDir: string;
  let taken: Server | undefined;

  beforeEach(() => {
    workDir = mkdtempSync(join(tmpdir(), "failed-start-"));
  });
  afterEach(async () => {
    await new Promise((resolve) => (taken ? taken.close(resolve) : resolve(undefined)));
    taken = undefined;
    rmSync(workDir, { recursive: true, force: true });
  });

  const env = (port: number) => ({
    PORT: String(port),
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    EXECUTOR_WORK_DIR: workDir,
  });

  it("removes its pipe stock when the engine fails while it recovers a previous run", async () => {
    await expect(startExecutorService(env(0), { runtime: new GoneRuntime() })).rejects.toThrow(
      "the engine went away",
    );
    expect(readdirSync(join(workDir, "fifos"))).toEqual([]);
  });

  it("fails with EADDRINUSE on a taken port, and closes what it made", async () => {
    const server = createServer();
    taken = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    await expect(startExecutorService(env(port), { runtime: new LocalRuntime() })).rejects.toThrow(
      /EADDRINUSE/,
    );
    expect(readdirSync(join(workDir, "fifos"))).toEqual([]);
  });
});
