import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../../lib/errors.js";
import type { WorkflowStatus } from "./lifecycle.js";
import type { JobRecord, StepRecord, WorkflowRecord } from "./run-store.js";

/**
 * Pagination of ListWorkflows and ListJobs, kept free of transport and storage so it can be tested
 * on its own. Page tokens are opaque to clients: base64url of `{"f": <filter key>, "p": <cursor>}`,
 * where the cursor is the position of the next page (not an offset, so pages stay stable while
 * workflows are created or jobs change status) and the filter key binds the token to the filters
 * of the request that made it.
 */

/** The most a page may hold (ListWorkflows and ListJobs alike). */
export const maxPageSize = 1000;

/** A request's page size: 0 means `fallback`, more than 1000 is INVALID_ARGUMENT. */
export function pageSize(requested: number, fallback: number, field = "page_size"): number {
  if (!Number.isInteger(requested) || requested < 0 || requested > maxPageSize) {
    throw new InvalidArgumentError(`${field} is ${requested}; give 0 (the default) to 1000`, {
      field,
    });
  }
  return requested === 0 ? fallback : requested;
}

/** A short fingerprint of a request's filters (any JSON-serializable description of them). */
export function filterKey(filters: unknown): string {
  return createHash("sha256").update(JSON.stringify(filters)).digest("base64url").slice(0, 22);
}

/** The page token of the page starting at `cursor`, for requests with filter key `filter`. */
export function writeToken(filter: string, cursor: unknown): string {
  return Buffer.from(JSON.stringify({ f: filter, p: cursor })).toString("base64url");
}

/**
 * The cursor a page token stands for; undefined for the empty token (the first page).
 * INVALID_ARGUMENT (field page_token) when the token is malformed, holds a cursor `isCursor`
 * rejects, or was made for other filters.
 */
export function readCursor<C>(
  token: string,
  filter: string,
  isCursor: (p: unknown) => p is C,
  field = "page_token",
): C | undefined {
  if (token === "") return undefined;
  let parsed: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new Error("not base64url");
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    parsed = undefined;
  }
  const t = parsed as { f?: unknown; p?: unknown } | null | undefined;
  if (typeof t !== "object" || t === null || typeof t.f !== "string" || !isCursor(t.p)) {
    throw new InvalidArgumentError(
      `${field} is malformed; pass next_page_token as received, or an empty token for the first page`,
      { field },
    );
  }
  if (t.f !== filter) {
    throw new InvalidArgumentError(
      `${field} was issued for a request with other filters; repeat those filters or start again with an empty token`,
      { field },
    );
  }
  return t.p;
}

/** readCursor for tokens holding a plain offset (`writeToken(filter, offset)`); 0 for the empty token. */
export function readToken(token: string, filter: string, field = "page_token"): number {
  return readCursor(token, filter, isCount, field) ?? 0;
}

const isCount = (v: unknown): v is number =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

// -------------------------------------------------------------------------------------------------
// ListWorkflows

/** The filters of ListWorkflows, in domain terms. */
export interface WorkflowFilter {
  /** Any of these; empty means any status. */
  statuses: readonly WorkflowStatus[];
  /** Every one of these labels with these values. */
  labels: Readonly<Record<string, string>>;
}

/** Where the next page of workflows starts: just after this one in newest-first order. */
export interface WorkflowCursor {
  createMs: number;
  workflowId: string;
}

export function isWorkflowCursor(p: unknown): p is WorkflowCursor {
  const c = p as Partial<WorkflowCursor> | null;
  return (
    typeof c === "object" && c !== null && isCount(c.createMs) && typeof c.workflowId === "string"
  );
}

/** The filter key of a ListWorkflows request (status and label order do not matter). */
export function workflowFilterKey(f: WorkflowFilter): string {
  return filterKey({
    list: "workflows",
    statuses: [...new Set(f.statuses)].sort(),
    labels: Object.entries(f.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  });
}

export function matchesWorkflow(r: WorkflowRecord, f: WorkflowFilter): boolean {
  if (f.statuses.length > 0 && !f.statuses.includes(r.status)) return false;
  return Object.entries(f.labels).every(
    ([k, v]) => Object.hasOwn(r.labels, k) && r.labels[k] === v,
  );
}

/** Newest first (create time descending), then by id (code-unit order) among equals. */
export function newestFirst(a: WorkflowCursor, b: WorkflowCursor): number {
  if (a.createMs !== b.createMs) return b.createMs - a.createMs;
  return a.workflowId < b.workflowId ? -1 : a.workflowId > b.workflowId ? 1 : 0;
}

/**
 * One page of the workflows matching `filter`, newest first, starting after `after`, with the
 * cursor of the next page (undefined on the last).
 */
export function pageOfWorkflows(
  records: readonly WorkflowRecord[],
  filter: WorkflowFilter,
  after: WorkflowCursor | undefined,
  size: number,
): { page: WorkflowRecord[]; next: WorkflowCursor | undefined } {
  const rest = records
    .filter((r) => matchesWorkflow(r, filter))
    .filter((r) => after === undefined || newestFirst(r, after) > 0)
    .sort(newestFirst);
  const page = rest.slice(0, size);
  const last = page.at(-1);
  const next =
    rest.length > size && last !== undefined
      ? { createMs: last.createMs, workflowId: last.workflowId }
      : undefined;
  return { page, next };
}

// -------------------------------------------------------------------------------------------------
// ListJobs

/** Where the next page of jobs starts: the job at `index` of the step at `step` (definition order). */
export interface JobCursor {
  step: number;
  index: number;
}

export function isJobCursor(p: unknown): p is JobCursor {
  const c = p as Partial<JobCursor> | null;
  return typeof c === "object" && c !== null && isCount(c.step) && isCount(c.index);
}

/** The filter key of a ListJobs request. */
export function jobFilterKey(workflowId: string, stepId: string, statuses: readonly string[]) {
  return filterKey({
    list: "jobs",
    workflowId,
    stepId,
    statuses: [...new Set(statuses)].sort(),
  });
}

/** Whether a step's tasks are listed: only once it has started (a step SKIPPED or CANCELLED
 * before starting has a width, for its counts, but no tasks). */
export function listsJobs(step: StepRecord): boolean {
  return step.startMs !== undefined && step.width > 0;
}

/** Whether a started step still launches tasks (so those not dispatched yet are PENDING). */
function stepActive(step: StepRecord): boolean {
  return step.status === "running" || step.status === "retrying";
}

/**
 * The jobs of a started step at indexes [from, from + count), filling in those without a stored
 * record: a task is stored once it is dispatched, so an absent one is PENDING (attempt 0) while
 * its step runs and CANCELLED (it never ran) once the step has ended.
 */
export function fillJobs(
  step: StepRecord,
  stored: readonly JobRecord[],
  from: number,
  count: number,
): JobRecord[] {
  const byIndex = new Map(stored.map((j) => [j.index, j]));
  const ended = !stepActive(step);
  const out: JobRecord[] = [];
  for (let index = from; index < from + count; index++) {
    out.push(byIndex.get(index) ?? missingJob(step, index, ended));
  }
  return out;
}

function missingJob(step: StepRecord, index: number, ended: boolean): JobRecord {
  return {
    stepId: step.stepId,
    index,
    status: ended ? "cancelled" : "pending",
    attempt: 0,
    attemptTaskId: "",
    agentId: "",
    containerId: "",
    containerName: "",
    poolId: "",
    leaseId: "",
    attemptStatus: undefined,
    createMs: step.startMs ?? 0,
    startMs: undefined,
    endMs: ended ? (step.endMs ?? step.startMs) : undefined,
    exitCode: undefined,
    error: "",
    nextAttemptMs: undefined,
    result: undefined,
  };
}

/** Reads the stored jobs of a step with an index in [from, from + limit) (RunStore.jobs). */
export type JobReader = (stepId: string, from: number, limit: number) => Promise<JobRecord[]>;

/** Most job records read from the store at once. */
export const jobReadChunk = 1000;

/**
 * One page of jobs: over `steps` (the workflow's steps in definition order, with `undefined` for
 * those the request leaves out), by step then index, starting at `after`, keeping those whose
 * status is in `statuses` (all when empty). Returns each job with its step's position, and the
 * cursor of the next page: the first matching job left out (undefined when there is none).
 */
export async function pageOfJobs(
  steps: ReadonlyArray<StepRecord | undefined>,
  read: JobReader,
  opts: { statuses: readonly string[]; after: JobCursor | undefined; size: number },
): Promise<{ jobs: Array<{ step: number; job: JobRecord }>; next: JobCursor | undefined }> {
  const { statuses, after, size } = opts;
  const filtered = statuses.length > 0;
  const jobs: Array<{ step: number; job: JobRecord }> = [];
  for (let s = after?.step ?? 0; s < steps.length; s++) {
    const step = steps[s];
    if (step === undefined || !listsJobs(step)) continue;
    let from = after !== undefined && s === after.step ? after.index : 0;
    while (from < step.width) {
      // Unfiltered, a page needs exactly its own jobs plus one to know whether another follows.
      const want = filtered ? jobReadChunk : Math.min(jobReadChunk, size + 1 - jobs.length);
      const limit = Math.min(want, step.width - from);
      const stored = await read(step.stepId, from, limit);
      for (const job of fillJobs(step, stored, from, limit)) {
        if (filtered && !statuses.includes(job.status)) continue;
        if (jobs.length === size) return { jobs, next: { step: s, index: job.index } };
        jobs.push({ step: s, job });
      }
      from += limit;
    }
  }
  return { jobs, next: undefined };
}
