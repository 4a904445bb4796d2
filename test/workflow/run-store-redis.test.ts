import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, inject } from "vitest";
import { RedisRunStore } from "../../services/workflow/redis-run-store.js";
import { runStoreContract } from "./run-store-contract.js";

const redis = new Redis(inject("redisUrl"));
afterAll(() => redis.quit());

runStoreContract("Redis", () => new RedisRunStore(redis, `test:${randomUUID()}:`));
