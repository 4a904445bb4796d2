import { InvalidArgumentError } from "../../lib/errors.js";
import type { JobRecord, StepRecord } from "./run-store.js";

/** A request's page size: 0 means `fallback`, more than 1000 is INVALID_ARGUMENT. */
export function pageSize(requested: number, fallback: number, field: string): number {
  if (requested > 1000) {
    throw new InvalidArgumentError(`${field} is ${requested}; at most 1000`, { field });
  }
  return requested === 0 ? fallback : requested;
}

/** An opaque page token: the position of the next page, bound to the request's filters. */
export function writeToken(filter: string, offset: number): string {
  return Buffer.from(JSON.stringify({ f: filter, o: offset })).toString("base64url");
}

/** The position a token stands for; INVALID_ARGUMENT when it is malformed or from other filters. */
export function readToken(token: string, filter: string): number {
  if (token === "") return 0;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    parsed = undefined;
  }
  const t = parsed as { f?: unknown; o?: unknown } | undefined;
  if (typeof t?.f !== "string" || typeof t.o !== "number" || !Number.isInteger(t.o) || t.o < 0) {
    throw new InvalidArgumentError("page_token is malformed; pass next_page_token as received", {
      field: "page_token",
    });
  }
  if (t.f !== filter) {
    throw new InvalidArgumentError(
      "page_token belongs to a request with other filters; repeat the same filters or start over",
      { field: "page_token" },
    );
  }
  return t.o;
}

/**
 * The jobs of a started step at indexes [from, from + count), filling in those without a stored
 * record: a task is stored once it is dispatched, so an absent one is PENDING while its step runs
 * and CANCELLED (never run) once the step has ended.
 */
export function fillJobs(
  step: StepRecord,
  stored: readonly JobRecord[],
  from: number,
  count: number,
): JobRecord[] {
  const byIndex = new Map(stored.map((j) => [j.index, j]));
  const ended = step.status !== "running" && step.status !== "retrying";
  const out: JobRecord[] = [];
  for (let index = from; index < from + count; index++) {
    out.push(
      byIndex.get(index) ?? {
        stepId: step.stepId,
        index,
        status: ended ? "cancelled" : "pending",
        attempt: 0,
        attemptTaskId: "",
        agentId: "",
        containerId: "",
        containerName: "",
        poolId: step.poolId,
        leaseId: "",
        attemptStatus: undefined,
        createMs: step.startMs ?? 0,
        startMs: undefined,
        endMs: ended ? step.endMs : undefined,
        exitCode: undefined,
        error: ended ? "never ran: the step ended first" : "",
        nextAttemptMs: undefined,
        result: undefined,
      },
    );
  }
  return out;
}
