import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Command } from "commander";
import { StepSchema, WorkflowConfigSchema } from "../gen/agentainer/workflow/v1/definition_pb.js";
import {
  CreateWorkflowRequestSchema,
  WorkflowSchema,
  type CreateWorkflowRequest,
  type Workflow,
} from "../gen/agentainer/workflow/v1/workflow_pb.js";
import { action, out } from "./action.js";
import { parseCount, parseDuration } from "./args.js";
import { CliError, exit } from "./client.js";
import { json } from "./output.js";
import { exitCodeOf, watchRun } from "./watch.js";
import { readWorkflowFile, type WorkflowFile } from "./workflow-file.js";

interface CreateOptions {
  name?: string;
  maxParallel?: string;
  timeout?: string;
  step: string[];
  id?: string;
  start?: boolean;
  watch?: boolean;
}

const stepUsage = "ID=IMAGE [COMMAND ARGS...]";

/** `--step "load=agentainer/node-agent:local node /agents/flow-agent.mjs"` */
export function parseStep(spec: string): { id: string; image: string; command: string[] } {
  const m = /^\s*([^=\s]+)=(\S+)(?:\s+(.*))?$/.exec(spec);
  if (!m) throw new CliError(`--step: "${spec}" is not ${stepUsage}`, exit.badInput);
  const command = (m[3] ?? "").split(/\s+/).filter((a) => a !== "");
  return { id: m[1] as string, image: m[2] as string, command };
}

/** The request the options describe: a file's, with overrides, or one built from --step. */
function requestOf(
  file: string | undefined,
  o: CreateOptions,
): { req: CreateWorkflowRequest; source?: WorkflowFile } {
  let req: CreateWorkflowRequest;
  let source: WorkflowFile | undefined;
  if (file !== undefined) {
    if (o.step.length > 0) {
      throw new CliError(
        `--step builds a workflow without a file: put the steps in ${file} instead`,
        exit.badInput,
      );
    }
    source = readWorkflowFile(file);
    req = source.request;
  } else {
    if (!o.name) {
      throw new CliError(
        `give a workflow file (docs/workflow-files.md), or --name with a --step ${stepUsage} per step`,
        exit.badInput,
      );
    }
    const steps = o.step.map(parseStep);
    req = create(CreateWorkflowRequestSchema, {
      steps: steps.map((s, i) =>
        create(StepSchema, {
          id: s.id,
          image: s.image,
          command: s.command,
          dependsOn: i === 0 ? [] : [(steps[i - 1] as { id: string }).id],
        }),
      ),
    });
  }
  if (o.name) req.name = o.name;
  if (o.id) req.workflowId = o.id;
  if (o.maxParallel !== undefined || o.timeout !== undefined) {
    const config = req.config ?? create(WorkflowConfigSchema);
    if (o.maxParallel !== undefined)
      config.maxParallel = parseCount(o.maxParallel, "--max-parallel");
    if (o.timeout !== undefined) config.timeout = parseDuration(o.timeout, "--timeout");
    req.config = config;
  }
  req.start = Boolean(o.start || o.watch);
  return source === undefined ? { req } : { req, source };
}

/** An invalid definition from a file, at the file's line of the field the server names. */
function atLine(err: unknown, file: string, f: WorkflowFile): unknown {
  const e = ConnectError.from(err);
  if (e.code !== Code.InvalidArgument) return err;
  const field = /^([\w.[\]]+):/.exec(e.rawMessage)?.[1];
  const line = field === undefined ? undefined : f.lineOf(field);
  return new CliError(
    `${file}${line === undefined ? "" : `:${line}`}: invalid: ${e.rawMessage}`,
    exit.badInput,
  );
}

export function createCommand(): Command {
  const cmd = new Command("create")
    .description(
      "create a workflow from a YAML or JSON file (docs/workflow-files.md), or from flags",
    )
    .argument("[file]", "the workflow file; without one, --name and --step define the workflow")
    .option("--name <name>", "the workflow's name (overrides the file's)")
    .option("--max-parallel <n>", "config.max_parallel: most tasks at once (0: no limit)")
    .option("--timeout <duration>", "config.timeout of the whole run: 90s, 30m, 2h, 1h30m")
    .option(
      "--step <spec>",
      `without a file: a step ${stepUsage}; repeat it, the steps run one after another`,
      (spec: string, all: string[]) => [...all, spec],
      [] as string[],
    )
    .option("--id <workflow_id>", "the id to give it (default: generated)")
    .option("--start", "start it at once")
    .option("--watch", "start it and follow it to its end (exit code says how it ended)");
  cmd.action(
    action(
      () => cmd,
      async (c, g, file: string | undefined, o: CreateOptions) => {
        const { req, source } = requestOf(file, o);
        let w: Workflow;
        try {
          w = (await c.workflow.createWorkflow(req)).workflow!;
        } catch (err) {
          throw source === undefined || file === undefined ? err : atLine(err, file, source);
        }
        if (req.steps.length === 0) {
          process.stderr.write(
            `agentainer: note: ${w.id} has no steps, so a run of it succeeds at once; give --step ${stepUsage} (repeatable) or a workflow file\n`,
          );
        }
        if (!o.watch) {
          out(g.json ? json(WorkflowSchema, w) : `${w.id}\n`);
          return;
        }
        const end = await watchRun(c, w.id, { json: g.json, out: process.stdout });
        return exitCodeOf(end.status);
      },
    ),
  );
  return cmd;
}
