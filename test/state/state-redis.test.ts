import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, inject } from "vitest";
import { RedisStateStore } from "../../services/state/redis-store.js";
import { describeStateContract } from "./state-contract.js";

const redis = new Redis(inject("redisUrl"));
afterAll(async () => {
  await redis.quit();
});

describeStateContract("redis", async () => {
  const prefix = `test:${randomUUID()}:`;
  return {
    store: new RedisStateStore(redis, prefix),
    async cleanup() {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    },
  };
});
