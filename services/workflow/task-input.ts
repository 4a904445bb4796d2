import { createHash } from "node:crypto";
import type { JsonValue } from "@bufbuild/protobuf";
import type { Kind } from "./definition.js";

/** A task's id within its workflow, as jobs show it: `<step_id>-<index>`. */
export function jobTaskId(stepId: string, index: number): string {
  return `${stepId}-${index}`;
}

/**
 * The Executor task id of one attempt: deterministic, so that a restarted Workflow service that
 * dispatches the same attempt again gets the Executor's existing task instead of a second run.
 * Fits the Executor's 128 characters of [A-Za-z0-9_.-] (long ids are hashed).
 */
export function attemptTaskId(
  workflowId: string,
  stepId: string,
  index: number,
  attempt: number,
): string {
  const plain = `${workflowId}.${stepId}.${index}.${attempt}`;
  if (plain.length <= 128) return plain;
  const digest = createHash("sha256").update(`${workflowId}\n${stepId}`).digest("hex").slice(0, 40);
  return `t-${digest}.${index}.${attempt}`;
}

/** How one task of a step ended, as its dependants see it. */
export interface TaskEnd {
  index: number;
  succeeded: boolean;
  /** The agent's result when it succeeded. */
  result: JsonValue | undefined;
  /** Why it failed (failed tasks only). */
  error: string;
}

/** Everything a task's input document is made of (see "What a task receives" in the proto). */
export interface TaskInputParts {
  input: JsonValue;
  /** Each depends_on parent's output (null for a SKIPPED one). */
  parents: Readonly<Record<string, JsonValue>>;
  kind: Kind;
  index: number;
  item?: JsonValue;
  /**
   * The parent a MAP step takes its items from (from_step), or the fan-out parent a REDUCE step
   * takes its results from. Its output is left out of `parents` (the task has its own item, or
   * the results), so a MAP task's input does not grow with the item count and a REDUCE task's
   * does not carry every result twice.
   */
  workFrom?: string;
  /** REDUCE only: the fan-out parent's tasks, in index order (every index present). */
  fanIn?: readonly TaskEnd[];
}

/** The JSON document a task gets as its input. */
export function taskInput(p: TaskInputParts): JsonValue {
  const skip = p.kind === "map" || p.kind === "reduce" ? p.workFrom : undefined;
  const parents: Record<string, JsonValue> = {};
  for (const [id, output] of Object.entries(p.parents)) if (id !== skip) parents[id] = output;
  const doc: Record<string, JsonValue> = { input: p.input, parents, index: p.index };
  if (p.kind === "map") doc.item = p.item ?? null;
  if (p.kind === "reduce") {
    const ends = p.fanIn ?? [];
    doc.results = ends.map((e) => (e.succeeded ? (e.result ?? null) : null));
    doc.failures = ends
      .filter((e) => !e.succeeded)
      .map((e) => ({ index: e.index, error: e.error }));
  }
  return doc;
}

/**
 * A step's output: the task's result (TASK, REDUCE), or one entry per task in index order, null
 * for tasks that failed, were cancelled or skipped (PARALLEL, MAP). `ends` holds every task.
 */
export function stepOutput(kind: Kind, ends: readonly TaskEnd[]): JsonValue {
  const sorted = [...ends].sort((a, b) => a.index - b.index);
  if (kind === "task" || kind === "reduce") {
    const only = sorted[0];
    return only?.succeeded ? (only.result ?? null) : null;
  }
  return sorted.map((e) => (e.succeeded ? (e.result ?? null) : null));
}

/** The workflow's result: its sink step's output, or an object of every sink's output. */
export function workflowResult(
  sinks: readonly string[],
  outputs: ReadonlyMap<string, JsonValue>,
): JsonValue {
  if (sinks.length === 1) return outputs.get(sinks[0] as string) ?? null;
  const result: Record<string, JsonValue> = {};
  for (const id of sinks) result[id] = outputs.get(id) ?? null;
  return result;
}
