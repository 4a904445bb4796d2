// State service benchmark (a script, not a test): Increment and Get over gRPC with N concurrent
// closed-loop clients, against real Redis and against the in-memory store, printed beside bare
// ioredis (HINCRBY / HGET) on the same redis-server in the same run.
//
//   npx tsx bench/state.ts [--seconds 5] [--clients 32] [--connections 4] [--warmup 1] [--json]
//
// Starts its own redis-server and nats-server on free loopback ports and the State service
// in-process; stops everything at the end, on Ctrl-C, and after a time limit.
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { StateService } from "../gen/agentainer/state/v1/state_pb.js";
import { canonicalJson } from "../lib/json-value.js";
import { startStateService } from "../services/state/main.js";
import { startNatsServer, startRedisServer, type RunningServer as Proc } from "../test/support/servers.js";
import { closedLoop, type Summary } from "./lib/stats.js";

const TARGET = { opsPerSec: 20_000, p99Ms: 5 };
const DOC: JsonObject = { owner: "agent-7", progress: 0.42, status: "running", step: 3 };

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    clients: { type: "string", default: "32" },
    connections: { type: "string", default: "4" },
    warmup: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
  },
});
function positive(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}; got "${text}"`);
  return n;
}
const seconds = positive("seconds", flags.seconds, 0.1);
const clients = Math.floor(positive("clients", flags.clients, 1));
const connections = Math.min(clients, Math.floor(positive("connections", flags.connections, 1)));
const warmup = positive("warmup", flags.warmup, 0);
// With --json, stdout carries only the JSON; everything for humans goes to stderr.
const say = flags.json ? console.error : console.log;
const progress = (text: string): void => void console.error(text);

type Op = "Increment" | "Get";
interface Row extends Summary {
  op: Op;
  path: "service/redis" | "service/memory" | "bare ioredis";
}
interface Check {
  what: string;
  counted: number;
  final: number;
  ok: boolean;
}
const rows: Row[] = [];
const checks: Check[] = [];

// ---- processes and cleanup ---------------------------------------------------------------
const procs: Proc[] = [];
async function cleanup(): Promise<void> {
  await Promise.all(procs.splice(0).map((p) => p.stop("SIGKILL").catch(() => undefined)));
}
function abort(reason: string, code: number): void {
  console.error(`\n${reason}: stopping redis-server and nats-server`);
  void Promise.all(procs.splice(0).map((p) => p.stop("SIGKILL").catch(() => undefined))).finally(() =>
    process.exit(code),
  );
}
process.once("SIGINT", () => abort("interrupted", 130));
process.once("SIGTERM", () => abort("terminated", 143));
const limitMs = (6 * (seconds + warmup) + 60) * 1000;
const watchdog = setTimeout(() => abort(`time limit of ${Math.round(limitMs / 1000)} s reached`, 2), limitMs);

/** A warm-up window (discarded) then the measured window. Returns successful calls in both. */
async function measure(path: Row["path"], op: Op, call: (client: number) => Promise<unknown>): Promise<number> {
  progress(`  ${path.padEnd(14)} ${op} ...`);
  const warm = warmup > 0 ? await closedLoop({ clients, durationMs: warmup * 1000, call }) : undefined;
  const result = await closedLoop({ clients, durationMs: seconds * 1000, call });
  rows.push({ op, path, ...result });
  return (warm?.ok ?? 0) + result.ok;
}

function check(what: string, counted: number, final: number): void {
  checks.push({ what, counted, final, ok: counted === final });
}

async function baseline(redisUrl: string): Promise<void> {
  // Same client options as the service's own connection (lib/infra.ts): one connection, auto-pipelining.
  const redis = new Redis(redisUrl, { enableAutoPipelining: true, maxRetriesPerRequest: 3 });
  try {
    const hash = "bench:baseline";
    await redis.hset(hash, "doc", canonicalJson(DOC));
    const increments = await measure("bare ioredis", "Increment", () => redis.hincrby(hash, "hot", 1));
    check("bare ioredis HINCRBY", increments, Number(await redis.hget(hash, "hot")));
    await measure("bare ioredis", "Get", () => redis.hget(hash, "doc"));
  } finally {
    redis.disconnect();
  }
}

async function service(path: "service/redis" | "service/memory", env: Record<string, string>): Promise<void> {
  const server = await startStateService({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: flags.json ? "error" : "warn", ...env });
  try {
    // One gRPC transport = one HTTP/2 session (connect-node 2 has no httpVersion option here: always "2").
    const transports = Array.from({ length: connections }, () => createGrpcTransport({ baseUrl: server.url }));
    const stubs: Array<Client<typeof StateService>> = Array.from({ length: clients }, (_, i) =>
      createClient(StateService, transports[i % connections] ?? transports[0]!),
    );
    const first = stubs[0]!;
    const workflowId = `bench-${path.replace("/", "-")}-${Date.now()}`;
    await first.createWorkflowState({ workflowId });
    await first.set({ workflowId, key: "doc", value: fromJson(ValueSchema, DOC) });
    const increments = await measure(path, "Increment", (i) => stubs[i]!.increment({ workflowId, key: "hot" }));
    const final = await first.get({ workflowId, key: "hot" });
    check(`${path} Increment`, increments, final.value?.kind.case === "numberValue" ? final.value.kind.value : NaN);
    await measure(path, "Get", (i) => stubs[i]!.get({ workflowId, key: "doc" }));
  } finally {
    await server.close();
  }
}

// ---- report ------------------------------------------------------------------------------
const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : "-");
const fmtOps = (n: number): string => Math.round(n).toLocaleString("en-US");
const find = (path: Row["path"], op: Op): Row | undefined => rows.find((r) => r.path === path && r.op === op);
const ratios = (["Increment", "Get"] as const).flatMap((op) => {
  const base = find("bare ioredis", op);
  return (["service/redis", "service/memory"] as const).flatMap((path) => {
    const row = find(path, op);
    if (row === undefined || base === undefined) return [];
    return [{ op, path, opsRatio: row.opsPerSec / base.opsPerSec, p99DiffMs: row.p99 - base.p99 }];
  });
});
const ratioOf = (r: Row): string => {
  const x = ratios.find((q) => q.op === r.op && q.path === r.path);
  return x === undefined ? "1× (baseline)" : `${fmt(x.opsRatio)}×, p99 ${x.p99DiffMs >= 0 ? "+" : ""}${fmt(x.p99DiffMs)} ms`;
};
const meets = (r: Row): boolean => r.opsPerSec >= TARGET.opsPerSec && r.p99 <= TARGET.p99Ms && r.errors === 0;

function report(): void {
  const setup =
    `${clients} clients (closed loops), ${connections} HTTP/2 connection${connections === 1 ? "" : "s"} ` +
    `(${clients / connections} clients per transport), ${seconds} s per workload after ${warmup} s warm-up; ` +
    `${cpus().length} CPUs, Node ${process.version}; service in this process, all on 127.0.0.1`;
  say(`\nState service benchmark: ${setup}`);
  say(`service/memory = startStateService without REDIS_URL (still publishing on NATS)\n`);
  say(`${"op".padEnd(10)} ${"path".padEnd(15)} ${"ops/s".padStart(9)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} ${"max ms".padStart(7)} ${"errors".padStart(6)}  vs bare ioredis`);
  for (const r of rows) {
    say(`${r.op.padEnd(10)} ${r.path.padEnd(15)} ${fmtOps(r.opsPerSec).padStart(9)} ${fmt(r.p50).padStart(7)} ${fmt(r.p99).padStart(7)} ${fmt(r.max).padStart(7)} ${String(r.errors).padStart(6)}  ${ratioOf(r)}`);
  }
  say(`\nTarget (BRIEF): ≥ ${fmtOps(TARGET.opsPerSec)} ops/s and p99 ≤ ${TARGET.p99Ms} ms over gRPC against Redis`);
  for (const r of rows.filter((x) => x.path === "service/redis")) {
    say(`  ${r.op.padEnd(10)} ${meets(r) ? "MET" : "MISSED"} (${fmtOps(r.opsPerSec)} ops/s, p99 ${fmt(r.p99)} ms)`);
  }
  say(`\nCorrectness (final counter = successful increments, warm-up included)`);
  for (const c of checks) say(`  ${c.what.padEnd(28)} ${c.counted} counted, ${c.final} stored: ${c.ok ? "OK" : "MISMATCH"}`);

  say(`\nMarkdown (${setup}):\n`);
  say(`| operation | path | ops/s | p50 ms | p99 ms | max ms | vs bare ioredis |`);
  say(`| --- | --- | ---: | ---: | ---: | ---: | --- |`);
  for (const r of rows) {
    say(`| ${r.op} | ${r.path} | ${fmtOps(r.opsPerSec)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.max)} | ${ratioOf(r)} |`);
  }
  if (flags.json) {
    const config = { seconds, warmup, clients, connections, cpus: cpus().length, node: process.version };
    const target = { ...TARGET, met: rows.filter((r) => r.path === "service/redis").every(meets) };
    console.log(JSON.stringify({ config, rows, ratios, target, checks }, null, 2));
  }
}

// ---- main --------------------------------------------------------------------------------
async function main(): Promise<void> {
  progress("starting redis-server and nats-server on loopback ...");
  const [redis, nats] = await Promise.all([startRedisServer(), startNatsServer()]);
  procs.push(redis, nats);
  await baseline(redis.url);
  await service("service/redis", { REDIS_URL: redis.url, NATS_URL: nats.url });
  await service("service/memory", { NATS_URL: nats.url });
  report();
}

main()
  .then(
    () => (checks.every((c) => c.ok) ? 0 : 1),
    (err: unknown) => {
      console.error("benchmark failed:", err);
      return 1;
    },
  )
  .then(async (code) => {
    await cleanup();
    clearTimeout(watchdog);
    process.exit(code);
  });
