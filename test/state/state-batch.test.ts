import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type Interceptor,
} from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  StateService,
  type BatchOperation,
  type BatchResult,
} from "../../gen/agentainer/state/v1/state_pb.js";
import { createBatchingStateClient } from "../../services/state/batching-client.js";
import { startStateService, type RunningService } from "../../services/state/main.js";
import { codeOf } from "../support/await.js";

const num = (n: number) => create(ValueSchema, { kind: { case: "numberValue", value: n } });
const str = (s: string) => create(ValueSchema, { kind: { case: "stringValue", value: s } });
type Op = BatchOperation["operation"];

/** A result's case and, for errors, the code; for responses, the response. */
function outcome(result: BatchResult | undefined) {
  const r = result?.result;
  if (r?.case === "error") return { error: r.value.code, message: r.value.message };
  return { case: r?.case, value: r?.value };
}

const backends = [
  {
    name: "Redis and NATS",
    env: () => ({ REDIS_URL: inject("redisUrl"), NATS_URL: inject("natsUrl") }),
  },
  { name: "the in-memory store", env: () => ({}) },
] as const;

for (const backend of backends) {
  describe(`StateService.Batch on ${backend.name}`, () => {
    let server: RunningService;
    let client: Client<typeof StateService>;
    /** Batch calls the counting client has made. */
    let batchCalls = 0;
    let counted: Client<typeof StateService>;

    beforeAll(async () => {
      server = await startStateService({
        PORT: "0",
        HOST: "127.0.0.1",
        LOG_LEVEL: "silent",
        STATE_REDIS_PREFIX: `test:${randomUUID()}:`,
        ...backend.env(),
      });
      client = createClient(StateService, createGrpcTransport({ baseUrl: server.url }));
      const count: Interceptor = (next) => (req) => {
        if (req.method.name === "Batch") batchCalls++;
        return next(req);
      };
      counted = createClient(
        StateService,
        createGrpcTransport({ baseUrl: server.url, interceptors: [count] }),
      );
    });
    afterAll(async () => {
      await server.close();
    });

    async function newWorkflow(): Promise<string> {
      const workflowId = "wf-" + randomUUID();
      await client.createWorkflowState({ workflowId });
      return workflowId;
    }

    it("runs operations in order, each seeing the effects of the ones before it", async () => {
      const workflowId = await newWorkflow();
      const ops: Op[] = [
        { case: "set", value: { workflowId, key: "n", value: num(1) } },
        { case: "increment", value: { workflowId, key: "n", delta: 2 } },
        { case: "get", value: { workflowId, key: "n" } },
        { case: "appendToList", value: { workflowId, key: "log", values: [str("a"), str("b")] } },
        { case: "addToSet", value: { workflowId, key: "tags", member: str("x") } },
        { case: "addToSet", value: { workflowId, key: "tags", member: str("x") } },
        {
          case: "compareAndSwap",
          value: { workflowId, key: "n", expected: num(3), newValue: num(10) },
        },
        { case: "delete", value: { workflowId, key: "log" } },
        { case: "getAll", value: { workflowId } },
        { case: "describeWorkflowState", value: { workflowId } },
      ] as Op[];
      const { results } = await client.batch({
        operations: ops.map((operation) => ({ operation })),
      });

      expect(results.map((r) => r.result.case)).toEqual(ops.map((o) => o.case));
      expect(outcome(results[1]).value).toMatchObject({ value: 3 });
      expect(outcome(results[2]).value).toMatchObject({ value: num(3) });
      expect(outcome(results[3]).value).toMatchObject({ length: 2n });
      expect(outcome(results[4]).value).toMatchObject({ added: true, size: 1n });
      expect(outcome(results[5]).value).toMatchObject({ added: false, size: 1n });
      expect(outcome(results[6]).value).toMatchObject({ swapped: true });
      expect(outcome(results[7]).value).toMatchObject({ existed: true });
      expect(outcome(results[8]).value).toMatchObject({ values: { n: 10, tags: ["x"] } });
      // One version per write: set, increment, append, addToSet (new), CAS, delete.
      expect(outcome(results[9]).value).toMatchObject({ info: { version: 6n, keyCount: 2n } });
    });

    it("applies the steps of a long batch in order on one key", async () => {
      const workflowId = await newWorkflow();
      const ops: Op[] = [];
      for (let i = 0; i < 200; i++) {
        ops.push({ case: "set", value: { workflowId, key: "k", value: num(i) } } as Op);
        ops.push({ case: "get", value: { workflowId, key: "k" } } as Op);
        ops.push({
          case: "appendToList",
          value: { workflowId, key: "seq", values: [num(i)] },
        } as Op);
      }
      const { results } = await client.batch({
        operations: ops.map((operation) => ({ operation })),
      });
      const reads = results.filter((r) => r.result.case === "get").map((r) => outcome(r).value);
      expect(reads.map((v) => (v as { value: unknown }).value)).toEqual(
        Array.from({ length: 200 }, (_, i) => num(i)),
      );
      const { values } = await client.getAll({ workflowId });
      expect(values).toEqual({ k: 199, seq: Array.from({ length: 200 }, (_, i) => i) });
    });

    it("gives a failed operation its own error, keeps earlier ones and still runs later ones", async () => {
      const workflowId = await newWorkflow();
      const other = await newWorkflow();
      const missing = "wf-" + randomUUID();
      const ops = [
        { case: "set", value: { workflowId, key: "text", value: str("hello") } },
        { case: "increment", value: { workflowId, key: "text" } },
        { case: "get", value: { workflowId, key: "absent" } },
        { case: "set", value: { workflowId: missing, key: "k", value: num(1) } },
        { case: "set", value: { workflowId, key: "", value: num(1) } },
        { case: "set", value: { workflowId, key: "big", value: str("x".repeat(2 << 20)) } },
        { case: "increment", value: { workflowId: other, key: "done" } },
        { case: "get", value: { workflowId, key: "text" } },
      ] as Op[];
      const { results } = await client.batch({
        operations: ops.map((operation) => ({ operation })),
      });

      expect(outcome(results[0]).case).toBe("set");
      expect(outcome(results[1])).toMatchObject({
        error: Code.FailedPrecondition,
        message: expect.stringContaining("text"),
      });
      expect(outcome(results[2])).toMatchObject({
        error: Code.NotFound,
        message: expect.stringContaining("absent"),
      });
      expect(outcome(results[3])).toMatchObject({
        error: Code.NotFound,
        message: expect.stringContaining(missing),
      });
      expect(outcome(results[4]).error).toBe(Code.InvalidArgument);
      expect(outcome(results[5]).error).toBe(Code.ResourceExhausted);
      expect(outcome(results[6]).value).toMatchObject({ value: 1 });
      expect(outcome(results[7]).value).toMatchObject({ value: str("hello") });
      // The failed operations wrote nothing.
      expect((await client.getAll({ workflowId })).values).toEqual({ text: "hello" });
      expect(await codeOf(client.describeWorkflowState({ workflowId: missing }))).toBe(
        Code.NotFound,
      );
    });

    it("rejects a malformed batch whole, before running any of it", async () => {
      const workflowId = await newWorkflow();
      const inc = { operation: { case: "increment", value: { workflowId, key: "n" } } as Op };

      const tooMany = await errorOf(client.batch({ operations: Array(1001).fill(inc) }));
      expect(tooMany.code).toBe(Code.InvalidArgument);
      expect(tooMany.rawMessage).toMatch(/at most 1000 operations; got 1001/);

      const unset = await errorOf(client.batch({ operations: [inc, inc, {}, inc] }));
      expect(unset.code).toBe(Code.InvalidArgument);
      expect(unset.rawMessage).toMatch(/operations\[2\] has no operation set/);

      expect(await codeOf(client.get({ workflowId, key: "n" }))).toBe(Code.NotFound);
      expect((await client.batch({ operations: Array(1000).fill(inc) })).results).toHaveLength(
        1000,
      );
      expect((await client.get({ workflowId, key: "n" })).value).toEqual(num(1000));
      expect((await client.batch({ operations: [] })).results).toEqual([]);
    });

    it("lets many concurrent callers share Batch calls through the batching client", async () => {
      const workflowId = await newWorkflow();
      const state = createBatchingStateClient(counted);
      batchCalls = 0;
      const callers = 64;
      const perCaller = 100;
      const seen = await Promise.all(
        Array.from({ length: callers }, async () => {
          const values: number[] = [];
          for (let i = 0; i < perCaller; i++) {
            values.push((await state.increment({ workflowId, key: "hits" })).value);
          }
          return values;
        }),
      );
      const total = callers * perCaller;
      expect((await client.get({ workflowId, key: "hits" })).value).toEqual(num(total));
      // Every increment returned a distinct new value: none lost, none applied twice.
      expect(new Set(seen.flat()).size).toBe(total);
      expect(batchCalls).toBeGreaterThanOrEqual(perCaller);
      expect(batchCalls).toBeLessThan(total / 8);
    }, 120_000);

    it("settles each batched operation with its own result or error", async () => {
      const workflowId = await newWorkflow();
      const state = createBatchingStateClient(counted, { maxBatchSize: 10 });
      batchCalls = 0;
      const [set, missing, bad, ...incs] = await Promise.allSettled([
        state.set({ workflowId, key: "a", value: num(1) }),
        state.get({ workflowId, key: "nope" }),
        state.set({ workflowId: "bad id!", key: "a", value: num(1) }),
        ...Array.from({ length: 22 }, () => state.increment({ workflowId, key: "c" })),
      ]);
      expect(set).toMatchObject({ status: "fulfilled", value: { version: 1n } });
      expect(missing).toMatchObject({ status: "rejected" });
      const notFound = ConnectError.from((missing as PromiseRejectedResult).reason);
      expect(notFound.code).toBe(Code.NotFound);
      expect(notFound.rawMessage).toMatch(/"nope"/);
      expect(ConnectError.from((bad as PromiseRejectedResult).reason).code).toBe(
        Code.InvalidArgument,
      );
      expect(incs.every((r) => r.status === "fulfilled")).toBe(true);
      expect(batchCalls).toBe(3); // 25 operations, at most 10 a call
      expect((await client.get({ workflowId, key: "c" })).value).toEqual(num(22));
    });
  });
}

async function errorOf(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}
