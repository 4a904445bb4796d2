import { randomUUID } from "node:crypto";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { InProcessEventBus } from "../../lib/events/in-process-event-bus.js";
import { createLogger } from "../../lib/logger.js";
import type { JsonValue } from "../../lib/json-value.js";
import type { StateChange } from "../../services/state/changes.js";
import { createStateChangeFeed } from "../../services/state/events.js";
import { createStateManager, type StateManager } from "../../services/state/state.js";
import type { StateStore } from "../../services/state/store.js";

export interface StoreFixture {
  store: StateStore;
  cleanup(): Promise<void>;
}

const limits = { maxWorkflowBytes: 10 * 1024 * 1024, maxValueBytes: 1024 * 1024 };

/**
 * The behaviour every StateStore must show, exercised through the domain (validation, events
 * and the store together). Run by state-memory.test.ts and state-redis.test.ts.
 */
export function describeStateContract(name: string, makeStore: () => Promise<StoreFixture>): void {
  describe(`state (${name} store)`, () => {
    let fixture: StoreFixture;
    let state: StateManager;
    let bus: InProcessEventBus;
    let wf: string;
    const fixtures: StoreFixture[] = [];

    beforeEach(async () => {
      fixture = await makeStore();
      fixtures.push(fixture);
      bus = new InProcessEventBus();
      const feed = createStateChangeFeed(
        bus,
        createLogger({ name: "test", level: "silent" }),
        64 * 1024,
      );
      state = createStateManager({ store: fixture.store, feed, now: Date.now, limits });
      wf = "wf-" + randomUUID();
      await state.createWorkflowState(wf, {});
    });

    afterAll(async () => {
      for (const f of fixtures) await f.cleanup();
    });

    describe("creating a workflow's state", () => {
      it("is idempotent and says whether it created", async () => {
        const again = await state.createWorkflowState(wf, {});
        expect(again.created).toBe(false);
        const fresh = await state.createWorkflowState(wf + "-2", {});
        expect(fresh.created).toBe(true);
        expect(fresh.meta).toMatchObject({ version: 0, keyCount: 0, usedBytes: 0, limits });
      });

      it("lets a workflow lower its limits but never raise them", async () => {
        const low = await state.createWorkflowState(wf + "-low", {
          maxWorkflowBytes: 1000,
          maxValueBytes: 100,
        });
        expect(low.meta.limits).toEqual({ maxWorkflowBytes: 1000, maxValueBytes: 100 });
        await expect(
          state.createWorkflowState(wf + "-high", {
            maxWorkflowBytes: limits.maxWorkflowBytes + 1,
          }),
        ).rejects.toMatchObject({
          kind: "invalid_argument",
          field: "limits.max_workflow_bytes",
        });
      });

      it("rejects workflow ids that are empty, too long or hold other characters", async () => {
        for (const bad of ["", "a".repeat(129), "has space", "has.dot", "{wf}", "ünïcode"]) {
          await expect(state.createWorkflowState(bad, {})).rejects.toMatchObject({
            kind: "invalid_argument",
            field: "workflow_id",
          });
        }
      });
    });

    describe("on a workflow with no state", () => {
      it("fails every operation with NOT_FOUND naming the workflow", async () => {
        const ghost = "ghost-" + randomUUID();
        const calls: Array<() => Promise<unknown>> = [
          () => state.get(ghost, "k"),
          () => state.set(ghost, "k", 1),
          () => state.delete(ghost, "k"),
          () => state.getAll(ghost),
          () => state.putAll(ghost, { k: 1 }),
          () => state.deleteAll(ghost),
          () => state.increment(ghost, "k"),
          () => state.appendToList(ghost, "k", [1]),
          () => state.addToSet(ghost, "k", 1),
          () => state.compareAndSwap(ghost, "k", undefined, 1),
          () => state.describeWorkflowState(ghost),
          () => state.expireWorkflowState(ghost, 1000),
        ];
        for (const call of calls) {
          const err = await call().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toMatchObject({ kind: "not_found" });
          expect((err as Error).message).toContain(ghost);
        }
        expect(await state.deleteWorkflowState(ghost)).toBe(false);
      });
    });

    describe("keys and values", () => {
      it("round-trips every kind of JSON value", async () => {
        const values: JsonValue[] = [
          null,
          true,
          false,
          0,
          -1.5,
          1e300,
          "",
          'héllo ✓ "quoted" \\ \n',
          [],
          [1, [2, { a: null }]],
          {},
          { z: 1, a: { y: [true] } },
        ];
        for (const [i, value] of values.entries()) {
          await state.set(wf, `k${i}`, value);
          expect((await state.get(wf, `k${i}`)).value).toEqual(value);
        }
        const all = await state.getAll(wf);
        expect(Object.keys(all.values)).toHaveLength(values.length);
        expect(all.values.k11).toEqual({ z: 1, a: { y: [true] } });
      });

      it("reads an absent key as undefined", async () => {
        expect((await state.get(wf, "nope")).value).toBeUndefined();
      });

      it("rejects empty, oversize and control-character keys", async () => {
        await expect(state.set(wf, "", 1)).rejects.toMatchObject({
          kind: "invalid_argument",
          field: "key",
        });
        await expect(state.set(wf, "x".repeat(1025), 1)).rejects.toMatchObject({
          kind: "invalid_argument",
          field: "key",
        });
        await expect(state.set(wf, "a\nb", 1)).rejects.toMatchObject({
          kind: "invalid_argument",
          field: "key",
        });
        await expect(state.putAll(wf, { ok: 1, "": 2 })).rejects.toMatchObject({
          kind: "invalid_argument",
          field: "values.",
        });
        expect((await state.getAll(wf)).values).toEqual({});
      });

      it("deletes one key and says whether it existed", async () => {
        await state.set(wf, "a", 1);
        const first = await state.delete(wf, "a");
        expect(first.existed).toBe(true);
        const second = await state.delete(wf, "a");
        expect(second).toEqual({ existed: false, version: first.version });
      });

      it("merges with PutAll and clears with DeleteAll", async () => {
        await state.set(wf, "keep", "old");
        await state.putAll(wf, { a: 1, b: [2] });
        expect((await state.getAll(wf)).values).toEqual({ keep: "old", a: 1, b: [2] });
        await expect(state.putAll(wf, {})).rejects.toMatchObject({
          kind: "invalid_argument",
          field: "values",
        });
        const cleared = await state.deleteAll(wf);
        expect(cleared.deletedCount).toBe(3);
        expect((await state.getAll(wf)).values).toEqual({});
        expect((await state.describeWorkflowState(wf)).usedBytes).toBe(0);
        await state.set(wf, "after", 1);
        expect((await state.get(wf, "after")).value).toBe(1);
      });

      it("counts used bytes as UTF-8 of keys plus canonical JSON", async () => {
        await state.set(wf, "é", { b: 1, a: "✓" });
        // "é" is 2 bytes; {"a":"✓","b":1} is 17 bytes ("✓" is 3).
        expect((await state.describeWorkflowState(wf)).usedBytes).toBe(2 + 17);
        await state.set(wf, "é", 7);
        expect((await state.describeWorkflowState(wf)).usedBytes).toBe(3);
      });
    });

    describe("versions", () => {
      it("grow by one per write and stay put when nothing changes", async () => {
        const v1 = await state.set(wf, "n", 1);
        const v2 = (await state.increment(wf, "n")).version;
        expect(v2).toBe(v1 + 1);
        await state.addToSet(wf, "s", "x");
        const before = (await state.describeWorkflowState(wf)).version;
        await state.addToSet(wf, "s", "x");
        await state.compareAndSwap(wf, "n", 99, 3);
        await state.delete(wf, "absent");
        expect((await state.describeWorkflowState(wf)).version).toBe(before);
      });
    });

    describe("Increment", () => {
      it("counts an absent key as 0 and adds 1 by default", async () => {
        expect((await state.increment(wf, "c")).value).toBe(1);
        expect((await state.increment(wf, "c", 41)).value).toBe(42);
        expect((await state.increment(wf, "c", -0.5)).value).toBe(41.5);
        expect((await state.get(wf, "c")).value).toBe(41.5);
      });

      it("keeps doubles exact", async () => {
        await state.increment(wf, "f", 0.1);
        expect((await state.increment(wf, "f", 0.2)).value).toBe(0.1 + 0.2);
      });

      it("refuses a non-number with FAILED_PRECONDITION and changes nothing", async () => {
        await state.set(wf, "s", "text");
        await expect(state.increment(wf, "s")).rejects.toMatchObject({
          kind: "failed_precondition",
          field: "key",
        });
        await expect(state.increment(wf, "s")).rejects.toThrow(
          /holds a string; Increment needs a number/,
        );
        expect((await state.get(wf, "s")).value).toBe("text");
      });

      it("refuses a delta or result that is not finite", async () => {
        await expect(state.increment(wf, "c", Number.NaN)).rejects.toMatchObject({
          kind: "invalid_argument",
          field: "delta",
        });
        await state.set(wf, "big", 1.7e308);
        await expect(state.increment(wf, "big", 1.7e308)).rejects.toMatchObject({
          kind: "invalid_argument",
          field: "delta",
        });
        expect((await state.get(wf, "big")).value).toBe(1.7e308);
      });

      it("loses no update under 64 concurrent clients (64 × 500 = 32,000)", async () => {
        await Promise.all(
          Array.from({ length: 64 }, async () => {
            for (let i = 0; i < 500; i++) await state.increment(wf, "hot");
          }),
        );
        expect((await state.get(wf, "hot")).value).toBe(32_000);
      });
    });

    describe("AppendToList", () => {
      it("appends in order and returns the length", async () => {
        expect((await state.appendToList(wf, "l", [1])).length).toBe(1);
        expect((await state.appendToList(wf, "l", [{ b: 2, a: 1 }, "x"])).length).toBe(3);
        expect((await state.get(wf, "l")).value).toEqual([1, { a: 1, b: 2 }, "x"]);
      });

      it("continues an array written with Set, including an empty one", async () => {
        await state.set(wf, "l", [1, 2]);
        expect((await state.appendToList(wf, "l", [3])).length).toBe(3);
        await state.set(wf, "e", []);
        expect((await state.appendToList(wf, "e", ["a"])).length).toBe(1);
        expect((await state.get(wf, "e")).value).toEqual(["a"]);
      });

      it("refuses a non-array with FAILED_PRECONDITION and changes nothing", async () => {
        await state.set(wf, "n", 5);
        await expect(state.appendToList(wf, "n", [1])).rejects.toThrow(
          /holds a number; AppendToList needs a JSON array/,
        );
        await expect(state.appendToList(wf, "n", [1])).rejects.toMatchObject({
          kind: "failed_precondition",
        });
        expect((await state.get(wf, "n")).value).toBe(5);
        await expect(state.appendToList(wf, "n2", [])).rejects.toMatchObject({
          kind: "invalid_argument",
          field: "values",
        });
      });

      it("keeps every element appended by concurrent writers", async () => {
        await Promise.all(
          Array.from({ length: 50 }, (_, i) => state.appendToList(wf, "r", [{ i }])),
        );
        const list = (await state.get(wf, "r")).value as Array<{ i: number }>;
        expect(list.map((x) => x.i).sort((a, b) => a - b)).toEqual(
          Array.from({ length: 50 }, (_, i) => i),
        );
      });
    });

    describe("AddToSet", () => {
      it("adds new members, compares by value, and reports the size", async () => {
        expect(await state.addToSet(wf, "s", "a")).toMatchObject({ added: true, size: 1 });
        expect(await state.addToSet(wf, "s", { x: 1, y: [1, "a,b"] })).toMatchObject({
          added: true,
          size: 2,
        });
        expect(await state.addToSet(wf, "s", { y: [1, "a,b"], x: 1 })).toMatchObject({
          added: false,
          size: 2,
        });
        expect(await state.addToSet(wf, "s", "a")).toMatchObject({ added: false, size: 2 });
        expect(await state.addToSet(wf, "s", ["a"])).toMatchObject({ added: true, size: 3 });
        expect(await state.addToSet(wf, "s", 'say "hi", [ok]')).toMatchObject({
          added: true,
          size: 4,
        });
        expect(await state.addToSet(wf, "s", 'say "hi", [ok]')).toMatchObject({
          added: false,
          size: 4,
        });
        expect((await state.get(wf, "s")).value).toEqual([
          "a",
          { x: 1, y: [1, "a,b"] },
          ["a"],
          'say "hi", [ok]',
        ]);
      });

      it("treats an array written with Set as the set", async () => {
        await state.set(wf, "s", [3, "three"]);
        expect(await state.addToSet(wf, "s", 3)).toMatchObject({ added: false, size: 2 });
        expect(await state.addToSet(wf, "s", 4)).toMatchObject({ added: true, size: 3 });
      });

      it("adds each member once under concurrency", async () => {
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) => state.addToSet(wf, "u", `id-${i % 10}`)),
        );
        expect(results.filter((r) => r.added)).toHaveLength(10);
        expect(((await state.get(wf, "u")).value as string[]).sort()).toEqual(
          Array.from({ length: 10 }, (_, i) => `id-${i}`).sort(),
        );
      });

      it("refuses a non-array with FAILED_PRECONDITION", async () => {
        await state.set(wf, "o", { a: 1 });
        await expect(state.addToSet(wf, "o", 1)).rejects.toThrow(
          /holds an object; AddToSet needs a JSON array/,
        );
      });
    });

    describe("CompareAndSwap", () => {
      it("with no expected value swaps only when the key is absent", async () => {
        expect(await state.compareAndSwap(wf, "lock", undefined, "me")).toMatchObject({
          swapped: true,
          current: "me",
        });
        expect(await state.compareAndSwap(wf, "lock", undefined, "you")).toMatchObject({
          swapped: false,
          current: "me",
        });
      });

      it("treats null as a stored value, not as absence", async () => {
        await state.set(wf, "n", null);
        expect(await state.compareAndSwap(wf, "n", undefined, 1)).toMatchObject({
          swapped: false,
          current: null,
        });
        expect(await state.compareAndSwap(wf, "n", null, 1)).toMatchObject({
          swapped: true,
          current: 1,
        });
        expect(await state.compareAndSwap(wf, "absent", null, 1)).toMatchObject({
          swapped: false,
          current: undefined,
        });
      });

      it("compares objects by value and numbers written by Increment by value", async () => {
        await state.set(wf, "o", { a: 1, b: 2 });
        expect((await state.compareAndSwap(wf, "o", { b: 2, a: 1 }, { a: 2 })).swapped).toBe(true);
        await state.increment(wf, "n", 0.1);
        await state.increment(wf, "n", 0.2);
        expect((await state.compareAndSwap(wf, "n", 0.1 + 0.2, "done")).swapped).toBe(true);
      });

      it("loses no update when 64 clients increment one counter with CAS retry loops", async () => {
        await state.set(wf, "counter", 0);
        const perClient = 20;
        await Promise.all(
          Array.from({ length: 64 }, async () => {
            for (let i = 0; i < perClient; i++) {
              let current = (await state.get(wf, "counter")).value as number;
              for (;;) {
                const r = await state.compareAndSwap(wf, "counter", current, current + 1);
                if (r.swapped) break;
                current = r.current as number;
              }
            }
          }),
        );
        expect((await state.get(wf, "counter")).value).toBe(64 * perClient);
      });
    });

    describe("limits", () => {
      it("refuses a value over the per-value limit with RESOURCE_EXHAUSTED and writes nothing", async () => {
        await state.createWorkflowState(wf + "-v", { maxValueBytes: 100 });
        await state.set(wf + "-v", "k", "small");
        const err = await state.set(wf + "-v", "k", "x".repeat(200)).catch((e: unknown) => e);
        expect(err).toMatchObject({ kind: "resource_exhausted" });
        expect((err as Error).message).toMatch(/202 bytes, over the per-value limit of 100 bytes/);
        expect((await state.get(wf + "-v", "k")).value).toBe("small");
      });

      it("refuses a write that would pass the workflow limit and leaves the state byte-for-byte unchanged", async () => {
        const id = wf + "-w";
        await state.createWorkflowState(id, { maxWorkflowBytes: 1000 });
        await state.putAll(id, { a: "x".repeat(400), list: [1, 2, 3], n: 1 });
        const before = { all: await state.getAll(id), meta: await state.describeWorkflowState(id) };
        const attempts: Array<() => Promise<unknown>> = [
          () => state.set(id, "b", "y".repeat(600)),
          () => state.putAll(id, { c: "z".repeat(300), d: "w".repeat(300) }),
          () => state.appendToList(id, "list", ["v".repeat(600)]),
          () => state.addToSet(id, "list", "v".repeat(600)),
          () => state.compareAndSwap(id, "n", 1, "u".repeat(600)),
        ];
        for (const attempt of attempts) {
          await expect(attempt()).rejects.toMatchObject({ kind: "resource_exhausted" });
        }
        expect({
          all: await state.getAll(id),
          meta: await state.describeWorkflowState(id),
        }).toEqual(before);
      });

      it("allows writes up to the limit exactly and frees space on delete", async () => {
        const id = wf + "-x";
        await state.createWorkflowState(id, { maxWorkflowBytes: 10 });
        await state.set(id, "k", "123456"); // 1 + 8 bytes
        await expect(state.set(id, "j", 1)).rejects.toMatchObject({ kind: "resource_exhausted" });
        await state.set(id, "k", 1234567); // 1 + 7 bytes
        await state.set(id, "j", 1); // 1 + 1 bytes: 10 exactly
        expect((await state.describeWorkflowState(id)).usedBytes).toBe(10);
        await state.delete(id, "k");
        await state.set(id, "m", 12345);
      });
    });

    describe("lifecycle", () => {
      it("deletes a workflow's state entirely; later writes fail until it is created again", async () => {
        await state.set(wf, "a", 1);
        expect(await state.deleteWorkflowState(wf)).toBe(true);
        await expect(state.set(wf, "a", 2)).rejects.toMatchObject({ kind: "not_found" });
        const again = await state.createWorkflowState(wf, {});
        expect(again).toMatchObject({ created: true, meta: { keyCount: 0 } });
      });

      it("expires a workflow's state after its time to live, and keeps it when the expiry is cancelled", async () => {
        await state.set(wf, "a", 1);
        const meta = await state.expireWorkflowState(wf, 300);
        expect(meta.expireTimeMs).toBeGreaterThan(Date.now());
        await state.set(wf, "b", [1]); // written after the expiry was set: expires too
        await expect
          .poll(
            () =>
              state.describeWorkflowState(wf).then(
                () => "present",
                (e: { kind: string }) => e.kind,
              ),
            { timeout: 5000 },
          )
          .toBe("not_found");

        const kept = wf + "-kept";
        await state.createWorkflowState(kept, {});
        await state.set(kept, "a", 1);
        await state.expireWorkflowState(kept, 300);
        expect((await state.expireWorkflowState(kept, 0)).expireTimeMs).toBeUndefined();
        await new Promise((r) => setTimeout(r, 600));
        expect((await state.get(kept, "a")).value).toBe(1);
        await expect(state.expireWorkflowState(kept, -1)).rejects.toMatchObject({
          kind: "invalid_argument",
          field: "ttl",
        });
      });
    });

    describe("change feed and Watch", () => {
      it("announces each write with its version and new value", async () => {
        const seen: StateChange[] = [];
        const feed = createStateChangeFeed(
          bus,
          createLogger({ name: "t", level: "silent" }),
          64 * 1024,
        );
        const sub = feed.subscribe(wf, (c) => seen.push(c));
        await state.set(wf, "a", { x: 1 });
        await state.increment(wf, "n", 2);
        await state.delete(wf, "a");
        await bus.flush();
        sub.unsubscribe();
        expect(seen.map((c) => [c.operation, c.version, c.changes])).toEqual([
          ["set", 1, [{ key: "a", json: '{"x":1}', deleted: false, omitted: false }]],
          ["increment", 2, [{ key: "n", json: "2", deleted: false, omitted: false }]],
          ["delete", 3, [{ key: "a", json: undefined, deleted: true, omitted: false }]],
        ]);
      });

      it("streams a snapshot then every change in order, filtered by key, and ends when the state is deleted", async () => {
        await state.set(wf, "a", 1);
        await state.set(wf, "other", 1);
        const ac = new AbortController();
        const received: StateChange[] = [];
        const done = (async () => {
          for await (const c of state.watch(wf, {
            keys: ["a"],
            sendInitial: true,
            signal: ac.signal,
          }))
            received.push(c);
        })();
        await expect.poll(() => received.length).toBe(1);
        await state.increment(wf, "a");
        await state.set(wf, "other", 2);
        await state.appendToList(wf, "b", [1]);
        await state.set(wf, "a", "last");
        await state.deleteWorkflowState(wf);
        await done;
        expect(received.map((c) => c.operation)).toEqual([
          "snapshot",
          "increment",
          "set",
          "delete_workflow_state",
        ]);
        expect(received[0]?.changes).toEqual([
          { key: "a", json: "1", deleted: false, omitted: false },
        ]);
        expect(received[1]?.changes[0]?.json).toBe("2");
        expect(received[2]?.changes[0]?.json).toBe('"last"');
        expect(received.map((c) => c.version)).toEqual([2, 3, 6, 7]);
      });

      it("resynchronises with a snapshot when a change is missed", async () => {
        const ac = new AbortController();
        const received: StateChange[] = [];
        const done = (async () => {
          for await (const c of state.watch(wf, {
            keys: [],
            sendInitial: false,
            signal: ac.signal,
          }))
            received.push(c);
        })();
        await new Promise((r) => setTimeout(r, 50));
        // A write whose event is lost: straight to the store, bypassing the feed.
        await fixture.store.set(wf, "lost", { json: "1", length: -1 }, Date.now());
        await state.set(wf, "seen", 2);
        await expect.poll(() => received.length).toBe(1);
        ac.abort();
        await done;
        expect(received[0]).toMatchObject({ operation: "snapshot", version: 2 });
        expect(received[0]?.changes.map((c) => c.key).sort()).toEqual(["lost", "seen"]);
      });

      it("ends when the watcher aborts", async () => {
        const ac = new AbortController();
        const done = (async () => {
          let n = 0;
          for await (const _ of state.watch(wf, { keys: [], sendInitial: true, signal: ac.signal }))
            n++;
          return n;
        })();
        await new Promise((r) => setTimeout(r, 20));
        ac.abort();
        expect(await done).toBe(1);
      });
    });
  });
}
