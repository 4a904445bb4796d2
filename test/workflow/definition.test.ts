import { create, fromJson, type MessageInitShape } from "@bufbuild/protobuf";
import { DurationSchema, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { AgentMode, KeepContainer } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { ExecutionMode, StepKind } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { CreateWorkflowRequestSchema } from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { definitionFromProto } from "../../services/workflow/definition.js";

type Req = MessageInitShape<typeof CreateWorkflowRequestSchema>;
const limits = { poolMaxSizeLimit: 256, maxMapItems: 1_000_000 };
const define = (req: Req) => definitionFromProto(create(CreateWorkflowRequestSchema, req), limits);
const step = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  image: "agentainer/busybox:local",
  command: ["sh", "-c", "true"],
  ...extra,
});
/** The field an invalid definition is rejected on. */
function fieldOf(req: Req): string {
  try {
    define(req);
  } catch (err) {
    return (err as { field?: string }).field ?? "(no field)";
  }
  return "(accepted)";
}

describe("workflow definitions", () => {
  it("resolves defaults for a valid DAG with every kind", () => {
    const def = define({
      name: "word count",
      input: fromJson(ValueSchema, { documents: ["a b", "c"] }),
      steps: [
        step("split"),
        step("map", {
          kind: StepKind.MAP,
          dependsOn: ["split"],
          mapItems: { source: { case: "fromInput", value: "/documents" } },
          execution: ExecutionMode.POOLED,
          agentCommand: ["sleep", "infinity"],
          when: 'steps.split.status == "succeeded"',
        }),
        step("reduce", { kind: StepKind.REDUCE, dependsOn: ["map"] }),
        step("fan", { kind: StepKind.PARALLEL, parallelism: 3, dependsOn: ["split"] }),
      ],
    });
    expect(def.graph.order).toEqual(["split", "map", "reduce", "fan"]);
    const map = def.steps[1]!;
    expect(map.pool).toMatchObject({ kind: "inline", agentMode: "exec", policy: { maxSize: 2 } });
    expect(map.mapItems).toEqual({ from: "input", pointer: ["documents"] });
    expect(def.steps[0]!.pool).toEqual({ kind: "cold" });
    expect(def.settings.maxParallel).toBe(10);
    expect(def.steps[3]!.parallelism).toBe(3);
  });

  it("rejects each invalid field with its path, and unknown enum values too", () => {
    const s = (extra: Record<string, unknown>, id = "a") => ({
      name: "w",
      steps: [step(id, extra)],
    });
    expect(fieldOf({ name: "" })).toBe("name");
    expect(fieldOf({ name: "w", steps: [step("a"), step("b", { dependsOn: ["lodd"] })] })).toBe(
      "steps[1].depends_on[0]",
    );
    expect(fieldOf(s({ kind: 9 }))).toBe("steps[0].kind");
    expect(fieldOf(s({ image: "" }))).toBe("steps[0].image");
    expect(fieldOf(s({ parallelism: 2 }))).toBe("steps[0].parallelism");
    expect(fieldOf(s({ maxWorkers: 4 }))).toBe("steps[0].max_workers");
    expect(fieldOf(s({ kind: StepKind.PARALLEL }))).toBe("steps[0].parallelism");
    expect(fieldOf(s({ kind: StepKind.MAP }))).toBe("steps[0].map_items");
    expect(fieldOf(s({ kind: StepKind.REDUCE }))).toBe("steps[0].depends_on");
    expect(fieldOf(s({ env: { AGENTAINER_X: "1" } }))).toBe("steps[0].env.AGENTAINER_X");
    expect(fieldOf(s({ command: ["", "x"] }))).toBe("steps[0].command[0]");
    expect(fieldOf(s({ retry: { maxAttempts: 500 } }))).toBe("steps[0].retry.max_attempts");
    expect(fieldOf(s({ timeout: create(DurationSchema, { seconds: 8n * 86400n }) }))).toBe(
      "steps[0].timeout",
    );
    expect(fieldOf(s({ when: "state.x ==" }))).toBe("steps[0].when");
    expect(fieldOf(s({ when: "item.x" }))).toBe("steps[0].when");
    expect(
      fieldOf({ name: "w", steps: [step("a"), step("b", { when: "steps.a.failed > 0" })] }),
    ).toBe("steps[1].when"); // a is not an ancestor of b
    expect(
      fieldOf(s({ pool: { case: "poolId", value: "p1" }, execution: ExecutionMode.COLD })),
    ).toBe("steps[0].pool_id");
    expect(fieldOf(s({ execution: ExecutionMode.POOLED, keep: KeepContainer.ALWAYS }))).toBe(
      "steps[0].keep",
    );
    expect(fieldOf(s({ agentMode: AgentMode.STREAM }))).toBe("steps[0].agent_mode");
    expect(
      fieldOf(
        s({
          execution: ExecutionMode.POOLED,
          pool: { case: "poolPolicy", value: { minSize: 5, maxSize: 2 } },
        }),
      ),
    ).toBe("steps[0].pool_policy.min_size");
    expect(fieldOf(s({ pool: { case: "poolId", value: "p1" }, limits: { cpuMillis: 100n } }))).toBe(
      "steps[0].limits",
    );
    expect(
      fieldOf({
        name: "w",
        input: fromJson(ValueSchema, { docs: "not a list" }),
        steps: [
          step("m", {
            kind: StepKind.MAP,
            mapItems: { source: { case: "fromInput", value: "/docs" } },
          }),
        ],
      }),
    ).toBe("steps[0].map_items.from_input");
    expect(
      fieldOf({
        name: "w",
        steps: [
          step("a"),
          step("m", {
            kind: StepKind.MAP,
            mapItems: { source: { case: "fromStep", value: { stepId: "a" } } },
          }),
        ],
      }),
    ).toBe("steps[1].map_items.from_step.step_id"); // a is not in depends_on
    expect(fieldOf({ name: "w", labels: { "Bad Key": "x" } })).toBe("labels.Bad Key");
    expect(fieldOf({ name: "w", config: { maxParallel: 20_000 } })).toBe("config.max_parallel");
  });

  it("lets a pooled step on an existing pool leave image and command to the pool", () => {
    const def = define({
      name: "w",
      steps: [
        { id: "a", execution: ExecutionMode.POOLED, pool: { case: "poolId", value: "shared" } },
      ],
    });
    expect(def.steps[0]!.pool).toEqual({
      kind: "existing",
      poolId: "shared",
      agentMode: undefined,
    });
  });
});
