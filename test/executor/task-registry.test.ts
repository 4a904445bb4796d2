import { afterEach, describe, expect, it } from "vitest";
import { NotFoundError } from "../../lib/errors.js";
import { TaskRegistry, type Retention } from "../../services/executor/task-registry.js";
import type { TaskRecord } from "../../services/executor/task.js";

// The registry on its own, with a clock the test moves: how long and how many ended tasks are
// kept, and that running ones never go.
describe("TaskRegistry retention", () => {
  let clock = 1_000_000;
  const registries: TaskRegistry[] = [];
  afterEach(() => registries.splice(0).forEach((r) => r.close()));

  function registry(retention: Partial<Retention>): TaskRegistry {
    const r = new TaskRegistry({
      nodeId: "n",
      maxOutputBytes: 1024,
      retention: { ms: 60_000, maxTasks: 1000, maxOutputBytes: 1 << 20, ...retention },
      listener: { taskChanged: () => undefined },
      now: () => clock,
    });
    registries.push(r);
    return r;
  }
  const start = (r: TaskRegistry, n: number): TaskRecord =>
    r.create({
      ref: { workflowId: "w", stepId: "s", taskId: `t${n}`, attempt: 1, index: n },
      mode: "cold",
      image: "i",
      agentId: "",
      fingerprint: `f${n}`,
    }).task;
  const end = (r: TaskRegistry, t: TaskRecord, output = "") => {
    if (output !== "") t.output.write("stdout", Buffer.from(output));
    r.finish(t, {
      status: "succeeded",
      result: null,
      error: "",
      exitCode: 0,
      timings: { createMs: 0, startMs: 0, runMs: 0, totalMs: 0 },
      agentState: undefined,
    });
  };
  const known = (r: TaskRegistry, n: number) => {
    try {
      r.get(`t${n}`);
      return true;
    } catch (err) {
      expect(err).toBeInstanceOf(NotFoundError);
      return false;
    }
  };

  it("keeps at most maxTasks ended tasks, forgetting the oldest ended first", () => {
    const r = registry({ maxTasks: 3 });
    const tasks = [0, 1, 2, 3, 4].map((n) => start(r, n));
    // They end out of creation order: 4 first, then 0..3.
    end(r, tasks[4]!);
    for (const n of [0, 1, 2]) end(r, tasks[n]!);
    expect(r.kept.tasks).toBe(3);
    expect([0, 1, 2, 3, 4].map((n) => known(r, n))).toEqual([true, true, true, true, false]);
    end(r, tasks[3]!);
    expect([0, 1, 2, 3, 4].map((n) => known(r, n))).toEqual([false, true, true, true, false]);
    expect(() => r.get("t0")).toThrow(/EXECUTOR_TASK_RETENTION_MAX/);
  });

  it("never forgets a running task, however many end around it", () => {
    const r = registry({ maxTasks: 1 });
    const running = start(r, 0);
    for (let n = 1; n <= 5; n++) end(r, start(r, n));
    expect(known(r, 0)).toBe(true);
    expect(r.get("t0")).toBe(running);
    expect(r.kept.tasks).toBe(1);
  });

  it("keeps at most maxOutputBytes of ended tasks' output", () => {
    const r = registry({ maxOutputBytes: 250 });
    for (let n = 0; n < 4; n++) end(r, start(r, n), "x".repeat(100));
    expect(r.kept).toEqual({ tasks: 2, outputBytes: 200 });
    expect([0, 1, 2, 3].map((n) => known(r, n))).toEqual([false, false, true, true]);
    // Tasks without output cost no bytes.
    for (let n = 4; n < 10; n++) end(r, start(r, n));
    expect(r.kept).toEqual({ tasks: 8, outputBytes: 200 });
  });

  it("forgets ended tasks once the retention period has passed, and those only", async () => {
    const r = registry({ ms: 20 });
    end(r, start(r, 0));
    clock += 15;
    end(r, start(r, 1));
    start(r, 2); // still running
    clock += 10; // t0 ended 25 ms ago, t1 10 ms ago
    await new Promise((resolve) => setTimeout(resolve, 60)); // the sweeper runs every 20 ms
    expect([0, 1, 2].map((n) => known(r, n))).toEqual([false, true, true]);
    expect(r.kept.tasks).toBe(1);
  });
});
