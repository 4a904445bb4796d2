import { describe, expect, it } from "vitest";
import { buildGraph, type StepLinks } from "../../services/workflow/graph.js";

const steps = (spec: Record<string, string[]>): StepLinks[] =>
  Object.entries(spec).map(([id, dependsOn]) => ({ id, dependsOn }));

describe("the step graph", () => {
  it("orders a diamond so every step follows its dependencies, ties by array order", () => {
    const g = buildGraph(
      steps({ sink: ["left", "right"], right: ["src"], left: ["src"], src: [] }),
    );
    expect(g.order).toEqual(["src", "right", "left", "sink"]);
    expect([...(g.ancestors.get("sink") ?? [])].sort()).toEqual(["left", "right", "src"]);
    expect(g.dependants.get("src")).toEqual(["right", "left"]);
    expect(g.sinks).toEqual(["sink"]);
  });

  it("names the cycle and the edge that closes it", () => {
    expect(() => buildGraph(steps({ a: ["b"], b: ["c"], c: ["a"] }))).toThrow(
      "steps[2].depends_on[0]: cycle a -> b -> c -> a",
    );
    expect(() => buildGraph(steps({ x: [], a: ["x", "b"], b: ["a"] }))).toThrow(
      /steps\[2\]\.depends_on\[0\]: cycle a -> b -> a/,
    );
  });

  it("rejects unknown, repeated and self dependencies, and bad or duplicate ids, by field path", () => {
    expect(() => buildGraph(steps({ a: [], b: ["a", "lodd"] }))).toThrow(
      'steps[1].depends_on[1]: unknown step "lodd"',
    );
    expect(() => buildGraph(steps({ a: [], b: ["a", "a"] }))).toThrow(
      /steps\[1\]\.depends_on\[1\].*twice/,
    );
    expect(() => buildGraph(steps({ a: ["a"] }))).toThrow(/steps\[0\]\.depends_on\[0\].*itself/);
    expect(() =>
      buildGraph([
        { id: "a", dependsOn: [] },
        { id: "a", dependsOn: [] },
      ]),
    ).toThrow(/steps\[1\]\.id "a" is already the id of steps\[0\]/);
    expect(() => buildGraph([{ id: "1st", dependsOn: [] }])).toThrow(
      /steps\[0\]\.id "1st" is invalid/,
    );
    expect(() => buildGraph([{ id: "", dependsOn: [] }])).toThrow(/steps\[0\]\.id is required/);
    expect(() => buildGraph([{ id: "x".repeat(64), dependsOn: [] }])).toThrow(/invalid/);
  });

  it("handles an empty workflow and independent branches", () => {
    expect(buildGraph([]).order).toEqual([]);
    const g = buildGraph(steps({ a: [], b: [], c: ["a"] }));
    expect(g.sinks).toEqual(["b", "c"]);
    expect(g.order).toEqual(["a", "b", "c"]);
  });
});
