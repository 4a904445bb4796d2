import { randomUUID } from "node:crypto";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AgentMode, ExecutorService } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  AgentDisposition,
  PoolService,
  TaskOutcome,
} from "../../gen/agentainer/pool/v1/pool_pb.js";
import type { RunningExecutor } from "../../services/executor/main.js";
import { startPoolService, type RunningPool } from "../../services/pool/main.js";
import { eventually } from "../support/await.js";
import { containers, expectNoContainersOf, shellImage, startDockerExecutor } from "./support.js";

describe("the Pool service after a restart (Redis, real Executor and Docker)", () => {
  let executor: RunningExecutor;
  let exec: Client<typeof ExecutorService>;
  const node = `prestart-${randomUUID().slice(0, 8)}`;
  const env = () => ({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    EXECUTOR_URL: executor.url,
    REDIS_URL: inject("redisUrl"),
    NATS_URL: inject("natsUrl"),
    POOL_REDIS_PREFIX: `test:${randomUUID()}:`,
    POOL_RECONCILE_INTERVAL_MS: "200",
  });

  beforeAll(async () => {
    executor = await startDockerExecutor(node);
    exec = createClient(ExecutorService, createGrpcTransport({ baseUrl: executor.url }));
  });
  afterAll(async () => {
    await executor?.close();
    expectNoContainersOf(node);
  });

  it("adopts its agents, keeps leases valid, and removes strays", async () => {
    const config = env();
    const poolId = `restart-${randomUUID().slice(0, 8)}`;
    let before: RunningPool | undefined = await startPoolService(config);
    let after: RunningPool | undefined;
    try {
      const a = createClient(PoolService, createGrpcTransport({ baseUrl: before.url }));
      await a.createPool({
        poolId,
        template: { image: shellImage, command: ["sleep", "3600"], mode: AgentMode.EXEC },
        policy: { minSize: 2, maxSize: 3, warmUp: true },
      });
      await eventually(async () => (await a.getPool({ poolId })).pool?.metrics?.idle === 2);
      const { lease } = await a.acquire({ poolId, holder: "survivor" });
      const agentsBefore = (await a.getPool({ poolId })).pool!.metrics!;
      expect(agentsBefore.leased).toBe(1);
      // A stray: an agent labelled with the pool that the pool never made.
      await exec.createAgent({
        agentId: `stray-${randomUUID().slice(0, 8)}`,
        poolId,
        spec: { image: shellImage, command: ["sleep", "3600"] },
      });
      const strayCount = () => containers(poolId).length;
      expect(strayCount()).toBe(3);

      await before.close(); // the service stops; its agents keep running
      before = undefined;
      after = await startPoolService(config);
      const b = createClient(PoolService, createGrpcTransport({ baseUrl: after.url }));
      // Adopted agents are health-checked once, then idle again.
      await eventually(async () => (await b.getPool({ poolId })).pool?.metrics?.idle === 1);
      const m = (await b.getPool({ poolId })).pool!.metrics!;
      expect([m.size, m.idle, m.leased]).toEqual([2, 1, 1]);
      expect(m.containersCreated).toBe(2n); // counters survive too
      await eventually(async () => strayCount() === 2); // the stray is gone
      // The lease taken before the restart is still good.
      const released = await b.release({
        leaseId: lease!.leaseId,
        holder: "survivor",
        outcome: TaskOutcome.SUCCEEDED,
      });
      expect(released.disposition).toBe(AgentDisposition.RETURNED);
      await eventually(async () => (await b.getPool({ poolId })).pool?.metrics?.idle === 2);
      const { hit } = await b.acquire({ poolId, holder: "next" });
      expect(hit).toBe(true);
      await b.deletePool({ poolId, force: true });
    } finally {
      await before?.close();
      await after?.close();
    }
  });
});
