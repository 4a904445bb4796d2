import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AgentainerError } from "../../lib/errors.js";
import type { JobRecord, RunStore, WorkflowRecord } from "../../services/workflow/run-store.js";

/** The behaviour every RunStore must have; run against each implementation. */
export function runStoreContract(name: string, make: () => RunStore): void {
  const record = (): WorkflowRecord => ({
    workflowId: `wf-${randomUUID()}`,
    name: "w",
    labels: { team: "a" },
    request: new Uint8Array([1, 2, 3]),
    status: "pending",
    statusMessage: "",
    createMs: 1,
    startMs: undefined,
    endMs: undefined,
    result: undefined,
  });
  const job = (index: number, over: Partial<JobRecord> = {}): JobRecord => ({
    stepId: "map",
    index,
    status: "running",
    attempt: 1,
    attemptTaskId: `t.${index}.1`,
    agentId: "",
    containerId: "",
    containerName: "",
    poolId: "",
    leaseId: "",
    attemptStatus: undefined,
    createMs: 1,
    startMs: 2,
    endMs: undefined,
    exitCode: undefined,
    error: "",
    nextAttemptMs: undefined,
    result: undefined,
    ...over,
  });
  const kindOf = async (p: Promise<unknown>) => {
    try {
      await p;
      return "ok";
    } catch (err) {
      return err instanceof AgentainerError ? err.kind : String(err);
    }
  };

  describe(`the run store (${name})`, () => {
    it("creates once, reads back by value, and deletes", async () => {
      const store = make();
      const r = record();
      await store.create(r);
      expect(await kindOf(store.create(r))).toBe("already_exists");
      const got = await store.get(r.workflowId);
      expect(got).toEqual(r);
      got.labels.team = "changed";
      expect((await store.get(r.workflowId)).labels.team).toBe("a");
      expect((await store.list()).map((w) => w.workflowId)).toContain(r.workflowId);
      expect(await store.delete(r.workflowId)).toBe(true);
      expect(await store.delete(r.workflowId)).toBe(false);
      expect(await kindOf(store.get(r.workflowId))).toBe("not_found");
    });

    it("lets one owner drive a run at a time, and takes it over after the claim lapses", async () => {
      const store = make();
      const r = record();
      await store.create(r);
      const a = await store.claim(r.workflowId, "instance-a", 1000, 10_000);
      expect(a).toBeGreaterThan(0);
      expect(await store.claim(r.workflowId, "instance-a", 1000, 10_500)).toBe(a); // renewed
      expect(await store.claim(r.workflowId, "instance-b", 1000, 11_000)).toBeUndefined();
      const b = await store.claim(r.workflowId, "instance-b", 1000, 11_501);
      expect(b).toBeGreaterThan(a as number);
      // The old owner's writes are refused; the new owner's go through.
      expect(
        await kindOf(store.apply(r.workflowId, a as number, { workflow: { status: "running" } })),
      ).toBe("failed_precondition");
      expect(
        (await store.apply(r.workflowId, b as number, { workflow: { status: "running" } })).applied,
      ).toBe(true);
      expect((await store.get(r.workflowId)).status).toBe("running");
    });

    it("applies a completion once, even when it is delivered twice", async () => {
      const store = make();
      const r = record();
      await store.create(r);
      const token = (await store.claim(r.workflowId, "me", 60_000, 0)) as number;
      await store.apply(r.workflowId, token, { jobs: [job(0), job(1)] });
      const complete = {
        expect: [{ stepId: "map", index: 1, attempt: 1, status: "running" as const }],
        jobs: [job(1, { status: "succeeded", result: { n: 1 }, endMs: 5 })],
        events: [{ timeMs: 5, data: new Uint8Array([9]) }],
      };
      expect(await store.apply(r.workflowId, token, complete)).toEqual({
        applied: true,
        lastSequence: 1,
      });
      expect(await store.apply(r.workflowId, token, complete)).toEqual({
        applied: false,
        lastSequence: 1,
      });
      const jobs = await store.jobs(r.workflowId, "map", 0, 10);
      expect(jobs.map((j) => [j.index, j.status, j.result])).toEqual([
        [0, "running", undefined],
        [1, "succeeded", { n: 1 }],
      ]);
      expect(await store.jobs(r.workflowId, "map", 1, 10)).toHaveLength(1);
      expect(await store.jobs(r.workflowId, "other", 0, 10)).toEqual([]);
    });

    it("stores a run's first events with its record, numbered from 1", async () => {
      const store = make();
      const r = record();
      await store.create(r, [
        { timeMs: 7, data: new Uint8Array([9]) },
        { timeMs: 8, data: new Uint8Array([10]) },
      ]);
      expect(await store.lastSequence(r.workflowId)).toBe(2);
      const events = await store.events(r.workflowId, 0, 10);
      expect(events.map((e) => [e.sequence, e.timeMs, Array.from(e.data)])).toEqual([
        [1, 7, [9]],
        [2, 8, [10]],
      ]);
      expect(await kindOf(store.lastSequence("nope"))).toBe("not_found");
    });

    it("numbers events without gaps and reads them from any sequence", async () => {
      const store = make();
      const r = record();
      await store.create(r);
      const token = (await store.claim(r.workflowId, "me", 60_000, 0)) as number;
      for (let i = 0; i < 5; i++) {
        await store.apply(r.workflowId, token, {
          events: [{ timeMs: i, data: new Uint8Array([i]) }],
        });
      }
      const after2 = await store.events(r.workflowId, 2, 10);
      expect(after2.map((e) => [e.sequence, Array.from(e.data)])).toEqual([
        [3, [2]],
        [4, [3]],
        [5, [4]],
      ]);
      expect((await store.events(r.workflowId, 0, 2)).map((e) => e.sequence)).toEqual([1, 2]);
      expect(await store.lastSequence(r.workflowId)).toBe(5);
      expect(await store.events(r.workflowId, 5, 10)).toEqual([]);
      await store.apply(r.workflowId, token, {
        steps: [
          {
            stepId: "map",
            status: "running",
            statusMessage: "",
            width: 3,
            poolId: "",
            counts: {
              pending: 3,
              running: 0,
              retrying: 0,
              succeeded: 0,
              failed: 0,
              skipped: 0,
              cancelled: 0,
            },
            startMs: 1,
            endMs: undefined,
            output: undefined,
          },
        ],
      });
      expect((await store.steps(r.workflowId)).map((s) => s.status)).toEqual(["running"]);
    });

    it("keeps MAP item pages under the run's token, and removes them with the run", async () => {
      const store = make();
      const r = record();
      await store.create(r);
      const token = (await store.claim(r.workflowId, "me", 60_000, 0)) as number;
      const pages = [
        { stepId: "map", page: 0, items: '[{"a":1},2]' },
        { stepId: "map", page: 1, items: '["x"]' },
        { stepId: "other", page: 0, items: "[null]" },
      ];
      await store.apply(r.workflowId, token, { itemPages: pages });
      expect(await store.itemPage(r.workflowId, "map", 0)).toBe('[{"a":1},2]');
      expect(await store.itemPage(r.workflowId, "map", 1)).toBe('["x"]');
      expect(await store.itemPage(r.workflowId, "other", 0)).toBe("[null]");
      expect(await store.itemPage(r.workflowId, "map", 2)).toBeUndefined();
      // A page written again replaces the stored one.
      await store.apply(r.workflowId, token, {
        itemPages: [{ stepId: "map", page: 1, items: '["y"]' }],
      });
      expect(await store.itemPage(r.workflowId, "map", 1)).toBe('["y"]');
      // Pages come with a change's other parts or not at all: a stale token writes none.
      const taker = (await store.claim(r.workflowId, "other-owner", 60_000, 120_000)) as number;
      expect(taker).toBeGreaterThan(token);
      expect(
        await kindOf(
          store.apply(r.workflowId, token, {
            itemPages: [{ stepId: "map", page: 5, items: "[1]" }],
          }),
        ),
      ).toBe("failed_precondition");
      expect(await store.itemPage(r.workflowId, "map", 5)).toBeUndefined();
      expect(await store.delete(r.workflowId)).toBe(true);
      expect(await store.itemPage(r.workflowId, "map", 0)).toBeUndefined();
      await store.create({ ...r });
      expect(await store.itemPage(r.workflowId, "map", 0)).toBeUndefined();
    });
  });
}
