import type { Policy } from "./policy.js";
import type { Template } from "./template.js";

export type PoolStatus = "active" | "draining" | "drained";

/** Where one of a pool's agents is. */
export type PoolAgentState =
  /** Being created by the Executor. */
  | "starting"
  /** READY and free. */
  | "idle"
  /** Held by a lease. */
  | "leased"
  /** Being health-checked or reset before it is idle again. */
  | "checking"
  /** Being destroyed. */
  | "removing";

export interface PoolAgent {
  readonly agentId: string;
  containerId: string;
  state: PoolAgentState;
  /** Tasks served (leases released or expired). */
  uses: number;
  /** Leases it has been given. */
  leases: number;
  createdMs: number;
  idleSinceMs: number;
  lastCheckMs: number;
  /** Consecutive failed health checks. */
  failures: number;
  /** Its container exited while it was leased: recycle it when the lease ends. */
  broken: boolean;
  leaseId: string;
}

export type LeaseEnd = "released" | "expired" | "revoked";

export interface Lease {
  readonly leaseId: string;
  readonly poolId: string;
  readonly agentId: string;
  readonly containerId: string;
  readonly holder: string;
  readonly acquireMs: number;
  expireMs: number;
  /** Tasks the agent had served before this lease. */
  readonly agentUsesBefore: number;
  ended: LeaseEnd | undefined;
  endedMs: number | undefined;
}

/** An Acquire waiting in a pool's queue. */
export interface Waiter {
  readonly holder: string;
  readonly arrivedMs: number;
  readonly leaseTtlMs: number;
  serve(agent: PoolAgent): void;
  fail(err: Error): void;
}

/** Cumulative counters (PoolMetrics); gauges are computed from the agents. */
export interface PoolCounters {
  hits: number;
  misses: number;
  containersCreated: number;
  reuseCount: number;
  recycled: number;
  evicted: number;
  unhealthy: number;
  leaseExpirations: number;
  acquireTimeouts: number;
  /** Acquire latency histogram: counts per bucket of `latencyBoundsMs`, plus the sum. */
  latencyCounts: number[];
  latencySumMs: number;
}

/** Upper bounds of the acquire-latency buckets (the last bucket is +Infinity). */
export const latencyBoundsMs = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

export function newCounters(): PoolCounters {
  return {
    hits: 0,
    misses: 0,
    containersCreated: 0,
    reuseCount: 0,
    recycled: 0,
    evicted: 0,
    unhealthy: 0,
    leaseExpirations: 0,
    acquireTimeouts: 0,
    latencyCounts: new Array<number>(latencyBoundsMs.length + 1).fill(0),
    latencySumMs: 0,
  };
}

export interface PoolRecord {
  readonly poolId: string;
  readonly template: Template;
  readonly templateKey: string;
  policy: Policy;
  status: PoolStatus;
  readonly createMs: number;
  updateMs: number;
  lastError: string;
  lastErrorMs: number | undefined;
  readonly agents: Map<string, PoolAgent>;
  readonly waiters: Waiter[];
  warmTarget: number;
  warmUntilMs: number;
  readonly counters: PoolCounters;
}
