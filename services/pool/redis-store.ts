import type { Redis } from "ioredis";
import type { PoolSnapshot, PoolStore } from "./store.js";

export const defaultPoolKeyPrefix = "agentainer:pool:";

/**
 * Pool snapshots in Redis: one hash (`<prefix>pools`), a field per pool holding its snapshot as
 * JSON. One writer (the Pool service) at a time; each save replaces the pool's field atomically.
 */
export class RedisPoolStore implements PoolStore {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string = defaultPoolKeyPrefix,
  ) {
    this.key = `${prefix}pools`;
  }

  async save(snapshot: PoolSnapshot): Promise<void> {
    await this.redis.hset(this.key, snapshot.poolId, JSON.stringify(snapshot));
  }

  async remove(poolId: string): Promise<void> {
    await this.redis.hdel(this.key, poolId);
  }

  async loadAll(): Promise<PoolSnapshot[]> {
    const all = await this.redis.hgetall(this.key);
    return Object.values(all).map((s) => JSON.parse(s) as PoolSnapshot);
  }
}
