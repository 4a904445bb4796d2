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
    expect(() => readWorkflowFile(unknown)).toThrow(`${unknown}:4: key "imag" is unknown`);
    const f = readWorkflowFile(
      write("p.yaml", "name: x\nsteps:\n  - id: a\n    image: b\n  - id: c\n    depends_on: [z]\n"),
    );
    expect(f.lineOf("steps[1].depends_on[0]")).toBe(6);
    expect(f.lineOf("steps[0].image")).toBe(4);
    expect(f.lineOf("steps[0].nothing")).toBe(3);
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
