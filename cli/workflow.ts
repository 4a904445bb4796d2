import { readFileSync } from "node:fs";
import { create, type JsonValue } from "@bufbuild/protobuf";
import { Command, Option } from "commander";
import { jsonToValue, valueToJson } from "../lib/json-value.js";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { AgentMode } from "../gen/agentainer/executor/v1/executor_pb.js";
import {
  WorkflowConfigSchema,
  WorkflowStatus,
} from "../gen/agentainer/workflow/v1/definition_pb.js";
import {
  ListJobsResponseSchema,
  ListWorkflowsResponseSchema,
  WorkflowSchema,
  type Workflow,
} from "../gen/agentainer/workflow/v1/workflow_pb.js";
import { CliError, connect, defaultServer, explain, type Clients } from "./client.js";
import { countsText, json, statusName, table, time } from "./output.js";
import { watchRun } from "./watch.js";
import { readWorkflowFile } from "./workflow-file.js";

interface Global {
  server: string;
  json: boolean;
}

/** Runs one command body with the global options, turning failures into one line and an exit code. */
function action<A extends unknown[]>(
  cmd: () => Command,
  body: (clients: Clients, g: Global, ...args: A) => Promise<number | void>,
) {
  return async (...args: A) => {
    const g = cmd().optsWithGlobals<Global & { debug?: boolean }>();
    const clients = connect(g.server);
    try {
      const code = await body(clients, g, ...args);
      if (typeof code === "number") process.exitCode = code;
    } catch (err) {
      if (g.debug) process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      const e = explain(err, clients.server);
      process.stderr.write(`agentainer: ${e.message}\n`);
      process.exitCode = e.exitCode;
    }
  };
}

const out = (s: string) => process.stdout.write(s);

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

function printWorkflow(w: Workflow, g: Global): void {
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
  if (w.result !== undefined) out(`result: ${JSON.stringify(valueToJson(w.result, "result"))}\n`);
}

function parseJsonArg(text: string, what: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    // A bare word is a string: `state set wf key hello`.
    if (/^[^{["\d-]/.test(text) && !["true", "false", "null"].includes(text)) return text;
    throw new CliError(`${what} is not JSON: ${text}`, 2);
  }
}

function readJsonFile(path: string): JsonValue {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as JsonValue;
  } catch (err) {
    throw new CliError(`cannot read ${path} as JSON: ${(err as Error).message}`, 2);
  }
}

export function workflowCommand(): Command {
  const wf = new Command("workflow").description("define, run and follow workflows");
  const sub = (name: string, description: string) => {
    const c = wf.command(name).description(description);
    return c;
  };

  const createCmd = sub(
    "create",
    "create a workflow from a YAML or JSON file (docs/workflow-files.md)",
  )
    .argument("<file>", "the workflow file")
    .option("--name <name>", "override the file's name")
    .option("--max-parallel <n>", "override config.max_parallel")
    .option("--timeout <seconds>", "override config.timeout (seconds)")
    .option("--id <workflow_id>", "the id to give it")
    .option("--start", "start it at once")
    .option("--watch", "start it and follow it to its end (exit code says how it ended)");
  createCmd.action(
    action(
      () => createCmd,
      async (
        c,
        g,
        file: string,
        o: {
          name?: string;
          maxParallel?: string;
          timeout?: string;
          id?: string;
          start?: boolean;
          watch?: boolean;
        },
      ) => {
        const f = readWorkflowFile(file);
        const req = f.request;
        if (o.name) req.name = o.name;
        if (o.id) req.workflowId = o.id;
        if (o.maxParallel || o.timeout) {
          const config = req.config ?? create(WorkflowConfigSchema);
          if (o.maxParallel) config.maxParallel = Number(o.maxParallel);
          if (o.timeout) config.timeout = create(DurationSchema, { seconds: BigInt(o.timeout) });
          req.config = config;
        }
        req.start = Boolean(o.start || o.watch);
        let w: Workflow;
        try {
          w = (await c.workflow.createWorkflow(req)).workflow!;
        } catch (err) {
          const e = explain(err, c.server);
          const field = /^invalid: ([\w.[\]]+):/.exec(e.message)?.[1];
          const line = field === undefined ? undefined : f.lineOf(field);
          throw new CliError(
            line === undefined ? `${file}: ${e.message}` : `${file}:${line}: ${e.message}`,
            2,
          );
        }
        if (!o.watch) {
          if (g.json) out(json(WorkflowSchema, w));
          else out(`${w.id}\n`);
          return;
        }
        const end = await watchRun(c, w.id, { json: g.json, out: process.stdout });
        return exitCodeOf(end.status);
      },
    ),
  );

  const startCmd = sub("start", "start a PENDING workflow").argument("<id>");
  startCmd.action(
    action(
      () => startCmd,
      async (c, g, id: string) => {
        printWorkflow((await c.workflow.startWorkflow({ workflowId: id })).workflow!, g);
      },
    ),
  );

  const getCmd = sub("get", "show a workflow: status, steps, result")
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

  const listCmd = sub("list", "list workflows, newest first")
    .addOption(
      new Option("--status <status...>", "only these statuses").choices([
        "pending",
        "running",
        "succeeded",
        "partially_succeeded",
        "failed",
        "cancelling",
        "cancelled",
      ]),
    )
    .option("--limit <n>", "most to list", "50");
  listCmd.action(
    action(
      () => listCmd,
      async (c, g, o: { status?: string[]; limit: string }) => {
        const statuses = (o.status ?? []).map(
          (s) => WorkflowStatus[s.toUpperCase() as keyof typeof WorkflowStatus],
        );
        const r = await c.workflow.listWorkflows({ statuses, pageSize: Number(o.limit) });
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

  const jobsCmd = sub("jobs", "list a workflow's tasks (jobs)")
    .argument("<id>")
    .option("--step <step_id>", "only this step")
    .option("--results", "include results");
  jobsCmd.action(
    action(
      () => jobsCmd,
      async (c, g, id: string, o: { step?: string; results?: boolean }) => {
        let pageToken = "";
        const rows: string[][] = [];
        do {
          const r = await c.workflow.listJobs({
            workflowId: id,
            stepId: o.step ?? "",
            includeResults: Boolean(o.results),
            pageSize: 1000,
            pageToken,
          });
          if (g.json) out(json(ListJobsResponseSchema, r));
          for (const j of r.jobs) {
            rows.push([
              j.taskId,
              statusName.job(j.status),
              `${j.attempt}/${j.maxAttempts}`,
              j.agentId || j.containerName || "-",
              j.exitCode === undefined ? "-" : String(j.exitCode),
              o.results && j.result ? JSON.stringify(valueToJson(j.result, "result")) : j.error,
            ]);
          }
          pageToken = r.nextPageToken;
        } while (pageToken !== "");
        if (!g.json)
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
              rows,
            ),
          );
      },
    ),
  );

  const watchCmd = sub(
    "watch",
    "follow a workflow to its end (exit 0 succeeded, 4 partial, 5 failed, 6 cancelled)",
  ).argument("<id>");
  watchCmd.action(
    action(
      () => watchCmd,
      async (c, g, id: string) => {
        const end = await watchRun(c, id, { json: g.json, out: process.stdout });
        return exitCodeOf(end.status);
      },
    ),
  );

  const cancelCmd = sub("cancel", "cancel a workflow")
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

  const deleteCmd = sub("delete", "delete a workflow with its jobs, events and state")
    .argument("<id>")
    .option("--force", "cancel it first if it runs");
  deleteCmd.action(
    action(
      () => deleteCmd,
      async (c, _g, id: string, o: { force?: boolean }) => {
        await c.workflow.deleteWorkflow({ workflowId: id, force: Boolean(o.force) });
      },
    ),
  );

  const state = wf.command("state").description("read and write a workflow's state");
  const stateGet = state
    .command("get")
    .description("print the state (or one key) as JSON")
    .argument("<id>")
    .argument("[key]");
  stateGet.action(
    action(
      () => stateGet,
      async (c, _g, id: string, key?: string) => {
        const r = await c.workflow.getWorkflowState({ workflowId: id, keys: key ? [key] : [] });
        const values = (r.values ?? {}) as Record<string, JsonValue>;
        if (key !== undefined && !(key in values))
          throw new CliError(`not found: key "${key}" is not set`, 1);
        out(JSON.stringify(key === undefined ? values : values[key], null, 2) + "\n");
      },
    ),
  );
  const stateSet = state
    .command("set")
    .description("set a key to a JSON value")
    .argument("<id>")
    .argument("<key>")
    .argument("<json>");
  stateSet.action(
    action(
      () => stateSet,
      async (c, _g, id: string, key: string, text: string) => {
        const r = await c.workflow.putWorkflowState({
          workflowId: id,
          values: { [key]: parseJsonArg(text, "the value") },
        });
        out(`version ${r.version}\n`);
      },
    ),
  );
  const stateIncr = state
    .command("incr")
    .description("add to a numeric key (atomic) and print the new value")
    .argument("<id>")
    .argument("<key>")
    .argument("[delta]", "default 1");
  stateIncr.action(
    action(
      () => stateIncr,
      async (c, _g, id: string, key: string, delta?: string) => {
        const { StateService } = await import("../gen/agentainer/state/v1/state_pb.js");
        const { createClient } = await import("@connectrpc/connect");
        const { createGrpcTransport } = await import("@connectrpc/connect-node");
        const st = createClient(StateService, createGrpcTransport({ baseUrl: c.server }));
        const r = await st.increment({
          workflowId: id,
          key,
          delta: delta === undefined ? 1 : Number(delta),
        });
        out(`${r.value}\n`);
      },
    ),
  );

  const mr = sub(
    "mapreduce",
    "run a MapReduce in one call and wait for it (--no-wait returns the id)",
  )
    .requiredOption("--name <name>", "workflow name")
    .requiredOption("--mapper <image>", "mapper image")
    .requiredOption("--reducer <image>", "reducer image")
    .option("--mapper-command <argv...>", "mapper main process (STREAM) or per-item command (EXEC)")
    .option("--reducer-command <argv...>", "reducer command")
    .option("--input <file>", "a JSON file: the input document (its items at --items-path)")
    .option("--items <file>", "a JSON file holding the items (a JSON array)")
    .option("--items-path <pointer>", "JSON pointer to the items inside --input", "")
    .option("--parallel <n>", "most mapper tasks at once", "10")
    .option("--pool-size <n>", "warm mapper agents (default: --parallel)")
    .option("--exec", "EXEC agents (one process per item) instead of STREAM")
    .option("--no-wait", "print the workflow id and return at once");
  mr.action(
    action(
      () => mr,
      async (
        c,
        g,
        o: {
          name: string;
          mapper: string;
          reducer: string;
          mapperCommand?: string[];
          reducerCommand?: string[];
          input?: string;
          items?: string;
          itemsPath: string;
          parallel: string;
          poolSize?: string;
          exec?: boolean;
          wait: boolean;
        },
      ) => {
        if (!o.items && !o.input) throw new CliError("give --items <file> or --input <file>", 2);
        const items = o.items ? readJsonFile(o.items) : undefined;
        if (items !== undefined && !Array.isArray(items))
          throw new CliError(`${o.items}: must hold a JSON array`, 2);
        const r = await c.workflow.createMapReduce({
          name: o.name,
          mapperImage: o.mapper,
          reducerImage: o.reducer,
          mapperCommand: o.mapperCommand ?? [],
          reducerCommand: o.reducerCommand ?? [],
          ...(o.input ? { input: jsonToValue(readJsonFile(o.input)) } : {}),
          items:
            items !== undefined
              ? { case: "inlineItems", value: { items: items.map((i) => jsonToValue(i)) } }
              : { case: "itemsInputPath", value: o.itemsPath },
          maxParallel: Number(o.parallel),
          poolSize: o.poolSize === undefined ? 0 : Number(o.poolSize),
          ...(o.exec ? { agentMode: AgentMode.EXEC } : {}),
        });
        const id = r.workflow!.id;
        if (!o.wait) return void out(`${id}\n`);
        if (!g.json) process.stderr.write(`workflow ${id}\n`);
        const end = await watchRun(c, id, { json: g.json, out: process.stdout });
        if (!g.json) {
          const { workflow } = await c.workflow.getWorkflow({ workflowId: id });
          if (workflow?.result !== undefined)
            out(`result: ${JSON.stringify(valueToJson(workflow.result, "result"))}\n`);
        }
        return exitCodeOf(end.status);
      },
    ),
  );
  return wf;
}

export const globalOptions = (program: Command): Command =>
  program
    .addOption(
      new Option(
        "-s, --server <url>",
        "the Agentainer server (agentainer up, or the Workflow service)",
      )
        .env("AGENTAINER_SERVER")
        .default(defaultServer),
    )
    .option("--json", "machine-readable output (protobuf JSON)", false)
    .option("--debug", "print stack traces", false);
