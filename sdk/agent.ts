/**
 * The TypeScript SDK for stream agents (docs/agent-protocol.md, "Stream agents"). An agent is a
 * program whose main process calls `serve`:
 *
 *   import { serve } from "../sdk/agent.js"; // bundled into the image with esbuild
 *   serve(async (input, ctx) => {
 *     const n = await ctx.state.increment("seen");
 *     ctx.log(`task ${ctx.task.id} is number ${n}`);
 *     return { doubled: (input as number) * 2 };
 *   });
 *
 * It announces itself, then takes tasks one at a time from stdin and writes results to stdout.
 * Never write to stdout yourself (console.log): stdout carries the protocol. Log with `ctx.log`
 * or to stderr (console.error). This file depends on nothing but Node, so it bundles into a
 * small agent image.
 */
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The task being handled. */
export interface Task {
  id: string;
  workflowId: string;
  stepId: string;
  attempt: number;
  index: number;
  /** The task's own environment variables (bound at dispatch). */
  env: Record<string, string>;
  input: Json;
}

/** A state operation the Executor refused; `code` is a gRPC status name such as NOT_FOUND. */
export class StateError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "StateError";
  }
}

/** The workflow's shared state (the task's own workflow; no other is reachable). */
export interface AgentState {
  /** The value of a key; throws StateError NOT_FOUND when it is not set. */
  get(key: string): Promise<Json>;
  /** The value, or `fallback` when the key is not set. */
  getOr(key: string, fallback: Json): Promise<Json>;
  set(key: string, value: Json): Promise<void>;
  /** Whether the key existed. */
  delete(key: string): Promise<boolean>;
  getAll(): Promise<Record<string, Json>>;
  putAll(values: Record<string, Json>): Promise<void>;
  /** Number of keys removed. */
  deleteAll(): Promise<number>;
  /** Adds `delta` (default 1) atomically; returns the new value. */
  increment(key: string, delta?: number): Promise<number>;
  /** Appends atomically; returns the list's new length. */
  append(key: string, ...values: Json[]): Promise<number>;
  /** Adds a member atomically; returns whether it was new. */
  addToSet(key: string, member: Json): Promise<boolean>;
  /**
   * Sets `value` only if the key currently equals `expected` (`undefined`: only if absent).
   * Returns whether it swapped and the current value.
   */
  compareAndSwap(
    key: string,
    expected: Json | undefined,
    value: Json,
  ): Promise<{ swapped: boolean; current: Json | undefined }>;
}

export interface TaskContext {
  task: Task;
  state: AgentState;
  /** A log line for this task (shown with the task's stderr). */
  log(message: string): void;
  /** Tells the Executor the task is alive (optional; accepted and, for now, not acted on). */
  heartbeat(): void;
  /** Aborted when the Executor cancels the task (or it times out): stop soon. */
  signal: AbortSignal;
}

export type Handler = (input: Json, ctx: TaskContext) => Promise<Json | void> | Json | void;

export interface ServeOptions {
  stdin?: Readable;
  stdout?: Writable;
}

type Reply =
  { ok: true; result: Record<string, Json> } | { ok: false; code: string; error: string };

/** Serves tasks until stdin ends. Resolves then. */
export async function serve(handler: Handler, options: ServeOptions = {}): Promise<void> {
  const input = options.stdin ?? process.stdin;
  const output = options.stdout ?? process.stdout;
  const send = (m: Record<string, Json>) => output.write(JSON.stringify(m) + "\n");
  const pending = new Map<string, (r: Reply) => void>();
  let requests = 0;
  let current: { id: string; abort: AbortController } | undefined;
  const queue: Array<Record<string, Json>> = [];
  const cancelledBeforeStart = new Set<string>();
  let wake: (() => void) | undefined;
  let ended = false;

  const lines = createInterface({ input, crlfDelay: Infinity });
  lines.on("line", (line) => {
    let m: Record<string, Json>;
    try {
      m = JSON.parse(line) as Record<string, Json>;
    } catch {
      process.stderr.write(
        `agentainer sdk: ignoring a line that is not JSON: ${line.slice(0, 200)}\n`,
      );
      return;
    }
    switch (m.type) {
      case "task":
        queue.push(m);
        wake?.();
        return;
      case "cancel":
        if (current !== undefined && current.id === m.task_id) {
          current.abort.abort(String(m.reason ?? "cancelled"));
        } else if (queue.some((q) => q.task_id === m.task_id)) {
          cancelledBeforeStart.add(String(m.task_id)); // cancelled while still queued
        }
        return;
      case "ping":
        send({ type: "pong", id: m.id ?? "" });
        return;
      case "state_result": {
        const settle = pending.get(String(m.request_id));
        pending.delete(String(m.request_id));
        settle?.(m as unknown as Reply);
        return;
      }
      default:
        process.stderr.write(`agentainer sdk: ignoring unknown message type ${String(m.type)}\n`);
    }
  });
  lines.once("close", () => {
    ended = true;
    wake?.();
  });

  send({ type: "ready", protocol: 1 });

  for (;;) {
    const m = queue.shift();
    if (m === undefined) {
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      continue;
    }
    const taskId = String(m.task_id);
    if (cancelledBeforeStart.delete(taskId)) {
      send({ type: "error", task_id: taskId, error: "cancelled before it started" });
      continue;
    }
    const abort = new AbortController();
    current = { id: taskId, abort };
    const call = (op: string, args: Record<string, Json>): Promise<Record<string, Json>> =>
      new Promise((resolve, reject) => {
        const requestId = `r${++requests}`;
        pending.set(requestId, (r) =>
          r.ok ? resolve(r.result) : reject(new StateError(r.code, r.error)),
        );
        send({ type: "state", task_id: taskId, request_id: requestId, op, ...args });
      });
    const ctx: TaskContext = {
      task: {
        id: taskId,
        workflowId: String(m.workflow_id),
        stepId: String(m.step_id),
        attempt: Number(m.attempt),
        index: Number(m.index),
        env: (m.env ?? {}) as Record<string, string>,
        input: m.input ?? null,
      },
      state: stateOf(call),
      log: (message) => send({ type: "log", task_id: taskId, message }),
      heartbeat: () => send({ type: "heartbeat", task_id: taskId }),
      signal: abort.signal,
    };
    try {
      const result = await handler(ctx.task.input, ctx);
      send({ type: "result", task_id: taskId, result: result ?? null });
    } catch (err) {
      send({
        type: "error",
        task_id: taskId,
        error: err instanceof Error ? err.message : String(err),
      });
    } finally {
      current = undefined;
    }
  }
}

function stateOf(
  call: (op: string, args: Record<string, Json>) => Promise<Record<string, Json>>,
): AgentState {
  return {
    get: async (key) => (await call("get", { key })).value ?? null,
    getOr: async (key, fallback) => {
      try {
        return (await call("get", { key })).value ?? null;
      } catch (err) {
        if (err instanceof StateError && err.code === "NOT_FOUND") return fallback;
        throw err;
      }
    },
    set: async (key, value) => void (await call("set", { key, value })),
    delete: async (key) => Boolean((await call("delete", { key })).existed),
    getAll: async () => ((await call("get_all", {})).values ?? {}) as Record<string, Json>,
    putAll: async (values) => void (await call("put_all", { values })),
    deleteAll: async () => Number((await call("delete_all", {})).deleted_count),
    increment: async (key, delta = 1) => Number((await call("increment", { key, delta })).value),
    append: async (key, ...values) => Number((await call("append", { key, values })).length),
    addToSet: async (key, member) => Boolean((await call("add_to_set", { key, member })).added),
    compareAndSwap: async (key, expected, value) => {
      const r = await call("compare_and_swap", {
        key,
        value,
        ...(expected === undefined ? {} : { expected }),
      });
      return { swapped: Boolean(r.swapped), current: "current" in r ? r.current : undefined };
    },
  };
}
