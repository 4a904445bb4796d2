import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Command, Option } from "commander";
import type { JsonValue } from "@bufbuild/protobuf";
import { jsonToValue, responseValueToJson } from "../lib/json-value.js";
import type { Embedded } from "../services/embedded.js";
import { apiToken, report, type Global } from "./action.js";
import { parseCount } from "./args.js";
import { CliError, connect, exit } from "./client.js";
import { exitCodeOf, watchRun } from "./watch.js";

const root = fileURLToPath(new URL("../", import.meta.url));
const image = "agentainer/node-agent:local";

/** The word-count agents' commands: in the node-agent image, or on the host (local runtime). */
function agentCommands(runtime: string): { mapper: string[]; reducer: string[] } {
  if (runtime === "docker") {
    return {
      mapper: ["node", "/agents/word-mapper.mjs"],
      reducer: ["node", "/agents/word-reducer.mjs"],
    };
  }
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx/esm")).href;
  const run = (name: string) => [process.execPath, "--import", tsx, `${root}agents/${name}.ts`];
  return { mapper: run("word-mapper"), reducer: run("word-reducer") };
}

function readTexts(path: string): JsonValue {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as JsonValue;
  } catch (err) {
    throw new CliError(`cannot read ${path} as JSON: ${(err as Error).message}`, exit.badInput);
  }
}

function imagePresent(): boolean {
  return spawnSync("docker", ["image", "inspect", image], { stdio: "ignore" }).status === 0;
}

/**
 * `agentainer example word-count`: the seed's MapReduce, for real. Counts the words of the
 * bundled documents with pooled mapper agents and a reducer, shows the progress and a summary.
 * Without --server it starts the whole suite in this process first (the embedded default).
 */
export function exampleCommand(): Command {
  const example = new Command("example").description("run a bundled example workflow");
  const wc = example
    .command("word-count")
    .description(
      "count the words of bundled documents with a MapReduce, on a suite started in this process (or at --server when given)",
    )
    .option("--parallel <n>", "mapper tasks at once (and warm agents)", "4")
    .addOption(
      new Option("--items <file>", "a JSON array of texts").default(
        `${root}examples/word-count.items.json`,
        "examples/word-count.items.json",
      ),
    );
  wc.action(async (o: { parallel: string; items: string }) => {
    const g = wc.optsWithGlobals<Global>();
    const explicit = wc.getOptionValueSourceWithGlobals("server") !== "default";
    let embedded: Embedded | undefined;
    let server = g.server;
    try {
      const maxParallel = parseCount(o.parallel, "--parallel", 1);
      const texts = readTexts(o.items);
      if (!Array.isArray(texts))
        throw new CliError(`${o.items}: must hold a JSON array of texts`, exit.badInput);
      let runtime = "docker";
      if (!explicit) {
        const { startEmbedded } = await import("../services/embedded.js");
        embedded = await startEmbedded({
          ...process.env,
          PORT: "0",
          HOST: "127.0.0.1",
          LOG_LEVEL: process.env.LOG_LEVEL ?? "error",
        });
        server = embedded.url;
        runtime = embedded.runtime;
        process.stderr.write(
          `started the suite in this process (${runtime} runtime${runtime === "local" ? ": NO isolation" : ""})\n`,
        );
        if (runtime === "docker" && !imagePresent()) {
          process.stderr.write(`building the local images (scripts/build-images.sh)...\n`);
          const built = spawnSync("bash", [`${root}scripts/build-images.sh`], { stdio: "inherit" });
          if (built.status !== 0) throw new CliError("could not build the local images", 1);
        }
      }
      const c = connect({ server, apiToken: apiToken() });
      const commands = agentCommands(runtime);
      const r = await c.workflow.createMapReduce({
        name: "word-count",
        mapperImage: image,
        mapperCommand: commands.mapper,
        reducerImage: image,
        reducerCommand: commands.reducer,
        items: { case: "inlineItems", value: { items: texts.map((t) => jsonToValue(t)) } },
        maxParallel,
      });
      const id = r.workflow!.id;
      process.stderr.write(`workflow ${id}: ${texts.length} documents\n`);
      const end = await watchRun(c, id, { json: g.json, out: process.stdout });
      const { workflow } = await c.workflow.getWorkflow({ workflowId: id });
      if (workflow?.result !== undefined && !g.json) {
        const result = responseValueToJson(workflow.result, "result") as {
          words: Record<string, number>;
          total: number;
          documents: number;
        };
        const top = Object.entries(result.words)
          .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
          .slice(0, 10);
        process.stdout.write(
          `\n${result.total} words in ${result.documents} documents, ${Object.keys(result.words).length} distinct\n` +
            top.map(([w, n]) => `  ${String(n).padStart(5)}  ${w}`).join("\n") +
            "\n",
        );
      }
      process.exitCode = exitCodeOf(end.status);
    } catch (err) {
      process.exitCode = report(err, server, g.debug);
    } finally {
      await embedded?.close();
    }
  });
  return example;
}
