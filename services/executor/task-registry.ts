import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../../lib/errors.js";
import { TaskOutput } from "./output.js";
import {
  isFinal,
  type ExecutionMode,
  type TaskOutcome,
  type TaskRecord,
  type TaskRef,
  type TaskStatus,
} from "./task.js";

/** What happened to a task, for events. */
export type TaskEventType =
  "created" | "started" | "succeeded" | "failed" | "timed_out" | "cancelled" | "oom_killed";

/** Where task changes are announced (events.ts publishes them on the bus). */
export interface TaskListener {
  taskChanged(task: TaskRecord, type: TaskEventType): void;
}

export interface NewTask {
  ref: TaskRef;
  mode: ExecutionMode;
  image: string;
  agentId: string;
  fingerprint: string;
}

export interface TaskFilter {
  workflowId?: string;
  stepId?: string;
  statuses?: readonly TaskStatus[];
  agentId?: string;
}

/** How long, and how many, ended tasks are kept (EXECUTOR_TASK_RETENTION_*). */
export interface Retention {
  /** Ended tasks are forgotten this long after they end. */
  ms: number;
  /** At most this many ended tasks are kept: past it, the oldest are forgotten. */
  maxTasks: number;
  /** At most this many bytes of ended tasks' output are kept: past it, the oldest are forgotten. */
  maxOutputBytes: number;
}

/**
 * The Executor's tasks: created once per task id (a repeated request with the same fingerprint
 * gets the existing task; a different one is ALREADY_EXISTS), moved through their statuses, kept
 * after they end for the retention period, within a count and an output size (so memory stays
 * bounded however many tasks run in that period). Running tasks are never forgotten.
 */
export class TaskRegistry {
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly settle = new Map<string, (o: TaskOutcome) => void>();
  /** The ended tasks, oldest end first (a Map keeps insertion order). */
  private readonly ended = new Map<string, TaskRecord>();
  /** Output bytes the ended tasks hold. */
  private endedOutputBytes = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly options: {
      nodeId: string;
      maxOutputBytes: number;
      retention: Retention;
      listener: TaskListener;
      now?: () => number;
    },
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(60_000, options.retention.ms));
    this.sweeper.unref();
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** Registers a new task, or returns the existing one for a repeated request. */
  create(init: NewTask): { task: TaskRecord; created: boolean } {
    const existing = this.tasks.get(init.ref.taskId);
    if (existing !== undefined) {
      if (existing.fingerprint !== init.fingerprint) {
        throw new AlreadyExistsError(
          `task_id "${init.ref.taskId}" is already used by another task (workflow ` +
            `"${existing.ref.workflowId}", step "${existing.ref.stepId}", index ` +
            `${existing.ref.index}, attempt ${existing.ref.attempt}); use a new task_id`,
          { field: "ref.task_id" },
        );
      }
      return { task: existing, created: false };
    }
    let settle!: (o: TaskOutcome) => void;
    const done = new Promise<TaskOutcome>((resolve) => (settle = resolve));
    const task: TaskRecord = {
      ...init,
      nodeId: this.options.nodeId,
      output: new TaskOutput(this.options.maxOutputBytes),
      status: "pending",
      containerId: "",
      containerName: "",
      createMs: this.now(),
      startMs: undefined,
      endMs: undefined,
      outcome: undefined,
      done,
      cancel: undefined,
      cancelReason: undefined,
    };
    this.tasks.set(task.ref.taskId, task);
    this.settle.set(task.ref.taskId, settle);
    this.options.listener.taskChanged(task, "created");
    return { task, created: true };
  }

  get(taskId: string): TaskRecord {
    const task = this.tasks.get(taskId);
    if (task === undefined) {
      throw new NotFoundError(
        `no task "${taskId}" on this Executor (unknown, or ended and no longer kept: see EXECUTOR_TASK_RETENTION_MS, EXECUTOR_TASK_RETENTION_MAX and EXECUTOR_TASK_RETENTION_BYTES)`,
        { field: "task_id" },
      );
    }
    return task;
  }

  /** The task's process started. */
  started(task: TaskRecord): void {
    if (task.status !== "pending") return;
    task.status = "running";
    task.startMs = this.now();
    this.options.listener.taskChanged(task, "started");
  }

  /** The task ended. A task ends once: later calls are ignored. */
  finish(task: TaskRecord, outcome: TaskOutcome): void {
    if (isFinal(task.status)) return;
    task.status = outcome.status;
    task.outcome = outcome;
    task.endMs = this.now();
    task.cancel = undefined;
    task.output.end();
    this.options.listener.taskChanged(task, outcome.status as TaskEventType);
    this.settle.get(task.ref.taskId)?.(outcome);
    this.settle.delete(task.ref.taskId);
    this.ended.set(task.ref.taskId, task);
    this.endedOutputBytes += task.output.size;
    const { maxTasks, maxOutputBytes } = this.options.retention;
    for (const [id, t] of this.ended) {
      if (this.ended.size <= maxTasks && this.endedOutputBytes <= maxOutputBytes) break;
      this.forget(id, t);
    }
  }

  /** Tasks matching the filter, by create time then id, one page at a time. */
  list(
    filter: TaskFilter,
    pageSize: number,
    pageToken: string,
  ): { tasks: TaskRecord[]; nextPageToken: string } {
    if (filter.stepId && !filter.workflowId) {
      throw new InvalidArgumentError("step_id needs workflow_id", { field: "step_id" });
    }
    const size = pageSize === 0 ? 100 : pageSize;
    if (!Number.isInteger(size) || size < 1 || size > 1000) {
      throw new InvalidArgumentError(`page_size must be 0 to 1000; got ${pageSize}`, {
        field: "page_size",
      });
    }
    const filterKey = JSON.stringify([
      filter.workflowId ?? "",
      filter.stepId ?? "",
      [...(filter.statuses ?? [])].sort(),
      filter.agentId ?? "",
    ]);
    let after: { createMs: number; taskId: string } | undefined;
    if (pageToken !== "") {
      after = decodeToken(pageToken, filterKey);
    }
    const statuses = filter.statuses?.length ? new Set(filter.statuses) : undefined;
    const matching = [...this.tasks.values()]
      .filter(
        (t) =>
          (!filter.workflowId || t.ref.workflowId === filter.workflowId) &&
          (!filter.stepId || t.ref.stepId === filter.stepId) &&
          (!filter.agentId || t.agentId === filter.agentId) &&
          (statuses === undefined || statuses.has(t.status)),
      )
      .sort((a, b) => a.createMs - b.createMs || (a.ref.taskId < b.ref.taskId ? -1 : 1))
      .filter(
        (t) =>
          after === undefined ||
          t.createMs > after.createMs ||
          (t.createMs === after.createMs && t.ref.taskId > after.taskId),
      );
    const page = matching.slice(0, size);
    const last = page[page.length - 1];
    const nextPageToken =
      matching.length > size && last !== undefined
        ? Buffer.from(JSON.stringify([filterKey, last.createMs, last.ref.taskId])).toString(
            "base64url",
          )
        : "";
    return { tasks: page, nextPageToken };
  }

  /** Live tasks, for shutdown. */
  live(): TaskRecord[] {
    return [...this.tasks.values()].filter((t) => !isFinal(t.status));
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /** Ended tasks kept now, and the bytes of output they hold. */
  get kept(): { tasks: number; outputBytes: number } {
    return { tasks: this.ended.size, outputBytes: this.endedOutputBytes };
  }

  private sweep(): void {
    const cutoff = this.now() - this.options.retention.ms;
    for (const [id, t] of this.ended) {
      if ((t.endMs ?? 0) >= cutoff) break; // the rest ended later
      this.forget(id, t);
    }
  }

  private forget(taskId: string, task: TaskRecord): void {
    this.ended.delete(taskId);
    this.tasks.delete(taskId);
    this.endedOutputBytes -= task.output.size;
  }
}

function decodeToken(token: string, filterKey: string): { createMs: number; taskId: string } {
  try {
    const [key, createMs, taskId] = JSON.parse(Buffer.from(token, "base64url").toString()) as [
      string,
      number,
      string,
    ];
    if (key === filterKey && typeof createMs === "number" && typeof taskId === "string") {
      return { createMs, taskId };
    }
  } catch {
    // fall through
  }
  throw new InvalidArgumentError(
    "page_token is not one this server issued for these filters: start again with an empty token",
    { field: "page_token" },
  );
}
