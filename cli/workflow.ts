import { Command, Option } from "commander";
import { responseValueToJson } from "../lib/json-value.js";
import { WorkflowStatus } from "../gen/agentainer/workflow/v1/definition_pb.js";
import {
  DeleteWorkflowResponseSchema,
  ListJobsResponseSchema,
  ListWorkflowsResponseSchema,
  WorkflowSchema,
  type Job,
  type Workflow,
} from "../gen/agentainer/workflow/v1/workflow_pb.js";
import { create } from "@bufbuild/protobuf";
import { action, out, type Global } from "./action.js";
import { parseCount } from "./args.js";
import { mapReduceCommand } from "./mapreduce.js";
import { countsText, json, resultLine, statusName, table, time } from "./output.js";
import { exitCodeOf, watchRun } from "./watch.js";
import { createCommand } from "./workflow-create.js";
import { stateCommand } from "./workflow-state.js";

export function printWorkflow(w: Workflow, g: Pick<Global, "json">): void {
  if (g.json) {
    out(json(WorkflowSchema, w));
    return;
  }
  out(
    `${w.id}  ${w.name}  ${statusName.workflow(w.status)}${w.statusMessage ? ` (${w.statusMessage})` : ""}\n`,
  );
  if (w.stepProgress.length > 0) {
    out(
      table(
        ["STEP", "STATUS", "TASKS", "POOL", "MESSAGE"],
        w.stepProgress.map((s) => [
          s.stepId,
          statusName.step(s.status),
          countsText(s.counts),
          s.poolId || "-",
          s.statusMessage,
        ]),
      ),
    );
  }
  const result = resultLine(w);
  if (result !== undefined) out(result);
}

const statuses = [
  "pending",
  "running",
  "succeeded",
  "partially_succeeded",
  "failed",
  "cancelling",
  "cancelled",
];

/** `agentainer workflow ...`: the Workflow service's definitions and runs. */
export function workflowCommand(): Command {
  const wf = new Command("workflow").description("define, run and follow workflows");
  wf.addCommand(createCommand());

  const startCmd = wf.command("start").description("start a PENDING workflow").argument("<id>");
  startCmd.action(
    action(
      () => startCmd,
      async (c, g, id: string) => {
        printWorkflow((await c.workflow.startWorkflow({ workflowId: id })).workflow!, g);
      },
    ),
  );

  const getCmd = wf
    .command("get")
    .description("show a workflow: status, steps, result")
    .argument("<id>")
    .option("--outputs", "include each finished step's output");
  getCmd.action(
    action(
      () => getCmd,
      async (c, g, id: string, o: { outputs?: boolean }) => {
        const { workflow } = await c.workflow.getWorkflow({
          workflowId: id,
          includeStepOutputs: Boolean(o.outputs),
        });
        printWorkflow(workflow!, g);
      },
    ),
  );

  const listCmd = wf
    .command("list")
    .description("list workflows, newest first")
    .addOption(new Option("--status <status...>", "only these statuses").choices(statuses))
    .option("--limit <n>", "most to list (at most 1000)", "50");
  listCmd.action(
    action(
      () => listCmd,
      async (c, g, o: { status?: string[]; limit: string }) => {
        const r = await c.workflow.listWorkflows({
          statuses: (o.status ?? []).map(
            (s) => WorkflowStatus[s.toUpperCase() as keyof typeof WorkflowStatus],
          ),
          pageSize: parseCount(o.limit, "--limit", 1),
        });
        if (g.json) return void out(json(ListWorkflowsResponseSchema, r));
        out(
          table(
            ["ID", "NAME", "STATUS", "TASKS", "CREATED"],
            r.workflows.map((w) => [
              w.id,
              w.name,
              statusName.workflow(w.status),
              countsText(w.counts),
              time(w.createTime),
            ]),
          ),
        );
      },
    ),
  );

  const jobsCmd = wf
    .command("jobs")
    .description("list a workflow's tasks (jobs), every page")
    .argument("<id>")
    .option("--step <step_id>", "only this step")
    .option("--results", "include results")
    .option("--page-size <n>", "jobs fetched per call, 1 to 1000", "1000");
  jobsCmd.action(
    action(
      () => jobsCmd,
      async (c, g, id: string, o: { step?: string; results?: boolean; pageSize: string }) => {
        const pageSize = parseCount(o.pageSize, "--page-size", 1);
        let pageToken = "";
        const jobs: Job[] = [];
        do {
          const r = await c.workflow.listJobs({
            workflowId: id,
            stepId: o.step ?? "",
            includeResults: Boolean(o.results),
            pageSize,
            pageToken,
          });
          jobs.push(...r.jobs);
          pageToken = r.nextPageToken;
        } while (pageToken !== "");
        if (g.json)
          return void out(json(ListJobsResponseSchema, create(ListJobsResponseSchema, { jobs })));
        out(
          table(
            [
              "TASK",
              "STATUS",
              "ATTEMPT",
              "AGENT/CONTAINER",
              "EXIT",
              o.results ? "RESULT" : "ERROR",
            ],
            jobs.map((j) => [
              j.taskId,
              statusName.job(j.status),
              `${j.attempt}/${j.maxAttempts}`,
              j.agentId || j.containerName || "-",
              j.exitCode === undefined ? "-" : String(j.exitCode),
              o.results && j.result
                ? JSON.stringify(responseValueToJson(j.result, "result"))
                : j.error,
            ]),
          ),
        );
      },
    ),
  );

  const watchCmd = wf
    .command("watch")
    .description(
      "follow a workflow to its end (exit 0 succeeded, 4 partial, 5 failed, 6 cancelled)",
    )
    .argument("<id>");
  watchCmd.action(
    action(
      () => watchCmd,
      async (c, g, id: string) => {
        const end = await watchRun(c, id, { json: g.json, out: process.stdout });
        return exitCodeOf(end.status);
      },
    ),
  );

  const cancelCmd = wf
    .command("cancel")
    .description("cancel a workflow")
    .argument("<id>")
    .option("--reason <text>", "why", "");
  cancelCmd.action(
    action(
      () => cancelCmd,
      async (c, g, id: string, o: { reason: string }) => {
        printWorkflow(
          (await c.workflow.cancelWorkflow({ workflowId: id, reason: o.reason })).workflow!,
          g,
        );
      },
    ),
  );

  const deleteCmd = wf
    .command("delete")
    .description("delete a workflow with its jobs, events and state (prints nothing)")
    .argument("<id>")
    .option("--force", "cancel it first if it runs");
  deleteCmd.action(
    action(
      () => deleteCmd,
      async (c, g, id: string, o: { force?: boolean }) => {
        const r = await c.workflow.deleteWorkflow({ workflowId: id, force: Boolean(o.force) });
        if (g.json) out(json(DeleteWorkflowResponseSchema, r));
      },
    ),
  );

  wf.addCommand(stateCommand());
  wf.addCommand(mapReduceCommand());
  return wf;
}
