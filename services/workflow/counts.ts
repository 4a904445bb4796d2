import type { JobStatus } from "./lifecycle.js";

/** Tasks by status (TaskCounts without its total, which is their sum). */
export type JobCounts = Record<Exclude<JobStatus, never>, number>;

export function emptyCounts(): JobCounts {
  return {
    pending: 0,
    running: 0,
    retrying: 0,
    succeeded: 0,
    failed: 0,
    skipped: 0,
    cancelled: 0,
  };
}

/** Sum of the counts of several steps. */
export function sumCounts(all: Iterable<JobCounts>): JobCounts {
  const total = emptyCounts();
  for (const c of all) {
    for (const k of Object.keys(total) as JobStatus[]) total[k] += c[k];
  }
  return total;
}

export function totalOf(c: JobCounts): number {
  return c.pending + c.running + c.retrying + c.succeeded + c.failed + c.skipped + c.cancelled;
}
