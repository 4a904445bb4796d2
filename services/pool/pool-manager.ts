import { randomBytes } from "node:crypto";
import {
  AlreadyExistsError,
  DeadlineExceededError,
  FailedPreconditionError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnavailableError,
} from "../../lib/errors.js";
import type { Logger } from "../../lib/logger.js";
import type { AgentBackend } from "./backend.js";
import type { Policy } from "./policy.js";
import {
  latencyBoundsMs,
  newCounters,
  type Lease,
  type PoolAgent,
  type PoolRecord,
  type Waiter,
} from "./pool-state.js";
import type { PoolSnapshot, PoolStore } from "./store.js";
import type { Template } from "./template.js";

export type TaskOutcome = "unspecified" | "succeeded" | "failed" | "agent_broken";
export type Disposition = "returned" | "recycled" | "removed";

export type AgentEventName =
  | "created"
  | "ready"
  | "leased"
  | "released"
  | "lease_expired"
  | "recycled"
  | "unhealthy"
  | "removed";
export type PoolEventName =
  "created" | "updated" | "warm_requested" | "drain_started" | "drained" | "deleted";

/** Where pool and agent changes are announced (events.ts publishes them). */
export interface PoolListener {
  agentChanged(
    pool: PoolRecord,
    agent: PoolAgent,
    event: AgentEventName,
    extra: { lease?: Lease; outcome?: TaskOutcome; disposition?: Disposition; reason?: string },
  ): void;
  poolChanged(pool: PoolRecord, event: PoolEventName, reason: string): void;
}

export interface PoolManagerOptions {
  backend: AgentBackend;
  /** Where pools, agents and leases are kept across restarts. */
  store: PoolStore;
  listener: PoolListener;
  logger: Logger;
  now?: () => number;
  /** How often the reconcile loop runs. */
  reconcileIntervalMs: number;
  /** How long ended leases are remembered (for precise errors on a late Release). */
  endedLeaseMemoryMs?: number;
}

const hourMs = 3_600_000;

/**
 * Warm-agent pools: leases, the FIFO queue of waiting acquirers, release dispositions and the
 * reconcile loop that keeps each pool warm on its own (fill to min_size or a WarmPool target,
 * evict idle agents, health-check, replace dead ones, expire leases). All decisions are made
 * here; agents are created, checked and destroyed through the AgentBackend (the Executor).
 */
export class PoolManager {
  private readonly pools = new Map<string, PoolRecord>();
  private readonly leases = new Map<string, Lease>();
  private readonly leaseTimers = new Map<string, NodeJS.Timeout>();
  /** Per pool: the save waiting to start (reused by later changes) and the chain of saves. */
  private readonly queuedSaves = new Map<string, Promise<void>>();
  private readonly saveChains = new Map<string, Promise<void>>();
  private readonly lastSaved = new Map<string, string>();
  /** The last failure to create an agent, per pool (WarmPool with wait reports it). */
  private readonly createFailures = new Map<string, { error: Error; ms: number }>();
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private readonly backend: AgentBackend;
  private readonly listener: PoolListener;
  private readonly now: () => number;

  constructor(private readonly options: PoolManagerOptions) {
    this.backend = options.backend;
    this.listener = options.listener;
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.reconcileAll(), options.reconcileIntervalMs);
    this.timer.unref();
    this.unsubscribe = this.backend.onExited((agentId) => this.onAgentExited(agentId));
  }

  // ---- pools --------------------------------------------------------------------------------

  async create(poolId: string, template: Template, templateKey: string, policy: Policy) {
    const existing = this.pools.get(poolId);
    if (existing !== undefined) {
      if (existing.templateKey !== templateKey) {
        throw new AlreadyExistsError(
          `pool "${poolId}" exists with a different template (key ${existing.templateKey.slice(0, 12)}…); choose another pool_id or delete it first`,
          { field: "pool_id" },
        );
      }
      return { pool: existing, created: false };
    }
    const now = this.now();
    const pool: PoolRecord = {
      poolId,
      template,
      templateKey,
      policy,
      status: "active",
      createMs: now,
      updateMs: now,
      lastError: "",
      lastErrorMs: undefined,
      agents: new Map(),
      waiters: [],
      warmTarget: 0,
      warmUntilMs: 0,
      counters: newCounters(),
    };
    this.pools.set(poolId, pool);
    this.listener.poolChanged(pool, "created", "");
    this.reconcile(pool);
    await this.persist(pool);
    return { pool, created: true };
  }

  get(poolId: string): PoolRecord {
    const pool = this.pools.get(poolId);
    if (pool === undefined) {
      throw new NotFoundError(`no pool "${poolId}"`, { field: "pool_id" });
    }
    return pool;
  }

  list(): PoolRecord[] {
    return [...this.pools.values()].sort((a, b) => (a.poolId < b.poolId ? -1 : 1));
  }

  async updatePolicy(poolId: string, policy: Policy): Promise<PoolRecord> {
    const pool = this.get(poolId);
    this.requireActive(pool, "update");
    pool.policy = policy;
    pool.updateMs = this.now();
    this.listener.poolChanged(pool, "updated", "");
    this.reconcile(pool);
    await this.persist(pool);
    return pool;
  }

  async delete(poolId: string, force: boolean): Promise<boolean> {
    const pool = this.pools.get(poolId);
    if (pool === undefined) return false;
    const held = [...pool.agents.values()].filter((a) => a.state === "leased");
    if (held.length > 0 && !force) {
      throw new FailedPreconditionError(
        `pool "${poolId}" has ${held.length} lease(s) held; release them, or delete with force`,
        { field: "force" },
      );
    }
    this.pools.delete(poolId);
    this.failWaiters(pool, new FailedPreconditionError(`pool "${poolId}" was deleted`));
    for (const a of pool.agents.values()) {
      if (a.leaseId) this.endLease(a.leaseId, "revoked");
    }
    await Promise.all(
      [...pool.agents.values()].map((a) => this.backend.destroy(a.agentId, true, "pool deleted")),
    );
    pool.agents.clear();
    await this.options.store.remove(poolId);
    this.lastSaved.delete(poolId);
    this.listener.poolChanged(pool, "deleted", "");
    return true;
  }

  drain(poolId: string): PoolRecord {
    const pool = this.get(poolId);
    if (pool.status !== "active") return pool;
    pool.status = "draining";
    pool.updateMs = this.now();
    this.failWaiters(pool, new FailedPreconditionError(`pool "${poolId}" is draining`));
    this.listener.poolChanged(pool, "drain_started", "");
    this.reconcile(pool);
    return pool;
  }

  /** WarmPool: keep at least min(count, max_size) agents until the hold passes. */
  warm(poolId: string, count: number, holdMs: number, reason: string) {
    const pool = this.get(poolId);
    this.requireActive(pool, "warm");
    const now = this.now();
    const capped = Math.min(count, pool.policy.maxSize);
    const holding = pool.warmUntilMs > now ? pool.warmTarget : 0;
    pool.warmTarget = Math.max(holding, capped);
    pool.warmUntilMs = Math.max(pool.warmUntilMs, now + holdMs);
    const before = this.size(pool);
    this.listener.poolChanged(pool, "warm_requested", reason);
    this.reconcile(pool);
    return { pool, target: pool.warmTarget, started: this.size(pool) - before };
  }

  /**
   * Resolves when no agent of the pool is starting any more; rejects with the Executor's error
   * when creating one failed since `sinceMs`.
   */
  async whenWarm(pool: PoolRecord, sinceMs: number, signal: AbortSignal): Promise<void> {
    for (;;) {
      const failure = this.createFailures.get(pool.poolId);
      if (failure !== undefined && failure.ms >= sinceMs) throw failure.error;
      const starting = [...pool.agents.values()].filter((a) => a.state === "starting").length;
      if (starting === 0) return;
      if (signal.aborted) {
        throw new DeadlineExceededError(
          `pool "${pool.poolId}" was still starting agents when the call's deadline passed`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  // ---- leases -------------------------------------------------------------------------------

  /** Acquire: an idle agent at once (hit), else the FIFO queue (miss), growing if allowed. */
  async acquire(
    poolId: string,
    holder: string,
    waitMs: number,
    leaseTtlMs: number,
    signal: AbortSignal,
  ): Promise<{ lease: Lease; hit: boolean; waitedMs: number }> {
    const granted = await this.acquireInMemory(poolId, holder, waitMs, leaseTtlMs, signal);
    const pool = this.pools.get(poolId);
    if (pool !== undefined) await this.persist(pool); // the lease survives a restart
    if (signal.aborted) {
      // The caller went away while the lease was being stored: nobody will ever use or release
      // it, so the agent goes back now rather than at the lease's expiry.
      await this.release(
        granted.lease.leaseId,
        "unspecified",
        holder,
        "its Acquire call ended first",
      );
      throw new FailedPreconditionError("the Acquire call ended");
    }
    return granted;
  }

  private acquireInMemory(
    poolId: string,
    holder: string,
    waitMs: number,
    leaseTtlMs: number,
    signal: AbortSignal,
  ): Promise<{ lease: Lease; hit: boolean; waitedMs: number }> {
    const pool = this.get(poolId);
    this.requireActive(pool, "acquire from");
    const arrived = this.now();
    const ttl = leaseTtlMs || pool.policy.leaseTtlMs;
    const idle = this.pickIdle(pool);
    if (idle !== undefined && pool.waiters.length === 0) {
      pool.counters.hits++;
      const lease = this.grant(pool, idle, holder, ttl, arrived);
      return Promise.resolve({ lease, hit: true, waitedMs: 0 });
    }
    pool.counters.misses++;
    const canGrow = this.size(pool) < pool.policy.maxSize;
    if (waitMs === 0 && !canGrow) {
      pool.counters.acquireTimeouts++;
      return Promise.reject(this.exhausted(pool, 0));
    }
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const leave = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        const i = pool.waiters.indexOf(waiter);
        if (i !== -1) pool.waiters.splice(i, 1);
      };
      const waiter: Waiter = {
        holder,
        arrivedMs: arrived,
        leaseTtlMs: ttl,
        serve: (agent) => {
          leave();
          const lease = this.grant(pool, agent, holder, ttl, arrived);
          resolve({ lease, hit: false, waitedMs: this.now() - arrived });
        },
        fail: (err) => {
          leave();
          reject(err);
        },
      };
      const onAbort = () => waiter.fail(new FailedPreconditionError("the Acquire call ended"));
      signal.addEventListener("abort", onAbort, { once: true });
      pool.waiters.push(waiter);
      if (canGrow) this.startAgent(pool, waiter);
      if (waitMs > 0) {
        timer = setTimeout(() => {
          pool.counters.acquireTimeouts++;
          waiter.fail(this.exhausted(pool, waitMs));
        }, waitMs);
      }
    });
  }

  async renew(leaseId: string, ttlMs: number, holder: string): Promise<Lease> {
    const lease = this.liveLease(leaseId, holder, "renew");
    const pool = this.get(lease.poolId);
    lease.expireMs = this.now() + (ttlMs || pool.policy.leaseTtlMs);
    this.armLease(lease);
    await this.persist(pool);
    return lease;
  }

  /** Release: ends the lease and decides the agent's fate; checks and resets run afterwards. */
  async release(
    leaseId: string,
    outcome: TaskOutcome,
    holder: string,
    reason: string,
  ): Promise<{ disposition: Disposition; uses: number }> {
    const r = this.releaseInMemory(leaseId, outcome, holder, reason);
    const pool = this.pools.get(this.leases.get(leaseId)?.poolId ?? "");
    if (pool !== undefined) await this.persist(pool);
    return r;
  }

  private releaseInMemory(
    leaseId: string,
    outcome: TaskOutcome,
    holder: string,
    reason: string,
  ): { disposition: Disposition; uses: number } {
    const lease = this.liveLease(leaseId, holder, "release");
    this.endLease(leaseId, "released");
    const pool = this.pools.get(lease.poolId);
    const agent = pool?.agents.get(lease.agentId);
    if (pool === undefined || agent === undefined) return { disposition: "removed", uses: 0 };
    agent.uses++;
    this.listener.agentChanged(pool, agent, "released", { lease, outcome, reason });
    const disposition = this.afterUse(pool, agent, outcome, reason);
    return { disposition, uses: agent.uses };
  }

  // ---- internals ----------------------------------------------------------------------------

  private afterUse(
    pool: PoolRecord,
    agent: PoolAgent,
    outcome: TaskOutcome,
    reason: string,
  ): Disposition {
    const p = pool.policy;
    if (pool.status !== "active" || this.size(pool) > p.maxSize) {
      this.removeAgent(
        pool,
        agent,
        "removed",
        pool.status !== "active" ? "pool draining" : "above max_size",
      );
      return "removed";
    }
    const why =
      outcome === "agent_broken" || agent.broken
        ? `agent broken${reason ? `: ${reason}` : ""}`
        : p.maxAgentUses > 0 && agent.uses >= p.maxAgentUses
          ? `served max_agent_uses (${p.maxAgentUses}) tasks`
          : outcome === "failed" && p.recycleOnFailure
            ? "task failed and recycle_on_failure is set"
            : "";
    if (why !== "") {
      pool.counters.recycled++;
      this.removeAgent(pool, agent, "recycled", why);
      return "recycled";
    }
    const check = outcome === "failed" || outcome === "unspecified" || p.health.checkOnRelease;
    void this.returnAgent(pool, agent, check);
    return "returned";
  }

  /** Health check (if asked) and reset, then idle again or to the oldest waiter. */
  private async returnAgent(pool: PoolRecord, agent: PoolAgent, check: boolean): Promise<void> {
    agent.state = "checking";
    const p = pool.policy;
    if (check) {
      const r = await this.backend.check(agent.agentId, p.health.command, p.health.timeoutMs);
      agent.lastCheckMs = this.now();
      if (!r.healthy) {
        pool.counters.unhealthy++;
        this.noteError(pool, `agent ${agent.agentId} failed its check: ${r.detail}`);
        this.removeAgent(pool, agent, "unhealthy", r.detail);
        return;
      }
    }
    if (p.resetCommand.length > 0) {
      const r = await this.backend.check(agent.agentId, p.resetCommand, p.health.timeoutMs);
      if (!r.healthy) {
        pool.counters.recycled++;
        this.noteError(pool, `agent ${agent.agentId} failed its reset: ${r.detail}`);
        this.removeAgent(pool, agent, "recycled", `reset failed: ${r.detail}`);
        return;
      }
    }
    if (!this.pools.has(pool.poolId) || agent.state !== "checking") return;
    this.makeIdle(pool, agent);
  }

  /** An agent is free: the oldest waiter gets it, else it idles. */
  private makeIdle(pool: PoolRecord, agent: PoolAgent): void {
    if (pool.status !== "active") {
      this.removeAgent(pool, agent, "removed", "pool draining");
      return;
    }
    agent.state = "idle";
    agent.idleSinceMs = this.now();
    const waiter = pool.waiters[0];
    if (waiter !== undefined) waiter.serve(agent);
  }

  private grant(
    pool: PoolRecord,
    agent: PoolAgent,
    holder: string,
    ttlMs: number,
    arrivedMs: number,
  ): Lease {
    const now = this.now();
    const lease: Lease = {
      leaseId: `lease-${randomBytes(16).toString("hex")}`,
      poolId: pool.poolId,
      agentId: agent.agentId,
      containerId: agent.containerId,
      holder,
      acquireMs: now,
      expireMs: now + ttlMs,
      agentUsesBefore: agent.uses,
      ended: undefined,
      endedMs: undefined,
    };
    agent.state = "leased";
    agent.leaseId = lease.leaseId;
    if (agent.leases > 0) pool.counters.reuseCount++;
    agent.leases++;
    this.leases.set(lease.leaseId, lease);
    this.armLease(lease);
    const waited = now - arrivedMs;
    const bucket = latencyBoundsMs.findIndex((b) => waited <= b);
    pool.counters.latencyCounts[bucket === -1 ? latencyBoundsMs.length : bucket]!++;
    pool.counters.latencySumMs += waited;
    this.listener.agentChanged(pool, agent, "leased", { lease });
    return lease;
  }

  private armLease(lease: Lease): void {
    clearTimeout(this.leaseTimers.get(lease.leaseId));
    const t = setTimeout(
      () => this.expire(lease.leaseId),
      Math.max(0, lease.expireMs - this.now()),
    );
    t.unref();
    this.leaseTimers.set(lease.leaseId, t);
  }

  /** A holder that never released: the agent is checked (or destroyed if busy) and returned. */
  private expire(leaseId: string): void {
    const lease = this.leases.get(leaseId);
    if (lease === undefined || lease.ended !== undefined) return;
    this.endLease(leaseId, "expired");
    const pool = this.pools.get(lease.poolId);
    const agent = pool?.agents.get(lease.agentId);
    if (pool === undefined || agent === undefined) return;
    pool.counters.leaseExpirations++;
    this.listener.agentChanged(pool, agent, "lease_expired", { lease });
    agent.uses++;
    void (async () => {
      const r = await this.backend.check(agent.agentId, [], pool.policy.health.timeoutMs);
      if (r.state === "busy" || !r.healthy || agent.broken) {
        // Still running the dead holder's task, or broken: it cannot be trusted.
        pool.counters.recycled++;
        this.removeAgent(pool, agent, "recycled", `lease expired while the agent was ${r.state}`);
      } else {
        this.afterUse(pool, agent, "unspecified", "lease expired");
      }
    })();
  }

  private endLease(leaseId: string, how: Lease["ended"]): void {
    const lease = this.leases.get(leaseId);
    if (lease === undefined || lease.ended !== undefined) return;
    lease.ended = how;
    lease.endedMs = this.now();
    clearTimeout(this.leaseTimers.get(leaseId));
    this.leaseTimers.delete(leaseId);
    const pool = this.pools.get(lease.poolId);
    const agent = pool?.agents.get(lease.agentId);
    if (agent !== undefined && agent.leaseId === leaseId) agent.leaseId = "";
    const forget = setTimeout(
      () => this.leases.delete(leaseId),
      this.options.endedLeaseMemoryMs ?? hourMs,
    );
    forget.unref();
  }

  private liveLease(leaseId: string, holder: string, verb: string): Lease {
    const lease = this.leases.get(leaseId);
    if (lease === undefined) {
      throw new NotFoundError(`no lease "${leaseId}" (unknown, or ended more than an hour ago)`, {
        field: "lease_id",
      });
    }
    if (holder !== "" && holder !== lease.holder) {
      throw new PermissionDeniedError(
        `lease "${leaseId}" is held by "${lease.holder}", not "${holder}"; it stays held`,
        { field: "holder" },
      );
    }
    if (lease.ended !== undefined) {
      throw new FailedPreconditionError(
        `cannot ${verb} lease "${leaseId}": it was ${lease.ended} ${Math.round((this.now() - (lease.endedMs ?? 0)) / 1000)} s ago, and its agent may be serving someone else`,
        { field: "lease_id" },
      );
    }
    return lease;
  }

  private startAgent(pool: PoolRecord, forWaiter?: Waiter): void {
    const agentId = `${pool.poolId.slice(0, 80)}-${randomBytes(5).toString("hex")}`;
    const now = this.now();
    const agent: PoolAgent = {
      agentId,
      containerId: "",
      state: "starting",
      uses: 0,
      leases: 0,
      createdMs: now,
      idleSinceMs: now,
      lastCheckMs: now,
      failures: 0,
      broken: false,
      leaseId: "",
    };
    pool.agents.set(agentId, agent);
    pool.counters.containersCreated++;
    this.backend.create(pool.poolId, agentId, pool.template).then(
      ({ containerId }) => {
        agent.containerId = containerId;
        if (!this.pools.has(pool.poolId) || agent.state !== "starting") {
          void this.backend.destroy(agentId, true, "no longer wanted");
          return;
        }
        this.listener.agentChanged(pool, agent, "created", {});
        this.listener.agentChanged(pool, agent, "ready", {});
        this.makeIdle(pool, agent);
      },
      (err: unknown) => {
        pool.agents.delete(agentId);
        const e = err instanceof Error ? err : new Error(String(err));
        this.createFailures.set(pool.poolId, { error: e, ms: this.now() });
        this.noteError(pool, `could not create an agent: ${e.message}`);
        // The acquirer it was started for learns why; others keep waiting for other agents.
        const target = forWaiter && pool.waiters.includes(forWaiter) ? forWaiter : undefined;
        target?.fail(e);
      },
    );
  }

  private removeAgent(
    pool: PoolRecord,
    agent: PoolAgent,
    event: "recycled" | "removed" | "unhealthy",
    reason: string,
  ): void {
    if (agent.state === "removing") return;
    agent.state = "removing";
    this.listener.agentChanged(pool, agent, event, { reason });
    void this.backend.destroy(agent.agentId, true, reason).finally(() => {
      pool.agents.delete(agent.agentId);
      if (event !== "removed") this.listener.agentChanged(pool, agent, "removed", { reason });
      this.reconcile(pool);
    });
  }

  private onAgentExited(agentId: string): void {
    for (const pool of this.pools.values()) {
      const agent = pool.agents.get(agentId);
      if (agent === undefined) continue;
      if (agent.state === "leased") {
        agent.broken = true; // its holder's Release (or the lease's expiry) recycles it
      } else if (agent.state === "idle" || agent.state === "checking") {
        pool.counters.unhealthy++;
        this.noteError(pool, `agent ${agentId} exited`);
        this.removeAgent(pool, agent, "unhealthy", "its container exited");
      }
    }
  }

  /** Agents counted against max_size (being removed ones are not). */
  private size(pool: PoolRecord): number {
    let n = 0;
    for (const a of pool.agents.values()) if (a.state !== "removing") n++;
    return n;
  }

  /** The agent that became idle last: the others can idle out. */
  private pickIdle(pool: PoolRecord): PoolAgent | undefined {
    let best: PoolAgent | undefined;
    for (const a of pool.agents.values()) {
      if (a.state === "idle" && (best === undefined || a.idleSinceMs > best.idleSinceMs)) best = a;
    }
    return best;
  }

  reconcileAll(): void {
    for (const pool of this.pools.values()) this.reconcile(pool);
  }

  /** One pass of the loop that keeps a pool as its policy says. */
  reconcile(pool: PoolRecord): void {
    if (!this.pools.has(pool.poolId)) return;
    const now = this.now();
    const agents = [...pool.agents.values()];
    if (pool.status !== "active") {
      for (const a of agents)
        if (a.state === "idle") this.removeAgent(pool, a, "removed", "pool draining");
      if (pool.agents.size === 0 && pool.status === "draining") {
        pool.status = "drained";
        pool.updateMs = now;
        this.listener.poolChanged(pool, "drained", "");
      }
      return;
    }
    const p = pool.policy;
    const warm = pool.warmUntilMs > now ? pool.warmTarget : 0;
    if (warm === 0) pool.warmTarget = 0;
    const floor = Math.min(p.maxSize, Math.max(p.warmUp ? p.minSize : 0, warm));
    // Too many (max_size lowered): idle ones go now, leased ones on release.
    let size = this.size(pool);
    for (const a of agents) {
      if (size <= p.maxSize) break;
      if (a.state === "idle") {
        this.removeAgent(pool, a, "removed", "above max_size");
        size--;
      }
    }
    // Evict agents idle past idle_timeout, down to the floor (min_size or a warm target).
    const keep = Math.max(p.minSize, warm);
    const idle = agents
      .filter((a) => a.state === "idle")
      .sort((a, b) => a.idleSinceMs - b.idleSinceMs);
    for (const a of idle) {
      if (size <= keep) break;
      if (now - a.idleSinceMs >= p.idleTimeoutMs) {
        pool.counters.evicted++;
        this.removeAgent(
          pool,
          a,
          "removed",
          `idle for ${Math.round((now - a.idleSinceMs) / 1000)} s`,
        );
        size--;
      }
    }
    // Grow to the floor, and for waiters no starting agent will serve.
    const starting = agents.filter((a) => a.state === "starting").length;
    let wanted = Math.max(floor - size, pool.waiters.length - starting);
    while (wanted > 0 && size < p.maxSize) {
      this.startAgent(pool);
      size++;
      wanted--;
    }
    void this.persist(pool);
    // Health checks of idle agents.
    for (const a of idle) {
      if (a.state === "idle" && now - a.lastCheckMs >= p.health.intervalMs)
        void this.healthCheck(pool, a);
    }
  }

  private async healthCheck(pool: PoolRecord, agent: PoolAgent): Promise<void> {
    agent.state = "checking";
    const r = await this.backend.check(
      agent.agentId,
      pool.policy.health.command,
      pool.policy.health.timeoutMs,
    );
    agent.lastCheckMs = this.now();
    if (agent.state !== "checking") return;
    if (r.healthy) {
      agent.failures = 0;
      this.makeIdle(pool, agent);
      return;
    }
    agent.failures++;
    if (
      r.state === "exited" ||
      r.state === "gone" ||
      agent.failures >= pool.policy.health.failureThreshold
    ) {
      pool.counters.unhealthy++;
      this.noteError(pool, `agent ${agent.agentId} failed ${agent.failures} check(s): ${r.detail}`);
      this.removeAgent(pool, agent, "unhealthy", r.detail);
    } else {
      this.makeIdle(pool, agent);
    }
  }

  private requireActive(pool: PoolRecord, verb: string): void {
    if (pool.status !== "active") {
      throw new FailedPreconditionError(
        `cannot ${verb} pool "${pool.poolId}": it is ${pool.status.toUpperCase()}`,
        { field: "pool_id" },
      );
    }
  }

  private failWaiters(pool: PoolRecord, err: Error): void {
    for (const w of [...pool.waiters]) w.fail(err);
  }

  private exhausted(pool: PoolRecord, waitMs: number): Error {
    return new ResourceExhaustedError(
      `no agent of pool "${pool.poolId}" became free within ${waitMs} ms: all ${this.size(pool)} of max_size ${pool.policy.maxSize} are busy; wait longer (wait_timeout), raise max_size, or retry`,
    );
  }

  private noteError(pool: PoolRecord, message: string): void {
    pool.lastError = message;
    pool.lastErrorMs = this.now();
    this.options.logger.warn({ poolId: pool.poolId }, message);
  }

  /**
   * Saves the pool's snapshot. Saves of one pool run one after another; a change made while a
   * save waits to start joins it. A failed save is logged and kept in last_error: the pool keeps
   * working from memory and the next change saves again.
   */
  persist(pool: PoolRecord): Promise<void> {
    const id = pool.poolId;
    const queued = this.queuedSaves.get(id);
    if (queued !== undefined) return queued;
    const previous = this.saveChains.get(id) ?? Promise.resolve();
    const next = previous.then(async () => {
      this.queuedSaves.delete(id);
      if (this.pools.get(id) !== pool) return; // deleted meanwhile
      const snapshot = this.snapshot(pool);
      const text = JSON.stringify(snapshot);
      if (this.lastSaved.get(id) === text) return; // nothing changed since the last save
      try {
        await this.options.store.save(snapshot);
        this.lastSaved.set(id, text);
      } catch (err) {
        this.noteError(pool, `could not save the pool: ${(err as Error).message}`);
      }
    });
    this.queuedSaves.set(id, next);
    this.saveChains.set(id, next);
    return next;
  }

  private snapshot(pool: PoolRecord): PoolSnapshot {
    const agents = [...pool.agents.values()].filter(
      (a) => a.state !== "starting" && a.state !== "removing",
    );
    return {
      poolId: pool.poolId,
      template: pool.template,
      templateKey: pool.templateKey,
      policy: pool.policy,
      status: pool.status,
      createMs: pool.createMs,
      updateMs: pool.updateMs,
      lastError: pool.lastError,
      lastErrorMs: pool.lastErrorMs,
      warmTarget: pool.warmTarget,
      warmUntilMs: pool.warmUntilMs,
      counters: pool.counters,
      agents: agents.map((a) => ({
        agentId: a.agentId,
        containerId: a.containerId,
        uses: a.uses,
        leases: a.leases,
        createdMs: a.createdMs,
        idleSinceMs: a.idleSinceMs,
      })),
      leases: agents
        .map((a) => (a.leaseId ? this.leases.get(a.leaseId) : undefined))
        .filter((l): l is Lease => l !== undefined && l.ended === undefined),
    };
  }

  /**
   * After a restart: loads every pool, adopts the agents the Executor still runs for it (leased
   * ones stay leased under their lease, the rest idle and checked soon), forgets agents that are
   * gone, and destroys pooled agents no pool has a record of (strays).
   */
  async restore(): Promise<{ pools: number; adopted: number; strays: number; lost: number }> {
    const snapshots = await this.options.store.loadAll();
    const live = await this.backend.listPooled();
    const byId = new Map(live.map((a) => [a.agentId, a]));
    let adopted = 0;
    let lost = 0;
    const known = new Set<string>();
    for (const snap of snapshots) {
      const { agents: storedAgents, leases: storedLeases, ...fields } = snap;
      const pool: PoolRecord = { ...fields, agents: new Map(), waiters: [] };
      this.pools.set(pool.poolId, pool);
      for (const a of storedAgents) {
        const there = byId.get(a.agentId);
        if (
          there === undefined ||
          there.poolId !== pool.poolId ||
          there.state === "exited" ||
          there.state === "gone"
        ) {
          lost++;
          continue;
        }
        known.add(a.agentId);
        const lease = storedLeases.find((l) => l.agentId === a.agentId && l.ended === undefined);
        pool.agents.set(a.agentId, {
          ...a,
          state: lease ? "leased" : "idle",
          lastCheckMs: 0, // checked at the first reconcile pass
          failures: 0,
          broken: false,
          leaseId: lease?.leaseId ?? "",
        });
        if (lease !== undefined) {
          this.leases.set(lease.leaseId, lease);
          this.armLease(lease);
        }
        adopted++;
      }
    }
    const strays = live.filter((a) => !known.has(a.agentId));
    await Promise.all(
      strays.map((a) => this.backend.destroy(a.agentId, true, "stray: no pool has a record of it")),
    );
    for (const pool of this.pools.values()) this.reconcile(pool);
    return { pools: snapshots.length, adopted, strays: strays.length, lost };
  }

  /**
   * Stops the loop and fails waiting acquirers (shutdown). Agents are left running and leases
   * held: a restarted service adopts them from the store.
   */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.unsubscribe();
    for (const t of this.leaseTimers.values()) clearTimeout(t);
    for (const pool of this.pools.values()) {
      this.failWaiters(pool, new UnavailableError("the Pool service is shutting down; retry"));
    }
    await Promise.all([...this.saveChains.values()]);
  }
}
