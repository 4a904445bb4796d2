import type { Policy } from "./policy.js";
import type { Lease, PoolCounters, PoolStatus } from "./pool-state.js";
import type { Template } from "./template.js";

/** What survives a restart of the Pool service: one snapshot per pool. */
export interface PoolSnapshot {
  poolId: string;
  template: Template;
  templateKey: string;
  policy: Policy;
  status: PoolStatus;
  createMs: number;
  updateMs: number;
  lastError: string;
  lastErrorMs: number | undefined;
  warmTarget: number;
  warmUntilMs: number;
  counters: PoolCounters;
  agents: Array<{
    agentId: string;
    containerId: string;
    uses: number;
    leases: number;
    createdMs: number;
    idleSinceMs: number;
  }>;
  /** Leases not yet ended. */
  leases: Lease[];
}

/**
 * Where pool snapshots are kept: Redis (redis-store.ts) in the mesh, memory (memory-store.ts) in
 * the one-process mode. Both pass test/pool/pool-store-contract.ts.
 */
export interface PoolStore {
  save(snapshot: PoolSnapshot): Promise<void>;
  remove(poolId: string): Promise<void>;
  loadAll(): Promise<PoolSnapshot[]>;
}
