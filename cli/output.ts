import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  JobStatus,
  StepStatus,
  WorkflowStatus,
  type TaskCounts,
} from "../gen/agentainer/workflow/v1/definition_pb.js";
import type { Workflow } from "../gen/agentainer/workflow/v1/workflow_pb.js";
import { responseValueToJson } from "../lib/json-value.js";

/** Human output: aligned tables; `--json` output: the messages in protobuf JSON. */

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

export function json<D extends DescMessage>(schema: D, message: MessageShape<D>): string {
  return JSON.stringify(toJson(schema, message, { alwaysEmitImplicit: false }), null, 2) + "\n";
}

const lower = (name: string | undefined) => (name ?? "unknown").toLowerCase();

export const statusName = {
  workflow: (s: WorkflowStatus) => lower(WorkflowStatus[s]),
  step: (s: StepStatus) => lower(StepStatus[s]),
  job: (s: JobStatus) => lower(JobStatus[s]),
};

export function time(t: Timestamp | undefined): string {
  if (t === undefined) return "-";
  return new Date(Number(t.seconds) * 1000 + t.nanos / 1e6).toISOString().replace(".000Z", "Z");
}

/** `12/50 done, 1 failed, 4 running` */
export function countsText(c: TaskCounts | undefined): string {
  if (c === undefined) return "-";
  const parts = [`${c.succeeded}/${c.total} done`];
  if (c.failed > 0n) parts.push(`${c.failed} failed`);
  if (c.running > 0n) parts.push(`${c.running} running`);
  if (c.retrying > 0n) parts.push(`${c.retrying} retrying`);
  if (c.skipped > 0n) parts.push(`${c.skipped} skipped`);
  if (c.cancelled > 0n) parts.push(`${c.cancelled} cancelled`);
  return parts.join(", ");
}

/** A progress bar of `width` cells: done (#), failed (x), running (>), the rest (.). */
export function bar(c: TaskCounts | undefined, width = 30): string {
  const total = Number(c?.total ?? 0n);
  if (c === undefined || total === 0) return ".".repeat(width);
  const cells = (n: bigint) => Math.round((Number(n) / total) * width);
  const done = cells(c.succeeded + c.skipped);
  const failed = cells(c.failed + c.cancelled);
  const running = cells(c.running + c.retrying);
  const rest = Math.max(0, width - done - failed - running);
  return ("#".repeat(done) + "x".repeat(failed) + ">".repeat(running) + ".".repeat(rest)).slice(
    0,
    width,
  );
}

/**
 * The `result: ...` line of a finished workflow, or one saying where to read a result too large
 * to assemble; undefined when it has neither.
 */
export function resultLine(w: Workflow): string | undefined {
  if (w.result !== undefined)
    return `result: ${JSON.stringify(responseValueToJson(w.result, "result"))}\n`;
  if (!w.resultOmitted) return undefined;
  const omitted = w.stepProgress.filter((s) => s.outputOmitted).map((s) => s.stepId);
  const step = omitted.length === 1 ? ` --step ${omitted[0]}` : "";
  return `result: larger than the service's output limit (WORKFLOW_MAX_OUTPUT_BYTES); read it with: agentainer workflow jobs ${w.id}${step} --results\n`;
}
