import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { InMemoryPoolStore } from "../../services/pool/memory-store.js";
import { newCounters } from "../../services/pool/pool-state.js";
import { RedisPoolStore } from "../../services/pool/redis-store.js";
import type { PoolSnapshot, PoolStore } from "../../services/pool/store.js";

function snapshot(poolId: string, uses = 0): PoolSnapshot {
  return {
    poolId,
    template: {
      image: "agentainer/busybox:local",
      command: ["sleep", "3600"],
      args: [],
      env: { A: "1" },
      workingDir: "",
      limits: { cpuMillis: 0, memoryBytes: 0, pids: 0 },
      network: "none",
      mode: "exec",
    },
    templateKey: "k",
    policy: {
      minSize: 0,
      maxSize: 2,
      idleTimeoutMs: 300_000,
      maxAgentUses: 0,
      warmUp: false,
      health: {
        intervalMs: 30_000,
        timeoutMs: 5000,
        command: [],
        failureThreshold: 3,
        checkOnRelease: false,
      },
      resetCommand: [],
      leaseTtlMs: 600_000,
      recycleOnFailure: false,
    },
    status: "active",
    createMs: 1,
    updateMs: 2,
    lastError: "",
    lastErrorMs: undefined,
    warmTarget: 0,
    warmUntilMs: 0,
    counters: newCounters(),
    agents: [
      { agentId: "a1", containerId: "c1", uses, leases: uses, createdMs: 1, idleSinceMs: 2 },
    ],
    leases: [],
  };
}

const redis = new Redis(inject("redisUrl"));
afterAll(() => redis.quit());

const stores: Array<[string, () => PoolStore]> = [
  ["memory", () => new InMemoryPoolStore()],
  ["Redis", () => new RedisPoolStore(redis, `test:${randomUUID()}:`)],
];

for (const [name, make] of stores) {
  describe(`the pool store in ${name}`, () => {
    it("saves, replaces, loads and removes snapshots, by value", async () => {
      const store = make();
      expect(await store.loadAll()).toEqual([]);
      const one = snapshot("p1");
      await store.save(one);
      await store.save(snapshot("p2"));
      one.agents[0]!.uses = 99; // a later change to the caller's object is not stored
      await store.save(snapshot("p1", 5));
      const loaded = (await store.loadAll()).sort((a, b) => (a.poolId < b.poolId ? -1 : 1));
      expect(loaded.map((s) => [s.poolId, s.agents[0]?.uses])).toEqual([
        ["p1", 5],
        ["p2", 0],
      ]);
      expect(loaded[0]).toEqual(JSON.parse(JSON.stringify(snapshot("p1", 5))));
      await store.remove("p1");
      await store.remove("unknown");
      expect((await store.loadAll()).map((s) => s.poolId)).toEqual(["p2"]);
    });
  });
}
