import { readFileSync } from "node:fs";
import type { JsonValue } from "@bufbuild/protobuf";
import { Command, Option } from "commander";
import { jsonToValue } from "../lib/json-value.js";
import { AgentMode } from "../gen/agentainer/executor/v1/executor_pb.js";
import { WorkflowSchema } from "../gen/agentainer/workflow/v1/workflow_pb.js";
import { action, out } from "./action.js";
import { parseCount } from "./args.js";
import { CliError, exit } from "./client.js";
import { json, resultLine } from "./output.js";
import { exitCodeOf, watchRun } from "./watch.js";

interface MapReduceOptions {
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
  splitter?: string;
  splitterCommand?: string[];
  splitterItemsPath: string;
  env?: string[];
  wait: boolean;
}

/**
 * A command given as words (`--mapper-command node /agents/m.mjs`) or, for arguments that start
 * with `-` (`sh -c ...`), as one JSON array of strings (`--splitter-command '["sh","-c","..."]'`).
 */
function argvOf(words: readonly string[] | undefined, flag: string): string[] {
  if (words === undefined) return [];
  if (words.length !== 1 || !words[0]!.trimStart().startsWith("[")) return [...words];
  let parsed: unknown;
  try {
    parsed = JSON.parse(words[0]!);
  } catch (err) {
    throw new CliError(`${flag}: not a JSON array: ${(err as Error).message}`, exit.badInput);
  }
  if (!Array.isArray(parsed) || !parsed.every((w) => typeof w === "string"))
    throw new CliError(`${flag}: a JSON array of strings is expected`, exit.badInput);
  return parsed as string[];
}

/** `KEY=VALUE` pairs (repeatable --env) as a map; a pair without `=` or a key is bad input. */
function parseEnv(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new CliError(`--env ${pair}: expected KEY=VALUE`, exit.badInput);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

function readJsonFile(path: string): JsonValue {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, exit.badInput);
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new CliError(`${path}: not valid JSON: ${(err as Error).message}`, exit.badInput);
  }
}

/** `agentainer workflow mapreduce`: CreateMapReduce, then (by default) follows it to its end. */
export function mapReduceCommand(): Command {
  const mr = new Command("mapreduce")
    .description("run a MapReduce in one call and wait for it (--no-wait returns the id)")
    .requiredOption("--name <name>", "workflow name")
    .requiredOption("--mapper <image>", "mapper image")
    .requiredOption("--reducer <image>", "reducer image")
    .option("--mapper-command <argv...>", "mapper main process (STREAM) or per-item command (EXEC)")
    .option("--reducer-command <argv...>", "reducer command")
    .option("--input <file>", "a JSON file: the input document (its items at --items-path)")
    .option("--items <file>", "a JSON file holding the items (a JSON array)")
    .addOption(
      new Option("--items-path <pointer>", "JSON pointer to the items inside --input").default(
        "",
        "the whole input",
      ),
    )
    .option("--splitter <image>", "a splitter image: run first, its result holds the items")
    .option(
      "--splitter-command <argv...>",
      "the splitter's command (default: the image's own; a JSON array for arguments with -)",
    )
    .addOption(
      new Option(
        "--splitter-items-path <pointer>",
        "JSON pointer to the items inside the splitter's result",
      ).default("", "the whole result"),
    )
    .option("--env <KEY=VALUE...>", "environment of every task (repeatable)")
    .option("--parallel <n>", "most mapper tasks at once", "10")
    .option("--pool-size <n>", "warm mapper agents (default: one per item, at most --parallel)")
    .option("--exec", "EXEC agents (one process per item) instead of STREAM")
    .option("--no-wait", "print the workflow (its id, or JSON with --json) and return at once");
  mr.action(
    action(
      () => mr,
      async (c, g, o: MapReduceOptions) => {
        if (!o.items && !o.input && !o.splitter)
          throw new CliError(
            "give --items <file>, --input <file> or --splitter <image>",
            exit.badInput,
          );
        if (o.splitter && (o.items || o.itemsPath !== ""))
          throw new CliError(
            "--splitter makes the items: leave out --items and --items-path",
            exit.badInput,
          );
        if (!o.splitter && (o.splitterCommand || o.splitterItemsPath !== ""))
          throw new CliError(
            "--splitter-command and --splitter-items-path need --splitter",
            exit.badInput,
          );
        const maxParallel = parseCount(o.parallel, "--parallel", 1);
        const poolSize = o.poolSize === undefined ? 0 : parseCount(o.poolSize, "--pool-size", 1);
        const items = o.items ? readJsonFile(o.items) : undefined;
        if (items !== undefined && !Array.isArray(items))
          throw new CliError(`${o.items}: must hold a JSON array`, exit.badInput);
        const r = await c.workflow.createMapReduce({
          name: o.name,
          mapperImage: o.mapper,
          reducerImage: o.reducer,
          mapperCommand: argvOf(o.mapperCommand, "--mapper-command"),
          reducerCommand: argvOf(o.reducerCommand, "--reducer-command"),
          ...(o.input ? { input: jsonToValue(readJsonFile(o.input)) } : {}),
          items: o.splitter
            ? { case: "splitterImage", value: o.splitter }
            : items !== undefined
              ? { case: "inlineItems", value: { items: items.map((i) => jsonToValue(i)) } }
              : { case: "itemsInputPath", value: o.itemsPath },
          splitterCommand: argvOf(o.splitterCommand, "--splitter-command"),
          splitterItemsPath: o.splitterItemsPath,
          env: parseEnv(o.env ?? []),
          maxParallel,
          poolSize,
          ...(o.exec ? { agentMode: AgentMode.EXEC } : {}),
        });
        const w = r.workflow!;
        if (!o.wait) return void out(g.json ? json(WorkflowSchema, w) : `${w.id}\n`);
        if (!g.json) process.stderr.write(`workflow ${w.id}\n`);
        const end = await watchRun(c, w.id, { json: g.json, out: process.stdout });
        if (!g.json) {
          const { workflow } = await c.workflow.getWorkflow({ workflowId: w.id });
          const result = workflow === undefined ? undefined : resultLine(workflow);
          if (result !== undefined) out(result);
        }
        return exitCodeOf(end.status);
      },
    ),
  );
  return mr;
}
