// Helpers of the pool tests: the real Executor on Docker with a Pool service in front of it, and
// the engine's own count of a pool's containers.
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect, inject } from "vitest";
import { ExecutorService } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { PoolService } from "../../gen/agentainer/pool/v1/pool_pb.js";
import { labels } from "../../services/executor/contract.js";
import { startExecutorService, type RunningExecutor } from "../../services/executor/main.js";
import { connectDocker } from "../../services/executor/runtime/docker.js";
import { startPoolService, type RunningPool } from "../../services/pool/main.js";

export const shellImage = "agentainer/busybox:local";

export const ms = (n: number) =>
  create(DurationSchema, { seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1e6 });

/** Containers of a pool, counted by label in the engine itself. */
export function containers(poolId: string, all = false): string[] {
  const out = execFileSync("docker", [
    "ps",
    ...(all ? ["-a"] : []),
    "-q",
    "--filter",
    `label=${labels.poolId}=${poolId}`,
  ]);
  return out.toString().trim().split("\n").filter(Boolean);
}

/** An Executor on the Docker engine and a Pool service using it, both on loopback ports. */
export interface PoolOnDocker {
  readonly executor: RunningExecutor;
  readonly poolService: RunningPool;
  readonly pools: Client<typeof PoolService>;
  readonly exec: Client<typeof ExecutorService>;
  /** Stops both and checks that no container of the Executor's node is left. */
  close(): Promise<void>;
}

/** The real Executor on the Docker engine, as the node `node` (its containers carry it). */
export async function startDockerExecutor(node: string): Promise<RunningExecutor> {
  const runtime = await connectDocker();
  if (runtime === undefined) throw new Error("no Docker engine: run bash scripts/setup.sh");
  return startExecutorService(
    {
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "silent",
      EXECUTOR_NODE_ID: node,
      NATS_URL: inject("natsUrl"),
      EXECUTOR_DEFAULT_MEMORY_BYTES: String(32 * 1024 * 1024),
    },
    { runtime },
  );
}

/** Fails the test when a container of the Executor node `node` is left, running or not. */
export function expectNoContainersOf(node: string): void {
  const left = execFileSync("docker", ["ps", "-aq", "--filter", `label=${labels.nodeId}=${node}`]);
  expect(left.toString().trim()).toBe("");
}

/** Starts them; `poolEnv` adds to (or overrides) the Pool service's environment. */
export async function startPoolOnDocker(
  poolEnv: Record<string, string> = {},
): Promise<PoolOnDocker> {
  const node = `pool-${randomUUID().slice(0, 8)}`;
  const executor = await startDockerExecutor(node);
  const poolService = await startPoolService({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    EXECUTOR_URL: executor.url,
    NATS_URL: inject("natsUrl"),
    POOL_RECONCILE_INTERVAL_MS: "200",
    ...poolEnv,
  }).catch(async (err: unknown) => {
    await executor.close();
    throw err;
  });
  return {
    executor,
    poolService,
    pools: createClient(PoolService, createGrpcTransport({ baseUrl: poolService.url })),
    exec: createClient(ExecutorService, createGrpcTransport({ baseUrl: executor.url })),
    async close() {
      await poolService.close();
      await executor.close(); // destroys every agent it still has
      expectNoContainersOf(node);
    },
  };
}
