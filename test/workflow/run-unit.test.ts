// The workflow engine against in-memory fakes of the Executor, Pool and State: scheduling caps,
// lease reuse, retries, failure strategies and resume, deterministic and fast. The same paths
// run for real (Docker, Redis, NATS) in workflow-docker.test.ts and resume.test.ts.
import { create, type JsonValue } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { FailedPreconditionError, UnavailableError } from "../../lib/errors.js";
import { InProcessEventBus } from "../../lib/events/in-process-event-bus.js";
import { jsonToValue } from "../../lib/json-value.js";
import { createLogger } from "../../lib/logger.js";
import { AgentMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  Backoff,
  ExecutionMode,
  FailureMode,
  StepKind,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";
import {
  CreateWorkflowRequestSchema,
  type CreateWorkflowRequest,
} from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { emptyCounts } from "../../services/workflow/counts.js";
import { WorkflowEngine } from "../../services/workflow/engine.js";
import { InMemoryRunStore } from "../../services/workflow/memory-run-store.js";
import { fillJobs, readToken, writeToken } from "../../services/workflow/paging.js";
import type {
  AgentPools,
  AttemptOutcome,
  AttemptRef,
  AttemptSpec,
  TaskRunner,
  WorkflowState,
} from "../../services/workflow/ports.js";
import type { StepRecord } from "../../services/workflow/run-store.js";
import type { EngineSettings } from "../../services/workflow/run.js";
import { workflowToProto } from "../../services/workflow/convert.js";
import { eventually } from "../support/await.js";

/** An Executor that runs attempts in memory: `item.fail`, `item.failAttempts`, `item.ms`. */
class FakeTasks implements TaskRunner {
  running = 0;
  peak = 0;
  runs: string[] = [];
  /** Each attempt's input, by task id. */
  inputs = new Map<string, JsonValue>();
  known = new Map<string, Promise<AttemptOutcome>>();
  cancelled: string[] = [];
  private hold = new Map<string, () => void>();

  private run(ref: AttemptRef, spec: AttemptSpec): Promise<AttemptOutcome> {
    const existing = this.known.get(ref.taskId);
    if (existing) return existing;
    this.runs.push(ref.taskId);
    this.inputs.set(ref.taskId, spec.input);
    const doc = spec.input as { item?: { fail?: boolean; failAttempts?: number; ms?: number } };
    const item = doc.item ?? {};
    this.running++;
    this.peak = Math.max(this.peak, this.running);
    const p = new Promise<AttemptOutcome>((resolve) => {
      const finish = (status: AttemptOutcome["status"], error = "") => {
        this.running--;
        resolve({
          status,
          exitCode: status === "succeeded" ? 0 : 1,
          error,
          result: status === "succeeded" ? { index: ref.index } : undefined,
          containerId: "",
          containerName: "",
          agentId: "",
          agentBroken: false,
        });
      };
      this.hold.set(ref.taskId, () => finish("cancelled", "cancelled"));
      setTimeout(() => {
        if (!this.hold.delete(ref.taskId)) return;
        if (item.fail || (item.failAttempts ?? 0) >= ref.attempt)
          finish("failed", `item ${ref.index} failed`);
        else finish("succeeded");
      }, item.ms ?? 1);
    });
    this.known.set(ref.taskId, p);
    return p;
  }
  runCold(ref: AttemptRef, spec: AttemptSpec) {
    return this.run(ref, spec);
  }
  runOnAgent(_agent: string, _mode: "exec" | "stream", ref: AttemptRef, spec: AttemptSpec) {
    return this.run(ref, spec);
  }
  async awaitExisting(taskId: string) {
    return this.known.get(taskId);
  }
  async cancel(taskId: string) {
    this.cancelled.push(taskId);
    this.hold.get(taskId)?.();
    this.hold.delete(taskId);
  }
}

class FakePools implements AgentPools {
  acquires = 0;
  releases: string[] = [];
  pools = new Set<string>();
  private n = 0;
  async ensurePool(p: { poolId: string }) {
    this.pools.add(p.poolId);
  }
  async describePool() {
    return { image: "img", mode: "stream" as const, maxSize: 4, active: true };
  }
  async acquire(poolId: string) {
    this.acquires++;
    const n = this.n++;
    return { leaseId: `l${n}`, poolId, agentId: `a${n}`, containerId: `c${n}` };
  }
  async renew() {}
  async release(leaseId: string, _h: string, outcome: string) {
    this.releases.push(`${leaseId}:${outcome}`);
  }
  async deletePool(poolId: string) {
    this.pools.delete(poolId);
  }
}

const expired: Array<[string, number]> = [];
const removed: string[] = [];
const state: WorkflowState = {
  create: async () => {},
  get: async () => undefined,
  expire: async (id, ttl) => {
    expired.push([id, ttl]);
  },
  remove: async (id) => {
    removed.push(id);
  },
};

function engine(
  store = new InMemoryRunStore(),
  tasks = new FakeTasks(),
  pools = new FakePools(),
  workflowState = state,
  settings: Partial<EngineSettings> = {},
) {
  const e = new WorkflowEngine({
    store,
    tasks,
    pools,
    state: workflowState,
    bus: new InProcessEventBus(),
    logger: createLogger({ name: "test", level: (process.env.TLOG ?? "silent") as "silent" }),
    checkImage: async () => {},
    limits: { poolMaxSizeLimit: 256, maxMapItems: 1_000_000 },
    settings: {
      leaseTtlMs: 60_000,
      acquireWaitMs: 1000,
      leaseMaxTasks: 1000,
      leaseMaxAgeMs: 60_000,
      progressIntervalMs: 20,
      maxMapItems: 1_000_000,
      maxOutputBytes: 4 * 1024 * 1024,
      ...settings,
    },
    owner: `o-${Math.random()}`,
    claimTtlMs: 60_000,
    sweepIntervalMs: 100,
  });
  return { e, store, tasks, pools };
}

/** Another instance on the same store and fakes, whose clock is past the first one's claim. */
function successor(first: WorkflowEngine): WorkflowEngine {
  return new WorkflowEngine({
    ...(first as unknown as { o: ConstructorParameters<typeof WorkflowEngine>[0] }).o,
    owner: "second",
    claimTtlMs: 60_000,
    now: () => Date.now() + 120_000,
  });
}

const items = (list: JsonValue[]) => ({
  source: { case: "inline" as const, value: { items: list.map((i) => jsonToValue(i)) } },
});

function request(init: Parameters<typeof create<typeof CreateWorkflowRequestSchema>>[1]) {
  return create(CreateWorkflowRequestSchema, init) as CreateWorkflowRequest;
}

async function ended(e: WorkflowEngine, id: string) {
  await eventually(async () => {
    const s = await e.get(id);
    return ["succeeded", "partially_succeeded", "failed", "cancelled"].includes(s.record.status);
  }, 10_000);
  return e.get(id);
}

describe("the workflow engine on fakes", () => {
  it("never runs more than max_parallel tasks, nor more than a step's max_workers", async () => {
    const { e, tasks } = engine();
    const id = await e.create(
      request({
        name: "caps",
        start: true,
        config: { maxParallel: 5 },
        steps: [
          { id: "a", kind: StepKind.MAP, image: "i", mapItems: items(Array(40).fill({ ms: 5 })) },
          {
            id: "b",
            kind: StepKind.MAP,
            image: "i",
            maxWorkers: 2,
            mapItems: items(Array(20).fill({ ms: 5 })),
          },
        ],
      }),
    );
    const s = await ended(e, id);
    expect(s.record.status).toBe("succeeded");
    expect(tasks.peak).toBe(5);
    expect(tasks.runs).toHaveLength(60);
    await e.close();
  });

  it("keeps a lease for the step's next task instead of acquiring each time", async () => {
    const { e, pools } = engine();
    const id = await e.create(
      request({
        name: "leases",
        start: true,
        config: { maxParallel: 4 },
        steps: [
          {
            id: "m",
            kind: StepKind.MAP,
            image: "i",
            execution: ExecutionMode.POOLED,
            agentMode: AgentMode.STREAM,
            pool: { case: "poolPolicy", value: { maxSize: 4 } },
            mapItems: items(Array(100).fill({})),
          },
        ],
      }),
    );
    const s = await ended(e, id);
    expect(s.record.status).toBe("succeeded");
    expect(pools.acquires).toBeLessThanOrEqual(8);
    expect(pools.releases).toHaveLength(pools.acquires);
    expect(pools.pools.size).toBe(0); // the inline pool went with the run
    await e.close();
  });

  it("retries only the failing item, and gives a failed agent back as failed", async () => {
    const { e, tasks, pools } = engine();
    const id = await e.create(
      request({
        name: "retry",
        start: true,
        steps: [
          {
            id: "m",
            kind: StepKind.MAP,
            image: "i",
            execution: ExecutionMode.POOLED,
            agentMode: AgentMode.STREAM,
            pool: { case: "poolPolicy", value: { maxSize: 2 } },
            retry: {
              maxAttempts: 3,
              backoff: Backoff.CONSTANT,
              initialDelay: { nanos: 10_000_000 },
            },
            mapItems: items([{ failAttempts: 2 }, {}, {}]),
          },
        ],
      }),
    );
    const s = await ended(e, id);
    expect(s.record.status).toBe("succeeded");
    expect(tasks.runs.filter((t) => t.includes(".m.0."))).toHaveLength(3);
    expect(tasks.runs.filter((t) => t.includes(".m.1."))).toHaveLength(1);
    expect(pools.releases.filter((r) => r.endsWith(":failed"))).toHaveLength(2);
    await e.close();
  });

  it("under continue_on_partial, a step past its tolerance fails alone; its independent sibling finishes", async () => {
    const { e } = engine();
    const id = await e.create(
      request({
        name: "tolerance",
        start: true,
        config: { failure: { mode: FailureMode.CONTINUE_ON_PARTIAL, maxFailedTasks: 1 } },
        steps: [
          {
            id: "bad",
            kind: StepKind.MAP,
            image: "i",
            mapItems: items([{ fail: true }, { fail: true }, {}]),
          },
          { id: "after", image: "i", dependsOn: ["bad"] },
          {
            id: "other",
            kind: StepKind.MAP,
            image: "i",
            mapItems: items([{ ms: 50 }, { ms: 50 }]),
          },
        ],
      }),
    );
    const s = await ended(e, id);
    const by = new Map(s.steps.map((x) => [x.stepId, x]));
    expect(s.record.status).toBe("failed");
    expect(by.get("bad")!.status).toBe("failed");
    expect(by.get("bad")!.statusMessage).toContain("past the tolerance");
    expect(by.get("after")!.status).toBe("cancelled");
    expect(by.get("other")!.status).toBe("succeeded");
    await e.close();
  });

  it("resumes a run from the store after its driver is gone, without re-running finished tasks", async () => {
    const store = new InMemoryRunStore();
    const tasks = new FakeTasks();
    const first = engine(store, tasks);
    const id = await first.e.create(
      request({
        name: "resume",
        start: true,
        config: { maxParallel: 2 },
        steps: [
          { id: "m", kind: StepKind.MAP, image: "i", mapItems: items(Array(10).fill({ ms: 30 })) },
        ],
      }),
    );
    await eventually(
      async () =>
        (await store.jobs(id, "m", 0, 10)).filter((j) => j.status === "succeeded").length >= 3,
    );
    await first.e.close(); // stops driving; its claim stays until it lapses
    const before = tasks.runs.length;
    // A new instance (another owner) takes over once the claim has lapsed.
    const second = successor(first.e);
    await second.start();
    const s = await ended(second, id);
    expect(s.record.status).toBe("succeeded");
    // Tasks in flight at the switch were picked up by id, not run again.
    expect(new Set(tasks.runs).size).toBe(tasks.runs.length);
    expect(tasks.runs.length).toBe(10);
    expect(before).toBeLessThan(10);
    // The first owner's token is stale: it can no longer write.
    await expect(store.apply(id, 1, {})).rejects.toBeInstanceOf(FailedPreconditionError);
    await second.close();
  });
  it("after a resume, decides again an item whose per-item `when` could not be evaluated", async () => {
    // The first read of the state fails; every later one sees `allow`, which the test changes.
    let reads = 0;
    let allow = true;
    const flaky: WorkflowState = {
      ...state,
      get: async (_id, key) => {
        if (reads++ === 0) throw new UnavailableError("state service: try again");
        return key === "allow" ? allow : undefined;
      },
    };
    const store = new InMemoryRunStore();
    const tasks = new FakeTasks();
    const first = engine(store, tasks, new FakePools(), flaky);
    const id = await first.e.create(
      request({
        name: "when-resume",
        start: true,
        config: { maxParallel: 1 },
        steps: [
          {
            id: "m",
            kind: StepKind.MAP,
            image: "i",
            when: "item.go == true && state.allow == true",
            // The retry is due long after the first driver has gone.
            retry: { maxAttempts: 3, backoff: Backoff.CONSTANT, initialDelay: { seconds: 60n } },
            mapItems: items([{ go: true }, { go: true }, { go: true, failAttempts: 1 }]),
          },
        ],
      }),
    );
    await eventually(async () => {
      const jobs = await store.jobs(id, "m", 0, 3);
      return jobs.map((j) => j.status).join() === "retrying,succeeded,retrying";
    });
    expect((await store.jobs(id, "m", 0, 1))[0]!.error).toMatch(/^when: .*try again/);
    await first.e.close();
    // Item 0 was never decided; were it decided now, it would be false. Item 2 was decided (true)
    // and ran once: its retry is not decided again.
    allow = false;
    const second = new WorkflowEngine({
      ...(first.e as unknown as { o: ConstructorParameters<typeof WorkflowEngine>[0] }).o,
      owner: "second",
      now: () => Date.now() + 120_000,
    });
    await second.start();
    const s = await ended(second, id);
    expect(s.record.status).toBe("succeeded");
    const jobs = await store.jobs(id, "m", 0, 3);
    expect(jobs.map((j) => j.status)).toEqual(["skipped", "succeeded", "succeeded"]);
    // Item 0 never reached the Executor.
    expect(tasks.runs).toEqual([`${id}.m.1.1`, `${id}.m.2.1`, `${id}.m.2.2`]);
    await second.close();
  });

  it("schedules the state's expiry at the end, and deletes the workflow past its retention", async () => {
    const { e, store } = engine();
    await e.start();
    const id = await e.create(
      request({
        name: "retention",
        start: true,
        config: { stateTtl: { seconds: 60n }, retention: { seconds: 1n } },
        steps: [{ id: "a", image: "i" }],
      }),
    );
    const s = await ended(e, id);
    expect(s.record.status).toBe("succeeded");
    await eventually(() => expired.some(([w, ttl]) => w === id && ttl === 60_000));
    expect(removed).not.toContain(id);
    await eventually(async () => !(await store.list()).some((r) => r.workflowId === id), 5000);
    expect(removed).toContain(id);
    await e.close();
  });

  it("stores nothing when a create-and-start cannot start (its inline pool cannot be made)", async () => {
    const pools = new FakePools();
    pools.ensurePool = async () => {
      throw new UnavailableError("pool service: no agents for you");
    };
    const { e, store } = engine(new InMemoryRunStore(), new FakeTasks(), pools);
    await e.start();
    const before = removed.length;
    await expect(
      e.create(
        request({
          name: "no-pool",
          workflowId: "wf-no-pool",
          start: true,
          steps: [
            {
              id: "m",
              kind: StepKind.MAP,
              image: "i",
              execution: ExecutionMode.POOLED,
              agentMode: AgentMode.STREAM,
              pool: { case: "poolPolicy", value: { maxSize: 2 } },
              mapItems: items([1, 2]),
            },
          ],
        }),
      ),
    ).rejects.toThrow(/no agents for you/);
    expect((await store.list()).map((r) => r.workflowId)).not.toContain("wf-no-pool");
    expect(removed.slice(before)).toContain("wf-no-pool");
    await e.close();
  });

  it("on resume, a step that had failed past its strategy stops again instead of running on", async () => {
    const store = new InMemoryRunStore();
    const tasks = new FakeTasks();
    const a = engine(store, tasks);
    const id = await a.e.create(
      request({
        name: "stopped",
        steps: [
          {
            id: "m",
            kind: StepKind.MAP,
            image: "i",
            mapItems: items(Array(6).fill({ ms: 60_000 })),
          },
        ],
      }),
    );
    await a.e.close();
    // The store as a crashed instance left it: item 0 failed for good (FAIL_FAST), item 1 running.
    const token = (await store.claim(id, "crashed", 1, 0)) as number;
    const job = (index: number, status: "failed" | "running") => ({
      ...fillJobs({ ...step("running"), width: 6 }, [], index, 1)[0]!,
      status,
      attempt: 1,
      attemptTaskId: `${id}.m.${index}.1`,
      startMs: 1,
      error: status === "failed" ? "boom" : "",
    });
    await store.apply(id, token, {
      workflow: { status: "running", startMs: 1 },
      steps: [
        {
          ...step("running"),
          width: 6,
          counts: { ...emptyCounts(), pending: 4, running: 1, failed: 1 },
        },
      ],
      jobs: [job(0, "failed"), job(1, "running")],
    });
    const b = engine(store, tasks);
    await b.e.start();
    const s = await ended(b.e, id);
    expect(s.record.status).toBe("failed");
    expect(s.steps[0]!.status).toBe("failed");
    // Nothing new was launched; the running attempt was looked up and stopped.
    expect(tasks.runs.filter((t) => !t.endsWith(".1.1"))).toEqual([]);
    expect(s.steps[0]!.counts).toMatchObject({ failed: 1, pending: 0 });
    await b.e.close();
  });
});

describe("wide MAP steps on fakes: items in pages, outputs past the limit left in the jobs", () => {
  const width = 2500;
  const many = (n: number) => Array.from({ length: n }, (_, i) => ({ n: i }));

  it("stores the items in pages when the step starts and gives every task its own item", async () => {
    const store = new InMemoryRunStore();
    const { e, tasks } = engine(store);
    const id = await e.create(
      request({
        name: "paged",
        start: true,
        steps: [{ id: "m", kind: StepKind.MAP, image: "i", mapItems: items(many(width)) }],
      }),
    );
    const s = await ended(e, id);
    expect(s.record.status).toBe("succeeded");
    // 2500 items: pages 0 and 1 of 1000, page 2 of 500, and nothing after.
    const sizes = [];
    for (let page = 0; page < 4; page++) {
      const text = await store.itemPage(id, "m", page);
      sizes.push(text === undefined ? undefined : (JSON.parse(text) as unknown[]).length);
    }
    expect(sizes).toEqual([1000, 1000, 500, undefined]);
    for (const index of [0, 999, 1000, 2001, 2499]) {
      const input = tasks.inputs.get(`${id}.m.${index}.1`) as { item: unknown; index: number };
      expect(input).toMatchObject({ index, item: { n: index } });
    }
    // Within the limit, the output is assembled as before.
    const output = s.steps[0]!.output as Array<{ index: number }>;
    expect(output).toHaveLength(width);
    expect(output[2499]).toEqual({ index: 2499 });
    await e.close();
  });

  it("leaves a MAP output past the limit in its jobs: no result, flags on the step and the workflow", async () => {
    const store = new InMemoryRunStore();
    const { e } = engine(store, undefined, undefined, undefined, { maxOutputBytes: 10_000 });
    const id = await e.create(
      request({
        name: "big-output",
        start: true,
        steps: [{ id: "m", kind: StepKind.MAP, image: "i", mapItems: items(many(width)) }],
      }),
    );
    const s = await ended(e, id);
    expect(s.record.status).toBe("succeeded");
    expect(s.record.result).toBeUndefined();
    expect(s.record.resultOmitted).toBe(true);
    expect(s.steps[0]).toMatchObject({ status: "succeeded", output: null, outputOmitted: true });
    const proto = workflowToProto(
      {
        record: s.record,
        request: s.request,
        steps: s.steps,
        lastSequence: 0,
        stateTtlMs: 0,
        retentionMs: 0,
      },
      { summary: false, withOutputs: false },
    );
    expect(proto.resultOmitted).toBe(true);
    expect(proto.result).toBeUndefined();
    expect(proto.stepProgress[0]!.outputOmitted).toBe(true);
    // Every result is still there, in the jobs.
    const jobs = await store.jobs(id, "m", 2490, 10);
    expect(jobs.map((j) => j.result)).toEqual(
      Array.from({ length: 10 }, (_, i) => ({ index: 2490 + i })),
    );
    await e.close();
  });

  it("feeds a MAP from_step from a too-large parent's jobs, a page at a time; other dependants fail", async () => {
    const { e, tasks } = engine(undefined, undefined, undefined, undefined, {
      maxOutputBytes: 10_000,
    });
    const id = await e.create(
      request({
        name: "chain",
        start: true,
        config: { failure: { mode: FailureMode.CONTINUE_ON_PARTIAL, maxFailedTasks: 1 } },
        steps: [
          { id: "a", kind: StepKind.MAP, image: "i", mapItems: items(many(width)) },
          {
            id: "b",
            kind: StepKind.MAP,
            image: "i",
            dependsOn: ["a"],
            mapItems: { source: { case: "fromStep", value: { stepId: "a" } } },
          },
          { id: "t", kind: StepKind.TASK, image: "i", dependsOn: ["a"] },
          { id: "r", kind: StepKind.REDUCE, image: "i", dependsOn: ["a"] },
          {
            id: "p",
            kind: StepKind.MAP,
            image: "i",
            dependsOn: ["a"],
            mapItems: { source: { case: "fromStep", value: { stepId: "a", path: "/0" } } },
          },
        ],
      }),
    );
    const s = await ended(e, id);
    const byId = Object.fromEntries(s.steps.map((x) => [x.stepId, x]));
    expect(byId.b).toMatchObject({ status: "succeeded", width, outputOmitted: true });
    // b's items are a's results, in order, read from a's jobs.
    for (const index of [0, 1000, 2499]) {
      const input = tasks.inputs.get(`${id}.b.${index}.1`) as { item: unknown; parents: object };
      expect(input.item).toEqual({ index });
      expect(input.parents).toEqual({});
    }
    expect(byId.t!.status).toBe("failed");
    expect(byId.t!.statusMessage).toMatch(
      /parent a: its output is larger than 10000 bytes of JSON \(WORKFLOW_MAX_OUTPUT_BYTES\), too large to hand to a task/,
    );
    expect(byId.r!.status).toBe("failed");
    expect(byId.r!.statusMessage).toMatch(/the results of step a are larger than 10000 bytes/);
    expect(byId.p!.status).toBe("failed");
    expect(byId.p!.statusMessage).toMatch(/take its items whole \(no path\)/);
    // No task of the failed steps ever ran.
    expect(tasks.runs.filter((t) => /\.(t|r|p)\./.test(t))).toEqual([]);
    await e.close();
  });

  it("a resumed step runs on the items it started with, whatever its source holds by then", async () => {
    const store = new InMemoryRunStore();
    const tasks = new FakeTasks();
    let stateItems: JsonValue = [{ v: "old-0" }, { v: "old-1", ms: 300 }, { v: "old-2" }];
    const fromState: WorkflowState = { ...state, get: async () => stateItems };
    const a = engine(store, tasks, undefined, fromState);
    const id = await a.e.create(
      request({
        name: "resume-items",
        start: true,
        config: { maxParallel: 1 },
        steps: [
          {
            id: "m",
            kind: StepKind.MAP,
            image: "i",
            mapItems: { source: { case: "fromState", value: "list" } },
          },
        ],
      }),
    );
    await eventually(() => tasks.runs.includes(`${id}.m.1.1`));
    // The instance goes away mid-step, the state changes, another instance resumes the run.
    await a.e.close();
    stateItems = [{ v: "new-0" }, { v: "new-1" }, { v: "new-2" }, { v: "new-3" }];
    const b = successor(a.e);
    await b.start();
    const s = await ended(b, id);
    expect(s.record.status).toBe("succeeded");
    expect(s.steps[0]!.width).toBe(3);
    // Item 2 was dispatched only after the resume, from the stored page.
    expect(tasks.runs).toContain(`${id}.m.2.1`);
    const seen = [...tasks.inputs.entries()]
      .filter(([t]) => t.startsWith(`${id}.m.`))
      .map(([, input]) => (input as { item: { v: string } }).item.v);
    expect(new Set(seen)).toEqual(new Set(["old-0", "old-1", "old-2"]));
    await b.close();
  });
});

const step = (status: StepRecord["status"]): StepRecord => ({
  stepId: "m",
  status,
  statusMessage: "",
  width: 4,
  poolId: "",
  counts: emptyCounts(),
  startMs: 10,
  endMs: status === "running" ? undefined : 20,
  output: undefined,
});

describe("job listing helpers", () => {
  it("fills the tasks not dispatched yet: PENDING while the step runs, CANCELLED once it ended", () => {
    const stored = [{ ...fillJobs(step("running"), [], 1, 1)[0]!, status: "succeeded" as const }];
    expect(fillJobs(step("running"), stored, 0, 4).map((j) => j.status)).toEqual([
      "pending",
      "succeeded",
      "pending",
      "pending",
    ]);
    expect(fillJobs(step("failed"), stored, 0, 4).map((j) => j.status)).toEqual([
      "cancelled",
      "succeeded",
      "cancelled",
      "cancelled",
    ]);
  });

  it("binds page tokens to their filters and rejects malformed ones", () => {
    const t = writeToken("f1", 50);
    expect(readToken(t, "f1")).toBe(50);
    expect(readToken("", "f1")).toBe(0);
    expect(() => readToken(t, "f2")).toThrow(/other filters/);
    expect(() => readToken("%%%", "f1")).toThrow(/malformed/);
  });
});
