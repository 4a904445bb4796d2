import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Backoff, RetryPolicySchema } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { noRetry, retryDelayMs, retryFromProto } from "../../services/workflow/retry.js";

const s = (seconds: number) => create(DurationSchema, { seconds: BigInt(seconds) });

describe("retry policies", () => {
  it("fills defaults: one attempt, exponential from 1 s up to 5 min, no jitter", () => {
    expect(retryFromProto(undefined, "steps[0].retry")).toEqual(noRetry);
    expect(retryFromProto(create(RetryPolicySchema, { maxAttempts: 3 }), "r")).toEqual({
      ...noRetry,
      maxAttempts: 3,
    });
  });

  it("computes each backoff, capped at max_delay, with jitter only ever shortening", () => {
    const exp = retryFromProto(
      create(RetryPolicySchema, { maxAttempts: 9, initialDelay: s(1), maxDelay: s(10) }),
      "r",
    );
    expect([1, 2, 3, 4, 5].map((n) => retryDelayMs(exp, n, () => 0))).toEqual([
      1000, 2000, 4000, 8000, 10000,
    ]);
    const lin = retryFromProto(
      create(RetryPolicySchema, { backoff: Backoff.LINEAR, initialDelay: s(2) }),
      "r",
    );
    expect([1, 2, 3].map((n) => retryDelayMs(lin, n, () => 0))).toEqual([2000, 4000, 6000]);
    const con = retryFromProto(
      create(RetryPolicySchema, { backoff: Backoff.CONSTANT, initialDelay: s(3) }),
      "r",
    );
    expect([1, 5].map((n) => retryDelayMs(con, n, () => 0))).toEqual([3000, 3000]);
    const jit = retryFromProto(
      create(RetryPolicySchema, { initialDelay: s(10), maxDelay: s(10), jitter: 0.5 }),
      "r",
    );
    expect(retryDelayMs(jit, 1, () => 0.999)).toBe(5005);
    expect(retryDelayMs(jit, 1, () => 0)).toBe(10000);
  });

  it("names the field of every invalid setting", () => {
    const bad = (init: Parameters<typeof create<typeof RetryPolicySchema>>[1]) => () =>
      retryFromProto(create(RetryPolicySchema, init), "steps[1].retry");
    expect(bad({ maxAttempts: 101 })).toThrow(/steps\[1\]\.retry\.max_attempts is 101/);
    expect(bad({ backoff: 9 as Backoff })).toThrow(/steps\[1\]\.retry\.backoff/);
    expect(bad({ initialDelay: s(10), maxDelay: s(5) })).toThrow(
      /max_delay .* shorter than initial_delay/,
    );
    expect(bad({ jitter: 1.5 })).toThrow(/jitter is 1.5/);
    expect(bad({ jitter: Number.NaN })).toThrow(/jitter/);
    expect(bad({ initialDelay: create(DurationSchema, { seconds: -1n }) })).toThrow(
      /initial_delay/,
    );
  });
});
