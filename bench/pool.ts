// Pool benchmark (a script, not a test): Acquire→Release latency on a hit through the RPC (two
// unary calls, and the same two calls over one LeaseAgents stream), and N tasks through a pool of
// 8 warm exec agents against the same N tasks run cold, 8 at a time.
//
//   npx tsx bench/pool.ts [--tasks 1000] [--hits 500] [--workers 8] [--json]
//
// Needs a Docker engine and the local images (bash scripts/build-images.sh). Runs the Executor and
// the Pool service in this process on 127.0.0.1.
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  AgentMode,
  ExecutorService,
  TaskStatus,
} from "../gen/agentainer/executor/v1/executor_pb.js";
import {
  PoolService,
  TaskOutcome,
  type LeaseAgentsRequestSchema,
  type LeaseAgentsResponse,
} from "../gen/agentainer/pool/v1/pool_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { Channel } from "../lib/channel.js";
import { labels } from "../services/executor/contract.js";
import { startExecutorService } from "../services/executor/main.js";
import { startPoolService } from "../services/pool/main.js";
import { percentile } from "./lib/stats.js";

const image = "agentainer/busybox:local";
const { values: flags } = parseArgs({
  options: {
    tasks: { type: "string", default: "1000" },
    hits: { type: "string", default: "500" },
    workers: { type: "string", default: "8" },
    json: { type: "boolean", default: false },
  },
});
const tasks = Number(flags.tasks);
const hits = Number(flags.hits);
const workers = Number(flags.workers);
const say = flags.json ? console.error : console.log;

function summary(ms: number[]) {
  const sorted = Float64Array.from(ms).sort();
  return { n: ms.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

async function main(): Promise<void> {
  const node = `bench-pool-${process.pid}`;
  const executor = await startExecutorService({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    EXECUTOR_RUNTIME: "docker",
    EXECUTOR_NODE_ID: node,
  });
  const pool = await startPoolService({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    EXECUTOR_URL: executor.url,
  });
  const pools = createClient(PoolService, createGrpcTransport({ baseUrl: pool.url }));
  const exec = createClient(ExecutorService, createGrpcTransport({ baseUrl: executor.url }));
  const health = createClient(Health, createGrpcTransport({ baseUrl: pool.url }));
  const template = { image, command: ["sleep", "3600"], mode: AgentMode.EXEC };
  try {
    // 1. Acquire→Release on a hit, one at a time, beside a trivial call to the same server: as
    //    two unary calls, and as the same two calls over one LeaseAgents stream.
    const hitPool = "bench-hits";
    await pools.createPool({
      poolId: hitPool,
      template,
      policy: { maxSize: 1, minSize: 1, warmUp: true },
    });
    for (;;) {
      const { pool: p } = await pools.getPool({ poolId: hitPool });
      if (p?.metrics?.idle === 1) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const requests = new Channel<MessageInitShape<typeof LeaseAgentsRequestSchema>>();
    const answers = pools.leaseAgents(requests)[Symbol.asyncIterator]();
    const call = async (req: MessageInitShape<typeof LeaseAgentsRequestSchema>) => {
      requests.push(req);
      const { value } = await answers.next();
      const r = value as LeaseAgentsResponse | undefined;
      if (r?.outcome.case === "error") throw new Error(`LeaseAgents: ${r.outcome.value.message}`);
      if (r === undefined || r.callId !== req.callId)
        throw new Error(`LeaseAgents did not answer ${req.callId}`);
      return r.outcome;
    };
    // One path at a time (as bench/executor.ts), each after 20 warm-up rounds, so that no path's
    // background work (events, the store) lands in another's timings.
    const timed = async (round: (i: number) => Promise<void>): Promise<number[]> => {
      const ms: number[] = [];
      for (let i = 0; i < hits + 20; i++) {
        const t0 = performance.now();
        await round(i);
        if (i >= 20) ms.push(performance.now() - t0);
      }
      return ms;
    };
    const floor = await timed(async () => {
      await health.check({});
    });
    const pair = await timed(async () => {
      const { lease, hit } = await pools.acquire({ poolId: hitPool, holder: "bench" });
      await pools.release({
        leaseId: lease!.leaseId,
        holder: "bench",
        outcome: TaskOutcome.SUCCEEDED,
      });
      if (!hit) throw new Error("expected a hit on a warm pool of one");
    });
    const streamPair = await timed(async (i) => {
      const acquired = await call({
        callId: `a${i}`,
        call: { case: "acquire", value: { poolId: hitPool, holder: "bench" } },
      });
      if (acquired.case !== "acquired" || !acquired.value.hit)
        throw new Error("expected a hit on a warm pool of one, over the stream");
      await call({
        callId: `r${i}`,
        call: {
          case: "release",
          value: {
            leaseId: acquired.value.lease!.leaseId,
            holder: "bench",
            outcome: TaskOutcome.SUCCEEDED,
          },
        },
      });
    });
    requests.close();
    await answers.next(); // the stream ends once both sides are done
    await pools.deletePool({ poolId: hitPool });

    // 2. N tasks through a pool of `workers` agents, `workers` at a time.
    const runPool = "bench-run";
    await pools.createPool({ poolId: runPool, template, policy: { maxSize: workers } });
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: workers }, async () => {
        for (let i = next++; i < tasks; i = next++) {
          const { lease } = await pools.acquire({ poolId: runPool, holder: `bench/${i}` });
          const { result } = await exec.runTaskOnAgent({
            agentId: lease!.agentId,
            ref: { workflowId: "bench", stepId: "pooled", index: i },
            command: ["true"],
          });
          if (result?.status !== TaskStatus.SUCCEEDED)
            throw new Error(`task ${i}: ${result?.error}`);
          await pools.release({ leaseId: lease!.leaseId, outcome: TaskOutcome.SUCCEEDED });
        }
      }),
    );
    const pooledSeconds = (performance.now() - t0) / 1000;
    const { pool: p } = await pools.getPool({ poolId: runPool });
    const m = p!.metrics!;
    const created = Number(m.containersCreated);
    const hitRatio = Number(m.hits) / (Number(m.hits) + Number(m.misses));
    await pools.deletePool({ poolId: runPool });

    // 3. The same N tasks cold, `workers` at a time.
    next = 0;
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: workers }, async () => {
        for (let i = next++; i < tasks; i = next++) {
          const { result } = await exec.runTask({
            ref: { workflowId: "bench", stepId: "cold", index: i },
            spec: { image, command: ["true"] },
          });
          if (result?.status !== TaskStatus.SUCCEEDED)
            throw new Error(`cold task ${i}: ${result?.error}`);
        }
      }),
    );
    const coldSeconds = (performance.now() - t1) / 1000;

    const f = summary(floor);
    const a = summary(pair);
    const s = summary(streamPair);
    const fixed = (n: number) => n.toFixed(2);
    say(`\nPool benchmark: ${cpus().length} CPUs, Node ${process.version}.\n`);
    say(`Acquire→Release on a hit (${a.n} pairs, one at a time; target p50 ≤ 1 ms):`);
    say(`| what | n | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |`);
    say(`| RPC floor: grpc.health.v1.Health/Check | ${f.n} | ${fixed(f.p50)} | ${fixed(f.p99)} |`);
    say(`| Acquire + Release (two calls) | ${a.n} | ${fixed(a.p50)} | ${fixed(a.p99)} |`);
    say(
      `| Acquire + Release over one LeaseAgents stream | ${s.n} | ${fixed(s.p50)} | ${fixed(s.p99)} |`,
    );
    say(`\n${tasks} tasks (exec \`true\`), ${workers} at a time:`);
    say(
      `| path | wall s | tasks/s | containers created | hit ratio |\n| --- | ---: | ---: | ---: | ---: |`,
    );
    say(
      `| pool of ${workers} (Acquire, RunTaskOnAgent, Release) | ${fixed(pooledSeconds)} | ${fixed(tasks / pooledSeconds)} | ${created} | ${fixed(hitRatio * 100)}% |`,
    );
    say(
      `| cold (RunTask) | ${fixed(coldSeconds)} | ${fixed(tasks / coldSeconds)} | ${tasks} | - |`,
    );
    say(`\npooled / cold wall time: ${fixed(pooledSeconds / coldSeconds)}×`);
    if (flags.json) {
      console.log(
        JSON.stringify({
          floor: f,
          acquireRelease: a,
          acquireReleaseStream: s,
          tasks,
          workers,
          pooledSeconds,
          coldSeconds,
          created,
          hitRatio,
        }),
      );
    }
  } finally {
    await pool.close();
    await executor.close();
    const left = execFileSync("docker", ["ps", "-aq", "--filter", `label=${labels.nodeId}=${node}`])
      .toString()
      .trim();
    if (left !== "") console.error(`warning: containers left behind: ${left.split("\n").length}`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error("benchmark failed:", err);
    process.exit(1);
  },
);
