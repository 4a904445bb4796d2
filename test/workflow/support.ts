// Helpers of the workflow tests: building requests, waiting for a run's end, reading jobs.
import { create, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { valueToJson, jsonToValue } from "../../lib/json-value.js";
import { WorkflowStatus, type StepSchema } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import type {
  Job,
  Workflow,
  WorkflowService,
} from "../../gen/agentainer/workflow/v1/workflow_pb.js";

export type StepInit = MessageInitShape<typeof StepSchema>;

export const ms = (n: number) =>
  create(DurationSchema, { seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1e6 });

export const value = (json: JsonValue) => jsonToValue(json);

const terminal = new Set([
  WorkflowStatus.SUCCEEDED,
  WorkflowStatus.PARTIALLY_SUCCEEDED,
  WorkflowStatus.FAILED,
  WorkflowStatus.CANCELLED,
]);

/** Polls GetWorkflow until the run has ended; returns it (with step outputs). */
export async function waitForEnd(
  client: Client<typeof WorkflowService>,
  workflowId: string,
  timeoutMs = 60_000,
): Promise<Workflow> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { workflow } = await client.getWorkflow({ workflowId, includeStepOutputs: true });
    if (workflow !== undefined && terminal.has(workflow.status)) return workflow;
    if (Date.now() > deadline) {
      throw new Error(
        `workflow ${workflowId} still ${WorkflowStatus[workflow?.status ?? 0]} after ${timeoutMs} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every job of a workflow (all pages). */
export async function allJobs(
  client: Client<typeof WorkflowService>,
  workflowId: string,
  stepId = "",
): Promise<Job[]> {
  const jobs: Job[] = [];
  let pageToken = "";
  do {
    const r = await client.listJobs({
      workflowId,
      stepId,
      pageSize: 1000,
      pageToken,
      includeResults: true,
    });
    jobs.push(...r.jobs);
    pageToken = r.nextPageToken;
  } while (pageToken !== "");
  return jobs;
}

export function resultOf(w: Workflow): JsonValue {
  return w.result === undefined ? null : valueToJson(w.result, "result");
}

export function outputOf(w: Workflow, stepId: string): JsonValue {
  const s = w.stepProgress.find((p) => p.stepId === stepId);
  return s?.output === undefined ? null : valueToJson(s.output, "output");
}

export function stepOf(w: Workflow, stepId: string) {
  const s = w.stepProgress.find((p) => p.stepId === stepId);
  if (s === undefined) throw new Error(`no step ${stepId}`);
  return s;
}
