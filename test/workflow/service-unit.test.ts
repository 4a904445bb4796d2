// Unit tests of the Workflow service's own logic: page tokens and cursors, the listing of jobs
// (with the tasks the store has no record of), and the watch loop over an in-memory run store.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { AgentainerError } from "../../lib/errors.js";
import { InvalidArgumentError } from "../../lib/errors.js";
import { WorkflowStatus as ProtoWorkflowStatus } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import type { WorkflowEvent } from "../../gen/agentainer/workflow/v1/events_pb.js";
import {
  CreateWorkflowRequestSchema,
  ListJobsRequestSchema,
  WatchWorkflowRequestSchema,
} from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { emptyCounts } from "../../services/workflow/counts.js";
import type { WorkflowEngine, WorkflowSnapshot } from "../../services/workflow/engine.js";
import { encodeEvent, workflowEvents } from "../../services/workflow/events.js";
import type { WorkflowStatus } from "../../services/workflow/lifecycle.js";
import { InMemoryRunStore } from "../../services/workflow/memory-run-store.js";
import {
  fillJobs,
  isJobCursor,
  isWorkflowCursor,
  jobFilterKey,
  listsJobs,
  pageOfJobs,
  pageOfWorkflows,
  pageSize,
  readCursor,
  readToken,
  workflowFilterKey,
  writeToken,
  type JobCursor,
  type WorkflowFilter,
} from "../../services/workflow/paging.js";
import type { JobRecord, StepRecord, WorkflowRecord } from "../../services/workflow/run-store.js";
import {
  createWorkflowService,
  decodeStoredEvent,
  endsWatch,
  isTaskEvent,
  snapshotEvent,
  Wakeup,
} from "../../services/workflow/service.js";

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as AgentainerError).field;
  }
  throw new Error("expected INVALID_ARGUMENT");
}

describe("page size", () => {
  it("defaults 0 and allows up to 1000", () => {
    expect(pageSize(0, 50)).toBe(50);
    expect(pageSize(7, 50)).toBe(7);
    expect(pageSize(1000, 100)).toBe(1000);
    expect(fieldOf(() => pageSize(1001, 100))).toBe("page_size");
  });
});

describe("page tokens", () => {
  it("round-trip a cursor and bind it to its filters", () => {
    const cursor: JobCursor = { step: 2, index: 40 };
    const t = writeToken("k1", cursor);
    expect(t).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(readCursor(t, "k1", isJobCursor)).toEqual(cursor);
    expect(readCursor("", "k1", isJobCursor)).toBeUndefined();
    expect(() => readCursor(t, "k2", isJobCursor)).toThrow(/other filters/);
    expect(fieldOf(() => readCursor(t, "k2", isJobCursor))).toBe("page_token");
  });

  it("reject malformed tokens", () => {
    const b64 = (s: string) => Buffer.from(s).toString("base64url");
    for (const bad of [
      "%%%",
      "a b",
      b64("not json"),
      b64("null"),
      b64("[1,2]"),
      b64(JSON.stringify({ f: 1, p: { step: 0, index: 0 } })),
      b64(JSON.stringify({ f: "k1" })),
      b64(JSON.stringify({ f: "k1", p: { step: -1, index: 0 } })),
      b64(JSON.stringify({ f: "k1", p: { step: 0, index: 1.5 } })),
      b64(JSON.stringify({ f: "k1", p: { createMs: 1, workflowId: "x" } })),
    ]) {
      expect(() => readCursor(bad, "k1", isJobCursor), bad).toThrow(/malformed/);
      expect(fieldOf(() => readCursor(bad, "k1", isJobCursor))).toBe("page_token");
    }
  });

  it("keep plain offsets readable (readToken)", () => {
    const t = writeToken("f1", 50);
    expect(readToken(t, "f1")).toBe(50);
    expect(readToken("", "f1")).toBe(0);
    expect(() => readToken(t, "f2")).toThrow(/other filters/);
    expect(() => readToken(writeToken("f1", { createMs: 1, workflowId: "a" }), "f1")).toThrow(
      /malformed/,
    );
  });

  it("filter keys ignore the order of statuses and labels, not their values", () => {
    const a: WorkflowFilter = { statuses: ["running", "failed"], labels: { x: "1", y: "2" } };
    const b: WorkflowFilter = { statuses: ["failed", "running"], labels: { y: "2", x: "1" } };
    expect(workflowFilterKey(a)).toBe(workflowFilterKey(b));
    expect(workflowFilterKey(a)).not.toBe(workflowFilterKey({ ...a, labels: { x: "1" } }));
    expect(workflowFilterKey(a)).not.toBe(workflowFilterKey({ ...a, statuses: ["running"] }));
    expect(jobFilterKey("wf", "", ["failed", "pending"])).toBe(
      jobFilterKey("wf", "", ["pending", "failed"]),
    );
    expect(jobFilterKey("wf", "", [])).not.toBe(jobFilterKey("wf2", "", []));
    expect(jobFilterKey("wf", "", [])).not.toBe(jobFilterKey("wf", "m", []));
    expect(jobFilterKey("wf", "", [])).not.toBe(workflowFilterKey({ statuses: [], labels: {} }));
  });
});

function wf(id: string, createMs: number, status: WorkflowStatus = "running", labels = {}) {
  return {
    workflowId: id,
    name: id,
    labels,
    request: new Uint8Array(),
    status,
    statusMessage: "",
    createMs,
    startMs: undefined,
    endMs: undefined,
    result: undefined,
  } satisfies WorkflowRecord;
}

describe("pageOfWorkflows", () => {
  const any: WorkflowFilter = { statuses: [], labels: {} };

  it("lists newest first, then by id, page after page", () => {
    const records = [wf("b", 5), wf("a", 5), wf("c", 9), wf("d", 1), wf("e", 3)];
    const seen: string[] = [];
    let after;
    let pages = 0;
    do {
      const { page, next } = pageOfWorkflows(records, any, after, 2);
      seen.push(...page.map((r) => r.workflowId));
      after = next;
      pages++;
    } while (after !== undefined);
    expect(seen).toEqual(["c", "a", "b", "e", "d"]);
    expect(pages).toBe(3);
  });

  it("has no next page when the last one is exactly full", () => {
    const r = pageOfWorkflows([wf("a", 1), wf("b", 2)], any, undefined, 2);
    expect(r.page.map((w) => w.workflowId)).toEqual(["b", "a"]);
    expect(r.next).toBeUndefined();
  });

  it("stays stable when workflows are created between pages", () => {
    const records = [wf("a", 1), wf("b", 2), wf("c", 3), wf("d", 4)];
    const first = pageOfWorkflows(records, any, undefined, 2);
    expect(first.page.map((w) => w.workflowId)).toEqual(["d", "c"]);
    expect(isWorkflowCursor(first.next)).toBe(true);
    const later = [...records, wf("new", 10)];
    const second = pageOfWorkflows(later, any, first.next, 2);
    expect(second.page.map((w) => w.workflowId)).toEqual(["b", "a"]);
    expect(second.next).toBeUndefined();
  });

  it("filters by status and by every label", () => {
    const records = [
      wf("a", 1, "running", { team: "x", env: "prod" }),
      wf("b", 2, "failed", { team: "x" }),
      wf("c", 3, "running", { team: "y", env: "prod" }),
      wf("d", 4, "pending", {}),
    ];
    const ids = (f: WorkflowFilter) =>
      pageOfWorkflows(records, f, undefined, 10).page.map((w) => w.workflowId);
    expect(ids({ statuses: ["running"], labels: {} })).toEqual(["c", "a"]);
    expect(ids({ statuses: ["running", "failed"], labels: { team: "x" } })).toEqual(["b", "a"]);
    expect(ids({ statuses: [], labels: { team: "x", env: "prod" } })).toEqual(["a"]);
    expect(ids({ statuses: [], labels: { toString: "x" } })).toEqual([]);
  });
});

function step(status: StepRecord["status"], width: number, over: Partial<StepRecord> = {}) {
  const ended = status !== "running" && status !== "retrying";
  return {
    stepId: "m",
    status,
    statusMessage: "",
    width,
    poolId: "pool-1",
    counts: emptyCounts(),
    startMs: 10,
    endMs: ended ? 20 : undefined,
    output: undefined,
    ...over,
  } satisfies StepRecord;
}

function job(stepId: string, index: number, status: JobRecord["status"], attempt = 1): JobRecord {
  return {
    stepId,
    index,
    status,
    attempt,
    attemptTaskId: `t-${stepId}-${index}`,
    agentId: "",
    containerId: "c",
    containerName: "n",
    poolId: "",
    leaseId: "",
    attemptStatus: undefined,
    createMs: 10,
    startMs: 11,
    endMs: undefined,
    exitCode: undefined,
    error: "",
    nextAttemptMs: undefined,
    result: status === "succeeded" ? { index } : undefined,
  };
}

describe("fillJobs", () => {
  it("fills undispatched tasks: PENDING while the step runs or retries", () => {
    const stored = [job("m", 1, "succeeded"), job("m", 3, "running")];
    for (const status of ["running", "retrying"] as const) {
      const jobs = fillJobs(step(status, 5), stored, 0, 5);
      expect(jobs.map((j) => j.status)).toEqual([
        "pending",
        "succeeded",
        "pending",
        "running",
        "pending",
      ]);
      expect(jobs.map((j) => j.index)).toEqual([0, 1, 2, 3, 4]);
      const gap = jobs[0]!;
      expect(gap).toMatchObject({ stepId: "m", attempt: 0, createMs: 10, attemptTaskId: "" });
      expect(gap.startMs).toBeUndefined();
      expect(gap.endMs).toBeUndefined();
      expect(gap.poolId).toBe("");
    }
  });

  it("fills them as CANCELLED (never ran) once the step has ended", () => {
    const stored = [job("m", 1, "succeeded")];
    for (const status of ["succeeded", "failed", "cancelled", "partially_succeeded"] as const) {
      const jobs = fillJobs(step(status, 3), stored, 0, 3);
      expect(jobs.map((j) => j.status)).toEqual(["cancelled", "succeeded", "cancelled"]);
      expect(jobs[0]!.endMs).toBe(20);
      expect(jobs[0]!.attempt).toBe(0);
    }
  });

  it("covers exactly the range asked for", () => {
    const jobs = fillJobs(step("running", 10), [job("m", 5, "running")], 4, 3);
    expect(jobs.map((j) => [j.index, j.status])).toEqual([
      [4, "pending"],
      [5, "running"],
      [6, "pending"],
    ]);
  });

  it("lists only steps that have started", () => {
    expect(listsJobs(step("running", 3))).toBe(true);
    expect(listsJobs(step("failed", 0))).toBe(false);
    // SKIPPED or CANCELLED before starting: a width (for the counts) but no start.
    expect(listsJobs(step("skipped", 1, { startMs: undefined }))).toBe(false);
    expect(listsJobs(step("cancelled", 4, { startMs: undefined }))).toBe(false);
    expect(listsJobs(step("pending", 0, { startMs: undefined }))).toBe(false);
  });
});

/** A job reader over fixed records that remembers what it was asked. */
function reader(jobs: JobRecord[]) {
  const reads: Array<[string, number, number]> = [];
  const read = (stepId: string, from: number, limit: number) => {
    reads.push([stepId, from, limit]);
    return Promise.resolve(
      jobs.filter((j) => j.stepId === stepId && j.index >= from && j.index < from + limit),
    );
  };
  return { read, reads };
}

async function allPages(
  steps: Array<StepRecord | undefined>,
  read: Parameters<typeof pageOfJobs>[1],
  statuses: string[],
  size: number,
) {
  const out: string[] = [];
  let after: JobCursor | undefined;
  let pages = 0;
  do {
    const page = await pageOfJobs(steps, read, { statuses, after, size });
    expect(page.jobs.length).toBeLessThanOrEqual(size);
    if (page.next !== undefined) expect(page.jobs.length).toBe(size);
    out.push(...page.jobs.map(({ step: s, job: j }) => `${s}:${j.stepId}-${j.index}:${j.status}`));
    after = page.next;
    pages++;
  } while (after !== undefined && pages < 1000);
  return { out, pages };
}

describe("pageOfJobs", () => {
  const steps = [
    step("succeeded", 1, { stepId: "a" }),
    step("skipped", 1, { stepId: "s", startMs: undefined }),
    step("running", 4, { stepId: "m" }),
    step("pending", 0, { stepId: "r", startMs: undefined }),
  ];
  const stored = [
    job("a", 0, "succeeded"),
    job("m", 0, "succeeded"),
    job("m", 1, "failed"),
    job("m", 2, "running"),
  ];

  it("lists by step then index, with gaps filled, over pages", async () => {
    const { read } = reader(stored);
    const all = [
      "0:a-0:succeeded",
      "2:m-0:succeeded",
      "2:m-1:failed",
      "2:m-2:running",
      "2:m-3:pending",
    ];
    for (const size of [1, 2, 3, 5, 100]) {
      const { out, pages } = await allPages(steps, read, [], size);
      expect(out, `size ${size}`).toEqual(all);
      expect(pages).toBe(Math.max(1, Math.ceil(all.length / size)));
    }
  });

  it("filters by status and by step", async () => {
    const { read } = reader(stored);
    expect((await allPages(steps, read, ["pending", "failed"], 1)).out).toEqual([
      "2:m-1:failed",
      "2:m-3:pending",
    ]);
    const onlyA = steps.map((s) => (s.stepId === "a" ? s : undefined));
    expect((await allPages(onlyA, read, [], 10)).out).toEqual(["0:a-0:succeeded"]);
    expect((await allPages(steps, read, ["skipped"], 10)).out).toEqual([]);
  });

  it("reads from where the page starts, only what it needs", async () => {
    const { read, reads } = reader([]);
    const big = [step("running", 100_000, { stepId: "m" })];
    const first = await pageOfJobs(big, read, { statuses: [], after: undefined, size: 10 });
    expect(first.next).toEqual({ step: 0, index: 10 });
    expect(reads).toEqual([["m", 0, 11]]);
    reads.length = 0;
    const later = await pageOfJobs(big, read, {
      statuses: [],
      after: { step: 0, index: 50_000 },
      size: 1000,
    });
    expect(later.jobs[0]!.job.index).toBe(50_000);
    expect(later.next).toEqual({ step: 0, index: 51_000 });
    expect(reads).toEqual([
      ["m", 50_000, 1000],
      ["m", 51_000, 1],
    ]);
  });

  it("scans in chunks under a status filter", async () => {
    const width = 2500;
    const jobs = [job("m", 5, "failed"), job("m", 1200, "failed"), job("m", 2499, "failed")];
    for (let i = 0; i < width; i++) {
      if (![5, 1200, 2499].includes(i)) jobs.push(job("m", i, "succeeded"));
    }
    const { read, reads } = reader(jobs);
    const big = [step("failed", width, { stepId: "m" })];
    const { out } = await allPages(big, read, ["failed"], 2);
    expect(out).toEqual(["0:m-5:failed", "0:m-1200:failed", "0:m-2499:failed"]);
    expect(reads.every(([, , limit]) => limit <= 1000)).toBe(true);
  });

  it("returns nothing past the last step", async () => {
    const { read } = reader(stored);
    const r = await pageOfJobs(steps, read, {
      statuses: [],
      after: { step: 9, index: 0 },
      size: 10,
    });
    expect(r).toEqual({ jobs: [], next: undefined });
  });
});

describe("Wakeup", () => {
  it("keeps a notification that came while nobody waited", async () => {
    const w = new Wakeup();
    w.fire();
    const t0 = Date.now();
    await w.wait(5_000);
    expect(Date.now() - t0).toBeLessThan(1_000);
  });

  it("wakes a waiter, or times out", async () => {
    const w = new Wakeup();
    const t0 = Date.now();
    setTimeout(() => w.fire(), 20);
    await w.wait(5_000);
    expect(Date.now() - t0).toBeLessThan(1_000);
    const t1 = Date.now();
    await w.wait(30);
    expect(Date.now() - t1).toBeGreaterThanOrEqual(25);
  });
});

// -------------------------------------------------------------------------------------------------
// Handlers over a stub engine (the store and its notifications only)

class StubEngine {
  readonly listeners = new Map<string, Set<() => void>>();
  constructor(
    readonly store: InMemoryRunStore,
    private readonly stepsOf: (id: string) => StepRecord[] = () => [],
  ) {}

  async get(id: string): Promise<WorkflowSnapshot> {
    const record = await this.store.get(id);
    const steps = this.stepsOf(id);
    return {
      record,
      request: create(CreateWorkflowRequestSchema, { name: record.name }),
      definition: {
        steps: steps.map((s) => ({ id: s.stepId, retry: { maxAttempts: 3 } })),
        settings: { stateTtlMs: 0, retentionMs: 0 },
      } as unknown as WorkflowSnapshot["definition"],
      steps,
      lastSequence: await this.store.lastSequence(id),
    };
  }

  list() {
    return this.store.list();
  }

  subscribe(id: string, listener: () => void): () => void {
    const set = this.listeners.get(id) ?? new Set();
    this.listeners.set(id, set);
    set.add(listener);
    return () => set.delete(listener);
  }

  notify(id: string): void {
    for (const l of this.listeners.get(id) ?? []) l();
  }
}

/** Like the Redis store: no events (rather than NOT_FOUND) for a workflow that is gone. */
class LenientStore extends InMemoryRunStore {
  override async events(id: string, after: number, limit: number) {
    try {
      return await super.events(id, after, limit);
    } catch {
      return [];
    }
  }
}

const status = (s: WorkflowStatus, prev: WorkflowStatus | undefined, t = 1) =>
  encodeEvent(workflowEvents.statusChanged("w1", t, s, prev, "", emptyCounts()));
const task = (index: number) =>
  encodeEvent(workflowEvents.taskStarted("w1", 2, job("m", index, "running")));

async function seed(store: InMemoryRunStore, datas: Uint8Array[], final: WorkflowStatus) {
  await store.create(
    { ...wf("w1", 1, final) },
    datas.map((data) => ({ timeMs: 1, data })),
  );
}

function service(engine: StubEngine, shutdown = new AbortController().signal) {
  return createWorkflowService(
    {
      engine: engine as unknown as WorkflowEngine,
      state: {
        getAll: () => Promise.reject(new Error("unused")),
        putAll: () => Promise.reject(new Error("unused")),
      },
      limits: { poolMaxSizeLimit: 256, maxMapItems: 1000 },
    },
    shutdown,
  );
}

function context(signal = new AbortController().signal): HandlerContext {
  return { signal } as HandlerContext;
}

type WatchInit = Parameters<typeof create<typeof WatchWorkflowRequestSchema>>[1];

async function collect(
  engine: StubEngine,
  init: WatchInit,
  opts: { signal?: AbortSignal; shutdown?: AbortSignal; max?: number } = {},
) {
  const svc = service(engine, opts.shutdown);
  const events: WorkflowEvent[] = [];
  const stream = svc.watchWorkflow(
    create(WatchWorkflowRequestSchema, init),
    context(opts.signal),
  ) as AsyncIterable<{ event: WorkflowEvent }>;
  for await (const r of stream) {
    events.push(r.event);
    if (events.length >= (opts.max ?? 10_000)) break;
  }
  return events;
}

const describeEvent = (e: WorkflowEvent) =>
  `${e.sequence}:${e.payload.case}` +
  (e.payload.case === "workflowStatusChanged" || e.payload.case === "snapshot"
    ? `:${ProtoWorkflowStatus[e.payload.value.status]}`
    : "");

describe("watch helpers", () => {
  it("end on a terminal status or deletion, not on other events", () => {
    const decode = (data: Uint8Array, sequence = 1) =>
      decodeStoredEvent({ sequence, timeMs: 1, data });
    expect(endsWatch(decode(status("running", "pending")))).toBe(false);
    expect(endsWatch(decode(status("cancelling", "running")))).toBe(false);
    for (const s of ["succeeded", "partially_succeeded", "failed", "cancelled"] as const) {
      expect(endsWatch(decode(status(s, "running")))).toBe(true);
    }
    expect(endsWatch(workflowEvents.deleted("w1", 1))).toBe(true);
    expect(isTaskEvent(decode(task(0)))).toBe(true);
    expect(isTaskEvent(decode(status("running", "pending")))).toBe(false);
    expect(decode(task(0), 42).sequence).toBe(42n);
  });

  it("snapshot: status, steps and summed counts at the sequence given", () => {
    const a = {
      ...step("succeeded", 1, { stepId: "a" }),
      counts: { ...emptyCounts(), succeeded: 1 },
    };
    const m = {
      ...step("running", 4, { stepId: "m" }),
      counts: { ...emptyCounts(), pending: 3, running: 1 },
    };
    const e = snapshotEvent(
      {
        record: wf("w1", 1, "running"),
        steps: [a, m],
        lastSequence: 9,
      } as unknown as WorkflowSnapshot,
      7,
      1000,
    );
    expect(e.sequence).toBe(7n);
    expect(e.payload.case).toBe("snapshot");
    if (e.payload.case !== "snapshot") return;
    expect(e.payload.value.status).toBe(ProtoWorkflowStatus.RUNNING);
    expect(e.payload.value.steps.map((s) => s.stepId)).toEqual(["a", "m"]);
    expect(e.payload.value.counts?.total).toBe(5n);
    expect(e.payload.value.counts?.pending).toBe(3n);
  });
});

describe("WatchWorkflow", () => {
  it("replays after after_sequence and ends on the terminal event", async () => {
    const store = new InMemoryRunStore();
    await seed(
      store,
      [
        status("pending", undefined),
        status("running", "pending"),
        task(0),
        status("succeeded", "running"),
      ],
      "succeeded",
    );
    const events = await collect(new StubEngine(store), { workflowId: "w1", afterSequence: 1n });
    expect(events.map(describeEvent)).toEqual([
      "2:workflowStatusChanged:RUNNING",
      "3:taskStarted",
      "4:workflowStatusChanged:SUCCEEDED",
    ]);
  });

  it("leaves out task events on request, sequences skipping them", async () => {
    const store = new InMemoryRunStore();
    await seed(
      store,
      [
        status("pending", undefined),
        status("running", "pending"),
        task(0),
        task(1),
        status("failed", "running"),
      ],
      "failed",
    );
    const events = await collect(new StubEngine(store), {
      workflowId: "w1",
      afterSequence: 0n,
      excludeTaskEvents: true,
    });
    expect(events.map(describeEvent)).toEqual([
      "1:workflowStatusChanged:PENDING",
      "2:workflowStatusChanged:RUNNING",
      "5:workflowStatusChanged:FAILED",
    ]);
  });

  it("ends at once for an ended workflow watched from its last event", async () => {
    const store = new InMemoryRunStore();
    await seed(store, [status("pending", undefined), status("cancelled", "pending")], "cancelled");
    const t0 = Date.now();
    expect(await collect(new StubEngine(store), { workflowId: "w1", afterSequence: 2n })).toEqual(
      [],
    );
    expect(Date.now() - t0).toBeLessThan(400);
  });

  it("starts with a snapshot without after_sequence; an ended run's snapshot is all", async () => {
    const store = new InMemoryRunStore();
    await seed(store, [status("pending", undefined), status("cancelled", "pending")], "cancelled");
    const events = await collect(new StubEngine(store), { workflowId: "w1" });
    expect(events.map(describeEvent)).toEqual(["2:snapshot:CANCELLED"]);
  });

  it("follows a live run: snapshot, then events as they are stored, to the end", async () => {
    const store = new InMemoryRunStore();
    await seed(store, [status("pending", undefined), status("running", "pending")], "running");
    const engine = new StubEngine(store);
    const token = (await store.claim("w1", "me", 60_000, Date.now()))!;
    const append = async (data: Uint8Array, s?: WorkflowStatus) => {
      await store.apply("w1", token, {
        ...(s === undefined ? {} : { workflow: { status: s } }),
        events: [{ timeMs: 1, data }],
      });
      engine.notify("w1");
    };
    const watching = collect(engine, { workflowId: "w1" });
    await new Promise((r) => setTimeout(r, 20));
    await append(task(0));
    await new Promise((r) => setTimeout(r, 20));
    const t0 = Date.now();
    await append(status("succeeded", "running"), "succeeded");
    const events = await watching;
    expect(Date.now() - t0).toBeLessThan(400); // woken, not polled
    expect(events.map(describeEvent)).toEqual([
      "2:snapshot:RUNNING",
      "3:taskStarted",
      "4:workflowStatusChanged:SUCCEEDED",
    ]);
  });

  for (const [name, make] of [
    ["NOT_FOUND", () => new InMemoryRunStore()],
    ["no events", () => new LenientStore()],
  ] as const) {
    it(`sends workflow_deleted when the workflow goes (store answers ${name})`, async () => {
      const store = make();
      await seed(store, [status("pending", undefined), status("running", "pending")], "running");
      const engine = new StubEngine(store);
      const watching = collect(engine, { workflowId: "w1", afterSequence: 0n });
      await new Promise((r) => setTimeout(r, 20));
      await store.delete("w1");
      engine.notify("w1");
      const events = await watching;
      expect(events.map(describeEvent)).toEqual([
        "1:workflowStatusChanged:PENDING",
        "2:workflowStatusChanged:RUNNING",
        "3:workflowDeleted",
      ]);
    });
  }

  it("ends when the client cancels or the server shuts down", async () => {
    const store = new InMemoryRunStore();
    await seed(store, [status("pending", undefined), status("running", "pending")], "running");
    for (const which of ["client", "shutdown"] as const) {
      const abort = new AbortController();
      const watching = collect(
        new StubEngine(store),
        { workflowId: "w1", afterSequence: 2n },
        which === "client" ? { signal: abort.signal } : { shutdown: abort.signal },
      );
      await new Promise((r) => setTimeout(r, 20));
      const t0 = Date.now();
      abort.abort();
      expect(await watching).toEqual([]);
      expect(Date.now() - t0).toBeLessThan(400);
    }
  });

  it("rejects an after_sequence past the last event, and unknown workflows", async () => {
    const store = new InMemoryRunStore();
    await seed(store, [status("pending", undefined)], "pending");
    const engine = new StubEngine(store);
    await expect(collect(engine, { workflowId: "w1", afterSequence: 2n })).rejects.toMatchObject({
      kind: "invalid_argument",
      field: "after_sequence",
    });
    await expect(collect(engine, { workflowId: "nope" })).rejects.toMatchObject({
      kind: "not_found",
    });
    await expect(collect(engine, { workflowId: "bad id!" })).rejects.toMatchObject({
      kind: "invalid_argument",
    });
  });
});

describe("ListJobs", () => {
  it("pages with tokens bound to the request, checks step_id", async () => {
    const store = new InMemoryRunStore();
    await seed(store, [status("pending", undefined)], "running");
    const token = (await store.claim("w1", "me", 60_000, Date.now()))!;
    await store.apply("w1", token, { jobs: [job("m", 1, "succeeded"), job("m", 2, "failed")] });
    const steps = [step("skipped", 1, { stepId: "s", startMs: undefined }), step("running", 3)];
    const svc = service(new StubEngine(store, () => steps));
    const list = (init: Parameters<typeof create<typeof ListJobsRequestSchema>>[1]) =>
      svc.listJobs(
        create(ListJobsRequestSchema, { workflowId: "w1", ...init }),
        context(),
      ) as Promise<{
        jobs: Array<{ taskId: string; maxAttempts: number; result?: unknown }>;
        nextPageToken: string;
      }>;
    const first = await list({ pageSize: 2, includeResults: true });
    expect(first.jobs.map((j) => j.taskId)).toEqual(["m-0", "m-1"]);
    expect(first.jobs[0]!.maxAttempts).toBe(3);
    expect(first.jobs[1]!.result).toBeDefined();
    const second = await list({ pageSize: 2, pageToken: first.nextPageToken });
    expect(second.jobs.map((j) => j.taskId)).toEqual(["m-2"]);
    expect(second.nextPageToken).toBe("");
    await expect(
      list({ pageSize: 2, pageToken: first.nextPageToken, stepId: "m" }),
    ).rejects.toMatchObject({ field: "page_token" });
    await expect(list({ stepId: "zzz" })).rejects.toMatchObject({ field: "step_id" });
    await expect(list({ pageSize: 1001 })).rejects.toMatchObject({ field: "page_size" });
  });
});
