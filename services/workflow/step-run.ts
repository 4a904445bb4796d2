import type { JsonValue } from "@bufbuild/protobuf";
import { emptyCounts } from "./counts.js";
import type { StepDef } from "./definition.js";
import type { Json } from "./expression.js";
import type { JobStatus, StepStatus } from "./lifecycle.js";
import type { ItemReader } from "./map-items.js";
import type { AgentLease } from "./ports.js";
import type { JobRecord, StepRecord } from "./run-store.js";
import type { TaskEnd } from "./task-input.js";

/** A lease kept by a step between two of its tasks, so the next task skips an Acquire. */
export interface HeldLease extends AgentLease {
  tasks: number;
  sinceMs: number;
}

/** One attempt in flight. */
export interface Flight {
  job: JobRecord;
  abort: AbortController;
  startedMs: number;
  lease?: HeldLease;
  /** Set when the run stopped this attempt on purpose: its end is CANCELLED, never retried. */
  cancelled?: string;
}

/**
 * Where one step of a run stands, in memory, in O(concurrency) objects whatever its width: the
 * next index never dispatched (items are taken in order from a cursor), the attempts in flight,
 * the tasks waiting for a retry, and one byte per task for its status. Finished tasks live only
 * in the store.
 */
export class StepRun {
  readonly record: StepRecord;
  /** MAP: its items, stored in pages when the step starts and read back as tasks launch. */
  items: ItemReader | undefined;
  /** Parent outputs, by step id, as tasks receive them. */
  parents: Record<string, JsonValue> = {};
  /**
   * MAP with a per-item `when`: the state keys it read, each read once (when the first item was
   * decided, right after the step started) so that every item is decided against the same state.
   * Not stored: after a restart, items not yet decided read the state again. Which items are
   * not yet decided is in the store: see Run.launch.
   */
  readonly itemState = new Map<string, Promise<Json>>();
  /** REDUCE: its input's results and failures, built when the step starts. */
  fanIn: readonly TaskEnd[] | undefined;
  /** Next index never dispatched. */
  next = 0;
  /** Indexes whose retry delay has passed, waiting for a slot. */
  readonly ready: number[] = [];
  readonly flights = new Map<number, Flight>();
  /** Tasks waiting for their retry delay: their records and timers. */
  readonly retrying = new Map<number, { job: JobRecord; timer: NodeJS.Timeout | undefined }>();
  /** Leases between two tasks of this step (see Run.giveBack). */
  idleLeases: HeldLease[] = [];
  /** Why the step stopped early (failed fast, timed out, cancelled), and how it ends. */
  stopped: { status: "failed" | "cancelled"; message: string } | undefined;
  /** A step start (its `when`, its items) or end (its output) is being worked out. */
  busy = false;
  timer: NodeJS.Timeout | undefined;
  /** The first task failure, for the step's status message. */
  firstFailure = "";
  /** TASK / REDUCE: the single task's result once it succeeded. */
  singleResult: JsonValue | undefined;
  /** POOLED: how tasks reach the agents (an existing pool's own mode, read when the step opens). */
  mode: "exec" | "stream" | undefined;
  /** Per index: 0 not dispatched, else a status code (see codes). */
  statuses: Uint8Array = new Uint8Array(0);

  constructor(
    readonly def: StepDef,
    record: StepRecord | undefined,
  ) {
    this.record = record ?? {
      stepId: def.id,
      status: "pending",
      statusMessage: "",
      width: 0,
      poolId: "",
      counts: emptyCounts(),
      startMs: undefined,
      endMs: undefined,
      output: undefined,
    };
  }

  get status(): StepStatus {
    return this.record.status;
  }

  get width(): number {
    return this.record.width;
  }

  /** Tasks ready to launch now. */
  get waiting(): number {
    if (this.stopped !== undefined || !this.isActive) return 0;
    return this.width - this.next + this.ready.length;
  }

  get isActive(): boolean {
    return this.record.status === "running" || this.record.status === "retrying";
  }

  /** Nothing runs, waits to launch or waits for a retry. */
  get idle(): boolean {
    return (
      this.flights.size === 0 &&
      this.retrying.size === 0 &&
      (this.stopped !== undefined || (this.next >= this.width && this.ready.length === 0))
    );
  }

  /** Sets the width and counts of a step that starts running now. */
  open(width: number): void {
    this.record.width = width;
    this.record.counts = { ...emptyCounts(), pending: width };
    this.statuses = new Uint8Array(width);
  }

  /** Moves one task between two statuses in the counts (and its status byte). */
  move(index: number, from: JobStatus, to: JobStatus): void {
    const c = this.record.counts;
    c[from]--;
    c[to]++;
    this.statuses[index] = codes[to];
  }

  /** Sets a task's status byte (when rebuilding from the store). */
  mark(index: number, status: JobStatus): void {
    this.statuses[index] = codes[status];
  }

  /** The next index to dispatch: a retry that is due first, then the cursor. */
  take(): number | undefined {
    if (this.ready.length > 0) return this.ready.shift();
    if (this.next < this.width) return this.next++;
    return undefined;
  }

  /** RUNNING while something runs or waits to launch, RETRYING when only retries wait. */
  liveStatus(): "running" | "retrying" {
    return this.flights.size === 0 && this.waiting === 0 && this.retrying.size > 0
      ? "retrying"
      : "running";
  }

  statusOf(index: number): JobStatus | undefined {
    const code = this.statuses[index] ?? 0;
    return code === 0 ? undefined : names[code];
  }
}

const codes: Record<JobStatus, number> = {
  pending: 1,
  running: 2,
  retrying: 3,
  succeeded: 4,
  failed: 5,
  skipped: 6,
  cancelled: 7,
};
const names: Record<number, JobStatus> = Object.fromEntries(
  Object.entries(codes).map(([k, v]) => [v, k as JobStatus]),
) as Record<number, JobStatus>;
