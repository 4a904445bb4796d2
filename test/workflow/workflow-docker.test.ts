import { execFileSync } from "node:child_process";
import { fromBinary, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { connect as natsConnect } from "nats";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AgentMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  Backoff,
  ExecutionMode,
  FailureMode,
  JobStatus,
  StepKind,
  StepStatus,
  WorkflowStatus,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { WorkflowEventSchema } from "../../gen/agentainer/workflow/v1/events_pb.js";
import { labels } from "../../services/executor/contract.js";
import { codeOf, eventually } from "../support/await.js";
import { flowAgent, nodeImage, startMesh, type Mesh } from "./mesh.js";
import {
  allJobs,
  ms,
  outputOf,
  resultOf,
  stepOf,
  value,
  waitForEnd,
  type StepInit,
} from "./support.js";

/** Containers of a workflow still present in the engine (by the executor's label). */
function containersOf(workflowId: string): string[] {
  const out = execFileSync("docker", [
    "ps",
    "-a",
    "-q",
    "--filter",
    `label=${labels.workflowId}=${workflowId}`,
  ]);
  return out.toString().trim().split("\n").filter(Boolean);
}

const cold = (id: string, extra: Record<string, unknown> = {}): StepInit =>
  ({ id, image: nodeImage, command: flowAgent, ...extra }) as StepInit;

const pooledMap = (
  id: string,
  items: unknown[],
  poolSize: number,
  extra: Record<string, unknown> = {},
) =>
  ({
    id,
    kind: StepKind.MAP,
    image: nodeImage,
    command: flowAgent,
    execution: ExecutionMode.POOLED,
    agentMode: AgentMode.STREAM,
    pool: { case: "poolPolicy", value: { maxSize: poolSize } },
    mapItems: {
      source: { case: "inline", value: { items: items.map((i) => value(i as never)) } },
    },
    ...extra,
  }) as StepInit;

describe("workflows on the real mesh (Docker, Redis, NATS)", () => {
  let mesh: Mesh;

  beforeAll(async () => {
    mesh = await startMesh({ redisUrl: inject("redisUrl"), natsUrl: inject("natsUrl") });
  });

  afterAll(async () => {
    await mesh?.close();
  });

  it("runs a sequential chain, handing each step its parent's output", async () => {
    const c = mesh.clients.workflow;
    const { workflow } = await c.createWorkflow({
      name: "chain",
      start: true,
      steps: [
        cold("a", { input: value({ double: 21 }) }),
        cold("b", { dependsOn: ["a"] }),
        cold("c", { dependsOn: ["b"] }),
      ],
    });
    const done = await waitForEnd(c, workflow!.id);
    expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
    expect(outputOf(done, "a")).toMatchObject({ value: 42 });
    expect(resultOf(done)).toMatchObject({
      parents: { b: { parents: { a: { value: 42 } } } },
    });
    const jobs = await allJobs(c, workflow!.id);
    expect(jobs.map((j) => [j.taskId, j.status, j.attempt])).toEqual([
      ["a-0", JobStatus.SUCCEEDED, 1],
      ["b-0", JobStatus.SUCCEEDED, 1],
      ["c-0", JobStatus.SUCCEEDED, 1],
    ]);
    // Each started after its parent ended: never in parallel, never in array order by chance.
    const t = (j: (typeof jobs)[number], f: "startTime" | "endTime") =>
      Number(j[f]!.seconds) * 1000 + j[f]!.nanos / 1e6;
    expect(t(jobs[1]!, "startTime")).toBeGreaterThanOrEqual(t(jobs[0]!, "endTime"));
    expect(t(jobs[2]!, "startTime")).toBeGreaterThanOrEqual(t(jobs[1]!, "endTime"));
    expect(containersOf(workflow!.id)).toEqual([]);
  });

  it("announces the run's events on NATS, stored first, in the order WatchWorkflow replays them", async () => {
    const c = mesh.clients.workflow;
    const nc = await natsConnect({ servers: inject("natsUrl") });
    const seen: Array<{ subject: string; sequence: bigint }> = [];
    try {
      const workflowId = `wf-nats-${Date.now()}`;
      nc.subscribe(`agentainer.workflow.*.*.${workflowId}`, {
        callback: (_err, m) => {
          seen.push({
            subject: m.subject,
            sequence: fromBinary(WorkflowEventSchema, m.data).sequence,
          });
        },
      });
      await nc.flush();
      await c.createWorkflow({ workflowId, name: "events", start: true, steps: [cold("a")] });
      await waitForEnd(c, workflowId);
      const replayed = [];
      for await (const r of c.watchWorkflow({ workflowId, afterSequence: 0n }))
        replayed.push(r.event!);
      await eventually(() => seen.length === replayed.length);
      const bySequence = [...seen].sort((a, b) => Number(a.sequence - b.sequence));
      expect(bySequence.map((e) => e.sequence)).toEqual(replayed.map((e) => e.sequence));
      const subjects = bySequence.map((e) => e.subject.split(".").slice(2, 4).join("."));
      expect(subjects[0]).toBe("workflow.created");
      expect(subjects[1]).toBe("workflow.started");
      expect(subjects).toContain("step.starting");
      expect(subjects).toContain("task.started");
      expect(subjects).toContain("task.finished");
      expect(subjects).toContain("step.finished");
      expect(subjects.at(-1)).toBe("workflow.completed");
      expect(replayed.at(-1)!.payload.case).toBe("workflowStatusChanged");
    } finally {
      await nc.close();
    }
  });

  it("runs a diamond whose middle steps overlap in time", async () => {
    const c = mesh.clients.workflow;
    const { workflow } = await c.createWorkflow({
      name: "diamond",
      start: true,
      steps: [
        // Declared out of order: scheduling follows depends_on, not the array.
        cold("d", { dependsOn: ["b", "c"] }),
        cold("b", { dependsOn: ["a"], input: value({ sleepMs: 1500 }) }),
        cold("c", { dependsOn: ["a"], input: value({ sleepMs: 1500 }) }),
        cold("a"),
      ],
    });
    const done = await waitForEnd(c, workflow!.id);
    expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
    const jobs = await allJobs(c, workflow!.id);
    const byStep = new Map(jobs.map((j) => [j.stepId, j]));
    const at = (id: string, f: "startTime" | "endTime") => {
      const v = byStep.get(id)![f]!;
      return Number(v.seconds) * 1000 + v.nanos / 1e6;
    };
    expect(at("b", "startTime")).toBeLessThan(at("c", "endTime"));
    expect(at("c", "startTime")).toBeLessThan(at("b", "endTime"));
    expect(at("d", "startTime")).toBeGreaterThanOrEqual(
      Math.max(at("b", "endTime"), at("c", "endTime")),
    );
    expect(Object.keys(resultOf(done) as object)).toContain("parents");
    expect((resultOf(done) as { parents: object }).parents).toHaveProperty("b");
    expect((resultOf(done) as { parents: object }).parents).toHaveProperty("c");
  });

  it("maps 50 items on a pool of 5 with 3 failures under continue_on_partial; the reduce sees the 47 results", async () => {
    const c = mesh.clients.workflow;
    const failing = new Set([7, 21, 40]);
    const items = Array.from({ length: 50 }, (_, i) =>
      failing.has(i) ? { fail: true } : { double: i, incr: "mapped" },
    );
    const { workflow } = await c.createWorkflow({
      name: "map-50",
      start: true,
      config: {
        maxParallel: 10,
        failure: { mode: FailureMode.CONTINUE_ON_PARTIAL, maxFailedTasks: 5 },
      },
      steps: [
        pooledMap("map", items, 5),
        cold("reduce", { kind: StepKind.REDUCE, dependsOn: ["map"] }),
      ],
    });
    const done = await waitForEnd(c, workflow!.id, 120_000);
    expect(done.status).toBe(WorkflowStatus.PARTIALLY_SUCCEEDED);
    expect(stepOf(done, "map").status).toBe(StepStatus.PARTIALLY_SUCCEEDED);
    expect(stepOf(done, "map").counts).toMatchObject({ total: 50n, succeeded: 47n, failed: 3n });
    const reduced = resultOf(done) as {
      results: Array<{ value: number } | null>;
      failures: Array<{ index: number; error: string }>;
    };
    expect(reduced.results).toHaveLength(50);
    expect(reduced.results.filter((r) => r !== null)).toHaveLength(47);
    reduced.results.forEach((r, i) => {
      if (failing.has(i)) expect(r).toBeNull();
      else expect(r?.value).toBe(i * 2);
    });
    expect(reduced.failures.map((f) => f.index)).toEqual([7, 21, 40]);
    expect(reduced.failures[0]!.error).toContain("item 7 failed");
    // Every item ran on one of the pool's 5 warm agents, taking task after task.
    const jobs = await allJobs(c, workflow!.id, "map");
    const agents = new Set(jobs.map((j) => j.agentId));
    expect(agents.size).toBeGreaterThan(0);
    expect(agents.size).toBeLessThanOrEqual(5);
    expect(jobs.every((j) => j.poolId === stepOf(done, "map").poolId)).toBe(true);
    const state = await c.getWorkflowState({ workflowId: workflow!.id, keys: ["mapped"] });
    expect(state.values).toEqual({ mapped: 47 });
    // The inline pool went with the run.
    await eventually(
      async () =>
        (await codeOf(mesh.clients.pool.getPool({ poolId: stepOf(done, "map").poolId }))) ===
        Code.NotFound,
    );
  });

  it("fails fast: the first failure cancels the running tasks and the rest never start", async () => {
    const c = mesh.clients.workflow;
    const items = [{ fail: true }, ...Array.from({ length: 9 }, () => ({ sleepMs: 30_000 }))];
    const started = Date.now();
    const { workflow } = await c.createWorkflow({
      name: "fail-fast",
      start: true,
      config: { maxParallel: 4 },
      steps: [
        cold("map", {
          kind: StepKind.MAP,
          mapItems: { source: { case: "inline", value: { items: items.map((i) => value(i)) } } },
        }),
        cold("after", { dependsOn: ["map"] }),
      ],
    });
    const done = await waitForEnd(c, workflow!.id);
    expect(Date.now() - started).toBeLessThan(25_000);
    expect(done.status).toBe(WorkflowStatus.FAILED);
    expect(done.statusMessage).toContain("item 0 failed");
    expect(stepOf(done, "map").status).toBe(StepStatus.FAILED);
    expect(stepOf(done, "after").status).toBe(StepStatus.CANCELLED);
    const jobs = await allJobs(c, workflow!.id, "map");
    expect(jobs[0]!.status).toBe(JobStatus.FAILED);
    expect(jobs.slice(1).every((j) => j.status === JobStatus.CANCELLED)).toBe(true);
    expect(jobs).toHaveLength(10);
    expect(stepOf(done, "map").counts).toMatchObject({ failed: 1n, cancelled: 9n });
    await eventually(() => containersOf(workflow!.id).length === 0);
  });

  it("retries a failing task with backoff, without re-running its siblings", async () => {
    const c = mesh.clients.workflow;
    const { workflow } = await c.createWorkflow({
      name: "retry",
      start: true,
      steps: [
        cold("flaky", {
          kind: StepKind.MAP,
          mapItems: {
            source: {
              case: "inline",
              value: { items: [value({ failAttempts: 2 }), value({ double: 1 })] },
            },
          },
          retry: { maxAttempts: 3, backoff: Backoff.CONSTANT, initialDelay: ms(300) },
        }),
      ],
    });
    const done = await waitForEnd(c, workflow!.id);
    expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
    const jobs = await allJobs(c, workflow!.id);
    expect(jobs.map((j) => [j.index, j.status, j.attempt, j.maxAttempts])).toEqual([
      [0, JobStatus.SUCCEEDED, 3, 3],
      [1, JobStatus.SUCCEEDED, 1, 3],
    ]);
    expect(jobs[0]!.error).toContain("attempt 2 failed");
    expect(jobs[0]!.attemptTaskId).toMatch(/\.3$/);
    expect(outputOf(done, "flaky")).toEqual([
      { index: 0, attempt: 3, parents: {} },
      { index: 1, attempt: 1, value: 2, parents: {} },
    ]);
  });

  it("ends a step past its step_timeout, and a workflow past its timeout, FAILED with the containers gone", async () => {
    const c = mesh.clients.workflow;
    const step = await c.createWorkflow({
      name: "step-timeout",
      start: true,
      steps: [cold("slow", { input: value({ sleepMs: 30_000 }), stepTimeout: ms(1000) })],
    });
    const wf = await c.createWorkflow({
      name: "workflow-timeout",
      start: true,
      config: { timeout: ms(1500) },
      steps: [cold("slow", { input: value({ sleepMs: 30_000 }) })],
    });
    const a = await waitForEnd(c, step.workflow!.id);
    expect(a.status).toBe(WorkflowStatus.FAILED);
    expect(stepOf(a, "slow").status).toBe(StepStatus.FAILED);
    expect(stepOf(a, "slow").statusMessage).toContain("step timed out after 1s");
    const b = await waitForEnd(c, wf.workflow!.id);
    expect(b.status).toBe(WorkflowStatus.FAILED);
    expect(b.statusMessage).toBe("timed out after 1500ms");
    await eventually(() => containersOf(step.workflow!.id).length === 0);
    await eventually(() => containersOf(wf.workflow!.id).length === 0);
  });

  it("cancels a running workflow: CANCELLING, then CANCELLED with every task stopped", async () => {
    const c = mesh.clients.workflow;
    const items = Array.from({ length: 6 }, () => ({ sleepMs: 60_000 }));
    const { workflow } = await c.createWorkflow({
      name: "cancel",
      start: true,
      steps: [pooledMap("map", items, 3)],
    });
    const id = workflow!.id;
    await eventually(
      async () => (await allJobs(c, id)).some((j) => j.status === JobStatus.RUNNING),
      30_000,
    );
    const r = await c.cancelWorkflow({ workflowId: id, reason: "enough" });
    expect([WorkflowStatus.CANCELLING, WorkflowStatus.CANCELLED]).toContain(r.workflow!.status);
    const done = await waitForEnd(c, id);
    expect(done.status).toBe(WorkflowStatus.CANCELLED);
    expect(done.statusMessage).toBe("cancelled: enough");
    expect(stepOf(done, "map").status).toBe(StepStatus.CANCELLED);
    const jobs = await allJobs(c, id);
    expect(jobs.every((j) => j.status === JobStatus.CANCELLED)).toBe(true);
    expect(await codeOf(c.startWorkflow({ workflowId: id }))).toBe(Code.FailedPrecondition);
  }, 90_000); // its first wait alone may take 30 s on a loaded machine (three agents start)

  it("skips a step whose `when` is false; its dependant still runs and sees null", async () => {
    const c = mesh.clients.workflow;
    const { workflow } = await c.createWorkflow({
      name: "when",
      start: true,
      steps: [
        cold("a", { input: value({ double: 5 }) }),
        cold("big", { dependsOn: ["a"], when: "steps.a.output.value > 100" }),
        cold("small", { dependsOn: ["a"], when: "steps.a.output.value <= 100" }),
        cold("end", { dependsOn: ["big", "small"] }),
      ],
    });
    const done = await waitForEnd(c, workflow!.id);
    expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
    expect(stepOf(done, "big").status).toBe(StepStatus.SKIPPED);
    expect(stepOf(done, "big").statusMessage).toContain("was false");
    expect(stepOf(done, "small").status).toBe(StepStatus.SUCCEEDED);
    expect((resultOf(done) as { parents: Record<string, unknown> }).parents.big).toBeNull();
    // A step that never started lists no jobs; its counts say its one task was skipped.
    expect(await allJobs(c, workflow!.id, "big")).toHaveLength(0);
    expect(stepOf(done, "big").counts).toMatchObject({ total: 1n, skipped: 1n });
  });

  it("runs the one-call MapReduce: pooled word-count mappers and a cold reducer", async () => {
    const c = mesh.clients.workflow;
    const docs = ["the cat sat", "the dog sat down", "a cat and a dog"];
    const r = await c.createMapReduce({
      name: "word-count",
      mapperImage: nodeImage,
      mapperCommand: ["node", "/agents/word-mapper.mjs"],
      reducerImage: nodeImage,
      reducerCommand: ["node", "/agents/word-reducer.mjs"],
      items: { case: "inlineItems", value: { items: docs.map((d) => value(d)) } },
      maxParallel: 3,
      poolSize: 2,
    });
    const done = await waitForEnd(c, r.workflow!.id, 120_000);
    expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
    const result = resultOf(done) as { total: number; words: Record<string, number> };
    expect(result.total).toBe(12);
    expect(result.words).toMatchObject({ the: 2, cat: 2, sat: 2, dog: 2, a: 2, and: 1, down: 1 });
    const state = await c.getWorkflowState({ workflowId: r.workflow!.id });
    expect(state.values).toMatchObject({ total_words: 12 });
  });

  it("rejects bad input with the field path, stores nothing, and refuses a second start", async () => {
    const c = mesh.clients.workflow;
    const before = (await c.listWorkflows({ pageSize: 1000 })).workflows.length;
    const cycle = c.createWorkflow({
      name: "bad",
      steps: [cold("a", { dependsOn: ["b"] }), cold("b", { dependsOn: ["a"] })],
    });
    await expect(cycle).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(cycle).rejects.toThrow(/steps\[\d\]\.depends_on\[0\]: cycle/);
    const missingImage = c.createWorkflow({
      name: "bad",
      steps: [cold("a"), { id: "b", image: "agentainer/absent:none" }],
    });
    await expect(missingImage).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(missingImage).rejects.toThrow(/steps\[1\]\.image/);
    // A value one level past the nesting limit, as the workflow's input and as a step's.
    let deep: JsonValue = 1;
    for (let i = 0; i < 33; i++) deep = [deep];
    const input = fromJson(ValueSchema, deep);
    const deepInput = c.createWorkflow({ name: "bad", input, steps: [cold("a")] });
    await expect(deepInput).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(deepInput).rejects.toThrow(
      /^\[invalid_argument\] input nests deeper than 32 levels/,
    );
    const deepStep = c.createWorkflow({ name: "bad", steps: [cold("a"), cold("b", { input })] });
    await expect(deepStep).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(deepStep).rejects.toThrow(/steps\[1\]\.input nests deeper than 32 levels/);
    expect((await c.listWorkflows({ pageSize: 1000 })).workflows.length).toBe(before);
    const { workflow } = await c.createWorkflow({ name: "twice", steps: [cold("a")] });
    expect(workflow!.status).toBe(WorkflowStatus.PENDING);
    await c.startWorkflow({ workflowId: workflow!.id });
    expect(await codeOf(c.startWorkflow({ workflowId: workflow!.id }))).toBe(
      Code.FailedPrecondition,
    );
    await waitForEnd(c, workflow!.id);
    expect(await codeOf(c.cancelWorkflow({ workflowId: workflow!.id }))).toBe(
      Code.FailedPrecondition,
    );
    expect(await codeOf(c.getWorkflow({ workflowId: "nope" }))).toBe(Code.NotFound);
  });
});
