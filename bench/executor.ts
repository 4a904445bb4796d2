// Executor benchmark (a script, not a test): latency of cold, exec and stream tasks through the
// ExecutorService RPC, each beside the bare Docker cost measured in the same run with dockerode
// directly (the one place outside the runtime driver that talks to Docker: it is the baseline).
//
//   npx tsx bench/executor.ts [--tasks 200] [--json]
//
// Needs a Docker engine and the local images (bash scripts/build-images.sh). Runs the Executor
// in this process on 127.0.0.1; tasks run one after another (latency, not throughput).
import { cpus } from "node:os";
import { PassThrough, type Duplex } from "node:stream";
import { parseArgs } from "node:util";
import { fromJson, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import Docker from "dockerode";
import {
  AgentMode,
  ExecutorService,
  TaskStatus,
  type DispatchTasksRequestSchema,
  type DispatchTasksResponse,
} from "../gen/agentainer/executor/v1/executor_pb.js";
import { Channel } from "../lib/channel.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { startExecutorService } from "../services/executor/main.js";
import { percentile } from "./lib/stats.js";
import { markdownTable, textTable, type Column } from "./lib/table.js";

const shellImage = "agentainer/busybox:local";
const nodeImage = "agentainer/node-agent:local";
const MiB = 1024 * 1024;
const { values: flags } = parseArgs({
  options: { tasks: { type: "string", default: "200" }, json: { type: "boolean", default: false } },
});
const tasks = Number(flags.tasks);
if (!Number.isInteger(tasks) || tasks < 10) throw new Error(`--tasks must be an integer ≥ 10`);
const say = flags.json ? console.error : console.log;

// The same container settings the Executor uses, so the baseline pays the same engine costs.
const hostConfig = {
  NetworkMode: "none",
  CapDrop: ["ALL"],
  SecurityOpt: ["no-new-privileges"],
  NanoCpus: 1_000_000_000,
  Memory: 512 * MiB,
  MemorySwap: 512 * MiB,
  PidsLimit: 512,
};

interface Row {
  what: string;
  path: string;
  n: number;
  p50: number;
  p99: number;
  mean: number;
}
const rows: Row[] = [];

async function measure(what: string, path: string, run: (i: number) => Promise<void>) {
  console.error(`  ${what.padEnd(6)} ${path} ...`);
  // Warm-up: at least 10 rounds and at least 2 s, so that fast paths are measured with their
  // code optimised by the JIT (a long-running server's steady state), not while it compiles.
  const warmUntil = performance.now() + 2000;
  for (let i = 0; i < 10 || performance.now() < warmUntil; i++) await run(-1 - i);
  const ms: number[] = [];
  for (let i = 0; i < tasks; i++) {
    const t0 = process.hrtime.bigint();
    await run(i);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const sorted = Float64Array.from(ms).sort();
  rows.push({
    what,
    path,
    n: tasks,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: ms.reduce((a, b) => a + b, 0) / ms.length,
  });
}

/** Reads one line from a demultiplexed attach stream. */
function lineReader(stream: NodeJS.ReadableStream) {
  let buffer = "";
  const waiters: Array<(line: string) => void> = [];
  stream.on("data", (d: Buffer) => {
    buffer += d.toString();
    for (let nl = buffer.indexOf("\n"); nl !== -1; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      waiters.shift()?.(line);
    }
  });
  return () => new Promise<string>((resolve) => waiters.push(resolve));
}

async function bare(docker: Docker): Promise<void> {
  await measure("cold", "bare dockerode: create+start+wait+remove", async () => {
    const c = await docker.createContainer({
      Image: shellImage,
      Cmd: ["true"],
      HostConfig: hostConfig,
    });
    await c.start();
    await c.wait();
    await c.remove({ force: true });
  });

  const sleeper = await docker.createContainer({
    Image: shellImage,
    Cmd: ["sleep", "3600"],
    HostConfig: hostConfig,
  });
  await sleeper.start();
  try {
    await measure("exec", "bare dockerode: exec create+start+end+inspect", async () => {
      const exec = await sleeper.exec({ Cmd: ["true"], AttachStdout: true, AttachStderr: true });
      const stream = (await exec.start({ hijack: true, stdin: false })) as Duplex;
      await new Promise((resolve) => {
        stream.on("end", resolve);
        stream.resume();
      });
      await exec.inspect();
    });
  } finally {
    await sleeper.remove({ force: true });
  }

  const echo = await docker.createContainer({
    Image: nodeImage,
    Cmd: ["node", "-e", "process.stdin.pipe(process.stdout)"],
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: hostConfig,
  });
  const stream = (await echo.attach({
    stream: true,
    stdin: true,
    stdout: true,
    stderr: true,
    hijack: true,
  })) as Duplex;
  const out = new PassThrough();
  echo.modem.demuxStream(stream, out, new PassThrough());
  const next = lineReader(out);
  await echo.start();
  try {
    await measure("stream", "bare attach: one line written, echoed back", async (i) => {
      stream.write(`{"n":${i}}\n`);
      await next();
    });
  } finally {
    stream.end();
    await echo.remove({ force: true });
  }
}

async function viaExecutor(): Promise<void> {
  const executor = await startExecutorService({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    EXECUTOR_RUNTIME: "docker",
    EXECUTOR_NODE_ID: "bench",
  });
  const transport = createGrpcTransport({ baseUrl: executor.url });
  const client = createClient(ExecutorService, transport);
  const ref = (i: number) => ({ workflowId: "bench", stepId: "s", index: i + 1000 });
  const check = (status: TaskStatus | undefined, error: string | undefined) => {
    if (status !== TaskStatus.SUCCEEDED) throw new Error(`task failed: ${error ?? "?"}`);
  };
  try {
    let seq = 0;
    await measure("cold", "ExecutorService.RunTask", async () => {
      const { result } = await client.runTask({
        ref: { ...ref(seq++), taskId: `cold-${seq}` },
        spec: { image: shellImage, command: ["true"] },
      });
      check(result?.status, result?.error);
    });

    const exec = await client.createAgent({
      spec: { image: shellImage, command: ["sleep", "3600"], mode: AgentMode.EXEC },
    });
    await measure("exec", "ExecutorService.RunTaskOnAgent (exec)", async () => {
      const { result } = await client.runTaskOnAgent({
        agentId: exec.agent!.agentId,
        ref: { ...ref(seq++), taskId: `exec-${seq}` },
        command: ["true"],
      });
      check(result?.status, result?.error);
    });
    await client.destroyAgent({ agentId: exec.agent!.agentId });

    const stream = await client.createAgent({
      spec: {
        image: nodeImage,
        command: ["node", "/agents/test-agent.mjs"],
        mode: AgentMode.STREAM,
      },
    });
    const input = fromJson(ValueSchema, { action: "echo" });
    // The floor any RPC pays here: a trivial call to the same server over the same connection.
    const health = createClient(Health, transport);
    await measure("stream", "RPC floor: grpc.health.v1.Health/Check, same server", async () => {
      await health.check({});
    });
    await measure("stream", "ExecutorService.RunTaskOnAgent (stream)", async () => {
      const { result } = await client.runTaskOnAgent({
        agentId: stream.agent!.agentId,
        ref: { ...ref(seq++), taskId: `stream-${seq}` },
        input,
      });
      check(result?.status, result?.error);
    });
    // The same tasks over one DispatchTasks stream: no call per task.
    const requests = new Channel<MessageInitShape<typeof DispatchTasksRequestSchema>>();
    const responses = client.dispatchTasks(requests)[Symbol.asyncIterator]();
    await measure("stream", "ExecutorService.DispatchTasks (stream agent)", async () => {
      const callId = `d-${seq++}`;
      requests.push({
        callId,
        task: {
          agentId: stream.agent!.agentId,
          ref: { ...ref(seq), taskId: `dispatch-${seq}` },
          input,
        },
      });
      const { value } = await responses.next();
      const r = value as DispatchTasksResponse | undefined;
      if (r?.callId !== callId || r.outcome.case !== "result") throw new Error("dispatch failed");
      check(r.outcome.value.status, r.outcome.value.error);
    });
    requests.close();
    await client.destroyAgent({ agentId: stream.agent!.agentId });
  } finally {
    await executor.close();
  }
}

const fixed = (n: number) => n.toFixed(2);
function report(): void {
  const target: Record<string, string> = {
    cold: "≤ 1.15 × bare",
    exec: "≤ bare + 5 ms",
    stream: "p50 ≤ 1 ms, p99 ≤ 3 ms",
  };
  const verdict = (r: Row, base: Row | undefined): string => {
    if (base === undefined) return "";
    if (r.what === "cold") return r.p50 <= base.p50 * 1.15 ? "MET" : "MISSED";
    if (r.what === "exec") return r.p50 <= base.p50 + 5 ? "MET" : "MISSED";
    return r.p50 <= 1 && r.p99 <= 3 ? "MET" : "MISSED";
  };
  // prettier-ignore
  const columns: Column[] = [
    { title: "task" }, { title: "path" }, { title: "n", right: true }, { title: "p50 ms", right: true },
    { title: "p99 ms", right: true }, { title: "mean ms", right: true }, { title: "vs bare (p50)" },
    { title: "target" }, { title: "" },
  ];
  const cells = rows.map((r) => {
    const base = rows.find((b) => b.what === r.what && b.path.startsWith("bare"));
    const ours = base !== undefined && base !== r && !r.path.startsWith("RPC floor");
    return [
      r.what,
      r.path,
      String(r.n),
      fixed(r.p50),
      fixed(r.p99),
      fixed(r.mean),
      ours
        ? `${fixed(r.p50 / base.p50)}×, ${r.p50 >= base.p50 ? "+" : "−"}${fixed(Math.abs(r.p50 - base.p50))} ms`
        : r.path.startsWith("RPC floor")
          ? "reference: any call's cost"
          : "baseline",
      ours ? (target[r.what] ?? "") : "",
      ours ? verdict(r, base) : "",
    ];
  });
  const setup = `${tasks} tasks per row, one at a time, after a warm-up of at least 10 tasks and 2 s; ${cpus().length} CPUs, Node ${process.version}`;
  say(`\nExecutor benchmark: ${setup}.\n`);
  say(textTable(columns, cells));
  say(`\nMarkdown:\n\n${markdownTable(columns, cells)}`);
  if (flags.json) console.log(JSON.stringify({ tasks, rows }, null, 2));
}

async function main(): Promise<void> {
  const docker = new Docker();
  await docker.ping();
  for (const image of [shellImage, nodeImage]) {
    await docker
      .getImage(image)
      .inspect()
      .catch(() => {
        throw new Error(`image ${image} is missing: run bash scripts/build-images.sh`);
      });
  }
  await bare(docker);
  await viaExecutor();
  report();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error("benchmark failed:", err);
    process.exit(1);
  },
);
