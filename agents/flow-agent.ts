/**
 * A workflow test and example agent, one-shot (cold or exec: when AGENTAINER_TASK_ID is set) or
 * stream (otherwise). It reads the task document the Workflow service sends ({input, parents,
 * index, item, results, failures}) and acts on its `item` (MAP) or `input` (other steps):
 *   { "incr": "key" }         increments that state key first
 *   { "set": { "k": v, ... } } sets those state keys first
 *   { "sleepMs": n }          sleeps n ms first (a stream task stops early when cancelled)
 *   { "sleepAttempts": a }    ... only in its first a attempts (with sleepMs)
 *   { "fail": true }          fails with "item <index> failed"
 *   { "failAttempts": n }     fails its first n attempts ("attempt <a> failed"), then succeeds
 *   { "double": x }           returns x * 2 as "value"
 *   { "emit": v }             returns v as "value"
 * and returns { index, attempt, value, parents, results, failures } (absent parts left out).
 * Built into the agentainer/node-agent image as /agents/flow-agent.mjs.
 */
import { serve, type Json } from "../sdk/agent.js";
import { runTask } from "../sdk/task.js";

type Doc = {
  input?: Json;
  parents?: Json;
  index?: number;
  item?: Json;
  results?: Json;
  failures?: Json;
};
type Spec = {
  incr?: string;
  sleepMs?: number;
  sleepAttempts?: number;
  fail?: boolean;
  failAttempts?: number;
  double?: number;
  set?: Record<string, Json>;
  emit?: Json;
};

interface Tools {
  attempt: number;
  increment(key: string): Promise<number>;
  set(key: string, value: Json): Promise<void>;
  signal?: AbortSignal;
}

async function handle(raw: Json, tools: Tools): Promise<Json> {
  const doc = (raw ?? {}) as Doc;
  const from = doc.item !== undefined ? doc.item : doc.input;
  const spec = (
    from !== null && typeof from === "object" && !Array.isArray(from) ? from : {}
  ) as Spec;
  if (typeof spec.incr === "string") await tools.increment(spec.incr);
  if (spec.set !== null && typeof spec.set === "object") {
    for (const [key, v] of Object.entries(spec.set)) await tools.set(key, v);
  }
  const sleeps = typeof spec.sleepAttempts !== "number" || tools.attempt <= spec.sleepAttempts;
  if (typeof spec.sleepMs === "number" && sleeps) {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, spec.sleepMs);
      tools.signal?.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  if (spec.fail === true) throw new Error(`item ${doc.index ?? 0} failed`);
  if (typeof spec.failAttempts === "number" && tools.attempt <= spec.failAttempts) {
    throw new Error(`attempt ${tools.attempt} failed`);
  }
  const out: Record<string, Json> = { index: doc.index ?? 0, attempt: tools.attempt };
  if (typeof spec.double === "number") out.value = spec.double * 2;
  if (spec.emit !== undefined) out.value = spec.emit;
  if (doc.parents !== undefined) out.parents = doc.parents;
  if (doc.results !== undefined) out.results = doc.results;
  if (doc.failures !== undefined) out.failures = doc.failures;
  return out;
}

if (process.env.AGENTAINER_TASK_ID !== undefined) {
  await runTask(async (input, ctx) =>
    handle(input as Json, {
      attempt: ctx.task.attempt,
      increment: (key) => ctx.state.increment(key),
      set: (key, v) => ctx.state.set(key, v),
    }),
  );
} else {
  await serve(async (input, ctx) =>
    handle(input, {
      attempt: ctx.task.attempt,
      increment: (key) => ctx.state.increment(key),
      set: (key, v) => ctx.state.set(key, v),
      signal: ctx.signal,
    }),
  );
}
