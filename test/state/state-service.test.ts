import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { create, fromBinary, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Redis } from "ioredis";
import { connect as natsConnect } from "nats";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  StateChangedSchema,
  StateOperation,
  StateService,
} from "../../gen/agentainer/state/v1/state_pb.js";
import { startStateService, type RunningService } from "../../services/state/main.js";
import { codeOf } from "../support/await.js";

type StateClient = Client<typeof StateService>;

function connectClient(url: string): StateClient {
  return createClient(StateService, createGrpcTransport({ baseUrl: url }));
}

const num = (n: number) => create(ValueSchema, { kind: { case: "numberValue", value: n } });
const str = (s: string) => create(ValueSchema, { kind: { case: "stringValue", value: s } });

/** Runs the given body against a State service on real Redis + NATS and one on the embedded defaults. */
const backends = [
  {
    name: "Redis and NATS",
    env: () => ({ REDIS_URL: inject("redisUrl"), NATS_URL: inject("natsUrl") }),
  },
  { name: "the in-memory store", env: () => ({}) },
] as const;

for (const backend of backends) {
  describe(`the State service over gRPC, on ${backend.name}`, () => {
    let server: RunningService;
    let client: StateClient;
    const prefix = `test:${randomUUID()}:`;

    beforeAll(async () => {
      server = await startStateService({
        PORT: "0",
        HOST: "127.0.0.1",
        LOG_LEVEL: "silent",
        STATE_REDIS_PREFIX: prefix,
        ...backend.env(),
      });
      client = connectClient(server.url);
    });
    afterAll(async () => {
      await server.close();
    });

    async function newWorkflow(limits?: { maxWorkflowBytes?: bigint }): Promise<string> {
      const workflowId = "wf-" + randomUUID();
      await client.createWorkflowState({ workflowId, limits });
      return workflowId;
    }

    it("ends at exactly 32,000 when 64 concurrent clients each Increment one key 500 times", async () => {
      const workflowId = await newWorkflow();
      const clients = Array.from({ length: 64 }, () => connectClient(server.url));
      await Promise.all(
        clients.map(async (c) => {
          for (let i = 0; i < 500; i++) await c.increment({ workflowId, key: "hits" });
        }),
      );
      const got = await client.get({ workflowId, key: "hits" });
      expect(got.value?.kind).toEqual({ case: "numberValue", value: 32_000 });
    }, 180_000);

    it("loses no update when 64 clients increment a counter with CompareAndSwap retry loops", async () => {
      const workflowId = await newWorkflow();
      await client.set({ workflowId, key: "counter", value: num(0) });
      const clients = Array.from({ length: 64 }, () => connectClient(server.url));
      let conflicts = 0;
      await Promise.all(
        clients.map(async (c) => {
          for (let i = 0; i < 10; i++) {
            const read = await c.get({ workflowId, key: "counter" });
            let current = read.value?.kind.value as number;
            for (;;) {
              const r = await c.compareAndSwap({
                workflowId,
                key: "counter",
                expected: num(current),
                newValue: num(current + 1),
              });
              if (r.swapped) break;
              conflicts++;
              current = r.current?.kind.value as number;
            }
          }
        }),
      );
      const got = await client.get({ workflowId, key: "counter" });
      expect(got.value?.kind.value).toBe(640);
      expect(conflicts).toBeGreaterThan(0); // the loops really raced
    }, 180_000);

    it("answers bad input with precise status codes and messages", async () => {
      const workflowId = await newWorkflow();
      await client.set({ workflowId, key: "text", value: str("hello") });
      expect(await codeOf(client.get({ workflowId: "missing-" + randomUUID(), key: "a" }))).toBe(
        Code.NotFound,
      );
      expect(await codeOf(client.get({ workflowId, key: "absent" }))).toBe(Code.NotFound);
      expect(await codeOf(client.set({ workflowId, key: "", value: num(1) }))).toBe(
        Code.InvalidArgument,
      );
      expect(await codeOf(client.set({ workflowId, key: "k".repeat(2000), value: num(1) }))).toBe(
        Code.InvalidArgument,
      );
      expect(await codeOf(client.set({ workflowId, key: "k" }))).toBe(Code.InvalidArgument);
      expect(await codeOf(client.set({ workflowId, key: "k", value: num(Number.NaN) }))).toBe(
        Code.InvalidArgument,
      );
      expect(await codeOf(client.set({ workflowId, key: "k", value: create(ValueSchema) }))).toBe(
        Code.InvalidArgument,
      );
      expect(await codeOf(client.increment({ workflowId, key: "text" }))).toBe(
        Code.FailedPrecondition,
      );
      await client.set({ workflowId, key: "n", value: num(1) });
      expect(await codeOf(client.appendToList({ workflowId, key: "n", values: [num(1)] }))).toBe(
        Code.FailedPrecondition,
      );
      expect(await codeOf(client.set({ workflowId: "bad id!", key: "k", value: num(1) }))).toBe(
        Code.InvalidArgument,
      );
      const err = await client
        .increment({ workflowId, key: "text" })
        .catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).rawMessage).toBe(
        'key "text" holds a string; Increment needs a number (or an absent key); Set a number first or use another key',
      );
      // None of the failed calls changed anything.
      const all = await client.getAll({ workflowId });
      expect(all.values).toEqual({ text: "hello", n: 1 });
      expect(all.version).toBe(2n);
    });

    it("refuses a write that would pass the workflow limit with RESOURCE_EXHAUSTED and changes nothing", async () => {
      const workflowId = await newWorkflow({ maxWorkflowBytes: 4096n });
      await client.putAll({ workflowId, values: { doc: "x".repeat(3000), n: 1 } });
      const before = await client.getAll({ workflowId });
      const err = await client
        .putAll({ workflowId, values: { more: "y".repeat(800), doc: "x".repeat(3500) } })
        .catch((e: unknown) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
      expect((err as ConnectError).rawMessage).toMatch(/over its limit of 4096 bytes/);
      expect(await client.getAll({ workflowId })).toEqual(before);
      expect((await client.describeWorkflowState({ workflowId })).info?.usedBytes).toBe(
        BigInt(3 + 3002 + 1 + 1),
      );
    });

    it("refuses a value nesting deeper than 32 levels with INVALID_ARGUMENT and stores nothing; 32 levels round-trip", async () => {
      const workflowId = await newWorkflow();
      // 33 levels as a google.protobuf.Value (67 messages) still decodes; inside a response
      // it would come close to the 100 that gRPC's C++, Java and Python clients decode.
      const deep = "[".repeat(33) + "1" + "]".repeat(33);
      const fits = "[".repeat(32) + "1" + "]".repeat(32);
      const refusals = [
        client.set({ workflowId, key: "k", value: fromJson(ValueSchema, JSON.parse(deep)) }),
        client.putAll({ workflowId, values: { k: JSON.parse(deep) as JsonValue } }),
        client.appendToList({
          workflowId,
          key: "k",
          values: [num(1), fromJson(ValueSchema, JSON.parse(deep))],
        }),
      ];
      const fields = ["value", "values.k", "values[1]"];
      for (const [i, call] of refusals.entries()) {
        const err = ConnectError.from(await call.catch((e: unknown) => e));
        expect(err.code).toBe(Code.InvalidArgument);
        expect(err.rawMessage).toBe(
          `${fields[i]} nests deeper than 32 levels of arrays and objects; send a flatter value (or the deep part as a JSON string)`,
        );
      }
      expect((await client.getAll({ workflowId })).values).toEqual({});
      await client.set({ workflowId, key: "k", value: fromJson(ValueSchema, JSON.parse(fits)) });
      expect(toJson(ValueSchema, (await client.get({ workflowId, key: "k" })).value!)).toEqual(
        JSON.parse(fits),
      );
      // A list of values at the limit is one level deeper, and stays readable.
      await client.appendToList({
        workflowId,
        key: "list",
        values: [fromJson(ValueSchema, JSON.parse(fits))],
      });
      expect(toJson(ValueSchema, (await client.get({ workflowId, key: "list" })).value!)).toEqual([
        JSON.parse(fits),
      ]);
    });

    it("streams changes with Watch: a snapshot first, then each write in order", async () => {
      const workflowId = await newWorkflow();
      await client.set({ workflowId, key: "a", value: num(1) });
      const ac = new AbortController();
      const stream = client.watch({ workflowId, sendInitial: true }, { signal: ac.signal });
      const it = stream[Symbol.asyncIterator]();
      const first = await it.next();
      expect(first.value?.change).toMatchObject({
        operation: StateOperation.SNAPSHOT,
        version: 1n,
      });
      const other = connectClient(server.url);
      await other.increment({ workflowId, key: "a", delta: 2 });
      await other.appendToList({ workflowId, key: "log", values: [str("x")] });
      const second = (await it.next()).value?.change;
      const third = (await it.next()).value?.change;
      expect(second).toMatchObject({ operation: StateOperation.INCREMENT, version: 2n });
      expect(second?.changes[0]?.value?.kind).toEqual({ case: "numberValue", value: 3 });
      expect(third).toMatchObject({ operation: StateOperation.APPEND_TO_LIST, version: 3n });
      ac.abort();
    });

    it("ends open Watch streams cleanly when the server shuts down", async () => {
      const own = await startStateService({
        PORT: "0",
        HOST: "127.0.0.1",
        LOG_LEVEL: "silent",
        STATE_REDIS_PREFIX: prefix,
        ...backend.env(),
      });
      const c = connectClient(own.url);
      const workflowId = "wf-" + randomUUID();
      await c.createWorkflowState({ workflowId });
      const received: unknown[] = [];
      const watching = (async () => {
        for await (const m of c.watch({ workflowId, sendInitial: true })) received.push(m);
      })();
      await expect.poll(() => received.length).toBe(1);
      await own.close();
      await expect(watching).resolves.toBeUndefined();
    });
  });
}

describe("the State service on Redis and NATS", () => {
  let a: RunningService;
  let b: RunningService;
  const prefix = `test:${randomUUID()}:`;
  const env = () => ({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    STATE_REDIS_PREFIX: prefix,
    REDIS_URL: inject("redisUrl"),
    NATS_URL: inject("natsUrl"),
  });

  beforeAll(async () => {
    [a, b] = await Promise.all([startStateService(env()), startStateService(env())]);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
  });

  it("publishes every change on NATS as a StateChanged event", async () => {
    const workflowId = "wf-" + randomUUID();
    const nc = await natsConnect({ servers: inject("natsUrl") });
    const sub = nc.subscribe(`agentainer.state.workflow.changed.${workflowId}`);
    const events: ReturnType<typeof fromBinary<typeof StateChangedSchema>>[] = [];
    const reading = (async () => {
      for await (const m of sub) {
        events.push(fromBinary(StateChangedSchema, m.data));
        if (events.length === 3) break;
      }
    })();
    await nc.flush();
    const client = connectClient(a.url);
    await client.createWorkflowState({ workflowId });
    await client.set({ workflowId, key: "k", value: str("v") });
    await client.addToSet({ workflowId, key: "s", member: num(7) });
    await reading;
    await nc.close();
    expect(events.map((e) => [e.operation, e.version])).toEqual([
      [StateOperation.CREATE_WORKFLOW_STATE, 0n],
      [StateOperation.SET, 1n],
      [StateOperation.ADD_TO_SET, 2n],
    ]);
    expect(events[2]?.changes[0]?.value?.kind.case).toBe("listValue");
  });

  it("lets a Watch on one replica see writes made through another", async () => {
    const workflowId = "wf-" + randomUUID();
    const ca = connectClient(a.url);
    const cb = connectClient(b.url);
    await cb.createWorkflowState({ workflowId });
    const ac = new AbortController();
    const it = ca
      .watch({ workflowId, keys: ["x"], sendInitial: true }, { signal: ac.signal })
      [Symbol.asyncIterator]();
    expect((await it.next()).value?.change?.operation).toBe(StateOperation.SNAPSHOT);
    await cb.set({ workflowId, key: "ignored", value: num(1) });
    await cb.set({ workflowId, key: "x", value: str("from b") });
    const change = (await it.next()).value?.change;
    expect(change?.changes.map((c: { key: string }) => c.key)).toEqual(["x"]);
    expect(change?.version).toBe(2n);
    ac.abort();
  });

  it("keeps state in Redis under the workflow's hash tag", async () => {
    const workflowId = "wf-" + randomUUID();
    const client = connectClient(a.url);
    await client.createWorkflowState({ workflowId });
    await client.set({ workflowId, key: "k", value: num(1) });
    const redis = new Redis(inject("redisUrl"));
    const keys = await redis.keys(`${prefix}*${workflowId}*`);
    await redis.quit();
    expect(keys.sort()).toEqual([
      `${prefix}{wf:${workflowId}}:data`,
      `${prefix}{wf:${workflowId}}:meta`,
    ]);
  });
});

describe("a plain @grpc/grpc-js client loaded from the .proto files", () => {
  let server: RunningService;
  beforeAll(async () => {
    server = await startStateService({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent" });
  });
  afterAll(async () => {
    await server.close();
  });

  it("calls the State service and sees its status codes", async () => {
    // protobufjs defines the well-known types (google.protobuf.Value) with camelCase field names.
    const definition = await protoLoader.load("agentainer/state/v1/state.proto", {
      includeDirs: [fileURLToPath(new URL("../../proto", import.meta.url))],
      keepCase: true,
      longs: String,
      defaults: true,
      oneofs: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      agentainer: { state: { v1: { StateService: grpc.ServiceClientConstructor } } };
    };
    const Ctor = loaded.agentainer.state.v1.StateService;
    const stub = new Ctor(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const call = <T>(method: string, req: object) =>
      new Promise<T>((resolve, reject) => {
        (
          stub[method] as (r: object, cb: (e: grpc.ServiceError | null, res: T) => void) => void
        ).call(stub, req, (e, res) => (e ? reject(e) : resolve(res)));
      });
    const workflowId = "grpcjs-" + randomUUID();
    await call("CreateWorkflowState", { workflow_id: workflowId });
    await call("Set", { workflow_id: workflowId, key: "greeting", value: { stringValue: "hi" } });
    const inc = await call<{ value: number; version: string }>("Increment", {
      workflow_id: workflowId,
      key: "n",
      delta: 2.5,
    });
    expect(inc).toMatchObject({ value: 2.5, version: "2" });
    const got = await call<{ value: { stringValue: string } }>("Get", {
      workflow_id: workflowId,
      key: "greeting",
    });
    expect(got.value.stringValue).toBe("hi");
    const err = await call("Increment", { workflow_id: workflowId, key: "greeting" }).catch(
      (e: grpc.ServiceError) => e,
    );
    expect((err as grpc.ServiceError).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((err as grpc.ServiceError).details).toMatch(/holds a string/);
    stub.close();
  });
});
