import type { PoolSnapshot, PoolStore } from "./store.js";

/** Pool snapshots in this process (the one-process mode): lost when it exits. */
export class InMemoryPoolStore implements PoolStore {
  private readonly snapshots = new Map<string, string>();

  save(snapshot: PoolSnapshot): Promise<void> {
    // Stored as text, as in Redis, so no caller can change a stored snapshot by reference.
    this.snapshots.set(snapshot.poolId, JSON.stringify(snapshot));
    return Promise.resolve();
  }

  remove(poolId: string): Promise<void> {
    this.snapshots.delete(poolId);
    return Promise.resolve();
  }

  loadAll(): Promise<PoolSnapshot[]> {
    return Promise.resolve([...this.snapshots.values()].map((s) => JSON.parse(s) as PoolSnapshot));
  }
}
