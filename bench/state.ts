// State service benchmark (a script, not a test): Increment on one hot key and Get of one key
// over gRPC with N concurrent closed-loop clients, against real Redis and against the in-memory
// store, printed beside bare ioredis (HINCRBY / HGET) on the same redis-server in the same run.
//
//   npx tsx bench/state.ts [--seconds 5] [--clients 32] [--connections 4] [--warmup 1]
//                          [--server inline|process] [--json]
//
// Starts its own redis-server and nats-server on free loopback ports and the State service in
// this process, sharing the clients' event loop (--server process: as `agentainer serve state`
// in a process of its own). Each service workload runs twice: one unary call per operation, then the
// same callers through the batching client (StateService.Batch). Stops everything at the end, on
// Ctrl-C, and after a time limit. Exit code 1 when a correctness check fails.
import { spawn } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { StateService } from "../gen/agentainer/state/v1/state_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { canonicalJson } from "../lib/json-value.js";
import { createBatchingStateClient } from "../services/state/batching-client.js";
import { startStateService } from "../services/state/main.js";
import {
  freePort,
  startNatsServer,
  startRedisServer,
  type RunningServer,
} from "../test/support/servers.js";
import { closedLoop, processCpuUs, type Summary } from "./lib/stats.js";
import { markdownTable, textTable, type Column } from "./lib/table.js";

const TARGET = { opsPerSec: 20_000, p99Ms: 5 };
const DOC: JsonObject = { owner: "agent-7", progress: 0.42, status: "running", step: 3 };

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    clients: { type: "string", default: "32" },
    connections: { type: "string", default: "4" },
    warmup: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
    server: { type: "string", default: "inline" },
  },
});
function numberFlag(name: keyof typeof flags, min: number): number {
  const n = Number(flags[name]);
  if (!Number.isFinite(n) || n < min)
    throw new Error(`--${name} must be a number ≥ ${min}; got "${String(flags[name])}"`);
  return n;
}
const seconds = numberFlag("seconds", 0.1);
const warmup = numberFlag("warmup", 0);
const clients = Math.floor(numberFlag("clients", 1));
const connections = Math.min(clients, Math.floor(numberFlag("connections", 1)));
if (flags.server !== "process" && flags.server !== "inline")
  throw new Error(`--server must be "process" or "inline"; got "${flags.server}"`);
/** process: the service runs as `agentainer serve state` in its own process; inline: in this one. */
const serverMode: "process" | "inline" = flags.server;
// With --json, stdout carries only the JSON; everything for people goes to stderr.
const say = flags.json ? console.error : console.log;

type Op = "Increment" | "Get";
type ServicePath = "service/redis" | "service/memory";
type Path = "bare ioredis" | ServicePath | `${ServicePath} batched`;
interface Row extends Summary {
  op: Op;
  path: Path;
  /** CPU time of redis-server per successful call, in microseconds (NaN when not readable). */
  redisCpuUsPerOp: number;
  /** CPU time of the State service's own process per successful call (NaN when inline). */
  serviceCpuUsPerOp: number;
}
const rows: Row[] = [];
const checks: Array<{ what: string; counted: number; stored: number; ok: boolean }> = [];

// ---- processes, cleanup, time limit ------------------------------------------------------
const procs: RunningServer[] = [];
const stopAll = (): Promise<unknown> =>
  Promise.all(procs.splice(0).map((p) => p.stop("SIGKILL").catch(() => undefined)));
function abort(reason: string, code: number): void {
  console.error(`\n${reason}: stopping redis-server and nats-server`);
  void stopAll().finally(() => process.exit(code));
}
process.once("SIGINT", () => abort("interrupted", 130));
process.once("SIGTERM", () => abort("terminated", 143));
const limitMs = (6 * (seconds + warmup) + 60) * 1000;
const watchdog = setTimeout(
  () => abort(`time limit of ${Math.round(limitMs / 1000)} s reached`, 2),
  limitMs,
);

/** A warm-up window (discarded), then the measured one. Returns the successful calls of both. */
async function measure(
  path: Path,
  op: Op,
  call: (client: number) => Promise<unknown>,
  servicePid?: number,
): Promise<number> {
  console.error(`  ${path.padEnd(14)} ${op} ...`);
  const warm =
    warmup > 0 ? await closedLoop({ clients, durationMs: warmup * 1000, call }) : undefined;
  const redisPid = procs[0]?.pid;
  const redisCpu = processCpuUs(redisPid);
  const serviceCpu = servicePid === undefined ? NaN : processCpuUs(servicePid);
  const result = await closedLoop({ clients, durationMs: seconds * 1000, call });
  rows.push({
    op,
    path,
    ...result,
    redisCpuUsPerOp: (processCpuUs(redisPid) - redisCpu) / result.ok,
    serviceCpuUsPerOp:
      servicePid === undefined ? NaN : (processCpuUs(servicePid) - serviceCpu) / result.ok,
  });
  return (warm?.ok ?? 0) + result.ok;
}
const check = (what: string, counted: number, stored: number): void =>
  void checks.push({ what, counted, stored, ok: counted === stored });

async function baseline(redisUrl: string): Promise<void> {
  // The service's own client options (lib/infra.ts): one connection, auto-pipelining.
  const redis = new Redis(redisUrl, { enableAutoPipelining: true, maxRetriesPerRequest: 3 });
  try {
    const hash = "bench:baseline";
    await redis.hset(hash, "doc", canonicalJson(DOC));
    const increments = await measure("bare ioredis", "Increment", () =>
      redis.hincrby(hash, "hot", 1),
    );
    check("bare ioredis HINCRBY", increments, Number(await redis.hget(hash, "hot")));
    await measure("bare ioredis", "Get", () => redis.hget(hash, "doc"));
  } finally {
    redis.disconnect();
  }
}

/** The State service under test: `agentainer serve state` in a child process, or inline. */
async function startService(
  env: Record<string, string>,
): Promise<{ url: string; pid: number | undefined; close: () => Promise<void> }> {
  const logLevel = flags.json ? "error" : "warn"; // pino writes to stdout
  const common = { HOST: "127.0.0.1", LOG_LEVEL: logLevel, ...env };
  if (serverMode === "inline") {
    const server = await startStateService({ PORT: "0", ...common });
    return { url: server.url, pid: undefined, close: () => server.close() };
  }
  const port = await freePort();
  const bin = fileURLToPath(new URL("../bin/agentainer.js", import.meta.url));
  const child = spawn(process.execPath, [bin, "serve", "state"], {
    env: { PATH: process.env.PATH, ...common, PORT: String(port) },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
  for (let tries = 0; ; tries++) {
    try {
      await health.check({});
      break;
    } catch (err) {
      if (child.exitCode !== null || tries > 300)
        throw new Error(`agentainer serve state did not start: ${String(err)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    pid: child.pid,
    close: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function service(path: ServicePath, env: Record<string, string>): Promise<void> {
  const server = await startService(env);
  try {
    // Each gRPC transport is one HTTP/2 session (connect-node's gRPC transport is always HTTP/2).
    const transports = Array.from({ length: connections }, () =>
      createGrpcTransport({ baseUrl: server.url }),
    );
    const stubs: Array<Client<typeof StateService>> = Array.from({ length: clients }, (_, i) =>
      createClient(StateService, transports[i % connections]!),
    );
    const first = stubs[0]!;
    const workflowId = `bench-${path.replace("/", "-")}-${Date.now()}`;
    await first.createWorkflowState({ workflowId });
    await first.set({ workflowId, key: "doc", value: fromJson(ValueSchema, DOC) });
    const increments = await measure(
      path,
      "Increment",
      (i) => stubs[i]!.increment({ workflowId, key: "hot" }),
      server.pid,
    );
    const { value } = await first.get({ workflowId, key: "hot" });
    check(
      `${path} Increment`,
      increments,
      value?.kind.case === "numberValue" ? value.kind.value : NaN,
    );
    await measure(path, "Get", (i) => stubs[i]!.get({ workflowId, key: "doc" }), server.pid);

    // The same callers through one batching client: the operations they start together share
    // one Batch call (services/state/batching-client.ts). Latency is still per operation.
    const batched = `${path} batched` as const;
    const state = createBatchingStateClient(first);
    const before = await first.get({ workflowId, key: "hot" });
    const batchedIncrements = await measure(
      batched,
      "Increment",
      () => state.increment({ workflowId, key: "hot" }),
      server.pid,
    );
    const after = await first.get({ workflowId, key: "hot" });
    check(
      `${batched} Increment`,
      batchedIncrements,
      Number(after.value?.kind.value) - Number(before.value?.kind.value),
    );
    await measure(batched, "Get", () => state.get({ workflowId, key: "doc" }), server.pid);
  } finally {
    await server.close();
  }
}

// ---- report ------------------------------------------------------------------------------
const fixed = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : "-");
const count = (n: number): string =>
  Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-";
function ratios() {
  return rows.flatMap((row) => {
    const base = rows.find((b) => b.path === "bare ioredis" && b.op === row.op);
    if (row.path === "bare ioredis" || base === undefined) return [];
    return [
      {
        op: row.op,
        path: row.path,
        opsRatio: row.opsPerSec / base.opsPerSec,
        p99DiffMs: row.p99 - base.p99,
      },
    ];
  });
}
function versusBaseline(row: Row): string {
  const r = ratios().find((x) => x.op === row.op && x.path === row.path);
  if (r === undefined) return "baseline";
  return `${fixed(r.opsRatio, r.opsRatio < 0.1 ? 3 : 2)}× ops/s, p99 ${r.p99DiffMs >= 0 ? "+" : "−"}${fixed(Math.abs(r.p99DiffMs))} ms`;
}
const meets = (r: Row): boolean =>
  r.opsPerSec >= TARGET.opsPerSec && r.p99 <= TARGET.p99Ms && r.errors === 0;
// prettier-ignore
const columns: Column[] = [
  { title: "operation" }, { title: "path" }, { title: "ops/s", right: true }, { title: "p50 ms", right: true },
  { title: "p99 ms", right: true }, { title: "max ms", right: true }, { title: "errors", right: true },
  { title: "bench CPU µs/op", right: true }, { title: "service CPU µs/op", right: true }, { title: "redis CPU µs/op", right: true },
  { title: "vs bare ioredis" },
];
// prettier-ignore
const cells = (r: Row): string[] => [
  r.op, r.path, count(r.opsPerSec), fixed(r.p50), fixed(r.p99), fixed(r.max), String(r.errors),
  count(r.cpuUsPerOp), count(r.serviceCpuUsPerOp), count(r.redisCpuUsPerOp), versusBaseline(r),
];

function report(): void {
  const perTransport = Number.isInteger(clients / connections)
    ? String(clients / connections)
    : "≈" + fixed(clients / connections, 1);
  const setup =
    `${clients} clients (closed loops) over ${connections} HTTP/2 connection${connections === 1 ? "" : "s"} ` +
    `(${perTransport} Connect clients per transport); ${seconds} s per workload after ${warmup} s warm-up; ` +
    `${cpus().length} CPUs, Node ${process.version}; State service ${serverMode === "process" ? "in its own process (agentainer serve state)" : "in the benchmark's process"}, all on 127.0.0.1`;
  say(`\nState service benchmark: ${setup}.`);
  say(`service/memory: the service without REDIS_URL (still publishing events on NATS).\n`);
  say(textTable(columns, rows.map(cells)));
  say(
    `\nTarget (BRIEF): ≥ ${count(TARGET.opsPerSec)} ops/s and p99 ≤ ${TARGET.p99Ms} ms over gRPC against Redis`,
  );
  for (const r of rows.filter((x) => x.path.startsWith("service/redis"))) {
    say(
      `  ${r.op.padEnd(10)} ${r.path.padEnd(22)} ${meets(r) ? "MET" : "MISSED"}: ${count(r.opsPerSec)} ops/s, p99 ${fixed(r.p99)} ms`,
    );
  }
  say(`\nCorrectness: final counter = successful increments (warm-up included)`);
  for (const c of checks)
    say(
      `  ${c.what.padEnd(34)} ${c.counted} counted, ${c.stored} stored: ${c.ok ? "OK" : "MISMATCH"}`,
    );
  say(`\nMarkdown (${setup}):\n\n${markdownTable(columns, rows.map(cells))}`);
  if (flags.json) {
    const config = {
      seconds,
      warmup,
      clients,
      connections,
      cpus: cpus().length,
      node: process.version,
    };
    const target = {
      ...TARGET,
      met: rows
        .filter((r) => r.path.startsWith("service/redis"))
        .map((r) => ({ op: r.op, path: r.path, met: meets(r) })),
    };
    console.log(JSON.stringify({ config, rows, ratios: ratios(), target, checks }, null, 2));
  }
}

// ---- main --------------------------------------------------------------------------------
async function main(): Promise<void> {
  console.error("starting redis-server and nats-server on 127.0.0.1 ...");
  const [redis, nats] = await Promise.all([startRedisServer(), startNatsServer()]);
  procs.push(redis, nats);
  await baseline(redis.url);
  await service("service/redis", { REDIS_URL: redis.url, NATS_URL: nats.url });
  await service("service/memory", { NATS_URL: nats.url });
  report();
}

void main()
  .then(
    () => (checks.every((c) => c.ok) ? 0 : 1),
    (err: unknown) => {
      console.error("benchmark failed:", err);
      return 1;
    },
  )
  .then(async (code) => {
    clearTimeout(watchdog);
    await stopAll();
    process.exit(code);
  });
