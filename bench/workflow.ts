// Workflow benchmark (a script, not a test): the seed's performance table, measured in one run
// against its raw costs.
//
//   npx tsx bench/workflow.ts [--noop 10000] [--big 100000] [--big-heap 192] [--only sleep,noop,big]
//                             [--json]
//
//   1. 10 parallel tasks that each sleep 1 s: cold (max_parallel 10) versus a pool of 5 agents.
//   2. 50 such tasks: cold with max_parallel 10 versus a pool of 10 agents. Pools both ways: an
//      inline pool (created when the workflow starts: its warm-up is in the wall time) and a pool
//      created and warmed beforehand (a shared pool, the way warm pools are meant to be used).
//      Raw cost: the same containers created, started and waited for directly through dockerode,
//      as many at a time; and the ideal wall time ceil(N / parallel) x 1 s.
//   3. --noop no-op map items on a pre-warmed pool of 8 stream agents: tasks/s and the Workflow service's
//      CPU time per task. Raw cost: the same tasks sent straight to 8 agents over the Executor's
//      DispatchTasks stream (no workflow, no pool).
//   4. --big no-op map items, and a tenth as many first, each in a fresh Workflow process with
//      its runs in Redis (a redis-server started for the run) as in the mesh: the heap the
//      process holds after each full GC (--trace-gc; bounded memory: the same for both), its peak
//      RSS (VmHWM, garbage included), and the tasks/s over each fifth of the items (steady
//      throughput: five similar rates).
//   --only runs some of the groups (sleep = 1 and 2, noop = 3, big = 4).
//
// Needs a Docker engine and the local images (bash scripts/build-images.sh). State, Executor and
// Pool run in this process; the Workflow service runs as its own process (`agentainer serve
// workflow`, in-memory run store) so that its CPU time and peak memory are its own.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import Docker from "dockerode";
import { Channel } from "../lib/channel.js";
import { jsonToValue } from "../lib/json-value.js";
import {
  AgentMode,
  ExecutorService,
  type DispatchTasksRequestSchema,
} from "../gen/agentainer/executor/v1/executor_pb.js";
import {
  ExecutionMode,
  StepKind,
  WorkflowStatus,
  type StepSchema,
} from "../gen/agentainer/workflow/v1/definition_pb.js";
import { PoolService } from "../gen/agentainer/pool/v1/pool_pb.js";
import { WorkflowService } from "../gen/agentainer/workflow/v1/workflow_pb.js";
import { startExecutorService } from "../services/executor/main.js";
import { startPoolService } from "../services/pool/main.js";
import { startStateService } from "../services/state/main.js";
import { startRedisServer } from "../test/support/servers.js";
import { markdownTable, textTable, type Column } from "./lib/table.js";

const { values: flags } = parseArgs({
  options: {
    noop: { type: "string", default: "10000" },
    big: { type: "string", default: "100000" },
    "big-heap": { type: "string", default: "192" },
    only: { type: "string", default: "sleep,noop,big" },
    json: { type: "boolean", default: false },
  },
});
const noopItems = Number(flags.noop);
const bigItems = Number(flags.big);
/** The big run's Workflow process gets this V8 old-space cap (MiB): finishing under it shows the
 * memory is bounded, whatever the peak RSS (which includes garbage not yet collected). */
const bigHeapMiB = Number(flags["big-heap"]);
const only = new Set(flags.only.split(","));
for (const g of only) {
  if (!["sleep", "noop", "big"].includes(g)) throw new Error(`--only: unknown group "${g}"`);
}
const say = flags.json ? console.error : console.log;

const nodeImage = "agentainer/node-agent:local";
const shellImage = "agentainer/busybox:local";
const flowAgent = ["node", "/agents/flow-agent.mjs"];
const bin = fileURLToPath(new URL("../bin/agentainer.js", import.meta.url));

type StepInit = MessageInitShape<typeof StepSchema>;

/** CPU seconds (user + system) and peak resident memory of a process, from /proc. */
function procStats(pid: number): { cpuSeconds: number; peakRssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / 100, peakRssMiB: hwm / 1024 };
}

interface Served {
  child: ChildProcess;
  client: Client<typeof WorkflowService>;
  /** With `traceGc`: the live heap (MiB) after each full GC (V8's --trace-gc lines). */
  liveHeapMiB: number[];
}

/**
 * Starts `agentainer serve workflow`; its URL is read from its "server listening" log line. With
 * `traceGc`, the process runs with --trace-gc and the heap left after each mark-compact is kept:
 * what the process really holds, unlike its peak RSS, which includes garbage not yet collected.
 */
async function serveWorkflow(env: Record<string, string>, traceGc = false): Promise<Served> {
  const child = spawn(
    process.execPath,
    [...(traceGc ? ["--trace-gc"] : []), bin, "serve", "workflow"],
    {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const liveHeapMiB: number[] = [];
  let rest = "";
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      const text = rest + chunk.toString();
      const lines = text.split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        const gc = /Mark-Compact [\d.]+ \([\d.]+\) -> ([\d.]+) \(/.exec(line);
        if (gc) liveHeapMiB.push(Number(gc[1]));
        const m = /"url":"([^"]+)"[^\n]*"msg":"server listening"/.exec(line);
        if (m) resolve(m[1]!);
        else if (out.length < 100_000) out += line + "\n";
      }
    });
    child.once("exit", (code) => reject(new Error(`workflow service exited (${code}): ${out}`)));
  });
  return {
    child,
    client: createClient(WorkflowService, createGrpcTransport({ baseUrl: url })),
    liveHeapMiB,
  };
}

/**
 * Runs one workflow to its end; returns its wall seconds. With `marks`, records (seconds since
 * the create, tasks finished) from each progress event, to show how steady the rate is.
 */
async function runWorkflow(
  client: Client<typeof WorkflowService>,
  name: string,
  maxParallel: number,
  steps: StepInit[],
  marks?: Array<[number, number]>,
): Promise<number> {
  const t0 = performance.now();
  const { workflow } = await client.createWorkflow({
    name,
    start: true,
    config: { maxParallel },
    steps,
  });
  const id = workflow!.id;
  for await (const r of client.watchWorkflow({ workflowId: id, excludeTaskEvents: true })) {
    const p = r.event?.payload;
    if (marks !== undefined && p?.case === "progress") {
      const c = p.value.counts;
      const finished = Number((c?.succeeded ?? 0n) + (c?.failed ?? 0n) + (c?.skipped ?? 0n));
      marks.push([(performance.now() - t0) / 1000, finished]);
    }
    if (p?.case === "workflowStatusChanged" && p.value.status >= WorkflowStatus.SUCCEEDED) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  const { workflow: done } = await client.getWorkflow({ workflowId: id });
  if (done?.status !== WorkflowStatus.SUCCEEDED) {
    throw new Error(`${name} ended ${WorkflowStatus[done?.status ?? 0]}: ${done?.statusMessage}`);
  }
  await client.deleteWorkflow({ workflowId: id });
  return seconds;
}

/**
 * Tasks per second over each fifth of a run's items (from the progress marks): a steady run has
 * five similar rates; one that slows as it goes (memory, GC, growing structures) does not.
 */
function rateByFifth(marks: ReadonlyArray<[number, number]>, total: number): number[] {
  const timeAt = (count: number) => marks.find(([, done]) => done >= count)?.[0];
  const rates: number[] = [];
  for (let k = 0; k < 5; k++) {
    const from = k === 0 ? 0 : timeAt((total * k) / 5);
    const to = timeAt((total * (k + 1)) / 5);
    if (from === undefined || to === undefined || to <= from) continue;
    rates.push(total / 5 / (to - from));
  }
  return rates;
}

const items = (n: number, item: JsonValue) => ({
  source: {
    case: "inline" as const,
    value: { items: Array.from({ length: n }, () => jsonToValue(item)) },
  },
});

/** A pool created ahead and warmed to `size` idle stream agents, as a shared pool would be. */
async function warmPool(pools: Client<typeof PoolService>, poolId: string, size: number) {
  await pools.createPool({
    poolId,
    template: { image: nodeImage, command: flowAgent, mode: AgentMode.STREAM },
    policy: { minSize: size, maxSize: size, warmUp: true },
  });
  for (;;) {
    const { pool } = await pools.getPool({ poolId });
    if ((pool?.metrics?.idle ?? 0) >= size) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function sleepers(n: number, pooled: number | string | undefined): StepInit {
  if (typeof pooled === "string") {
    return {
      id: "work",
      kind: StepKind.MAP,
      image: nodeImage,
      mapItems: items(n, { sleepMs: 1000 }),
      execution: ExecutionMode.POOLED,
      pool: { case: "poolId", value: pooled },
    };
  }
  return {
    id: "work",
    kind: StepKind.MAP,
    image: nodeImage,
    command: flowAgent,
    mapItems: items(n, { sleepMs: 1000 }),
    ...(pooled === undefined
      ? {}
      : {
          execution: ExecutionMode.POOLED,
          agentMode: AgentMode.STREAM,
          pool: { case: "poolPolicy", value: { minSize: pooled, maxSize: pooled, warmUp: true } },
        }),
  };
}

/** N containers of `sleep 1`, `parallel` at a time, straight through dockerode. */
async function bareDocker(docker: Docker, n: number, parallel: number): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        const c = await docker.createContainer({
          Image: shellImage,
          Cmd: ["sleep", "1"],
          HostConfig: { NetworkMode: "none", AutoRemove: false },
        });
        await c.start();
        await c.wait();
        await c.remove({ force: true });
      }
    }),
  );
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  const base = { PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "warn" };
  const state = await startStateService(base);
  const executor = await startExecutorService({
    ...base,
    EXECUTOR_RUNTIME: "docker",
    STATE_URL: state.url,
    EXECUTOR_NODE_ID: `bench-wf-${process.pid}`,
  });
  const pool = await startPoolService({ ...base, EXECUTOR_URL: executor.url });
  const env = {
    ...base,
    EXECUTOR_URL: executor.url,
    POOL_URL: pool.url,
    STATE_URL: state.url,
    PORT: "0",
    LOG_LEVEL: "info",
  };
  const docker = new Docker();
  const exec = createClient(ExecutorService, createGrpcTransport({ baseUrl: executor.url }));
  const pools = createClient(PoolService, createGrpcTransport({ baseUrl: pool.url }));
  let served = await serveWorkflow(env);
  let redis: Awaited<ReturnType<typeof startRedisServer>> | undefined;
  const rows: string[][] = [];
  const results: Record<string, unknown> = {};
  try {
    const { client } = served;

    // 1 and 2: the seed's scenarios.
    for (const [n, coldParallel, poolSize] of only.has("sleep")
      ? ([
          [10, 10, 5],
          [50, 10, 10],
        ] as const)
      : []) {
      const bare = await bareDocker(docker, n, coldParallel);
      const coldWall = await runWorkflow(client, `cold-${n}`, coldParallel, [
        sleepers(n, undefined),
      ]);
      const pooledWall = await runWorkflow(client, `pool-${n}`, poolSize, [sleepers(n, poolSize)]);
      const poolId = `bench-warm-${n}`;
      await warmPool(pools, poolId, poolSize);
      const warmWall = await runWorkflow(client, `warm-${n}`, poolSize, [sleepers(n, poolId)]);
      await pools.deletePool({ poolId, force: true });
      const ideal = Math.ceil(n / poolSize);
      rows.push([
        `${n} x 1 s, cold, max_parallel ${coldParallel}`,
        coldWall.toFixed(2),
        `bare Docker ${bare.toFixed(2)} s`,
        (coldWall / bare).toFixed(2),
      ]);
      rows.push([
        `${n} x 1 s, inline pool of ${poolSize} (warm-up included)`,
        pooledWall.toFixed(2),
        `ideal ${ideal.toFixed(2)} s`,
        (pooledWall / ideal).toFixed(2),
      ]);
      rows.push([
        `${n} x 1 s, pre-warmed pool of ${poolSize}`,
        warmWall.toFixed(2),
        `ideal ${ideal.toFixed(2)} s`,
        (warmWall / ideal).toFixed(2),
      ]);
      results[`sleep${n}`] = { bare, coldWall, pooledWall, warmWall, ideal };
    }

    if (only.has("noop")) {
      // 3: no-op throughput on 8 stream agents, against the bare Executor path.
      const agents: string[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await exec.createAgent({
          spec: { image: nodeImage, command: flowAgent, mode: AgentMode.STREAM },
        });
        agents.push(r.agent!.agentId);
      }
      const bareT0 = performance.now();
      const requests = new Channel<MessageInitShape<typeof DispatchTasksRequestSchema>>();
      let sent = 0;
      const free = [...agents];
      const send = () => {
        while (free.length > 0 && sent < noopItems) {
          const agentId = free.pop()!;
          requests.push({
            callId: `${sent}|${agentId}`,
            task: {
              agentId,
              ref: { workflowId: "bench-bare", stepId: "noop", index: sent },
              input: jsonToValue({ item: null }),
            },
          });
          sent++;
        }
        if (sent === noopItems) requests.close();
      };
      send();
      let answered = 0;
      for await (const res of exec.dispatchTasks(requests)) {
        answered++;
        free.push(res.callId.split("|")[1]!);
        if (answered === noopItems) break;
        send();
      }
      const bareSeconds = (performance.now() - bareT0) / 1000;
      for (const agentId of agents) await exec.destroyAgent({ agentId, force: true });

      await warmPool(pools, "bench-noop", 8);
      const before = procStats(served.child.pid!);
      const noopWall = await runWorkflow(client, "noop", 8, [
        {
          id: "noop",
          kind: StepKind.MAP,
          image: nodeImage,
          execution: ExecutionMode.POOLED,
          pool: { case: "poolId", value: "bench-noop" },
          mapItems: items(noopItems, null),
        },
      ]);
      const after = procStats(served.child.pid!);
      const cpuMsPerTask = ((after.cpuSeconds - before.cpuSeconds) * 1000) / noopItems;
      rows.push([
        `${noopItems} no-op items, pre-warmed pool of 8 stream agents`,
        noopWall.toFixed(2),
        `bare DispatchTasks ${bareSeconds.toFixed(2)} s`,
        (noopWall / bareSeconds).toFixed(2),
      ]);
      results.noop = {
        items: noopItems,
        wall: noopWall,
        tasksPerSecond: noopItems / noopWall,
        bareSeconds,
        bareTasksPerSecond: noopItems / bareSeconds,
        workflowCpuMsPerTask: cpuMsPerTask,
        addedWallMsPerTaskPerAgent: ((noopWall - bareSeconds) * 1000 * 8) / noopItems,
      };
    }

    // 4: peak memory of fresh Workflow processes, runs in Redis, running a map of a tenth of the
    // big item count and then the big one: bounded memory means about the same peak for both.
    served.child.kill("SIGTERM");
    redis = await startRedisServer();
    if (!only.has("noop")) await warmPool(pools, "bench-noop", 8);
    const bigRuns: Array<Record<string, unknown>> = [];
    for (const n of only.has("big") ? [Math.max(1, Math.round(bigItems / 10)), bigItems] : []) {
      served = await serveWorkflow(
        {
          ...env,
          REDIS_URL: redis.url,
          NODE_OPTIONS:
            `${process.env.NODE_OPTIONS ?? ""} --max-old-space-size=${bigHeapMiB}`.trim(),
        },
        true,
      );
      const idle = procStats(served.child.pid!);
      const marks: Array<[number, number]> = [];
      const wall = await runWorkflow(
        served.client,
        `big-${n}`,
        8,
        [
          {
            id: "noop",
            kind: StepKind.MAP,
            image: nodeImage,
            execution: ExecutionMode.POOLED,
            pool: { case: "poolId", value: "bench-noop" },
            mapItems: items(n, null),
          },
        ],
        marks,
      );
      const peak = procStats(served.child.pid!);
      served.child.kill("SIGTERM");
      const rates = rateByFifth(marks, n);
      // Live heap after full GCs over the run: its largest, and its median (steady state).
      const live = [...served.liveHeapMiB].sort((a, b) => a - b);
      const liveMax = live.at(-1) ?? 0;
      const liveMedian = live[Math.floor(live.length / 2)] ?? 0;
      rows.push([
        `${n} no-op items, pre-warmed pool of 8, runs in Redis`,
        wall.toFixed(2),
        `live heap after GC ${liveMedian.toFixed(0)} MiB median, ${liveMax.toFixed(0)} max; peak RSS ${peak.peakRssMiB.toFixed(0)} MiB (idle ${idle.peakRssMiB.toFixed(0)}), heap cap ${bigHeapMiB} MiB; tasks/s by fifth ${rates.map((r) => r.toFixed(0)).join(" ")}`,
        "-",
      ]);
      bigRuns.push({
        items: n,
        wall,
        tasksPerSecond: n / wall,
        tasksPerSecondByFifth: rates,
        peakRssMiB: peak.peakRssMiB,
        idlePeakRssMiB: idle.peakRssMiB,
        liveHeapAfterGcMiB: { median: liveMedian, max: liveMax, fullGcs: live.length },
        heapCapMiB: bigHeapMiB,
      });
    }
    results.big = bigRuns;

    const columns: Column[] = [
      { title: "scenario" },
      { title: "wall s", right: true },
      { title: "raw cost (same run)" },
      { title: "ratio", right: true },
    ];
    say(`\nWorkflow benchmark on ${cpus().length} cores\n`);
    say(textTable(columns, rows));
    const n = results.noop as { tasksPerSecond: number; workflowCpuMsPerTask: number } | undefined;
    if (n !== undefined) {
      say(
        `\nno-op throughput: ${n.tasksPerSecond.toFixed(0)} tasks/s; Workflow service CPU ${n.workflowCpuMsPerTask.toFixed(3)} ms per task`,
      );
    }
    say("\n" + markdownTable(columns, rows));
    if (flags.json) console.log(JSON.stringify(results, null, 2));
  } finally {
    served.child.kill("SIGTERM");
    await pools.deletePool({ poolId: "bench-noop", force: true }).catch(() => {});
    await redis?.stop();
    await pool.close();
    await executor.close();
    await state.close();
  }
}

await main();
