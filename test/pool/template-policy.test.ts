import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { DurationSchema, type Duration } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { AgentMode, NetworkMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { AgentTemplateSchema, PoolPolicySchema } from "../../gen/agentainer/pool/v1/pool_pb.js";
import { InvalidArgumentError } from "../../lib/errors.js";
import {
  mergePolicy,
  policyFromProto,
  policyMaskPaths,
  policyToProto,
  type Policy,
} from "../../services/pool/policy.js";
import {
  checkPoolId,
  poolIdFor,
  templateFromProto,
  templateKey,
  templateToProto,
  type Template,
} from "../../services/pool/template.js";

const second = 1000;
const minute = 60 * second;
const hour = 60 * minute;
const day = 24 * hour;
const limit = 256;

/** A Duration of `ms` milliseconds (whole or fractional, non-negative). */
function dur(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return create(DurationSchema, {
    seconds: BigInt(seconds),
    nanos: Math.round((ms - seconds * 1000) * 1e6),
  });
}

const tpl = (init: MessageInitShape<typeof AgentTemplateSchema> = {}) =>
  create(AgentTemplateSchema, { image: "alpine:3.20", ...init });

/** A policy with max_size 4 unless given. */
const pol = (init: MessageInitShape<typeof PoolPolicySchema> = {}) =>
  create(PoolPolicySchema, { maxSize: 4, ...init });

const exec = (init: MessageInitShape<typeof PoolPolicySchema> = {}) =>
  policyFromProto(pol(init), "exec", limit);

/** Calls fn and returns the InvalidArgumentError it throws, checking its field. */
function invalid(fn: () => unknown, field: string): InvalidArgumentError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(InvalidArgumentError);
  const err = thrown as InvalidArgumentError;
  expect(err.kind).toBe("invalid_argument");
  expect(err.field).toBe(field);
  return err;
}

const defaultHealth = {
  intervalMs: 30 * second,
  timeoutMs: 5 * second,
  command: [],
  failureThreshold: 3,
  checkOnRelease: false,
};

const defaultPolicy: Policy = {
  minSize: 0,
  maxSize: 4,
  idleTimeoutMs: 5 * minute,
  maxAgentUses: 0,
  warmUp: false,
  health: defaultHealth,
  resetCommand: [],
  leaseTtlMs: 10 * minute,
  recycleOnFailure: false,
};

describe("templateFromProto", () => {
  it("resolves the defaults: mode exec, network none, zero limits kept as zero", () => {
    expect(templateFromProto(tpl())).toEqual({
      image: "alpine:3.20",
      command: [],
      args: [],
      env: {},
      workingDir: "",
      limits: { cpuMillis: 0, memoryBytes: 0, pids: 0 },
      network: "none",
      mode: "exec",
    } satisfies Template);
    expect(templateFromProto(tpl({ limits: {} })).limits).toEqual({
      cpuMillis: 0,
      memoryBytes: 0,
      pids: 0,
    });
  });

  it("keeps what is given", () => {
    const t = templateFromProto(
      tpl({
        command: ["sleep"],
        args: ["infinity"],
        env: { B: "2", A: "1" },
        workingDir: "/work",
        limits: { cpuMillis: 500n, memoryBytes: 64n * 1024n * 1024n, pids: 100n },
        network: NetworkMode.BRIDGE,
        mode: AgentMode.STREAM,
      }),
    );
    expect(t).toEqual({
      image: "alpine:3.20",
      command: ["sleep"],
      args: ["infinity"],
      env: { A: "1", B: "2" },
      workingDir: "/work",
      limits: { cpuMillis: 500, memoryBytes: 64 * 1024 * 1024, pids: 100 },
      network: "bridge",
      mode: "stream",
    });
    expect(Object.keys(t.env)).toEqual(["A", "B"]);
    expect(templateFromProto(tpl({ network: NetworkMode.HOST })).network).toBe("host");
    expect(templateFromProto(tpl({ network: NetworkMode.NONE })).network).toBe("none");
    expect(templateFromProto(tpl({ mode: AgentMode.EXEC })).mode).toBe("exec");
  });

  it("does not share arrays or env with the request", () => {
    const proto = tpl({ command: ["sleep"], args: ["1"], env: { A: "1" } });
    const t = templateFromProto(proto);
    proto.command.push("x");
    proto.args.push("x");
    proto.env.B = "2";
    expect(t.command).toEqual(["sleep"]);
    expect(t.args).toEqual(["1"]);
    expect(t.env).toEqual({ A: "1" });
  });

  it("requires the template and its image", () => {
    invalid(() => templateFromProto(undefined), "template");
    expect(invalid(() => templateFromProto(tpl({ image: "" })), "template.image").message).toBe(
      "template.image is required",
    );
    invalid(() => templateFromProto(tpl({ image: "   " })), "template.image");
    invalid(() => templateFromProto(tpl({ image: "alpine latest" })), "template.image");
  });

  it("checks command, args, env and working_dir with template. field names", () => {
    invalid(() => templateFromProto(tpl({ command: ["", "x"] })), "template.command[0]");
    invalid(() => templateFromProto(tpl({ command: ["sh", "a\u0000b"] })), "template.command[1]");
    invalid(() => templateFromProto(tpl({ args: ["ok", "a\u0000"] })), "template.args[1]");
    // An empty first arg is fine: only a command must name a program.
    expect(templateFromProto(tpl({ args: [""] })).args).toEqual([""]);
    invalid(() => templateFromProto(tpl({ env: { "1X": "v" } })), "template.env.1X");
    invalid(
      () => templateFromProto(tpl({ env: { AGENTAINER_TASK: "v" } })),
      "template.env.AGENTAINER_TASK",
    );
    invalid(() => templateFromProto(tpl({ env: { A: "a\u0000" } })), "template.env.A");
    invalid(() => templateFromProto(tpl({ workingDir: "work" })), "template.working_dir");
  });

  it("rejects negative or oversized limits, naming the field and the range", () => {
    for (const [name, field] of [
      ["cpuMillis", "cpu_millis"],
      ["memoryBytes", "memory_bytes"],
      ["pids", "pids"],
    ] as const) {
      const err = invalid(
        () => templateFromProto(tpl({ limits: { [name]: -1n } })),
        `template.limits.${field}`,
      );
      expect(err.message).toMatch(/is -1; use 0 \(the Executor's default\) to /);
      invalid(
        () => templateFromProto(tpl({ limits: { [name]: BigInt(Number.MAX_SAFE_INTEGER) + 1n } })),
        `template.limits.${field}`,
      );
      expect(
        templateFromProto(tpl({ limits: { [name]: BigInt(Number.MAX_SAFE_INTEGER) } })).limits[
          name
        ],
      ).toBe(Number.MAX_SAFE_INTEGER);
    }
  });

  it("rejects unknown enum values", () => {
    invalid(() => templateFromProto(tpl({ network: 99 as NetworkMode })), "template.network");
    invalid(() => templateFromProto(tpl({ mode: 7 as AgentMode })), "template.mode");
  });
});

describe("templateToProto", () => {
  it("round-trips, with the enums resolved", () => {
    const t = templateFromProto(
      tpl({
        command: ["sleep", "infinity"],
        env: { Z: "1", A: "2" },
        limits: { pids: 64n },
        network: NetworkMode.BRIDGE,
        mode: AgentMode.STREAM,
      }),
    );
    const proto = create(AgentTemplateSchema, templateToProto(t));
    expect(templateFromProto(proto)).toEqual(t);
    expect(proto.limits?.pids).toBe(64n);
    expect(proto.limits?.cpuMillis).toBe(0n);

    const defaults = create(AgentTemplateSchema, templateToProto(templateFromProto(tpl())));
    expect(defaults.network).toBe(NetworkMode.NONE);
    expect(defaults.mode).toBe(AgentMode.EXEC);
    expect(
      create(AgentTemplateSchema, templateToProto(templateFromProto(tpl({ network: 3 })))).network,
    ).toBe(NetworkMode.HOST);
  });
});

describe("templateKey and poolIdFor", () => {
  const base = {
    command: ["sleep", "infinity"],
    args: ["-v"],
    env: { A: "1", B: "2" },
    workingDir: "/w",
    limits: { cpuMillis: 500n, memoryBytes: 1n << 26n, pids: 64n },
    network: NetworkMode.BRIDGE,
    mode: AgentMode.EXEC,
  } satisfies MessageInitShape<typeof AgentTemplateSchema>;
  const key = (init: MessageInitShape<typeof AgentTemplateSchema>) =>
    templateKey(templateFromProto(tpl(init)));

  it("is a hex SHA-256", () => {
    expect(key(base)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("is equal for equal templates, whatever the env insertion order", () => {
    expect(key(base)).toBe(key({ ...base }));
    expect(key({ ...base, env: { B: "2", A: "1" } })).toBe(key(base));
  });

  it("is equal once defaults are resolved", () => {
    expect(key({})).toBe(key({ mode: AgentMode.EXEC, network: NetworkMode.NONE }));
    expect(key({})).toBe(key({ limits: { cpuMillis: 0n, memoryBytes: 0n, pids: 0n } }));
  });

  it("differs when any field changes", () => {
    const variants: Array<MessageInitShape<typeof AgentTemplateSchema>> = [
      { ...base, image: "alpine:3.21" },
      { ...base, command: ["sleep"] },
      { ...base, command: ["sleep", "infinity", "x"] },
      { ...base, command: [], args: ["sleep", "infinity", "-v"] },
      { ...base, args: [] },
      { ...base, args: ["-w"] },
      { ...base, env: { A: "1" } },
      { ...base, env: { A: "1", B: "3" } },
      { ...base, env: { A: "1", C: "2" } },
      { ...base, workingDir: "" },
      { ...base, workingDir: "/x" },
      { ...base, limits: { ...base.limits, cpuMillis: 501n } },
      { ...base, limits: { ...base.limits, memoryBytes: 0n } },
      { ...base, limits: { ...base.limits, pids: 65n } },
      { ...base, network: NetworkMode.NONE },
      { ...base, network: NetworkMode.HOST },
      { ...base, mode: AgentMode.STREAM },
    ];
    const keys = variants.map(key);
    expect(new Set([key(base), ...keys]).size).toBe(variants.length + 1);
  });

  it("poolIdFor is tpl- and the first 20 hex digits of the key, a valid pool id", () => {
    const t = templateFromProto(tpl(base));
    const id = poolIdFor(t);
    expect(id).toMatch(/^tpl-[0-9a-f]{20}$/);
    expect(id).toBe(`tpl-${templateKey(t).slice(0, 20)}`);
    expect(poolIdFor(templateFromProto(tpl({ ...base, env: { B: "2", A: "1" } })))).toBe(id);
    expect(poolIdFor(templateFromProto(tpl()))).not.toBe(id);
    expect(() => checkPoolId(id)).not.toThrow();
  });
});

describe("checkPoolId", () => {
  it("accepts 1 to 128 characters of [A-Za-z0-9_-]", () => {
    for (const id of ["a", "Z", "0", "_", "-", "my-pool_01", "x".repeat(128)]) {
      expect(() => checkPoolId(id)).not.toThrow();
    }
  });

  it("rejects anything else, naming the field", () => {
    expect(invalid(() => checkPoolId(""), "pool_id").message).toBe("pool_id is required");
    for (const id of ["x".repeat(129), "a.b", "a b", "a/b", "pool:1", "é", "a\n"]) {
      expect(invalid(() => checkPoolId(id), "pool_id").message).toMatch(
        /use 1 to 128 characters of A-Z, a-z, 0-9, _ and -/,
      );
    }
    invalid(() => checkPoolId("a.b", "request.pool_id"), "request.pool_id");
  });
});

describe("policyFromProto", () => {
  it("requires a policy", () => {
    invalid(() => policyFromProto(undefined, "exec", limit), "policy");
  });

  it("resolves every default", () => {
    expect(exec()).toEqual(defaultPolicy);
    // Zero durations are the same as unset ones; an empty health check takes every default.
    expect(
      exec({
        idleTimeout: dur(0),
        leaseTtl: dur(0),
        healthCheck: { interval: dur(0), timeout: dur(0), failureThreshold: 0 },
      }),
    ).toEqual(defaultPolicy);
    expect(policyFromProto(pol(), "stream", limit)).toEqual(defaultPolicy);
  });

  it("keeps what is given", () => {
    expect(
      exec({
        minSize: 2,
        maxSize: 8,
        idleTimeout: dur(90 * second),
        maxAgentUses: 10,
        warmUp: true,
        healthCheck: {
          interval: dur(10 * second),
          timeout: dur(250),
          command: ["true"],
          failureThreshold: 5,
          checkOnRelease: true,
        },
        resetCommand: ["rm", "-rf", "/tmp/work"],
        leaseTtl: dur(hour),
        recycleOnFailure: true,
      }),
    ).toEqual({
      minSize: 2,
      maxSize: 8,
      idleTimeoutMs: 90 * second,
      maxAgentUses: 10,
      warmUp: true,
      health: {
        intervalMs: 10 * second,
        timeoutMs: 250,
        command: ["true"],
        failureThreshold: 5,
        checkOnRelease: true,
      },
      resetCommand: ["rm", "-rf", "/tmp/work"],
      leaseTtlMs: hour,
      recycleOnFailure: true,
    } satisfies Policy);
  });

  it("max_size: required, 1 to the limit", () => {
    expect(invalid(() => exec({ maxSize: 0 }), "policy.max_size").message).toMatch(
      /policy\.max_size is required.*1 to 256/,
    );
    expect(invalid(() => exec({ maxSize: -1 }), "policy.max_size").message).toMatch(
      /policy\.max_size is -1; use 1 to 256/,
    );
    expect(invalid(() => exec({ maxSize: 257 }), "policy.max_size").message).toMatch(/1 to 256/);
    expect(exec({ maxSize: 1 }).maxSize).toBe(1);
    expect(exec({ maxSize: 256 }).maxSize).toBe(256);
    expect(policyFromProto(pol({ maxSize: 10 }), "exec", 10).maxSize).toBe(10);
    invalid(() => policyFromProto(pol({ maxSize: 11 }), "exec", 10), "policy.max_size");
  });

  it("min_size: 0 to max_size", () => {
    expect(exec({ minSize: 0 }).minSize).toBe(0);
    expect(exec({ minSize: 4 }).minSize).toBe(4);
    expect(invalid(() => exec({ minSize: -1 }), "policy.min_size").message).toMatch(
      /policy\.min_size is -1; use 0 to policy\.max_size \(4\)/,
    );
    const err = invalid(() => exec({ minSize: 5 }), "policy.min_size");
    expect(err.message).toContain("policy.min_size (5)");
    expect(err.message).toContain("policy.max_size (4)");
  });

  it("idle_timeout: default 5 minutes, 1 s to 7 days", () => {
    expect(exec({ idleTimeout: dur(second) }).idleTimeoutMs).toBe(second);
    expect(exec({ idleTimeout: dur(7 * day) }).idleTimeoutMs).toBe(7 * day);
    expect(invalid(() => exec({ idleTimeout: dur(999) }), "policy.idle_timeout").message).toMatch(
      /use 1 s to 7 days/,
    );
    invalid(() => exec({ idleTimeout: dur(7 * day + 1) }), "policy.idle_timeout");
    invalid(
      () => exec({ idleTimeout: create(DurationSchema, { seconds: -1n }) }),
      "policy.idle_timeout",
    );
  });

  it("max_agent_uses: 0 (no limit) to 1000000000", () => {
    expect(exec({ maxAgentUses: 0 }).maxAgentUses).toBe(0);
    expect(exec({ maxAgentUses: 1 }).maxAgentUses).toBe(1);
    expect(exec({ maxAgentUses: 1_000_000_000 }).maxAgentUses).toBe(1_000_000_000);
    expect(
      invalid(() => exec({ maxAgentUses: 1_000_000_001 }), "policy.max_agent_uses").message,
    ).toMatch(/1 to 1000000000, or 0 for no limit/);
    invalid(() => exec({ maxAgentUses: -1 }), "policy.max_agent_uses");
  });

  it("health_check.interval: default 30 s, 1 s to 1 h", () => {
    const interval = (ms: number) => exec({ healthCheck: { interval: dur(ms) } }).health;
    expect(interval(second).intervalMs).toBe(second);
    expect(interval(hour).intervalMs).toBe(hour);
    expect(invalid(() => interval(999), "policy.health_check.interval").message).toMatch(
      /use 1 s to 1 h/,
    );
    invalid(() => interval(hour + 1), "policy.health_check.interval");
    invalid(
      () => exec({ healthCheck: { interval: create(DurationSchema, { nanos: -1 }) } }),
      "policy.health_check.interval",
    );
  });

  it("health_check.timeout: default 5 s, 10 ms to interval", () => {
    const health = (intervalMs: number, timeoutMs: number) =>
      exec({ healthCheck: { interval: dur(intervalMs), timeout: dur(timeoutMs) } }).health;
    expect(health(0, 10).timeoutMs).toBe(10);
    expect(health(0, 30 * second).timeoutMs).toBe(30 * second);
    expect(health(2 * second, 2 * second).timeoutMs).toBe(2 * second);
    expect(invalid(() => health(0, 9), "policy.health_check.timeout").message).toMatch(
      /use 10 ms to policy\.health_check\.interval \(30 s\)/,
    );
    invalid(() => health(0, 30 * second + 1), "policy.health_check.timeout");
    invalid(() => health(2 * second, 2 * second + 1), "policy.health_check.timeout");
  });

  it("health_check.timeout: the default is capped to a shorter interval", () => {
    expect(exec({ healthCheck: { interval: dur(2 * second) } }).health).toMatchObject({
      intervalMs: 2 * second,
      timeoutMs: 2 * second,
    });
    expect(exec({ healthCheck: { interval: dur(5 * second) } }).health.timeoutMs).toBe(5 * second);
  });

  it("health_check.failure_threshold: default 3, 1 to 100", () => {
    const threshold = (n: number) => exec({ healthCheck: { failureThreshold: n } }).health;
    expect(threshold(1).failureThreshold).toBe(1);
    expect(threshold(100).failureThreshold).toBe(100);
    expect(invalid(() => threshold(101), "policy.health_check.failure_threshold").message).toMatch(
      /use 1 to 100/,
    );
    invalid(() => threshold(-1), "policy.health_check.failure_threshold");
  });

  it("health_check.command and check_on_release", () => {
    const h = exec({
      healthCheck: { command: ["test", "-f", "/ready"], checkOnRelease: true },
    }).health;
    expect(h).toEqual({
      ...defaultHealth,
      command: ["test", "-f", "/ready"],
      checkOnRelease: true,
    });
    invalid(() => exec({ healthCheck: { command: [""] } }), "policy.health_check.command[0]");
    // A health command is allowed on stream pools (run with docker exec).
    expect(
      policyFromProto(pol({ healthCheck: { command: ["true"] } }), "stream", limit).health.command,
    ).toEqual(["true"]);
  });

  it("reset_command: exec pools only, checked as an argv", () => {
    expect(exec({ resetCommand: ["sh", "-c", "rm -rf /tmp/*"] }).resetCommand).toEqual([
      "sh",
      "-c",
      "rm -rf /tmp/*",
    ]);
    const err = invalid(
      () => policyFromProto(pol({ resetCommand: ["true"] }), "stream", limit),
      "policy.reset_command",
    );
    expect(err.message).toMatch(/exec pools only/);
    expect(err.message).toMatch(/stream agents reset themselves/);
    expect(policyFromProto(pol({ resetCommand: [] }), "stream", limit).resetCommand).toEqual([]);
    invalid(() => exec({ resetCommand: ["", "x"] }), "policy.reset_command[0]");
    invalid(() => exec({ resetCommand: ["sh", "a\u0000"] }), "policy.reset_command[1]");
  });

  it("lease_ttl: default 10 minutes, 1 s to 24 h", () => {
    expect(exec({ leaseTtl: dur(second) }).leaseTtlMs).toBe(second);
    expect(exec({ leaseTtl: dur(day) }).leaseTtlMs).toBe(day);
    expect(invalid(() => exec({ leaseTtl: dur(999) }), "policy.lease_ttl").message).toMatch(
      /use 1 s to 1 day/,
    );
    invalid(() => exec({ leaseTtl: dur(day + 1) }), "policy.lease_ttl");
  });

  it("does not share arrays with the request", () => {
    const proto = pol({ resetCommand: ["a"], healthCheck: { command: ["b"] } });
    const p = policyFromProto(proto, "exec", limit);
    proto.resetCommand.push("x");
    proto.healthCheck?.command.push("x");
    expect(p.resetCommand).toEqual(["a"]);
    expect(p.health.command).toEqual(["b"]);
  });
});

describe("policyToProto", () => {
  it("returns the resolved values and round-trips", () => {
    const p = exec({
      minSize: 1,
      idleTimeout: dur(1500),
      healthCheck: { timeout: dur(10), command: ["true"] },
      resetCommand: ["x"],
      warmUp: true,
    });
    const proto = create(PoolPolicySchema, policyToProto(p));
    expect(proto.idleTimeout?.seconds).toBe(1n);
    expect(proto.idleTimeout?.nanos).toBe(500_000_000);
    expect(proto.leaseTtl?.seconds).toBe(600n);
    expect(proto.healthCheck?.interval?.seconds).toBe(30n);
    expect(proto.healthCheck?.timeout?.nanos).toBe(10_000_000);
    expect(proto.healthCheck?.failureThreshold).toBe(3);
    expect(policyFromProto(proto, "exec", limit)).toEqual(p);
    expect(policyFromProto(create(PoolPolicySchema, policyToProto(exec())), "exec", limit)).toEqual(
      defaultPolicy,
    );
  });
});

describe("mergePolicy", () => {
  const current = exec({
    minSize: 2,
    maxSize: 8,
    idleTimeout: dur(minute),
    maxAgentUses: 50,
    warmUp: true,
    healthCheck: {
      interval: dur(10 * second),
      timeout: dur(second),
      command: ["true"],
      failureThreshold: 7,
      checkOnRelease: true,
    },
    resetCommand: ["reset"],
    leaseTtl: dur(hour),
    recycleOnFailure: true,
  });
  const snapshot = structuredClone(current);
  const merge = (
    update: MessageInitShape<typeof PoolPolicySchema> | undefined,
    mask: string[],
    mode: "exec" | "stream" = "exec",
  ) =>
    mergePolicy(
      current,
      update === undefined ? undefined : create(PoolPolicySchema, update),
      mask,
      mode,
      limit,
    );

  it("requires a policy", () => {
    invalid(() => merge(undefined, []), "policy");
    invalid(() => merge(undefined, ["max_size"]), "policy");
  });

  it("with an empty mask replaces the whole policy, validated as new", () => {
    expect(merge({ maxSize: 3 }, [])).toEqual({ ...defaultPolicy, maxSize: 3 });
    invalid(() => merge({ minSize: 1 }, []), "policy.max_size");
    invalid(() => merge({ maxSize: 3, minSize: 4 }, []), "policy.min_size");
  });

  it("takes the listed fields from the update and keeps the others", () => {
    expect(merge({ maxSize: 16, minSize: 0 }, ["max_size"])).toEqual({ ...current, maxSize: 16 });
    expect(merge({ minSize: 0 }, ["min_size"])).toEqual({ ...current, minSize: 0 });
    expect(
      merge(
        {
          maxSize: 4,
          warmUp: false,
          recycleOnFailure: false,
          maxAgentUses: 0,
          resetCommand: [],
          leaseTtl: dur(5 * second),
          idleTimeout: dur(2 * minute),
        },
        [
          "max_size",
          "warm_up",
          "recycle_on_failure",
          "max_agent_uses",
          "reset_command",
          "lease_ttl",
          "idle_timeout",
        ],
      ),
    ).toEqual({
      ...current,
      maxSize: 4,
      warmUp: false,
      recycleOnFailure: false,
      maxAgentUses: 0,
      resetCommand: [],
      leaseTtlMs: 5 * second,
      idleTimeoutMs: 2 * minute,
    });
    expect(merge({ resetCommand: ["new", "reset"] }, ["reset_command"]).resetCommand).toEqual([
      "new",
      "reset",
    ]);
    // A repeated path is harmless.
    expect(merge({ maxSize: 9 }, ["max_size", "max_size"]).maxSize).toBe(9);
  });

  it("treats a listed field left unset as its default", () => {
    expect(merge({}, ["idle_timeout"]).idleTimeoutMs).toBe(5 * minute);
    expect(merge({}, ["lease_ttl"]).leaseTtlMs).toBe(10 * minute);
    expect(merge({}, ["health_check"]).health).toEqual(defaultHealth);
    expect(merge({}, ["max_agent_uses", "warm_up"])).toEqual({
      ...current,
      maxAgentUses: 0,
      warmUp: false,
    });
  });

  it("replaces health_check whole", () => {
    expect(merge({ healthCheck: { interval: dur(20 * second) } }, ["health_check"]).health).toEqual(
      { ...defaultHealth, intervalMs: 20 * second },
    );
  });

  it("validates the result as a whole", () => {
    const err = invalid(() => merge({ maxSize: 1 }, ["max_size"]), "policy.min_size");
    expect(err.message).toContain("policy.max_size (1)");
    invalid(() => merge({ minSize: 9 }, ["min_size"]), "policy.min_size");
    invalid(() => merge({ maxSize: 0 }, ["max_size"]), "policy.max_size");
    invalid(() => merge({ maxSize: 257 }, ["max_size"]), "policy.max_size");
    invalid(() => merge({ leaseTtl: dur(day + 1) }, ["lease_ttl"]), "policy.lease_ttl");
    invalid(
      () =>
        merge({ healthCheck: { interval: dur(second), timeout: dur(2 * second) } }, [
          "health_check",
        ]),
      "policy.health_check.timeout",
    );
    // Fields not in the mask are not read, valid or not.
    expect(merge({ maxSize: 0, minSize: -5 }, ["warm_up"]).maxSize).toBe(8);
  });

  it("refuses reset_command on a stream pool", () => {
    const stream = policyFromProto(pol({ minSize: 1 }), "stream", limit);
    const err = invalid(
      () =>
        mergePolicy(
          stream,
          create(PoolPolicySchema, { resetCommand: ["x"] }),
          ["reset_command"],
          "stream",
          limit,
        ),
      "policy.reset_command",
    );
    expect(err.message).toMatch(/stream agents reset themselves/);
    expect(
      mergePolicy(stream, create(PoolPolicySchema, { maxSize: 2 }), ["max_size"], "stream", limit),
    ).toEqual({ ...stream, maxSize: 2 });
  });

  it("rejects unknown and nested paths, naming them", () => {
    expect(invalid(() => merge({ maxSize: 2 }, ["size"]), "update_mask.paths[0]").message).toMatch(
      /"size" is not a field of PoolPolicy; use one of min_size, max_size/,
    );
    expect(
      invalid(() => merge({}, ["health_check.interval"]), "update_mask.paths[0]").message,
    ).toMatch(/"health_check\.interval" is a nested path; name the top-level field "health_check"/);
    expect(
      invalid(() => merge({ maxSize: 2 }, ["max_size", "maxSize"]), "update_mask.paths[1]").message,
    ).toContain('"maxSize"');
    invalid(() => merge({}, [""]), "update_mask.paths[0]");
    invalid(() => merge({}, ["policy.max_size"]), "update_mask.paths[0]");
    invalid(() => merge({}, ["__proto__"]), "update_mask.paths[0]");
    invalid(() => merge({}, ["toString"]), "update_mask.paths[0]");
  });

  it("never changes the current policy", () => {
    merge({ maxSize: 3, minSize: 0 }, ["max_size", "min_size"]);
    merge({}, ["health_check", "reset_command"]);
    expect(() => merge({ maxSize: 1 }, ["max_size"])).toThrow();
    expect(current).toEqual(snapshot);
  });

  it("accepts exactly the top-level PoolPolicy fields as paths", () => {
    expect([...policyMaskPaths].sort()).toEqual(PoolPolicySchema.fields.map((f) => f.name).sort());
  });
});
