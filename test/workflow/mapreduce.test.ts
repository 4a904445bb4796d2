import { create, fromJson, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { AgentMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  CreateMapReduceRequestSchema,
  type CreateMapReduceRequest,
} from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { mapReduceWorkflow } from "../../services/workflow/mapreduce.js";

/** The init-object form of the request (not a message instance), so that overrides spread. */
type Req = Exclude<MessageInitShape<typeof CreateMapReduceRequestSchema>, CreateMapReduceRequest>;
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
const splitCommand = ["sh", "-c", `echo '["a b","c"]' > "$AGENTAINER_RESULT_FILE"`];
const splitter: Partial<Req> = {
  items: { case: "splitterImage", value: "agentainer/busybox:local" },
  splitterCommand: splitCommand,
  input: undefined,
};
const value = (json: JsonValue) => fromJson(ValueSchema, json);
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
    expect(map.pool).toMatchObject({ kind: "inline", agentMode: "stream" });
    expect(map.command).toEqual(["node", "/agents/word-mapper.mjs"]);
    expect(map.dependsOn).toEqual([]);
    expect(map.mapItems).toEqual({ from: "input", pointer: ["documents"] });
    expect(definition.steps[1]!.pool).toEqual({ kind: "cold" });
    expect(definition.graph.sinks).toEqual(["reduce"]);
    expect(definition.settings.maxParallel).toBe(4);
  });

  describe("the mapper pool", () => {
    const policyOf = (over: Partial<Req>) => {
      const pool = build(over).definition.steps[0]!.pool;
      if (pool.kind !== "inline") throw new Error(`pool is ${pool.kind}`);
      return pool.policy;
    };

    it("is warmed to pool_size as the workflow starts and kept at that size", () => {
      expect(policyOf({ poolSize: 3, maxParallel: 8 })).toMatchObject({
        minSize: 3,
        maxSize: 3,
        warmUp: true,
      });
    });

    it("caps the map step at max_parallel tasks", () => {
      const { definition } = build({ poolSize: 3, maxParallel: 8 });
      expect(definition.steps[0]!.maxWorkers).toBe(8);
      expect(definition.settings.maxParallel).toBe(8);
      expect(build({}).definition.steps[0]!.maxWorkers).toBe(10);
    });

    it("defaults to one agent per task that can run at once: max_parallel, or fewer known items", () => {
      const many = Array.from({ length: 50 }, (_, i) => value(`doc ${i}`));
      const inline = (items: ReturnType<typeof value>[]) =>
        ({ case: "inlineItems", value: { items } }) as const;
      // 3 documents in the input: 3 agents, not max_parallel's 10.
      expect(policyOf({})).toMatchObject({ minSize: 3, maxSize: 3 });
      expect(policyOf({ items: inline(many), maxParallel: 6 })).toMatchObject({ maxSize: 6 });
      expect(policyOf({ items: inline(many.slice(0, 2)), maxParallel: 6 })).toMatchObject({
        maxSize: 2,
      });
      expect(policyOf({ items: inline([]) })).toMatchObject({ minSize: 1, maxSize: 1 });
      // Items read at run time (state, a splitter): max_parallel.
      expect(policyOf({ items: { case: "itemsStateKey", value: "docs" } })).toMatchObject({
        maxSize: 10,
      });
      expect(policyOf({ ...splitter, maxParallel: 7 })).toMatchObject({ minSize: 7, maxSize: 7 });
    });

    it("keeps an explicit pool_size, within the Pool service's limit", () => {
      expect(policyOf({ poolSize: 20, maxParallel: 4 })).toMatchObject({ maxSize: 20 });
      expect(policyOf({ poolSize: 256 })).toMatchObject({ maxSize: 256 });
      // The default is capped at the limit rather than refused.
      const capped = mapReduceWorkflow(
        create(CreateMapReduceRequestSchema, {
          ...base,
          maxParallel: 500,
          items: { case: "itemsStateKey", value: "docs" },
        }),
        { ...limits, poolMaxSizeLimit: 4 },
      ).definition.steps[0]!.pool;
      expect(capped).toMatchObject({ policy: { minSize: 4, maxSize: 4 } });
      expect(fieldOf({ poolSize: 300 })).toBe("pool_size");
    });
  });

  describe("with a splitter", () => {
    it("runs a cold TASK step `split` first and maps over its output", () => {
      const { request, definition } = build(splitter);
      expect(definition.steps.map((s) => [s.id, s.kind, s.dependsOn])).toEqual([
        ["map", "map", ["split"]],
        ["reduce", "reduce", ["map"]],
        ["split", "task", []],
      ]);
      const split = definition.steps[2]!;
      expect(split.pool).toEqual({ kind: "cold" });
      expect(split.image).toBe("agentainer/busybox:local");
      expect(split.command).toEqual(splitCommand);
      expect(definition.steps[0]!.mapItems).toEqual({ from: "step", stepId: "split", pointer: [] });
      expect(definition.graph.sinks).toEqual(["reduce"]);
      // The built request is what GetWorkflow shows.
      expect(request.steps.map((s) => s.id)).toEqual(["map", "reduce", "split"]);
    });

    it("reads the items at splitter_items_path in the splitter's output", () => {
      const { definition } = build({ ...splitter, splitterItemsPath: "/work/items" });
      expect(definition.steps[0]!.mapItems).toEqual({
        from: "step",
        stepId: "split",
        pointer: ["work", "items"],
      });
    });

    it("runs the image's own ENTRYPOINT and CMD when splitter_command is empty", () => {
      const { definition } = build({ ...splitter, splitterCommand: [] });
      expect(definition.steps[2]!.command).toEqual([]);
      expect(definition.steps[2]!.args).toEqual([]);
    });

    it("gives the splitter the tasks' env, limits, timeout and retry, and the workflow's input", () => {
      const { definition } = build({
        ...splitter,
        input: fromJson(ValueSchema, { url: "file:///docs" }),
        env: { MODE: "fast" },
        limits: { memoryBytes: 64n * 1024n * 1024n },
        taskTimeout: { seconds: 30n },
        retry: { maxAttempts: 3 },
      });
      const split = definition.steps[2]!;
      expect(split.env).toEqual({ MODE: "fast" });
      expect(split.limits.memoryBytes).toBe(64 * 1024 * 1024);
      expect(split.timeoutMs).toBe(30_000);
      expect(split.retry.maxAttempts).toBe(3);
      expect(split.input).toBeUndefined();
      expect(definition.input).toEqual({ url: "file:///docs" });
    });
  });

  describe("default commands", () => {
    it("leaves every command empty when none is given, so each image runs as built", () => {
      const { definition } = build({
        ...splitter,
        splitterCommand: [],
        mapperCommand: [],
        reducerCommand: [],
      });
      for (const step of definition.steps) {
        expect([step.id, step.command, step.args]).toEqual([step.id, [], []]);
      }
      const map = definition.steps[0]!;
      expect(map.pool).toMatchObject({ kind: "inline", agentMode: "stream", agentCommand: [] });
    });

    it("runs mapper_command per item under EXEC, on agents running the image as built", () => {
      const { definition } = build({ agentMode: AgentMode.EXEC });
      const map = definition.steps[0]!;
      expect(map.pool).toMatchObject({ kind: "inline", agentMode: "exec", agentCommand: [] });
      expect(map.command).toEqual(["node", "/agents/word-mapper.mjs"]);
    });
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

  it("names the splitter's and the pool's fields in errors", () => {
    expect(fieldOf({ items: { case: "splitterImage", value: "" } })).toBe("splitter_image");
    expect(fieldOf({ items: { case: "splitterImage", value: "bad image" } })).toBe(
      "splitter_image",
    );
    expect(fieldOf({ ...splitter, splitterItemsPath: "items" })).toBe("splitter_items_path");
    expect(fieldOf({ ...splitter, splitterCommand: ["", "x"] })).toBe("splitter_command[0]");
    expect(fieldOf({ splitterCommand: ["sh"] })).toBe("splitter_command");
    expect(fieldOf({ splitterItemsPath: "/items" })).toBe("splitter_items_path");
    expect(fieldOf({ ...splitter, env: { AGENTAINER_X: "1" } })).toBe("env.AGENTAINER_X");
    expect(fieldOf({ ...splitter, taskTimeout: { seconds: 8n * 86_400n } })).toBe("task_timeout");
    expect(fieldOf({ ...splitter, retry: { maxAttempts: 1000 } })).toMatch(/^retry/);
  });

  it("says which field is wrong in the message too", () => {
    expect(() => build({ ...splitter, splitterItemsPath: "items" })).toThrow(
      /^splitter_items_path/,
    );
    expect(() => build({ splitterCommand: ["sh"] })).toThrow(
      "splitter_command applies only with splitter_image",
    );
    expect(() => build({ items: { case: undefined } })).toThrow(/splitter_image/);
  });
});
