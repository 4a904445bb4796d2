import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AgentMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  Backoff,
  ExecutionMode,
  FailureMode,
  StepKind,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { CliError } from "../../cli/client.js";
import { readWorkflowFile } from "../../cli/workflow-file.js";

const dir = mkdtempSync(join(tmpdir(), "wf-file-"));
const write = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe("workflow files", () => {
  it("reads the examples with short enum names, durations and plain inline items", () => {
    const pipeline = readWorkflowFile("examples/pipeline.yaml").request;
    expect(pipeline.steps.map((s) => s.id)).toEqual(["extract", "transform", "load"]);
    expect(pipeline.config?.timeout?.seconds).toBe(300n);
    expect(pipeline.steps[1]!.retry).toMatchObject({
      maxAttempts: 3,
      backoff: Backoff.EXPONENTIAL,
      initialDelay: { seconds: 1n },
    });
    const pool = readWorkflowFile("examples/parallel-pool.yaml").request;
    const work = pool.steps[0]!;
    expect(work.kind).toBe(StepKind.MAP);
    expect(work.execution).toBe(ExecutionMode.POOLED);
    expect(work.agentMode).toBe(AgentMode.STREAM);
    expect(work.mapItems?.source.case).toBe("inline");
    expect(pool.config?.failure?.mode).toBe(FailureMode.CONTINUE_ON_PARTIAL);
    expect(pool.steps[1]!.kind).toBe(StepKind.REDUCE);
    const wc = readWorkflowFile("examples/word-count.yaml").request;
    expect(wc.steps[0]!.mapItems?.source).toEqual({ case: "fromInput", value: "/documents" });
  });

  it("reads JSON, and millisecond durations", () => {
    const path = write(
      "w.json",
      JSON.stringify({ name: "j", steps: [{ id: "a", image: "i", timeout: "1500ms" }] }),
    );
    const r = readWorkflowFile(path).request;
    expect(r.steps[0]!.timeout).toMatchObject({ seconds: 1n, nanos: 500_000_000 });
  });

  it("points at the line of a YAML error, an unknown key, or a field path", () => {
    const syntax = write("s.yaml", "name: x\nsteps:\n  - id: a\n   image: [\n");
    expect(() => readWorkflowFile(syntax)).toThrow(new RegExp(`^${syntax}:\\d+: `));
    const unknown = write("u.yaml", "name: x\nsteps:\n  - id: a\n    imag: b\n");
    expect(() => readWorkflowFile(unknown)).toThrow(
      `${unknown}:4: steps[0].imag: unknown field (did you mean "image"?)`,
    );
    const f = readWorkflowFile(
      write("p.yaml", "name: x\nsteps:\n  - id: a\n    image: b\n  - id: c\n    depends_on: [z]\n"),
    );
    expect(f.lineOf("steps[1].depends_on[0]")).toBe(6);
    expect(f.lineOf("steps[0].image")).toBe(4);
    expect(f.lineOf("steps[0].nothing")).toBe(3);
  });

  describe("when a value has the wrong type or an unknown enum name", () => {
    const problem = (name: string, text: string) => {
      try {
        readWorkflowFile(write(name, text));
      } catch (err) {
        expect(err).toBeInstanceOf(CliError);
        expect((err as CliError).exitCode).toBe(2);
        return (err as Error).message.replace(`${dir}/`, "");
      }
      throw new Error("no error");
    };
    const step = "name: x\nsteps:\n  - id: a\n    image: i\n";

    it("names the field path, the line and the short names it accepts", () => {
      expect(problem("k.yaml", "name: x\nsteps:\n  - id: a\n    kind: mapp\n")).toBe(
        'k.yaml:4: steps[0].kind: unknown value "mapp" (expected one of task, parallel, map, reduce)',
      );
      expect(problem("b.yaml", step + "    retry: { backoff: Linearr }\n")).toBe(
        'b.yaml:5: steps[0].retry.backoff: unknown value "Linearr" (expected one of exponential, linear, constant)',
      );
      expect(
        problem("f.yaml", "name: x\nconfig: { failure: { mode: nope } }\nsteps: []\n"),
      ).toMatch(/^f\.yaml:2: config\.failure\.mode: unknown value "nope" \(expected one of /);
    });

    it("says what type it expected", () => {
      expect(problem("m.yaml", 'name: x\nconfig:\n  max_parallel: "x"\nsteps: []\n')).toBe(
        'm.yaml:3: config.max_parallel: expected number (uint32), got "x"',
      );
      expect(problem("c.yaml", step + "    command: ls\n")).toBe(
        'c.yaml:5: steps[0].command: expected a list, got "ls"',
      );
      expect(problem("e.yaml", step + "    env: { A: 3 }\n")).toBe(
        "e.yaml:5: steps[0].env.A: expected string, got 3",
      );
      expect(problem("d.yaml", step + "    timeout: 5x\n")).toBe(
        'd.yaml:5: steps[0].timeout: "5x" is not a duration (use e.g. 500ms, 30s, 5m, 2h, 1d, or seconds)',
      );
      expect(problem("i.yaml", step + "    map_items: { inline: [1], from_input: /x }\n")).toBe(
        "i.yaml:5: steps[0].map_items.from_input: only one of inline, from_input may be set",
      );
      expect(
        problem("j.json", JSON.stringify({ name: "x", steps: [{ id: "a", kind: "mapp" }] })),
      ).toBe(
        'j.json: steps[0].kind: unknown value "mapp" (expected one of task, parallel, map, reduce)',
      );
    });
  });

  it("refuses what is not a workflow, with exit code 2", () => {
    const list = write("l.yaml", "- a\n- b\n");
    let caught: unknown;
    try {
      readWorkflowFile(list);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CliError);
    expect((caught as CliError).exitCode).toBe(2);
    expect(() => readWorkflowFile(join(dir, "absent.yaml"))).toThrow(/cannot read/);
  });
});
