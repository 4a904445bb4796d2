import type { JsonValue } from "@bufbuild/protobuf";
import type { JobRecord } from "./run-store.js";
import type { TaskEnd } from "./task-input.js";

/** Job records read per store call. */
export const jobsPerPage = 1000;

export type ReadJobs = (fromIndex: number, limit: number) => Promise<JobRecord[]>;

/**
 * Every task of a started step as it ended, in index order, a page at a time: a task without a
 * record never ran and counts as cancelled. Only one page of records is in memory at once.
 */
export async function* taskEndPages(
  width: number,
  readJobs: ReadJobs,
): AsyncGenerator<TaskEnd[], void, undefined> {
  for (let from = 0; from < width; from += jobsPerPage) {
    const upTo = Math.min(from + jobsPerPage, width);
    const jobs = await readJobs(from, upTo - from);
    const ends: TaskEnd[] = [];
    let at = from;
    for (const j of jobs) {
      for (; at < j.index; at++) ends.push(neverRan(at));
      ends.push({
        index: j.index,
        succeeded: j.status === "succeeded" || j.status === "skipped",
        result: j.status === "succeeded" ? (j.result ?? null) : null,
        error: j.error,
      });
      at = j.index + 1;
    }
    for (; at < upTo; at++) ends.push(neverRan(at));
    yield ends;
  }
}

function neverRan(index: number): TaskEnd {
  return { index, succeeded: false, result: undefined, error: "cancelled" };
}

/** Bytes of a value's JSON text. */
export function jsonBytes(value: JsonValue | undefined): number {
  return Buffer.byteLength(JSON.stringify(value ?? null));
}

/**
 * The task ends of a step whole, or undefined once the JSON they become passes `limitBytes`: the
 * array of results (a step's output), and with `withFailures` also the failures a REDUCE task
 * gets. The caller never holds more than the limit allows, whatever the step's width.
 */
export async function collectWithin(
  pages: AsyncIterable<TaskEnd[]>,
  limitBytes: number,
  withFailures = false,
): Promise<TaskEnd[] | undefined> {
  return collectAs(pages, limitBytes, withFailures, (e) => e);
}

/** A step's output (one entry per task, null where it did not succeed) within the limit. */
export function outputWithin(
  pages: AsyncIterable<TaskEnd[]>,
  limitBytes: number,
): Promise<JsonValue[] | undefined> {
  return collectAs(pages, limitBytes, false, (e) => (e.succeeded ? (e.result ?? null) : null));
}

async function collectAs<T>(
  pages: AsyncIterable<TaskEnd[]>,
  limitBytes: number,
  withFailures: boolean,
  pick: (e: TaskEnd) => T,
): Promise<T[] | undefined> {
  const all: T[] = [];
  // "[" and "]", then each entry and its comma.
  let bytes = 2;
  for await (const page of pages) {
    for (const e of page) {
      bytes += jsonBytes(e.succeeded ? e.result : null) + 1;
      // {"index":n,"error":"..."},
      if (withFailures && !e.succeeded) bytes += 20 + String(e.index).length + jsonBytes(e.error);
      if (bytes > limitBytes) return undefined;
      all.push(pick(e));
    }
  }
  return all;
}
