import { randomUUID } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AgentMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  AgentDisposition,
  LeaseAgentsRequestSchema,
  TaskOutcome,
  type LeaseAgentsResponse,
  type PoolPolicySchema,
  type PoolService,
} from "../../gen/agentainer/pool/v1/pool_pb.js";
import { Channel } from "../../lib/channel.js";
import { eventually } from "../support/await.js";
import { containers, ms, shellImage, startPoolOnDocker, type PoolOnDocker } from "./support.js";

type Call = MessageInitShape<typeof LeaseAgentsRequestSchema>["call"];
/** Each outcome's value by its case: acquired → AcquireResponse, error → LeaseError, ... */
type Outcomes = {
  [O in LeaseAgentsResponse["outcome"] as O["case"] & string]: NonNullable<O["value"]>;
};

/** One LeaseAgents stream as a caller holds it: send calls, read answers. */
function openStream(pools: Client<typeof PoolService>, signal?: AbortSignal) {
  const requests = new Channel<MessageInitShape<typeof LeaseAgentsRequestSchema>>();
  const responses = pools.leaseAgents(requests, { signal })[Symbol.asyncIterator]();
  const early = new Map<string, LeaseAgentsResponse>();
  const next = async (): Promise<LeaseAgentsResponse | undefined> => {
    const r = await responses.next();
    return r.done === true ? undefined : r.value;
  };
  return {
    requests,
    send: (callId: string, call?: Call) => requests.push({ callId, call }),
    /** The next answer in the order the server sends them; undefined once the stream ended. */
    next,
    /** The answer to `callId`, keeping those that come before it for later. */
    async answer(callId: string): Promise<LeaseAgentsResponse> {
      for (;;) {
        const kept = early.get(callId);
        if (kept !== undefined) {
          early.delete(callId);
          return kept;
        }
        const r = await next();
        if (r === undefined) throw new Error(`the stream ended before answering ${callId}`);
        early.set(r.callId, r);
      }
    },
    /** Half-close: no more calls. */
    close: () => requests.close(),
  };
}

/** The outcome's value when it is of `kind`; fails the test (showing the outcome) otherwise. */
function outcome<K extends keyof Outcomes>(r: LeaseAgentsResponse | undefined, kind: K) {
  expect(r?.outcome).toMatchObject({ case: kind });
  return r!.outcome.value as Outcomes[K];
}

/** Resolves to "pending" when `p` has not settled within `waitMs`. */
async function settledWithin<T>(p: Promise<T>, waitMs: number): Promise<T | "pending"> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<"pending">((r) => (timer = setTimeout(() => r("pending"), waitMs)));
  try {
    return await Promise.race([p, pending]);
  } finally {
    clearTimeout(timer);
  }
}

const acquire = (poolId: string, holder: string, extra: { waitMs?: number } = {}): Call => ({
  case: "acquire",
  value: {
    poolId,
    holder,
    ...(extra.waitMs === undefined ? {} : { waitTimeout: ms(extra.waitMs) }),
  },
});
const release = (leaseId: string, holder = ""): Call => ({
  case: "release",
  value: { leaseId, holder, outcome: TaskOutcome.SUCCEEDED },
});

describe("PoolService.LeaseAgents on the real Executor, Redis and Docker", () => {
  let services: PoolOnDocker;
  let pools: Client<typeof PoolService>;

  beforeAll(async () => {
    services = await startPoolOnDocker({
      REDIS_URL: inject("redisUrl"),
      POOL_REDIS_PREFIX: `test-lease-stream-${randomUUID().slice(0, 8)}:`,
    });
    ({ pools } = services);
  });

  afterAll(async () => {
    await services?.close();
  });

  const template = { image: shellImage, command: ["sleep", "3600"], mode: AgentMode.EXEC };
  async function newPool(policy: MessageInitShape<typeof PoolPolicySchema>): Promise<string> {
    const poolId = `ls-${randomUUID().slice(0, 8)}`;
    await pools.createPool({ poolId, template, policy: { maxSize: 1, ...policy } });
    return poolId;
  }
  const metrics = async (poolId: string) => (await pools.getPool({ poolId })).pool!.metrics!;

  describe("on a warm pool of one", () => {
    it("acquires and releases over one stream, hit after hit on the same container, and renews", async () => {
      const poolId = await newPool({ minSize: 1, warmUp: true });
      await eventually(async () => (await metrics(poolId)).idle === 1);
      const stream = openStream(pools);
      const agents = new Set<string>();
      for (let i = 0; i < 3; i++) {
        stream.send(`a${i}`, acquire(poolId, `h${i}`));
        const a = await stream.next();
        expect(a?.callId).toBe(`a${i}`);
        const granted = outcome(a, "acquired");
        expect(granted.hit).toBe(true);
        expect(granted.lease?.holder).toBe(`h${i}`);
        agents.add(granted.lease!.agentId);
        stream.send(`r${i}`, release(granted.lease!.leaseId, `h${i}`));
        const r = await stream.next();
        expect(r?.callId).toBe(`r${i}`);
        expect(outcome(r, "released")).toMatchObject({
          disposition: AgentDisposition.RETURNED,
          agentUses: BigInt(i + 1),
        });
      }
      expect(agents.size).toBe(1);
      expect(containers(poolId)).toHaveLength(1);

      stream.send("short", {
        case: "acquire",
        value: { poolId, holder: "renewer", leaseTtl: ms(5_000) },
      });
      const short = outcome(await stream.next(), "acquired").lease!;
      const before = Date.now();
      stream.send("renew", {
        case: "renew",
        value: { leaseId: short.leaseId, ttl: ms(120_000), holder: "renewer" },
      });
      const renewed = outcome(await stream.answer("renew"), "renewed").lease!;
      expect(renewed.leaseId).toBe(short.leaseId);
      expect(Number(renewed.expireTime!.seconds) * 1000).toBeGreaterThanOrEqual(before + 119_000);
      stream.send("r-short", release(short.leaseId));
      outcome(await stream.answer("r-short"), "released");
      stream.close();
      expect(await stream.next()).toBeUndefined();

      const m = await metrics(poolId);
      expect(m.hits).toBe(4n);
      expect(m.misses).toBe(0n);
      expect(m.containersCreated).toBe(1n);
      expect(m.reuseCount).toBe(3n);
      expect(m.leased).toBe(0);
      await pools.deletePool({ poolId });
    });
  });

  describe("when the pool is at max_size", () => {
    it("queues the stream's acquires with unary ones, first come first served, and a passed wait answers RESOURCE_EXHAUSTED on an open stream", async () => {
      const poolId = await newPool({ maxSize: 1 });
      const stream = openStream(pools);
      stream.send("first", acquire(poolId, "first"));
      const first = outcome(await stream.next(), "acquired").lease!;
      const waiting = async (n: number) =>
        eventually(async () => (await metrics(poolId)).waiting === n);

      stream.send("w1", acquire(poolId, "w1", { waitMs: 20_000 }));
      await waiting(1);
      const unary = pools.acquire({ poolId, holder: "u", waitTimeout: ms(20_000) });
      await waiting(2);
      stream.send("w2", acquire(poolId, "w2", { waitMs: 20_000 }));
      stream.send("w3", acquire(poolId, "w3", { waitMs: 20_000 }));
      stream.send("late", acquire(poolId, "late", { waitMs: 300 }));
      const late = await stream.next();
      expect(late?.callId).toBe("late");
      const refused = outcome(late, "error");
      expect(refused.code).toBe(Code.ResourceExhausted);
      expect(refused.message).toMatch(/no agent of pool .* became free within 300 ms/);
      expect((await metrics(poolId)).waiting).toBe(4);

      const order: string[] = [];
      stream.send("r-first", release(first.leaseId, "first"));
      outcome(await stream.answer("r-first"), "released");
      const w1 = outcome(await stream.answer("w1"), "acquired").lease!;
      order.push(w1.holder);
      stream.send("r-w1", release(w1.leaseId));
      const u = (await unary).lease!;
      order.push(u.holder);
      await pools.release({ leaseId: u.leaseId, outcome: TaskOutcome.SUCCEEDED });
      const w2 = outcome(await stream.answer("w2"), "acquired").lease!;
      order.push(w2.holder);
      stream.send("r-w2", release(w2.leaseId));
      const w3 = outcome(await stream.answer("w3"), "acquired").lease!;
      order.push(w3.holder);
      stream.send("r-w3", release(w3.leaseId));
      for (const id of ["r-w1", "r-w2", "r-w3"]) outcome(await stream.answer(id), "released");
      expect(order).toEqual(["w1", "u", "w2", "w3"]);

      stream.close();
      expect(await stream.next()).toBeUndefined();
      const m = await metrics(poolId);
      expect(m.acquireTimeouts).toBe(1n);
      expect(m.containersCreated).toBe(1n);
      expect(m).toMatchObject({ leased: 0, waiting: 0 });
      await pools.deletePool({ poolId });
    });
  });

  describe("when a call is refused", () => {
    it("answers it with the unary call's status and a message, and the stream stays open", async () => {
      const poolId = await newPool({ maxSize: 1 });
      const stream = openStream(pools);
      const refusal = async (callId: string, call: Call | undefined) => {
        stream.send(callId, call);
        const r = await stream.next();
        expect(r?.callId).toBe(callId);
        return outcome(r, "error");
      };

      expect(await refusal("nope", acquire("nope", "h"))).toEqual(
        expect.objectContaining({ code: Code.NotFound, message: expect.stringMatching(/"nope"/) }),
      );
      expect(await refusal("", acquire(poolId, "h"))).toEqual(
        expect.objectContaining({
          code: Code.InvalidArgument,
          message: expect.stringMatching(/call_id must be 1 to 128 characters/),
        }),
      );
      expect(await refusal("x".repeat(129), acquire(poolId, "h"))).toEqual(
        expect.objectContaining({
          code: Code.InvalidArgument,
          message: expect.stringMatching(/call_id must be 1 to 128 characters; got 129/),
        }),
      );
      expect(await refusal("no-call", undefined)).toEqual(
        expect.objectContaining({
          code: Code.InvalidArgument,
          message: expect.stringMatching(/call is required/),
        }),
      );
      expect(await refusal("no-holder", acquire(poolId, ""))).toEqual(
        expect.objectContaining({
          code: Code.InvalidArgument,
          message: expect.stringMatching(/holder must be 1 to 256 characters/),
        }),
      );
      expect(await refusal("unknown-lease", release("lease-unknown"))).toEqual(
        expect.objectContaining({
          code: Code.NotFound,
          message: expect.stringMatching(/no lease/),
        }),
      );

      // A call_id of 128 characters is fine; a second release of its lease is refused.
      const long = "y".repeat(128);
      stream.send(long, acquire(poolId, "me"));
      const lease = outcome(await stream.answer(long), "acquired").lease!;
      stream.send("release-1", release(lease.leaseId, "me"));
      outcome(await stream.answer("release-1"), "released");
      expect(await refusal("release-2", release(lease.leaseId, "me"))).toEqual(
        expect.objectContaining({
          code: Code.FailedPrecondition,
          message: expect.stringMatching(/cannot release lease .*: it was released/),
        }),
      );

      // A call_id still running is refused; once its call has answered it may be used again.
      stream.send("hold", acquire(poolId, "holder"));
      const held = outcome(await stream.answer("hold"), "acquired").lease!;
      stream.send("dup", acquire(poolId, "waiter", { waitMs: 20_000 }));
      await eventually(async () => (await metrics(poolId)).waiting === 1);
      expect(await refusal("dup", release(held.leaseId))).toEqual(
        expect.objectContaining({
          code: Code.InvalidArgument,
          message: expect.stringMatching(/call_id "dup" is already used by a call .* not answered/),
        }),
      );
      expect((await metrics(poolId)).leased).toBe(1); // the refused release did not run
      stream.send("free", release(held.leaseId));
      outcome(await stream.answer("free"), "released");
      const waiter = outcome(await stream.answer("dup"), "acquired").lease!;
      expect(waiter.holder).toBe("waiter");
      stream.send("dup", release(waiter.leaseId));
      outcome(await stream.answer("dup"), "released");

      stream.close();
      expect(await stream.next()).toBeUndefined();
      expect(await metrics(poolId)).toMatchObject({ leased: 0, waiting: 0 });
      await pools.deletePool({ poolId });
    });

    it("ends the stream with INVALID_ARGUMENT for a request carrying a field the server does not know", async () => {
      const poolId = await newPool({ maxSize: 1 });
      const stream = openStream(pools);
      stream.send("known", acquire(poolId, "h"));
      const lease = outcome(await stream.next(), "acquired").lease!;
      const newer = create(LeaseAgentsRequestSchema, {
        callId: "newer",
        call: release(lease.leaseId),
      });
      newer.$unknown = [{ no: 99, wireType: WireType.Varint, data: Uint8Array.of(1) }];
      stream.requests.push(newer);
      const failed = await stream.next().catch((e: unknown) => ConnectError.from(e));
      expect(failed).toBeInstanceOf(ConnectError);
      expect((failed as ConnectError).code).toBe(Code.InvalidArgument);
      expect((failed as ConnectError).rawMessage).toMatch(/unknown field number 99/);
      expect((await metrics(poolId)).leased).toBe(1); // the refused release did not run
      await pools.release({ leaseId: lease.leaseId });
      await pools.deletePool({ poolId });
    });
  });

  describe("when the caller ends its side", () => {
    it("keeps the stream open until every call has answered, then ends it", async () => {
      const poolId = await newPool({ maxSize: 1 });
      const { lease: held } = await pools.acquire({ poolId, holder: "unary" });
      const stream = openStream(pools);
      stream.send("w", acquire(poolId, "w", { waitMs: 20_000 }));
      await eventually(async () => (await metrics(poolId)).waiting === 1);
      stream.close();
      const answer = stream.next();
      expect(await settledWithin(answer, 500)).toBe("pending");
      await pools.release({ leaseId: held!.leaseId, outcome: TaskOutcome.SUCCEEDED });
      const w = outcome(await answer, "acquired").lease!;
      expect(w.holder).toBe("w");
      expect(await stream.next()).toBeUndefined();
      await pools.release({ leaseId: w.leaseId, outcome: TaskOutcome.SUCCEEDED });
      await pools.deletePool({ poolId });
    });
  });

  describe("when the caller abandons the stream", () => {
    it("takes its waiting acquire out of the queue and keeps its lease until released", async () => {
      const poolId = await newPool({ maxSize: 1 });
      const abandon = new AbortController();
      const stream = openStream(pools, abandon.signal);
      stream.send("held", acquire(poolId, "gone"));
      const held = outcome(await stream.next(), "acquired").lease!;
      stream.send("waiting", acquire(poolId, "gone-too", { waitMs: 60_000 }));
      await eventually(async () => (await metrics(poolId)).waiting === 1);

      abandon.abort();
      await eventually(async () => (await metrics(poolId)).waiting === 0);
      expect((await metrics(poolId)).leased).toBe(1); // abandoning releases nothing

      await pools.release({
        leaseId: held.leaseId,
        holder: "gone",
        outcome: TaskOutcome.SUCCEEDED,
      });
      await eventually(async () => (await metrics(poolId)).idle === 1);
      // The agent went back to the pool, not to the abandoned acquire: the next one is a hit.
      const next = await pools.acquire({ poolId, holder: "next", waitTimeout: ms(0) });
      expect(next.hit).toBe(true);
      expect(next.lease?.agentId).toBe(held.agentId);
      await pools.release({ leaseId: next.lease!.leaseId, outcome: TaskOutcome.SUCCEEDED });
      const m = await metrics(poolId);
      expect(m).toMatchObject({ leased: 0, waiting: 0, idle: 1, size: 1 });
      expect(m.containersCreated).toBe(1n);
      await pools.deletePool({ poolId });
    });
  });

  describe("when the server shuts down", () => {
    it("ends its open streams", async () => {
      const other = await startPoolOnDocker();
      let closed = false;
      try {
        const poolId = `ls-${randomUUID().slice(0, 8)}`;
        await other.pools.createPool({ poolId, template, policy: { maxSize: 1 } });
        const stream = openStream(other.pools);
        stream.send("held", acquire(poolId, "h"));
        outcome(await stream.next(), "acquired");
        stream.send("waiting", acquire(poolId, "w", { waitMs: 60_000 }));
        await eventually(
          async () => (await other.pools.getPool({ poolId })).pool?.metrics?.waiting === 1,
        );
        const closing = other.close();
        closed = true;
        expect(await stream.next()).toBeUndefined();
        await closing;
      } finally {
        if (!closed) await other.close();
      }
    });
  });
});
