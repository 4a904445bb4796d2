import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  WorkflowStatus,
  type StepProgress,
  type TaskCounts,
} from "../gen/agentainer/workflow/v1/definition_pb.js";
import { WorkflowEventSchema } from "../gen/agentainer/workflow/v1/events_pb.js";
import type { Clients } from "./client.js";
import { bar, countsText, statusName } from "./output.js";

const terminal = new Set([
  WorkflowStatus.SUCCEEDED,
  WorkflowStatus.PARTIALLY_SUCCEEDED,
  WorkflowStatus.FAILED,
  WorkflowStatus.CANCELLED,
]);

/** Exit code of a run's end: 0 succeeded, 4 partially succeeded, 5 failed, 6 cancelled. */
export function exitCodeOf(status: WorkflowStatus): number {
  switch (status) {
    case WorkflowStatus.SUCCEEDED:
      return 0;
    case WorkflowStatus.PARTIALLY_SUCCEEDED:
      return 4;
    case WorkflowStatus.CANCELLED:
      return 6;
    default:
      return 5;
  }
}

export interface WatchOptions {
  /** Print each event as a JSON line instead of progress. */
  json: boolean;
  out: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean };
  /** Reconnects in a row, without an event between them, before giving up (5). */
  maxRetries?: number;
  /** Wait before the n-th reconnect in a row: n × this (500 ms). */
  retryDelayMs?: number;
}

/**
 * Follows a run to its end: in a terminal, one bar per step redrawn in place; otherwise (a pipe,
 * a file, CI) a plain line whenever a step's counts or status change, and the workflow's end.
 * When a stream that had delivered events breaks (UNAVAILABLE, or it ends before the run does),
 * it reconnects after the last sequence seen; any event received resets the count of retries.
 * Every other error, and a server that never answered, fails at once. Returns the final status.
 */
export async function watchRun(
  clients: Pick<Clients, "workflow">,
  workflowId: string,
  opts: WatchOptions,
): Promise<{ status: WorkflowStatus; message: string }> {
  const maxRetries = opts.maxRetries ?? 5;
  const retryDelayMs = opts.retryDelayMs ?? 500;
  const steps = new Map<string, StepProgress>();
  let status = WorkflowStatus.UNSPECIFIED;
  let message = "";
  let drawn = 0;
  let after: bigint | undefined;
  const lastLine = new Map<string, string>();
  let lastWorkflowLine = "";
  const tty = opts.out.isTTY === true && !opts.json;
  const workflowLine = () =>
    `workflow ${workflowId}: ${statusName.workflow(status)}${message ? ` (${message})` : ""}`;

  const draw = () => {
    if (tty) {
      const lines = [...steps.values()].map(
        (s) =>
          `${s.stepId.padEnd(16)} [${bar(s.counts)}] ${statusName.step(s.status).padEnd(19)} ${countsText(s.counts)}`,
      );
      lines.push(workflowLine());
      const up = drawn > 0 ? `\x1b[${drawn}A` : "";
      opts.out.write(up + lines.map((l) => `\x1b[2K${l}\n`).join(""));
      drawn = lines.length;
      return;
    }
    if (opts.json) return;
    for (const s of steps.values()) {
      const line = `step ${s.stepId}: ${statusName.step(s.status)}, ${countsText(s.counts)}`;
      if (lastLine.get(s.stepId) !== line) {
        lastLine.set(s.stepId, line);
        opts.out.write(line + "\n");
      }
    }
  };
  const printWorkflowLine = () => {
    const line = workflowLine();
    if (tty || opts.json || line === lastWorkflowLine) return;
    lastWorkflowLine = line;
    opts.out.write(line + "\n");
  };
  const end = () => {
    printWorkflowLine();
    return { status, message };
  };

  let reached = false;
  let failures = 0;
  for (;;) {
    let lastError: ConnectError;
    try {
      const stream = clients.workflow.watchWorkflow({
        workflowId,
        excludeTaskEvents: !opts.json,
        ...(after === undefined ? {} : { afterSequence: after }),
      });
      for await (const r of stream) {
        reached = true;
        failures = 0;
        const e = r.event;
        if (e === undefined) continue;
        after = e.sequence;
        if (opts.json) opts.out.write(JSON.stringify(toJson(WorkflowEventSchema, e)) + "\n");
        const p = e.payload;
        if (p.case === "snapshot") {
          status = p.value.status;
          message = p.value.statusMessage;
          for (const s of p.value.steps) steps.set(s.stepId, s);
        } else if (p.case === "progress") {
          for (const s of p.value.steps) steps.set(s.stepId, s);
        } else if (p.case === "workflowStatusChanged") {
          status = p.value.status;
          message = p.value.statusMessage;
          if (!terminal.has(status)) printWorkflowLine();
        } else if (p.case === "stepFinished") {
          const known = steps.get(p.value.stepId);
          if (known) {
            known.status = p.value.status;
            known.counts = p.value.counts as TaskCounts;
          }
        } else if (p.case === "workflowDeleted") {
          message = "deleted";
          return end();
        }
        draw();
        if (terminal.has(status)) return end();
      }
      if (terminal.has(status)) return end();
      lastError = new ConnectError("the watch stream ended before the workflow", Code.Unavailable);
    } catch (err) {
      const e = ConnectError.from(err);
      // Only a break in a stream that worked is worth waiting for; the rest fails now.
      if (!reached || e.code !== Code.Unavailable) throw err;
      lastError = e;
    }
    failures++;
    if (failures > maxRetries) throw lastError;
    await new Promise((r) => setTimeout(r, retryDelayMs * failures));
  }
}
