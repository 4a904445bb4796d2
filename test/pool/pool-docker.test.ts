import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { connect as natsConnect } from "nats";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  AgentMode,
  type ExecutorService,
  TaskStatus,
} from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  AgentDisposition,
  type PoolService,
  PoolStatus,
  TaskOutcome,
  type PoolPolicySchema,
} from "../../gen/agentainer/pool/v1/pool_pb.js";
import { AgentLifecycleEventSchema } from "../../gen/agentainer/pool/v1/events_pb.js";
import { ExecutionMode, StepKind } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { WorkflowEventSchema } from "../../gen/agentainer/workflow/v1/events_pb.js";
import { codeOf, eventually } from "../support/await.js";
import { containers, ms, shellImage, startPoolOnDocker, type PoolOnDocker } from "./support.js";

describe("the Pool service on the real Executor and Docker", () => {
  let services: PoolOnDocker;
  let pools: Client<typeof PoolService>;
  let exec: Client<typeof ExecutorService>;

  beforeAll(async () => {
    services = await startPoolOnDocker();
    ({ pools, exec } = services);
  });

  afterAll(async () => {
    await services?.close();
  });

  const template = { image: shellImage, command: ["sleep", "3600"], mode: AgentMode.EXEC };
  async function newPool(policy: MessageInitShape<typeof PoolPolicySchema>) {
    const poolId = `p-${randomUUID().slice(0, 8)}`;
    const { pool } = await pools.createPool({
      poolId,
      template,
      policy: { maxSize: 1, ...policy },
    });
    return pool!;
  }
  const metrics = async (poolId: string) => (await pools.getPool({ poolId })).pool!.metrics!;

  /** Acquire, run one exec task on the agent, release: what a pooled step does per item. */
  async function runPooled(poolId: string, i: number, holder = `wf/step/${i}`) {
    const { lease, hit } = await pools.acquire({ poolId, holder, waitTimeout: ms(60_000) });
    const { result } = await exec.runTaskOnAgent({
      agentId: lease!.agentId,
      ref: { workflowId: "wf-pool", stepId: "map", index: i },
      command: ["sh", "-c", `echo $AGENTAINER_INDEX`],
    });
    const release = await pools.release({
      leaseId: lease!.leaseId,
      holder,
      outcome: result?.status === TaskStatus.SUCCEEDED ? TaskOutcome.SUCCEEDED : TaskOutcome.FAILED,
    });
    return { lease: lease!, hit, result: result!, release };
  }

  it("warms up exactly min_size containers, and grows only on demand", async () => {
    const pool = await newPool({ minSize: 2, maxSize: 4, warmUp: true });
    await eventually(async () => (await metrics(pool.poolId)).idle === 2);
    expect(containers(pool.poolId)).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 600)); // a few reconcile passes: nothing more starts
    expect(containers(pool.poolId)).toHaveLength(2);
    const m = await metrics(pool.poolId);
    expect(m.containersCreated).toBe(2n);
    await pools.deletePool({ poolId: pool.poolId });
    expect(containers(pool.poolId, true)).toEqual([]);
  });

  it("runs 20 tasks through a pool of at most 5 with exactly 5 containers, each reused", async () => {
    const pool = await newPool({ maxSize: 5 });
    const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => runPooled(pool.poolId, i)));
    expect(runs.every((r) => r.result.status === TaskStatus.SUCCEEDED)).toBe(true);
    const agentsUsed = new Set(runs.map((r) => r.lease.agentId));
    expect(agentsUsed.size).toBe(5);
    expect(containers(pool.poolId)).toHaveLength(5);
    const m = await metrics(pool.poolId);
    expect(m.containersCreated).toBe(5n);
    expect(m.reuseCount).toBe(15n);
    expect(m.hits + m.misses).toBe(20n);
    expect(runs.every((r) => r.release.disposition === AgentDisposition.RETURNED)).toBe(true);
    // Every agent served more than one task.
    const perAgent = new Map<string, number>();
    for (const r of runs) perAgent.set(r.lease.agentId, (perAgent.get(r.lease.agentId) ?? 0) + 1);
    expect([...perAgent.values()].every((n) => n > 1)).toBe(true);
    await pools.deletePool({ poolId: pool.poolId });
  });

  it("recycles an agent after max_agent_uses tasks", async () => {
    const pool = await newPool({ maxSize: 1, maxAgentUses: 2 });
    const runs = [];
    for (let i = 0; i < 4; i++) runs.push(await runPooled(pool.poolId, i));
    expect(runs.map((r) => r.release.disposition)).toEqual([
      AgentDisposition.RETURNED,
      AgentDisposition.RECYCLED,
      AgentDisposition.RETURNED,
      AgentDisposition.RECYCLED,
    ]);
    expect(runs[0]!.lease.agentId).toBe(runs[1]!.lease.agentId);
    expect(runs[2]!.lease.agentId).not.toBe(runs[1]!.lease.agentId);
    const m = await metrics(pool.poolId);
    expect(m.recycled).toBe(2n);
    expect(m.containersCreated).toBe(2n);
    await pools.deletePool({ poolId: pool.poolId });
  });

  it("evicts agents idle past idle_timeout down to min_size", async () => {
    const pool = await newPool({ minSize: 1, maxSize: 3, warmUp: true, idleTimeout: ms(1000) });
    await Promise.all([0, 1, 2].map((i) => runPooled(pool.poolId, i)));
    expect((await metrics(pool.poolId)).size).toBe(3);
    await eventually(async () => (await metrics(pool.poolId)).size === 1, 10_000);
    expect((await metrics(pool.poolId)).evicted).toBe(2n);
    await eventually(() => containers(pool.poolId).length === 1);
    await pools.deletePool({ poolId: pool.poolId });
  });

  it("notices an agent killed with docker kill and replaces it", async () => {
    const pool = await newPool({ minSize: 1, maxSize: 2, warmUp: true });
    await eventually(async () => (await metrics(pool.poolId)).idle === 1);
    const [victim] = containers(pool.poolId);
    execFileSync("docker", ["kill", victim!]);
    await eventually(async () => {
      const m = await metrics(pool.poolId);
      return m.unhealthy === 1n && m.idle === 1 && m.containersCreated === 2n;
    });
    expect(containers(pool.poolId)).not.toContain(victim);
    await pools.deletePool({ poolId: pool.poolId });
  });

  it("takes back the agent of a holder that never releases, at its lease's expiry", async () => {
    const pool = await newPool({ maxSize: 1 });
    const { lease } = await pools.acquire({
      poolId: pool.poolId,
      holder: "gone",
      leaseTtl: ms(1000),
    });
    expect(
      await codeOf(pools.acquire({ poolId: pool.poolId, holder: "next", waitTimeout: ms(0) })),
    ).toBe(Code.ResourceExhausted);
    const next = await pools.acquire({
      poolId: pool.poolId,
      holder: "next",
      waitTimeout: ms(10_000),
    });
    expect(next.lease?.agentId).toBe(lease?.agentId); // the same, checked agent
    expect((await metrics(pool.poolId)).leaseExpirations).toBe(1n);
    expect(await codeOf(pools.release({ leaseId: lease!.leaseId }))).toBe(Code.FailedPrecondition);
    await pools.release({ leaseId: next.lease!.leaseId, outcome: TaskOutcome.SUCCEEDED });
    await pools.deletePool({ poolId: pool.poolId });
  });

  it("serves waiting acquirers first come, first served", async () => {
    const pool = await newPool({ maxSize: 1 });
    const first = await pools.acquire({ poolId: pool.poolId, holder: "a" });
    const order: string[] = [];
    const waiters = ["b", "c", "d"].map(async (holder, i) => {
      await new Promise((r) => setTimeout(r, i * 50)); // arrive in this order
      const { lease } = await pools.acquire({
        poolId: pool.poolId,
        holder,
        waitTimeout: ms(20_000),
      });
      order.push(holder);
      await new Promise((r) => setTimeout(r, 50));
      await pools.release({ leaseId: lease!.leaseId, holder, outcome: TaskOutcome.SUCCEEDED });
    });
    await eventually(async () => (await metrics(pool.poolId)).waiting === 3);
    await pools.release({
      leaseId: first.lease!.leaseId,
      holder: "a",
      outcome: TaskOutcome.SUCCEEDED,
    });
    await Promise.all(waiters);
    expect(order).toEqual(["b", "c", "d"]);
    const m = await metrics(pool.poolId);
    expect(m.containersCreated).toBe(1n);
    await pools.deletePool({ poolId: pool.poolId });
  });

  it("answers bad input with precise statuses and changes nothing", async () => {
    const pool = await newPool({ maxSize: 2 });
    const poolId = pool.poolId;
    expect(
      await codeOf(
        pools.createPool({ poolId: "x1", template, policy: { minSize: 3, maxSize: 2 } }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(await codeOf(pools.createPool({ poolId: "x2", template, policy: { maxSize: 0 } }))).toBe(
      Code.InvalidArgument,
    );
    expect(
      await codeOf(
        pools.createPool({
          poolId: "x3",
          template,
          policy: { maxSize: 1, idleTimeout: create(DurationSchema, { seconds: -5n }) },
        }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(
      await codeOf(
        pools.createPool({
          poolId: "x4",
          template: { image: "agentainer/absent:local" },
          policy: { maxSize: 1 },
        }),
      ),
    ).toBe(Code.NotFound);
    expect((await pools.listPools({})).pools.map((p) => p.poolId)).not.toContain("x1");
    expect(await codeOf(pools.getPool({ poolId: "nope" }))).toBe(Code.NotFound);
    expect(await codeOf(pools.acquire({ poolId: "nope", holder: "h" }))).toBe(Code.NotFound);
    expect(await codeOf(pools.acquire({ poolId, holder: "" }))).toBe(Code.InvalidArgument);
    expect(
      await codeOf(
        pools.createPool({
          poolId,
          template: { ...template, command: ["sleep", "10"] },
          policy: { maxSize: 2 },
        }),
      ),
    ).toBe(Code.AlreadyExists);
    expect(
      await codeOf(
        pools.updatePool({ poolId, policy: { maxSize: 2 }, template: { image: shellImage } }),
      ),
    ).toBe(Code.FailedPrecondition);
    const { lease } = await pools.acquire({ poolId, holder: "me" });
    expect(await codeOf(pools.release({ leaseId: lease!.leaseId, holder: "someone-else" }))).toBe(
      Code.PermissionDenied,
    );
    await pools.release({ leaseId: lease!.leaseId, holder: "me", outcome: TaskOutcome.SUCCEEDED });
    expect(await codeOf(pools.release({ leaseId: lease!.leaseId, holder: "me" }))).toBe(
      Code.FailedPrecondition,
    );
    expect(await codeOf(pools.release({ leaseId: "lease-unknown" }))).toBe(Code.NotFound);
    const drained = await pools.drainPool({ poolId, wait: true });
    expect(drained.pool?.status).toBe(PoolStatus.DRAINED);
    expect(await codeOf(pools.acquire({ poolId, holder: "late" }))).toBe(Code.FailedPrecondition);
    expect((await pools.deletePool({ poolId })).existed).toBe(true);
    expect((await pools.deletePool({ poolId })).existed).toBe(false);
  });

  it("pre-warms on a step_starting event, before any Acquire", async () => {
    const pool = await newPool({ maxSize: 3 });
    expect(containers(pool.poolId)).toEqual([]);
    const nc = await natsConnect({ servers: inject("natsUrl") });
    try {
      const event = create(WorkflowEventSchema, {
        sequence: 4n,
        workflowId: "wf-prewarm",
        payload: {
          case: "stepStarting",
          value: {
            stepId: "map",
            kind: StepKind.MAP,
            width: 100n,
            concurrency: 10,
            execution: ExecutionMode.POOLED,
            poolId: pool.poolId,
            image: shellImage,
          },
        },
      });
      nc.publish(
        "agentainer.workflow.step.starting.wf-prewarm",
        toBinary(WorkflowEventSchema, event),
      );
      await nc.flush();
    } finally {
      await nc.close();
    }
    // min(concurrency 10, max_size 3) agents, started by the event alone.
    await eventually(async () => (await metrics(pool.poolId)).idle === 3);
    const m = await metrics(pool.poolId);
    expect(m.warmTarget).toBe(3);
    expect(m.hits).toBe(0n);
    expect(containers(pool.poolId)).toHaveLength(3);
    const { hit } = await pools.acquire({ poolId: pool.poolId, holder: "first" });
    expect(hit).toBe(true);
    await pools.deletePool({ poolId: pool.poolId, force: true });
  });

  it("announces agent lifecycle events and honours WarmPool, UpdatePool and ListPools", async () => {
    const pool = await newPool({ maxSize: 3, maxAgentUses: 1 });
    const poolId = pool.poolId;
    const nc = await natsConnect({ servers: inject("natsUrl") });
    const seen: string[] = [];
    nc.subscribe(`agentainer.pool.agent.*.${poolId}`, {
      callback: (_e, m) => {
        const ev = fromBinary(AgentLifecycleEventSchema, m.data);
        seen.push(`${m.subject.split(".")[3]}${ev.holder ? ` ${ev.holder}` : ""}`);
      },
    });
    await nc.flush();
    try {
      await runPooled(poolId, 0, "h1"); // max_agent_uses 1: recycled after its one task
      await eventually(() => seen.includes("removed"));
      expect(seen).toEqual(["created", "ready", "leased h1", "released h1", "recycled", "removed"]);

      const warmed = await pools.warmPool({ poolId, count: 10, wait: true, reason: "test" });
      expect(warmed.target).toBe(3); // capped at max_size
      expect(warmed.started).toBe(3);
      expect(warmed.pool?.metrics?.idle).toBe(3);
      const lowered = await pools.updatePool({
        poolId,
        policy: { maxSize: 1 },
        updateMask: { paths: ["max_size"] },
      });
      expect(lowered.pool?.policy?.maxAgentUses).toBe(1); // kept: not in the mask
      await eventually(async () => (await metrics(poolId)).size === 1);
      const m = await metrics(poolId);
      expect(m.acquireLatency?.count).toBe(1n);

      const other = await newPool({ maxSize: 1 });
      const first = await pools.listPools({ pageSize: 1 });
      expect(first.pools).toHaveLength(1);
      const rest = await pools.listPools({ pageSize: 1000, pageToken: first.nextPageToken });
      const ids = [...first.pools, ...rest.pools].map((p) => p.poolId);
      expect(ids).toEqual([...ids].sort());
      expect(ids).toEqual(expect.arrayContaining([poolId, other.poolId]));
      await pools.deletePool({ poolId: other.poolId });
    } finally {
      await nc.close();
      await pools.deletePool({ poolId, force: true });
    }
  });

  it("says why a pool cannot warm: the Executor's status reaches WarmPool, Acquire and last_error", async () => {
    const poolId = `broken-${randomUUID().slice(0, 8)}`;
    await pools.createPool({
      poolId,
      template: { image: shellImage, command: ["sh", "-c", "echo no agent here >&2; exit 3"] },
      policy: { maxSize: 2 },
    });
    const warm = await pools
      .warmPool({ poolId, count: 1, wait: true })
      .catch((e: unknown) => ConnectError.from(e));
    expect((warm as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((warm as ConnectError).rawMessage).toMatch(/exited during start-up/);
    const acquire = await pools
      .acquire({ poolId, holder: "h", waitTimeout: ms(10_000) })
      .catch((e: unknown) => ConnectError.from(e));
    expect((acquire as ConnectError).code).toBe(Code.FailedPrecondition);
    const { pool } = await pools.getPool({ poolId });
    expect(pool?.lastError).toMatch(/could not create an agent.*no agent here/);
    await pools.deletePool({ poolId });
    expect(containers(poolId, true)).toEqual([]);
  });

  it("drains: hands out nothing, lets held leases finish, then removes everything", async () => {
    const pool = await newPool({ maxSize: 2, minSize: 2, warmUp: true });
    const poolId = pool.poolId;
    await eventually(async () => (await metrics(poolId)).idle === 2);
    const { lease } = await pools.acquire({ poolId, holder: "busy" });
    const draining = await pools.drainPool({ poolId });
    expect(draining.pool?.status).toBe(PoolStatus.DRAINING);
    expect(await codeOf(pools.acquire({ poolId, holder: "late" }))).toBe(Code.FailedPrecondition);
    await eventually(async () => (await metrics(poolId)).size === 1); // the idle one went
    const r = await pools.release({ leaseId: lease!.leaseId, outcome: TaskOutcome.SUCCEEDED });
    expect(r.disposition).toBe(AgentDisposition.REMOVED);
    await eventually(
      async () => (await pools.getPool({ poolId })).pool?.status === PoolStatus.DRAINED,
    );
    expect(containers(poolId, true)).toEqual([]);
    await pools.deletePool({ poolId });
  });

  it("replaces an agent that fails its health checks failure_threshold times", async () => {
    const pool = await newPool({
      maxSize: 1,
      minSize: 1,
      warmUp: true,
      healthCheck: {
        interval: ms(1000),
        timeout: ms(500),
        command: ["sh", "-c", "test ! -e /tmp/sick"],
        failureThreshold: 2,
      },
    });
    const poolId = pool.poolId;
    await eventually(async () => (await metrics(poolId)).idle === 1);
    const [first] = containers(poolId);
    execFileSync("docker", ["exec", first!, "touch", "/tmp/sick"]);
    await eventually(async () => {
      const m = await metrics(poolId);
      return m.unhealthy === 1n && m.idle === 1 && m.containersCreated === 2n;
    }, 20_000);
    expect(containers(poolId)).not.toContain(first);
    expect((await pools.getPool({ poolId })).pool?.lastError).toMatch(/failed 2 check/);
    await pools.deletePool({ poolId });
  });
});
