/**
 * The TypeScript SDK for one-shot (cold) and exec agents (docs/agent-protocol.md, "What every
 * task receives" and "Results and failures"): the program runs once per task.
 *
 *   import { runTask } from "../sdk/task.js"; // bundled into the image with esbuild
 *   await runTask(async (input, ctx) => {
 *     await ctx.state.increment("reduced");
 *     return { total: 42 };
 *   });
 *
 * It reads the input from AGENTAINER_INPUT_FILE, writes the handler's return value to
 * AGENTAINER_RESULT_FILE, and on a thrown error writes its message to AGENTAINER_ERROR_FILE and
 * exits 1. State operations go over the task's named pipes, one at a time. Depends on nothing
 * but Node.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export class StateError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "StateError";
  }
}

export interface TaskInfo {
  workflowId: string;
  stepId: string;
  taskId: string;
  attempt: number;
  index: number;
}

export interface OneShotContext {
  task: TaskInfo;
  /** One state operation (docs/agent-protocol.md, "State operations"); returns its result. */
  state: {
    call(op: string, args?: Record<string, Json>): Promise<Record<string, Json>>;
    get(key: string): Promise<Json>;
    set(key: string, value: Json): Promise<void>;
    increment(key: string, delta?: number): Promise<number>;
    append(key: string, ...values: Json[]): Promise<number>;
  };
}

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined)
    throw new Error(`${name} is not set: is this running as an Agentainer task?`);
  return value;
}

/** Reads one line from a named pipe (opened for each reply, as a shell's `read` would). */
async function readLine(path: string): Promise<string> {
  const fh = await open(path, "r");
  try {
    const chunks: Buffer[] = [];
    const one = Buffer.alloc(1);
    for (;;) {
      const { bytesRead } = await fh.read(one, 0, 1, null);
      if (bytesRead === 0 || one[0] === 10) break;
      chunks.push(Buffer.from(one));
    }
    return Buffer.concat(chunks).toString("utf8");
  } finally {
    await fh.close();
  }
}

let queue: Promise<unknown> = Promise.resolve();

async function call(op: string, args: Record<string, Json> = {}): Promise<Record<string, Json>> {
  // One request at a time per mailbox: chain them.
  const run = queue.then(async () => {
    writeFileSync(env("AGENTAINER_STATE_REQUEST"), JSON.stringify({ op, ...args }) + "\n");
    const reply = JSON.parse(await readLine(env("AGENTAINER_STATE_RESPONSE"))) as
      { ok: true; result: Record<string, Json> } | { ok: false; code: string; error: string };
    if (!reply.ok) throw new StateError(reply.code, reply.error);
    return reply.result;
  });
  queue = run.catch(() => undefined);
  return run;
}

/** Runs the task: input in, result or error out, exit code set. */
export async function runTask(
  handler: (input: Json, ctx: OneShotContext) => Promise<Json | void> | Json | void,
): Promise<void> {
  const ctx: OneShotContext = {
    task: {
      workflowId: env("AGENTAINER_WORKFLOW_ID"),
      stepId: env("AGENTAINER_STEP_ID"),
      taskId: env("AGENTAINER_TASK_ID"),
      attempt: Number(process.env.AGENTAINER_ATTEMPT ?? 1),
      index: Number(process.env.AGENTAINER_INDEX ?? 0),
    },
    state: {
      call,
      get: async (key) => (await call("get", { key })).value ?? null,
      set: async (key, value) => void (await call("set", { key, value })),
      increment: async (key, delta = 1) => Number((await call("increment", { key, delta })).value),
      append: async (key, ...values) => Number((await call("append", { key, values })).length),
    },
  };
  try {
    const input = JSON.parse(readFileSync(env("AGENTAINER_INPUT_FILE"), "utf8")) as Json;
    const result = await handler(input, ctx);
    writeFileSync(env("AGENTAINER_RESULT_FILE"), JSON.stringify(result ?? null));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    try {
      writeFileSync(env("AGENTAINER_ERROR_FILE"), message);
    } catch {
      process.stderr.write(message + "\n");
    }
    process.exitCode = 1;
  }
}
