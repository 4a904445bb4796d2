// The workflow patterns beyond a chain, a diamond and an inline map, end to end on the real mesh
// (Docker, Redis, NATS): PARALLEL steps, MAP items from state and from a parent's output, per-item
// `when`, the SKIPPED rule for a step's source of work, per-attempt timeouts and retry backoff.
import { execFileSync } from "node:child_process";
import type { JsonValue } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AgentMode, TaskStatus } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  Backoff,
  ExecutionMode,
  FailureMode,
  JobStatus,
  StepKind,
  StepStatus,
  WorkflowStatus,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";
import type { TaskFinished, TaskStarted } from "../../gen/agentainer/workflow/v1/events_pb.js";
import type { Job } from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { labels } from "../../services/executor/contract.js";
import { eventually } from "../support/await.js";
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

const at = (t: Timestamp | undefined): number => {
  if (t === undefined) throw new Error("no timestamp");
  return Number(t.seconds) * 1000 + t.nanos / 1e6;
};

/** Most jobs whose [start, end] intervals overlap at one moment. */
function peakOverlap(jobs: readonly Job[]): number {
  const edges = jobs.flatMap((j) => [
    { t: at(j.startTime), d: 1 },
    { t: at(j.endTime), d: -1 },
  ]);
  edges.sort((a, b) => a.t - b.t || a.d - b.d);
  let now = 0;
  let peak = 0;
  for (const e of edges) peak = Math.max(peak, (now += e.d));
  return peak;
}

const cold = (id: string, extra: Record<string, unknown> = {}): StepInit =>
  ({ id, image: nodeImage, command: flowAgent, ...extra }) as StepInit;

const inline = (items: unknown[]) => ({
  source: { case: "inline" as const, value: { items: items.map((i) => value(i as never)) } },
});

const byIndex = (jobs: Job[]) => [...jobs].sort((a, b) => a.index - b.index);

describe("workflow patterns on the real mesh (Docker, Redis, NATS)", () => {
  let mesh: Mesh;

  beforeAll(async () => {
    mesh = await startMesh({ redisUrl: inject("redisUrl"), natsUrl: inject("natsUrl") });
  });

  afterAll(async () => {
    await mesh?.close();
  });

  /** Every event of an ended workflow, replayed by WatchWorkflow. */
  async function eventsOf(workflowId: string) {
    const events = [];
    for await (const r of mesh.clients.workflow.watchWorkflow({ workflowId, afterSequence: 0n }))
      events.push(r.event!);
    return events;
  }

  /** The Executor's record of every attempt of a step, in attempt order per index. */
  async function attemptsOf(workflowId: string, stepId: string) {
    const r = await mesh.clients.executor.listTasks({ workflowId, stepId, pageSize: 1000 });
    return [...r.tasks].sort((a, b) => a.ref!.taskId.localeCompare(b.ref!.taskId));
  }

  describe("a PARALLEL step", () => {
    it("runs N cold copies, never more than max_workers at once, and the reduce gets them in index order", async () => {
      const c = mesh.clients.workflow;
      const { workflow } = await c.createWorkflow({
        name: "parallel-cold",
        start: true,
        steps: [
          cold("copies", {
            kind: StepKind.PARALLEL,
            parallelism: 5,
            maxWorkers: 2,
            input: value({ sleepMs: 1000, double: 3, incr: "copies" }),
          }),
          cold("sum", { kind: StepKind.REDUCE, dependsOn: ["copies"] }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      expect(stepOf(done, "copies").status).toBe(StepStatus.SUCCEEDED);
      expect(stepOf(done, "copies").counts).toMatchObject({ total: 5n, succeeded: 5n });
      const expected = [0, 1, 2, 3, 4].map((index) => ({
        index,
        attempt: 1,
        value: 6,
        parents: {},
      }));
      expect(outputOf(done, "copies")).toEqual(expected);
      expect(resultOf(done)).toMatchObject({ results: expected, failures: [] });
      const jobs = byIndex(await allJobs(c, id, "copies"));
      expect(jobs.map((j) => [j.taskId, j.status, j.attempt])).toEqual(
        [0, 1, 2, 3, 4].map((i) => [`copies-${i}`, JobStatus.SUCCEEDED, 1]),
      );
      // Two at a time: they did overlap, and never three.
      expect(peakOverlap(jobs)).toBe(2);
      const state = await c.getWorkflowState({ workflowId: id, keys: ["copies"] });
      expect(state.values).toEqual({ copies: 5 });
      await eventually(() => containersOf(id).length === 0);
    });

    it("runs its copies on warm stream agents of an inline pool sized by max_workers", async () => {
      const c = mesh.clients.workflow;
      const { workflow } = await c.createWorkflow({
        name: "parallel-pooled",
        start: true,
        steps: [
          cold("copies", {
            kind: StepKind.PARALLEL,
            parallelism: 8,
            maxWorkers: 3,
            execution: ExecutionMode.POOLED,
            agentMode: AgentMode.STREAM,
            input: value({ sleepMs: 300, incr: "hits" }),
          }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      const out = resultOf(done) as Array<{ index: number }>;
      expect(out.map((o) => o.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      const jobs = await allJobs(c, id, "copies");
      expect(jobs).toHaveLength(8);
      expect(peakOverlap(jobs)).toBeLessThanOrEqual(3);
      const agents = new Set(jobs.map((j) => j.agentId));
      expect(agents.has("")).toBe(false);
      expect(agents.size).toBeLessThanOrEqual(3);
      const pool = stepOf(done, "copies").poolId;
      expect(pool).not.toBe("");
      expect(jobs.every((j) => j.poolId === pool)).toBe(true);
      const state = await c.getWorkflowState({ workflowId: id, keys: ["hits"] });
      expect(state.values).toEqual({ hits: 8 });
      await eventually(() => containersOf(id).length === 0, 30_000);
    });
  });

  describe("MAP item sources", () => {
    it("maps the items an earlier task wrote to a state key (from_state)", async () => {
      const c = mesh.clients.workflow;
      const docs: JsonValue[] = [
        { double: 1 },
        { double: 2 },
        { double: 3, incr: "seen" },
        { double: 4 },
      ];
      const { workflow } = await c.createWorkflow({
        name: "from-state",
        start: true,
        steps: [
          cold("seed", { input: value({ set: { docs } }) }),
          cold("map", {
            kind: StepKind.MAP,
            dependsOn: ["seed"],
            mapItems: { source: { case: "fromState", value: "docs" } },
          }),
          cold("sum", { kind: StepKind.REDUCE, dependsOn: ["map"] }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      expect(stepOf(done, "map").counts).toMatchObject({ total: 4n, succeeded: 4n });
      const values = (outputOf(done, "map") as Array<{ value: number }>).map((o) => o.value);
      expect(values).toEqual([2, 4, 6, 8]);
      const reduced = resultOf(done) as { results: Array<{ value: number }>; failures: unknown[] };
      expect(reduced.results.map((r) => r.value)).toEqual([2, 4, 6, 8]);
      expect(reduced.failures).toEqual([]);
      const state = await c.getWorkflowState({ workflowId: id, keys: ["docs", "seen"] });
      expect(state.values).toEqual({ docs, seen: 1 });
      await eventually(() => containersOf(id).length === 0);
    });

    it("runs no task for an empty list from state; the step succeeds with [] and the reduce gets []", async () => {
      const c = mesh.clients.workflow;
      const { workflow } = await c.createWorkflow({
        name: "from-state-empty",
        start: true,
        steps: [
          cold("seed", { input: value({ set: { docs: [] } }) }),
          cold("map", {
            kind: StepKind.MAP,
            dependsOn: ["seed"],
            mapItems: { source: { case: "fromState", value: "docs" } },
          }),
          cold("sum", { kind: StepKind.REDUCE, dependsOn: ["map"] }),
        ],
      });
      const done = await waitForEnd(c, workflow!.id, 60_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      expect(stepOf(done, "map").status).toBe(StepStatus.SUCCEEDED);
      expect(stepOf(done, "map").counts).toMatchObject({ total: 0n });
      expect(outputOf(done, "map")).toEqual([]);
      expect(resultOf(done)).toMatchObject({ results: [], failures: [] });
      // The fan-out parent's results come once, in `results`, not again in `parents`.
      expect((resultOf(done) as { parents?: unknown }).parents).toEqual({});
      expect(await allJobs(c, workflow!.id, "map")).toHaveLength(0);
    });

    it("fails the step, naming the key, when the state key holds no array", async () => {
      const c = mesh.clients.workflow;
      const { workflow } = await c.createWorkflow({
        name: "from-state-bad",
        start: true,
        steps: [
          cold("seed", { input: value({ set: { docs: { not: "a list" } } }) }),
          cold("map", {
            kind: StepKind.MAP,
            dependsOn: ["seed"],
            mapItems: { source: { case: "fromState", value: "docs" } },
          }),
          cold("after", { dependsOn: ["map"] }),
        ],
      });
      const done = await waitForEnd(c, workflow!.id, 60_000);
      expect(done.status).toBe(WorkflowStatus.FAILED);
      expect(stepOf(done, "map").status).toBe(StepStatus.FAILED);
      expect(stepOf(done, "map").statusMessage).toContain('state key "docs"');
      expect(stepOf(done, "after").status).toBe(StepStatus.CANCELLED);
      expect(await allJobs(c, workflow!.id, "map")).toHaveLength(0);
    });

    it("maps the items at a JSON pointer into a parent step's output (from_step)", async () => {
      const c = mesh.clients.workflow;
      const docs = [{ double: 10 }, { double: 20 }, { double: 30 }];
      const { workflow } = await c.createWorkflow({
        name: "from-step",
        start: true,
        steps: [
          cold("list", { input: value({ emit: { meta: { n: 3 }, docs } }) }),
          cold("map", {
            kind: StepKind.MAP,
            dependsOn: ["list"],
            mapItems: {
              source: { case: "fromStep", value: { stepId: "list", path: "/value/docs" } },
            },
          }),
          // A second map over the first one's whole output (an array of its results), with
          // another parent whose output its tasks do get.
          cold("again", {
            kind: StepKind.MAP,
            dependsOn: ["map", "list"],
            mapItems: { source: { case: "fromStep", value: { stepId: "map" } } },
          }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      const mapped = outputOf(done, "map") as Array<{ index: number; value: number }>;
      expect(mapped.map((o) => [o.index, o.value])).toEqual([
        [0, 20],
        [1, 40],
        [2, 60],
      ]);
      // A task's input has its own item, not a copy of the parent the items come from (the agent
      // echoes the `parents` it got); other parents stay.
      const listOutput = { index: 0, attempt: 1, value: { meta: { n: 3 }, docs }, parents: {} };
      expect(mapped.map((o) => (o as { parents?: unknown }).parents)).toEqual([{}, {}, {}]);
      expect(stepOf(done, "again").counts).toMatchObject({ total: 3n, succeeded: 3n });
      const again = resultOf(done) as Array<{ index: number; parents?: unknown }>;
      expect(again.map((o) => o.index)).toEqual([0, 1, 2]);
      expect(again.map((o) => o.parents)).toEqual([0, 1, 2].map(() => ({ list: listOutput })));
      await eventually(() => containersOf(id).length === 0);
    });
  });

  describe("a per-item `when` on a MAP step", () => {
    it("skips the items it is false for: SKIPPED jobs that never ran, null outputs, not failures in the reduce", async () => {
      const c = mesh.clients.workflow;
      const items = [
        { double: 1 },
        { double: 4, incr: "ran" },
        { fail: true }, // item.double is null: skipped, so it never fails the run
        { double: 2 },
        { double: 5, incr: "ran" },
      ];
      const { workflow } = await c.createWorkflow({
        name: "when-item",
        start: true,
        steps: [
          cold("seed", { input: value({ set: { min: 3 } }) }),
          cold("map", {
            kind: StepKind.MAP,
            dependsOn: ["seed"],
            mapItems: inline(items),
            when: "item.double >= state.min",
          }),
          cold("sum", { kind: StepKind.REDUCE, dependsOn: ["map"] }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      expect(stepOf(done, "map").status).toBe(StepStatus.SUCCEEDED);
      expect(stepOf(done, "map").counts).toMatchObject({
        total: 5n,
        succeeded: 2n,
        skipped: 3n,
        failed: 0n,
      });
      const out = outputOf(done, "map") as Array<{ value: number } | null>;
      expect(out.map((o) => o?.value ?? null)).toEqual([null, 8, null, null, 10]);
      const reduced = resultOf(done) as {
        results: Array<{ value: number } | null>;
        failures: unknown[];
      };
      expect(reduced.results.map((r) => r?.value ?? null)).toEqual([null, 8, null, null, 10]);
      expect(reduced.failures).toEqual([]);
      const jobs = byIndex(await allJobs(c, id, "map"));
      expect(jobs.map((j) => j.status)).toEqual([
        JobStatus.SKIPPED,
        JobStatus.SUCCEEDED,
        JobStatus.SKIPPED,
        JobStatus.SKIPPED,
        JobStatus.SUCCEEDED,
      ]);
      for (const j of jobs.filter((j) => j.status === JobStatus.SKIPPED)) {
        expect(j.attempt).toBe(0);
        expect(j.containerId).toBe("");
        expect(j.attemptTaskId).toBe("");
      }
      // Only the two items that ran reached the Executor.
      expect((await attemptsOf(id, "map")).map((t) => t.ref!.taskId)).toEqual([
        `${id}.map.1.1`,
        `${id}.map.4.1`,
      ]);
      const state = await c.getWorkflowState({ workflowId: id, keys: ["ran"] });
      expect(state.values).toEqual({ ran: 2 });
    });
    it("decides each item once, against the state when the step started", async () => {
      const c = mesh.clients.workflow;
      // One task at a time: item 0 sets `stop` before items 1 and 2 are dispatched, and fails its
      // first attempt. Neither the later items nor item 0's retry may see the new value.
      const { workflow } = await c.createWorkflow({
        name: "when-item-once",
        start: true,
        config: { maxParallel: 1 },
        steps: [
          cold("map", {
            kind: StepKind.MAP,
            mapItems: inline([
              { go: true, set: { stop: true }, failAttempts: 1, double: 1 },
              { go: true, double: 2 },
              { go: true, double: 3 },
              { go: false, double: 4 },
            ]),
            when: "item.go == true && state.stop != true",
            retry: { maxAttempts: 2, backoff: Backoff.CONSTANT, initialDelay: ms(200) },
          }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      const jobs = byIndex(await allJobs(c, id, "map"));
      expect(jobs.map((j) => [j.index, j.status, j.attempt])).toEqual([
        [0, JobStatus.SUCCEEDED, 2],
        [1, JobStatus.SUCCEEDED, 1],
        [2, JobStatus.SUCCEEDED, 1],
        [3, JobStatus.SKIPPED, 0],
      ]);
      expect(jobs[0]!.error).toContain("attempt 1 failed");
      const out = resultOf(done) as Array<{ value: number } | null>;
      expect(out.map((o) => o?.value ?? null)).toEqual([2, 4, 6, null]);
      const state = await c.getWorkflowState({ workflowId: id, keys: ["stop"] });
      expect(state.values).toEqual({ stop: true });
    });
  });

  describe("the SKIPPED rule", () => {
    it("skips a MAP from a skipped step and a REDUCE of a skipped fan-out, down the chain; other dependants run and see null", async () => {
      const c = mesh.clients.workflow;
      const { workflow } = await c.createWorkflow({
        name: "skip-cascade",
        start: true,
        input: value({ run: false }),
        steps: [
          cold("gate", { when: "input.run == true", input: value({ emit: [{ double: 1 }] }) }),
          cold("fan", {
            kind: StepKind.MAP,
            dependsOn: ["gate"],
            mapItems: { source: { case: "fromStep", value: { stepId: "gate", path: "/value" } } },
          }),
          cold("fan2", {
            kind: StepKind.MAP,
            dependsOn: ["fan"],
            mapItems: { source: { case: "fromStep", value: { stepId: "fan" } } },
          }),
          cold("sum", { kind: StepKind.REDUCE, dependsOn: ["fan2"] }),
          cold("copies", {
            kind: StepKind.PARALLEL,
            parallelism: 3,
            dependsOn: ["gate"],
            when: 'steps.gate.status != "skipped"',
          }),
          cold("listen", { dependsOn: ["gate"] }),
          // Its fan-out parent was skipped: skipped too, although its other parent ran.
          cold("sum2", { kind: StepKind.REDUCE, dependsOn: ["copies", "listen"] }),
          cold("end", {
            dependsOn: ["sum", "sum2", "listen"],
            when: 'steps.sum.status == "skipped"',
          }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      const status = (s: string) => StepStatus[stepOf(done, s).status];
      expect(
        Object.fromEntries(
          ["gate", "fan", "fan2", "sum", "copies", "listen", "sum2", "end"].map((s) => [
            s,
            status(s),
          ]),
        ),
      ).toEqual({
        gate: "SKIPPED",
        fan: "SKIPPED",
        fan2: "SKIPPED",
        sum: "SKIPPED",
        copies: "SKIPPED",
        listen: "SUCCEEDED",
        sum2: "SKIPPED",
        end: "SUCCEEDED",
      });
      expect(stepOf(done, "fan").statusMessage).toContain("gate");
      expect(stepOf(done, "sum2").statusMessage).toContain("copies");
      expect(stepOf(done, "copies").counts).toMatchObject({ total: 3n, skipped: 3n });
      expect(outputOf(done, "listen")).toMatchObject({ parents: { gate: null } });
      expect(resultOf(done)).toMatchObject({
        parents: { sum: null, sum2: null, listen: { index: 0, parents: { gate: null } } },
      });
      // Skipped steps never ran a task.
      const jobs = await allJobs(c, id);
      expect(jobs.map((j) => j.stepId).sort()).toEqual(["end", "listen"]);
      await eventually(() => containersOf(id).length === 0);
    });
  });

  describe("a task's per-attempt timeout", () => {
    it("kills the container past the timeout, retries, and reports the attempt as timed out", async () => {
      const c = mesh.clients.workflow;
      const { workflow } = await c.createWorkflow({
        name: "task-timeout",
        start: true,
        config: { failure: { mode: FailureMode.CONTINUE_ON_PARTIAL } },
        steps: [
          cold("work", {
            kind: StepKind.MAP,
            mapItems: inline([
              { sleepMs: 60_000, sleepAttempts: 1, double: 4 }, // slow once, then fine
              { double: 1 },
              { sleepMs: 60_000 }, // slow every time
            ]),
            timeout: ms(3000),
            retry: { maxAttempts: 2, backoff: Backoff.CONSTANT, initialDelay: ms(700) },
          }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.PARTIALLY_SUCCEEDED);
      expect(stepOf(done, "work").counts).toMatchObject({ succeeded: 2n, failed: 1n });
      expect(outputOf(done, "work")).toEqual([
        { index: 0, attempt: 2, value: 8, parents: {} },
        { index: 1, attempt: 1, value: 2, parents: {} },
        null,
      ]);
      const jobs = byIndex(await allJobs(c, id));
      expect(jobs.map((j) => [j.status, j.attempt, TaskStatus[j.attemptStatus]])).toEqual([
        [JobStatus.SUCCEEDED, 2, "SUCCEEDED"],
        [JobStatus.SUCCEEDED, 1, "SUCCEEDED"],
        [JobStatus.FAILED, 2, "TIMED_OUT"],
      ]);
      expect(jobs[0]!.error).toMatch(/timed out/);
      expect(jobs[2]!.error).toMatch(/timed out/);
      // The Executor's own record: each slow attempt was killed at its timeout, not after 60 s,
      // and the retry waited its delay after the killed attempt ended.
      const tasks = await attemptsOf(id, "work");
      const byId = new Map(tasks.map((t) => [t.ref!.taskId, t]));
      for (const slow of [`${id}.work.0.1`, `${id}.work.2.1`, `${id}.work.2.2`]) {
        const t = byId.get(slow)!;
        expect(t.status).toBe(TaskStatus.TIMED_OUT);
        expect(at(t.endTime) - at(t.createTime)).toBeGreaterThanOrEqual(3000);
        expect(at(t.endTime) - at(t.createTime)).toBeLessThan(30_000);
      }
      expect(byId.get(`${id}.work.0.2`)!.status).toBe(TaskStatus.SUCCEEDED);
      for (const index of [0, 2]) {
        const first = byId.get(`${id}.work.${index}.1`)!;
        const second = byId.get(`${id}.work.${index}.2`)!;
        expect(at(second.createTime) - at(first.endTime)).toBeGreaterThanOrEqual(700);
      }
      // The events say it too: the first attempt ended TIMED_OUT and went RETRYING.
      const finished = (await eventsOf(id)).flatMap((e) =>
        e.payload.case === "taskFinished" ? [e.payload.value] : [],
      );
      const first = finished.find((f) => f.index === 0 && f.attempt === 1)!;
      expect(first.status).toBe(JobStatus.RETRYING);
      expect(first.attemptStatus).toBe(TaskStatus.TIMED_OUT);
      await eventually(() => containersOf(id).length === 0);
    });

    it.each([
      [
        "kills a warm exec task past its timeout and the agent serves the retry",
        {
          mode: "exec",
          pool: { agentMode: AgentMode.EXEC, agentCommand: ["sleep", "infinity"] },
          double: 7,
        },
      ],
      [
        "stops a warm stream task past its timeout and retries it on the pool",
        { mode: "stream", pool: { agentMode: AgentMode.STREAM }, double: 5 },
      ],
    ])("%s", async (_what, { mode, pool, double }) => {
      const c = mesh.clients.workflow;
      const { workflow } = await c.createWorkflow({
        name: `${mode}-timeout`,
        start: true,
        steps: [
          cold("work", {
            execution: ExecutionMode.POOLED,
            ...pool,
            pool: { case: "poolPolicy", value: { maxSize: 1 } },
            input: value({ sleepMs: 60_000, sleepAttempts: 1, double }),
            timeout: ms(3000),
            retry: { maxAttempts: 2, backoff: Backoff.CONSTANT, initialDelay: ms(500) },
          }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      expect(resultOf(done)).toMatchObject({ attempt: 2, value: double * 2 });
      const [job] = await allJobs(c, id);
      expect([job!.status, job!.attempt]).toEqual([JobStatus.SUCCEEDED, 2]);
      expect(job!.error).toMatch(/timed out/);
      const tasks = await attemptsOf(id, "work");
      expect(tasks.map((t) => TaskStatus[t.status])).toEqual(["TIMED_OUT", "SUCCEEDED"]);
      expect(at(tasks[0]!.endTime) - at(tasks[0]!.createTime)).toBeLessThan(30_000);
      expect(at(tasks[1]!.createTime) - at(tasks[0]!.endTime)).toBeGreaterThanOrEqual(500);
      await eventually(() => containersOf(id).length === 0, 30_000);
    });
  });

  describe("retries", () => {
    it("wait their backoff: exponential delays, capped at max_delay, between the recorded attempts", async () => {
      const c = mesh.clients.workflow;
      const { workflow } = await c.createWorkflow({
        name: "backoff",
        start: true,
        steps: [
          cold("flaky", {
            input: value({ failAttempts: 3, double: 2 }),
            retry: {
              maxAttempts: 4,
              backoff: Backoff.EXPONENTIAL,
              initialDelay: ms(400),
              maxDelay: ms(1000),
            },
          }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      expect(resultOf(done)).toMatchObject({ attempt: 4, value: 4 });
      const [job] = await allJobs(c, id);
      expect([job!.status, job!.attempt, job!.maxAttempts]).toEqual([JobStatus.SUCCEEDED, 4, 4]);
      expect(job!.error).toContain("attempt 3 failed");
      const delays = [400, 800, 1000];
      // The run's events: each failed attempt announced its next attempt's time, the delay after
      // its end, and the next attempt started no earlier.
      const events = await eventsOf(id);
      const finished: Array<{ time: number; e: TaskFinished }> = [];
      const started: Array<{ time: number; e: TaskStarted }> = [];
      for (const ev of events) {
        if (ev.payload.case === "taskFinished")
          finished.push({ time: at(ev.time), e: ev.payload.value });
        if (ev.payload.case === "taskStarted")
          started.push({ time: at(ev.time), e: ev.payload.value });
      }
      expect(started.map((s) => s.e.attempt)).toEqual([1, 2, 3, 4]);
      expect(finished.map((f) => [f.e.attempt, f.e.status])).toEqual([
        [1, JobStatus.RETRYING],
        [2, JobStatus.RETRYING],
        [3, JobStatus.RETRYING],
        [4, JobStatus.SUCCEEDED],
      ]);
      delays.forEach((delay, n) => {
        const f = finished[n]!;
        expect(at(f.e.nextAttemptTime) - f.time).toBe(delay);
        expect(started[n + 1]!.time).toBeGreaterThanOrEqual(at(f.e.nextAttemptTime));
      });
      // The Executor's record of the four attempts agrees: each began at least its delay after
      // the previous one ended.
      const tasks = await attemptsOf(id, "flaky");
      expect(tasks.map((t) => [t.ref!.taskId, TaskStatus[t.status]])).toEqual([
        [`${id}.flaky.0.1`, "FAILED"],
        [`${id}.flaky.0.2`, "FAILED"],
        [`${id}.flaky.0.3`, "FAILED"],
        [`${id}.flaky.0.4`, "SUCCEEDED"],
      ]);
      delays.forEach((delay, n) => {
        expect(at(tasks[n + 1]!.createTime) - at(tasks[n]!.endTime)).toBeGreaterThanOrEqual(delay);
      });
    });

    it("wait a linear delay shortened by at most the jitter", async () => {
      const c = mesh.clients.workflow;
      const { workflow } = await c.createWorkflow({
        name: "backoff-jitter",
        start: true,
        steps: [
          cold("flaky", {
            input: value({ failAttempts: 2 }),
            retry: {
              maxAttempts: 3,
              backoff: Backoff.LINEAR,
              initialDelay: ms(400),
              jitter: 0.5,
            },
          }),
        ],
      });
      const id = workflow!.id;
      const done = await waitForEnd(c, id, 120_000);
      expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
      const events = await eventsOf(id);
      const retrying = events.flatMap((ev) =>
        ev.payload.case === "taskFinished" && ev.payload.value.status === JobStatus.RETRYING
          ? [{ time: at(ev.time), due: at(ev.payload.value.nextAttemptTime) }]
          : [],
      );
      const starts = events.flatMap((ev) =>
        ev.payload.case === "taskStarted" ? [at(ev.time)] : [],
      );
      expect(retrying).toHaveLength(2);
      expect(starts).toHaveLength(3);
      // LINEAR: 400 ms, then 800 ms, each randomised down by up to half.
      [400, 800].forEach((delay, n) => {
        const wait = retrying[n]!.due - retrying[n]!.time;
        expect(wait).toBeGreaterThanOrEqual(delay / 2);
        expect(wait).toBeLessThanOrEqual(delay);
        expect(starts[n + 1]!).toBeGreaterThanOrEqual(retrying[n]!.due);
      });
    });
  });
});
