import { create, fromJson, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { AgentMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { CreateMapReduceRequestSchema } from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { mapReduceWorkflow } from "../../services/workflow/mapreduce.js";

type Req = MessageInitShape<typeof CreateMapReduceRequestSchema>;
const limits = { poolMaxSizeLimit: 256, maxMapItems: 1_000_000 };
const base: Req = {
  name: "word count",
  mapperImage: "agentainer/node-agent:local",
  mapperCommand: ["node", "/agents/word-mapper.mjs"],
  reducerImage: "agentainer/node-agent:local",
  reducerCommand: ["node", "/agents/word-reducer.mjs"],
  items: { case: "itemsInputPath", value: "/documents" },
  input: fromJson(ValueSchema, { documents: ["a b", "b c", "c"] }),
};
const build = (over: Partial<Req> = {}) =>
  mapReduceWorkflow(create(CreateMapReduceRequestSchema, { ...base, ...over } as Req), limits);
function fieldOf(over: Partial<Req>): string {
  try {
    build(over);
  } catch (err) {
    return (err as { field?: string }).field ?? "(none)";
  }
  return "(accepted)";
}

describe("CreateMapReduce", () => {
  it("builds a pooled stream MAP step and a cold REDUCE step, started at once", () => {
    const { request, definition } = build({ maxParallel: 4 });
    expect(request.start).toBe(true);
    expect(definition.steps.map((s) => [s.id, s.kind])).toEqual([
      ["map", "map"],
      ["reduce", "reduce"],
    ]);
    const map = definition.steps[0]!;
    expect(map.pool).toMatchObject({ kind: "inline", agentMode: "stream", policy: { maxSize: 4 } });
    expect(map.command).toEqual(["node", "/agents/word-mapper.mjs"]);
    expect(definition.steps[1]!.pool).toEqual({ kind: "cold" });
    expect(definition.graph.sinks).toEqual(["reduce"]);
    expect(definition.settings.maxParallel).toBe(4);
  });

  it("sizes the pool from pool_size, else max_parallel, within the Pool service's limit", () => {
    expect(build({ poolSize: 3 }).definition.steps[0]!.pool).toMatchObject({
      policy: { maxSize: 3 },
    });
    expect(build({}).definition.steps[0]!.pool).toMatchObject({ policy: { maxSize: 10 } });
    expect(fieldOf({ poolSize: 300 })).toBe("pool_size");
  });

  it("names this request's own fields in errors", () => {
    expect(fieldOf({ mapperImage: "" })).toBe("mapper_image");
    expect(fieldOf({ reducerImage: "bad image" })).toBe("reducer_image");
    expect(fieldOf({ items: { case: undefined } })).toBe("items");
    expect(fieldOf({ input: undefined })).toBe("input");
    expect(fieldOf({ items: { case: "itemsInputPath", value: "documents" } })).toBe(
      "items_input_path",
    );
    expect(fieldOf({ env: { AGENTAINER_X: "1" } })).toBe("env.AGENTAINER_X");
    expect(fieldOf({ agentMode: AgentMode.EXEC, mapperCommand: [] })).toBe("mapper_command");
    expect(fieldOf({ maxParallel: 20_000 })).toBe("max_parallel");
    expect(fieldOf({ name: "" })).toBe("name");
  });
});
