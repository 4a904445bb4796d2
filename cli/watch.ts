import { toJson } from "@bufbuild/protobuf";
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

export interface WatchOptions {
  /** Print each event as a JSON line instead of progress. */
  json: boolean;
  out: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean };
}

/**
 * Follows a run to its end: in a terminal, one bar per step redrawn in place; otherwise (a pipe,
 * a file, CI) a plain line whenever a step's counts or status change. Reconnects with the last
 * sequence seen if the stream breaks. Returns the final status.
 */
export async function watchRun(
  clients: Clients,
  workflowId: string,
  opts: WatchOptions,
): Promise<{ status: WorkflowStatus; message: string }> {
  const steps = new Map<string, StepProgress>();
  let status = WorkflowStatus.UNSPECIFIED;
  let message = "";
  let drawn = 0;
  let after: bigint | undefined;
  const lastLine = new Map<string, string>();
  const tty = opts.out.isTTY === true && !opts.json;

  const draw = () => {
    if (tty) {
      const lines = [...steps.values()].map(
        (s) =>
          `${s.stepId.padEnd(16)} [${bar(s.counts)}] ${statusName.step(s.status).padEnd(19)} ${countsText(s.counts)}`,
      );
      lines.push(
        `workflow ${workflowId}: ${statusName.workflow(status)}${message ? ` (${message})` : ""}`,
      );
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

  for (let attempt = 0; ; attempt++) {
    try {
      const stream = clients.workflow.watchWorkflow({
        workflowId,
        excludeTaskEvents: !opts.json,
        ...(after === undefined ? {} : { afterSequence: after }),
      });
      for await (const r of stream) {
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
          if (!tty && !opts.json) {
            opts.out.write(
              `workflow ${workflowId}: ${statusName.workflow(status)}${message ? ` (${message})` : ""}\n`,
            );
          }
        } else if (p.case === "stepFinished") {
          const known = steps.get(p.value.stepId);
          if (known) {
            known.status = p.value.status;
            known.counts = p.value.counts as TaskCounts;
          }
        } else if (p.case === "workflowDeleted") {
          return { status, message: "deleted" };
        }
        draw();
        if (terminal.has(status)) return { status, message };
      }
      if (terminal.has(status)) return { status, message };
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
    }
  }
}
