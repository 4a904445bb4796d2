import type { JsonValue } from "@bufbuild/protobuf";
import { AgentainerError } from "../../lib/errors.js";
import { resolvePointer } from "../../lib/json-pointer.js";
import type { Logger } from "../../lib/logger.js";
import type { WorkflowEvent } from "../../gen/agentainer/workflow/v1/events_pb.js";
import { emptyCounts, sumCounts } from "./counts.js";
import type { StepDef, WorkflowDefinition } from "./definition.js";
import { workflowEvents } from "./events.js";
import { evaluate, type EvalContext, type Json, type StepView } from "./expression.js";
import { advance, isTerminalStep, type StepStatus, type WorkflowStatus } from "./lifecycle.js";
import { stepEnd, stepMustStop, workflowEnd } from "./outcomes.js";
import type {
  AgentPools,
  AttemptOutcome,
  AttemptRef,
  AttemptSpec,
  TaskRunner,
  WorkflowState,
} from "./ports.js";
import { retryDelayMs } from "./retry.js";
import type { JobRecord, RunStore, StepRecord, WorkflowRecord } from "./run-store.js";
import { RunWriter } from "./run-writer.js";
import { planDispatch, type StepDemand } from "./slots.js";
import { stepStarting } from "./step-starting.js";
import { StepRun, type Flight, type HeldLease } from "./step-run.js";
import { attemptTaskId, taskInput, workflowResult, type TaskEnd } from "./task-input.js";
import { inlinePoolId } from "./pools.js";
import { inlineItems, ItemReader, itemsPerPage, pagesPerWrite, toItemPages } from "./map-items.js";
import { collectWithin, outputWithin, taskEndPages } from "./task-ends.js";

/** Knobs of the engine (see config.ts for their environment variables). */
export interface EngineSettings {
  /** Lease time to live asked of the Pool; leases are renewed at a third of it. */
  leaseTtlMs: number;
  /** How long a task waits for an agent before its attempt fails. */
  acquireWaitMs: number;
  /** A leased agent serves at most this many consecutive tasks of a step before going back. */
  leaseMaxTasks: number;
  /** ... and is given back after this long, so other users of the pool get their turn. */
  leaseMaxAgeMs: number;
  /** Progress events of a run are coalesced to one per this interval. */
  progressIntervalMs: number;
  /** Most items a MAP step may have. */
  maxMapItems: number;
  /**
   * Largest step output (JSON bytes) assembled whole: a bigger MAP or PARALLEL output stays in
   * its jobs (StepRecord.outputOmitted), and a REDUCE over bigger results fails.
   */
  maxOutputBytes: number;
}

/** Everything a run uses, shared by every run of the engine. */
export interface RunServices {
  store: RunStore;
  tasks: TaskRunner;
  pools: AgentPools;
  state: WorkflowState;
  /** Called with events once they are stored (to publish them and wake watchers). */
  announce: (events: WorkflowEvent[]) => void;
  logger: Logger;
  now: () => number;
  random: () => number;
  settings: EngineSettings;
}

const pageSize = 1000;

function describeOutcome(o: AttemptOutcome): string {
  // The Executor's error already says how the attempt ended ("exited with code 3: ...",
  // "timed out after 30s"); only an attempt without one gets its status as text.
  if (o.error !== "") return o.error;
  if (o.status === "timed_out") return "timed out";
  if (o.status === "oom_killed") return "killed: out of memory";
  if (o.exitCode !== undefined && o.exitCode !== 0) return `exited with code ${o.exitCode}`;
  return o.status;
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * Drives one workflow run: opens steps whose dependencies have finished (evaluating `when`,
 * reading map items), shares the run's task slots among running steps, dispatches attempts cold
 * or on leased agents, retries with backoff, enforces timeouts and the failure strategy, closes
 * steps with their outputs, and ends the run with its result. Every change goes through the
 * run's writer, so it is stored (and only then announced) and a restarted service resumes from
 * the store (`resume`). Only the holder of the run's claim drives it: the writer's fencing token
 * makes a run that was taken over stop (`abandon`).
 */
export class Run {
  readonly steps = new Map<string, StepRun>();
  private readonly writer: RunWriter;
  private readonly holder: string;
  private cursor = -1;
  private stopping: { final: "failed" | "cancelled"; message: string } | undefined;
  private finishing = false;
  private done = false;
  private pumpQueued = false;
  private deadline: NodeJS.Timeout | undefined;
  private leaseKeeper: NodeJS.Timeout | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private readonly dirty = new Set<StepRun>();
  private readonly log: Logger;

  constructor(
    private readonly svc: RunServices,
    readonly record: WorkflowRecord,
    readonly def: WorkflowDefinition,
    token: number,
    stepRecords: readonly StepRecord[],
    private readonly onEnd: (run: Run) => void,
  ) {
    const byId = new Map(stepRecords.map((s) => [s.stepId, s]));
    for (const s of def.steps) {
      const step = new StepRun(s, byId.get(s.id));
      if (s.pool.kind === "inline") step.record.poolId = inlinePoolId(record.workflowId, s.id);
      if (s.pool.kind === "existing") step.record.poolId = s.pool.poolId;
      this.steps.set(s.id, step);
    }
    this.holder = `workflow/${record.workflowId}`;
    this.log = svc.logger.child({ workflowId: record.workflowId });
    this.writer = new RunWriter(svc.store, record.workflowId, token, svc.announce, svc.now);
  }

  get workflowId(): string {
    return this.record.workflowId;
  }

  get ended(): boolean {
    return this.done;
  }

  /** Resolves once every change made so far is stored. */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  // ---------------------------------------------------------------------------------------------
  // Starting, resuming, cancelling, abandoning

  /** PENDING -> RUNNING: stores the start, then launches the steps without dependencies. */
  async begin(): Promise<void> {
    const from = this.record.status;
    const to = advance.workflow(`workflow "${this.workflowId}"`, from, "running");
    const now = this.svc.now();
    this.record.status = to;
    this.record.startMs = now;
    await this.writer.write({
      workflow: { status: to, startMs: now },
      steps: [...this.steps.values()].map((s) => s.record),
      events: [
        workflowEvents.statusChanged(this.workflowId, now, to, from, "", this.totalCounts()),
      ],
    });
    this.arm();
    this.pump();
  }

  /** Picks a RUNNING or CANCELLING run up where the store says it stands. */
  async resume(): Promise<void> {
    const mustStop: StepRun[] = [];
    for (const step of this.steps.values()) {
      if (!step.isActive) continue;
      await this.prepareInputs(step);
      if (step.def.kind === "map") step.items = this.itemReader(step, step.width);
      await this.reload(step);
      this.armStepTimer(step);
      const c = step.record.counts;
      const tally = { width: step.width, ...c };
      if (
        c.failed + c.cancelled > 0 &&
        stepMustStop(step.def.kind, tally, this.def.settings.failure)
      )
        mustStop.push(step);
    }
    this.arm();
    // A step that had already failed past its strategy when the service stopped stops again.
    for (const step of mustStop) this.stepFailed(step, step.firstFailure || "tasks failed");
    if (this.record.status === "cancelling") {
      this.stopAll("cancelled", this.record.statusMessage || "cancelled");
    }
    this.pump();
  }

  /** RUNNING -> CANCELLING; the run ends CANCELLED once nothing runs. */
  async cancel(reason: string): Promise<void> {
    const from = this.record.status;
    if (from === "cancelling") return;
    const to = advance.workflow(`workflow "${this.workflowId}"`, from, "cancelling");
    const message = reason === "" ? "cancelled" : `cancelled: ${reason}`;
    this.record.status = to;
    this.record.statusMessage = message;
    const now = this.svc.now();
    const stored = this.writer.write({
      workflow: { status: to, statusMessage: message },
      events: [
        workflowEvents.statusChanged(this.workflowId, now, to, from, message, this.totalCounts()),
      ],
    });
    this.stopAll("cancelled", message);
    await stored;
  }

  /**
   * Stops driving the run without touching its tasks (the claim was lost, or the service is
   * shutting down): another instance, or this one after a restart, resumes it from the store.
   */
  abandon(): void {
    if (this.done) return;
    this.done = true;
    this.clearTimers();
    for (const step of this.steps.values()) {
      this.releaseIdle(step);
      for (const f of step.flights.values()) f.abort.abort();
      for (const r of step.retrying.values()) if (r.timer) clearTimeout(r.timer);
      if (step.timer) clearTimeout(step.timer);
    }
    this.onEnd(this);
  }

  private arm(): void {
    const timeoutMs = this.def.settings.timeoutMs;
    if (timeoutMs > 0 && this.record.startMs !== undefined) {
      const left = this.record.startMs + timeoutMs - this.svc.now();
      this.deadline = setTimeout(
        () => this.stopAll("failed", `timed out after ${formatMs(timeoutMs)}`),
        Math.max(0, left),
      );
    }
    const every = Math.max(1000, Math.floor(this.svc.settings.leaseTtlMs / 3));
    this.leaseKeeper = setInterval(() => this.renewLeases(), every);
    this.leaseKeeper.unref();
  }

  private clearTimers(): void {
    if (this.deadline) clearTimeout(this.deadline);
    if (this.leaseKeeper) clearInterval(this.leaseKeeper);
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.deadline = this.leaseKeeper = this.progressTimer = undefined;
  }

  /** Something went wrong that the run cannot handle (the store failed, the claim was lost). */
  private fault(err: unknown): void {
    if (this.done) return;
    const lost = err instanceof AgentainerError && err.kind === "failed_precondition";
    this.log.error(
      { err },
      lost
        ? "run taken over by another instance: no longer driving it"
        : "run store failed: no longer driving the run (it resumes when the service restarts)",
    );
    this.abandon();
  }

  // ---------------------------------------------------------------------------------------------
  // The scheduling loop

  /** Asks for a scheduling pass (coalesced: one per microtask). */
  pump(): void {
    if (this.pumpQueued || this.done) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      try {
        this.drive();
      } catch (err) {
        this.fault(err);
      }
    });
  }

  private drive(): void {
    if (this.done || this.finishing) return;
    if (this.stopping) {
      for (const step of this.steps.values()) {
        if (step.status === "pending" && !step.busy)
          this.endUnstarted(step, "cancelled", this.stopping.message);
      }
    } else {
      for (const id of this.def.graph.order) {
        const step = this.steps.get(id) as StepRun;
        if (step.status !== "pending" || step.busy) continue;
        const deps = step.def.dependsOn.map((d) => this.steps.get(d) as StepRun);
        if (deps.every((d) => isTerminalStep(d.status))) this.open(step, deps);
      }
      this.dispatch();
    }
    for (const step of this.steps.values()) {
      if (!step.isActive || step.busy) continue;
      if (step.waiting === 0) this.releaseIdle(step);
      if (step.idle) this.close(step);
      else {
        const live = step.liveStatus();
        if (live !== step.status) {
          step.record.status = advance.step(`step ${step.def.id}`, step.status, live);
          this.markDirty(step);
        }
      }
    }
    const running = [...this.steps.values()].some((s) => !isTerminalStep(s.status) || s.busy);
    if (!running) void this.finish().catch((err) => this.fault(err));
  }

  private dispatch(): void {
    const active = [...this.steps.values()].filter((s) => s.isActive && !s.busy);
    const demands: StepDemand[] = active.map((s) => ({
      stepId: s.def.id,
      waiting: s.waiting,
      running: s.flights.size,
      maxWorkers: s.def.maxWorkers,
      ...(s.def.pool.kind === "inline" ? { poolSize: s.def.pool.policy.maxSize } : {}),
    }));
    // Tasks of steps that are opening or closing still hold slots.
    const held = [...this.steps.values()]
      .filter((s) => s.busy)
      .reduce((n, s) => n + s.flights.size, 0);
    const { picks, cursor } = planDispatch(
      demands,
      this.def.settings.maxParallel - held,
      this.cursor,
    );
    this.cursor = cursor;
    for (const id of picks) {
      const step = this.steps.get(id) as StepRun;
      const index = step.take();
      if (index !== undefined) this.launch(step, index);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Steps: open, stop, close

  private open(step: StepRun, deps: StepRun[]): void {
    const broken = deps.find((d) => d.status === "failed" || d.status === "cancelled");
    if (broken) {
      this.endUnstarted(
        step,
        "cancelled",
        `dependency ${broken.def.id} ended ${broken.status.toUpperCase()}`,
      );
      return;
    }
    const source = this.workSource(step);
    if (source !== undefined && this.steps.get(source)?.status === "skipped") {
      this.endUnstarted(step, "skipped", `its source of work, step ${source}, was skipped`);
      return;
    }
    step.busy = true;
    void this.opening(step)
      .catch((err) => this.fault(err))
      .finally(() => {
        step.busy = false;
        this.pump();
      });
  }

  /** The step a MAP (from_step) or REDUCE step takes its work from. */
  private workSource(step: StepRun): string | undefined {
    const d = step.def;
    if (d.kind === "map" && d.mapItems?.from === "step") return d.mapItems.stepId;
    if (d.kind === "reduce") return this.fanOutParent(d);
    return undefined;
  }

  private fanOutParent(d: StepDef): string | undefined {
    return d.dependsOn.find((p) => {
      const k = this.steps.get(p)?.def.kind;
      return k === "map" || k === "parallel";
    });
  }

  private async opening(step: StepRun): Promise<void> {
    const d = step.def;
    if (d.when !== undefined && !d.when.usesItem) {
      let holds: boolean;
      try {
        holds = await evaluate(d.when, this.evalContext());
      } catch (err) {
        await this.failUnstarted(step, `when: ${(err as Error).message}`);
        return;
      }
      if (!holds) {
        if (!this.stopping) this.endUnstarted(step, "skipped", `when "${d.when.source}" was false`);
        return;
      }
    }
    let width = d.kind === "parallel" ? d.parallelism : 1;
    let items: readonly JsonValue[] | "from jobs" | undefined;
    try {
      await this.prepareInputs(step);
      if (d.kind === "map") items = await this.resolveItems(step);
    } catch (err) {
      await this.failUnstarted(step, (err as Error).message);
      return;
    }
    if (items !== undefined) {
      // A store failure here is the run's fault (it resumes from the store), not the step's.
      width = await this.storeItems(step, items);
      step.items = this.itemReader(step, width);
    }
    if (this.stopping || this.done) return; // drive() cancels it
    const now = this.svc.now();
    step.open(width);
    step.record.status = advance.step(`step ${d.id}`, step.status, "running");
    step.record.startMs = now;
    this.armStepTimer(step);
    await this.writer.write({
      steps: [step.record],
      events: [
        stepStarting(
          this.workflowId,
          now,
          d,
          step.record,
          this.def.settings.maxParallel,
          step.mode,
        ),
        workflowEvents.progress(this.workflowId, now, [step.record], this.totalCounts()),
      ],
    });
  }

  /** A step that could not start (bad items, a `when` that cannot be evaluated) ends FAILED. */
  private async failUnstarted(step: StepRun, message: string): Promise<void> {
    const now = this.svc.now();
    step.open(0);
    step.record.status = "running";
    step.record.startMs = now;
    step.stopped = { status: "failed", message };
    this.log.warn({ stepId: step.def.id, message }, "step failed before running");
    if (this.def.settings.failure.mode === "fail_fast") {
      this.stopAll("failed", `step ${step.def.id}: ${message}`);
    }
  }

  /**
   * Reads what the step's tasks receive besides MAP items (see resolveItems): the pool's mode,
   * parents' outputs, REDUCE fan-in. A parent whose output was too large to assemble can only be
   * the step's source of work.
   */
  private async prepareInputs(step: StepRun): Promise<void> {
    const d = step.def;
    if (d.pool.kind === "inline") step.mode = d.pool.agentMode;
    if (d.pool.kind === "existing") {
      const pool = await this.svc.pools.describePool(d.pool.poolId);
      if (!pool.active) throw new Error(`pool ${d.pool.poolId} is draining or drained`);
      step.mode = pool.mode;
    }
    // Its tasks do not get this parent's output (see taskInput): it may be too large.
    const workFrom = this.workSource(step);
    step.parents = Object.fromEntries(
      d.dependsOn.map((p) => {
        const parent = this.steps.get(p) as StepRun;
        if (parent.record.outputOmitted === true && p !== workFrom) {
          throw new Error(`parent ${p}: its output is ${this.tooLarge()} to hand to a task`);
        }
        return [p, parent.status === "skipped" ? null : (parent.record.output ?? null)];
      }),
    );
    if (d.kind === "reduce") {
      const source = this.fanOutParent(d);
      if (source === undefined) step.fanIn = [];
      else {
        const parent = this.steps.get(source) as StepRun;
        const ends = await collectWithin(
          this.taskEndsOf(parent),
          this.svc.settings.maxOutputBytes,
          true,
        );
        if (ends === undefined) {
          throw new Error(`the results of step ${source} are ${this.tooLarge()} for one task`);
        }
        step.fanIn = ends;
      }
    }
  }

  private tooLarge(): string {
    const limit = this.svc.settings.maxOutputBytes;
    return `larger than ${limit} bytes of JSON (WORKFLOW_MAX_OUTPUT_BYTES), too large`;
  }

  private itemReader(step: StepRun, width: number): ItemReader {
    const read = (page: number) => this.svc.store.itemPage(this.workflowId, step.def.id, page);
    let repaged: Promise<unknown> | undefined;
    return new ItemReader(step.def.id, width, async (page) => {
      const text = await read(page);
      if (text !== undefined) return text;
      // A step started by a version of the service that kept items in memory has no pages:
      // they are stored now, once, from the step's source.
      repaged ??= this.resolveItems(step).then((items) => this.storeItems(step, items));
      await repaged;
      return read(page);
    });
  }

  /**
   * Stores a MAP step's items in pages (see map-items.ts), so that the run holds only the pages
   * its tasks are dispatched from, and a resumed run reads the same items whatever their source
   * holds by then. "from jobs": the items are the results of the from_step parent, whose output
   * was too large to assemble, read from its jobs a page at a time. Returns the item count.
   */
  private async storeItems(
    step: StepRun,
    items: readonly JsonValue[] | "from jobs",
  ): Promise<number> {
    if (items !== "from jobs") {
      await this.writeItemPages(step, items, 0, items.length);
      return items.length;
    }
    const src = step.def.mapItems as { stepId: string };
    const pending: JsonValue[] = [];
    let first = 0;
    for await (const ends of this.taskEndsOf(this.steps.get(src.stepId) as StepRun)) {
      for (const e of ends) pending.push(e.succeeded ? (e.result ?? null) : null);
      const whole = pending.length - (pending.length % itemsPerPage);
      await this.writeItemPages(step, pending, first, whole);
      pending.splice(0, whole);
      first += whole;
    }
    await this.writeItemPages(step, pending, first, pending.length);
    return first + pending.length;
  }

  /** Stores items[0, upTo) (item `first` on, a page boundary) as pages, a few pages a write. */
  private async writeItemPages(
    step: StepRun,
    items: readonly JsonValue[],
    first: number,
    upTo: number,
  ): Promise<void> {
    const chunk = itemsPerPage * pagesPerWrite;
    for (let at = 0; at < upTo; at += chunk) {
      const slice = items.slice(at, Math.min(at + chunk, upTo));
      const itemPages = toItemPages(step.def.id, slice, (first + at) / itemsPerPage);
      await this.writer.write({ itemPages });
    }
  }

  /** A MAP step's items, read from their source and checked. */
  private async resolveItems(step: StepRun): Promise<readonly JsonValue[] | "from jobs"> {
    const src = step.def.mapItems;
    let items: JsonValue | undefined;
    let where: string;
    if (src?.from === "step" && this.steps.get(src.stepId)?.record.outputOmitted === true) {
      if (src.pointer.length > 0) {
        throw new Error(
          `map_items: the output of step ${src.stepId} is ${this.tooLarge()} to resolve a path in; take its items whole (no path)`,
        );
      }
      return "from jobs";
    }
    switch (src?.from) {
      case "inline":
        return inlineItems(this.record.request, step.def.id);
      case "input":
        items = resolvePointer(this.def.input, src.pointer);
        where = "the input";
        break;
      case "state":
        items = await this.svc.state.get(this.workflowId, src.key);
        where = `state key "${src.key}"`;
        break;
      case "step":
        items = resolvePointer(step.parents[src.stepId] ?? null, src.pointer);
        where = `the output of step ${src.stepId}`;
        break;
      default:
        return [];
    }
    if (!Array.isArray(items)) {
      throw new Error(
        `map_items: ${where} holds ${items === undefined ? "nothing" : "no JSON array"}`,
      );
    }
    if (items.length > this.svc.settings.maxMapItems) {
      throw new Error(
        `map_items: ${where} holds ${items.length} items; at most ${this.svc.settings.maxMapItems}`,
      );
    }
    return items;
  }

  /** Rebuilds a running step's bookkeeping from its stored jobs (after a restart). */
  private async reload(step: StepRun): Promise<void> {
    const width = step.width;
    step.statuses = new Uint8Array(width);
    const counts = emptyCounts();
    let next = 0;
    const seen = new Uint8Array(width);
    for (let from = 0; from < width; from += pageSize) {
      const jobs = await this.svc.store.jobs(this.workflowId, step.def.id, from, pageSize);
      for (const j of jobs) {
        seen[j.index] = 1;
        next = Math.max(next, j.index + 1);
        counts[j.status]++;
        step.mark(j.index, j.status);
        if (j.status === "running") this.recover(step, j);
        else if (j.status === "retrying") this.waitForRetry(step, j);
        else if (
          j.status === "succeeded" &&
          (step.def.kind === "task" || step.def.kind === "reduce")
        )
          step.singleResult = j.result ?? null;
        if (!step.stopped && j.status === "failed" && step.firstFailure === "")
          step.firstFailure = `task ${j.stepId}-${j.index}: ${j.error}`;
      }
    }
    step.next = next;
    for (let i = 0; i < next; i++) {
      if (seen[i] === 0) {
        counts.pending++;
        step.ready.push(i);
      }
    }
    counts.pending += width - next;
    step.record.counts = counts;
  }

  private armStepTimer(step: StepRun): void {
    const ms = step.def.stepTimeoutMs;
    if (ms <= 0 || step.record.startMs === undefined) return;
    const left = step.record.startMs + ms - this.svc.now();
    step.timer = setTimeout(
      () => this.stepFailed(step, `step timed out after ${formatMs(ms)}`),
      Math.max(0, left),
    );
  }

  /** A step that never ran ends SKIPPED or CANCELLED. */
  private endUnstarted(step: StepRun, status: "skipped" | "cancelled", message: string): void {
    const d = step.def;
    const width = d.kind === "parallel" ? d.parallelism : d.kind === "map" ? 0 : 1;
    step.open(width);
    step.record.counts.pending = 0;
    step.record.counts[status] = width;
    step.record.status = advance.step(`step ${d.id}`, step.status, status);
    step.record.statusMessage = message;
    step.record.endMs = this.svc.now();
    step.record.output = null;
    this.dirty.delete(step);
    void this.writer
      .write({
        steps: [step.record],
        events: [
          workflowEvents.stepFinished(this.workflowId, step.record.endMs, step.record),
          workflowEvents.progress(
            this.workflowId,
            step.record.endMs,
            [step.record],
            this.totalCounts(),
          ),
        ],
      })
      .catch((err) => this.fault(err));
    this.pump();
  }

  /** A step failed for good; under FAIL_FAST the whole run stops with it. */
  private stepFailed(step: StepRun, message: string): void {
    this.stopStep(step, "failed", message);
    if (this.def.settings.failure.mode === "fail_fast") {
      this.stopAll("failed", `step ${step.def.id}: ${message}`);
    }
  }

  /** Stops launching a step's tasks and stops those in flight; it ends as `status` once idle. */
  private stopStep(step: StepRun, status: "failed" | "cancelled", message: string): void {
    if (step.stopped !== undefined || !step.isActive) return;
    step.stopped = { status, message };
    if (step.timer) clearTimeout(step.timer);
    const now = this.svc.now();
    const jobs: JobRecord[] = [];
    const events: WorkflowEvent[] = [];
    for (const [index, r] of step.retrying) {
      if (r.timer) clearTimeout(r.timer);
      const j = { ...r.job, status: "cancelled" as const, endMs: now, nextAttemptMs: undefined };
      step.move(index, "retrying", "cancelled");
      jobs.push(j);
      events.push(workflowEvents.taskFinished(this.workflowId, now, j, 0));
    }
    step.retrying.clear();
    // Never-dispatched tasks (and due retries' gaps) are cancelled without records of their own.
    for (const index of step.ready) {
      if (step.statusOf(index) === undefined) step.move(index, "pending", "cancelled");
    }
    step.ready.length = 0;
    const c = step.record.counts;
    c.cancelled += c.pending;
    c.pending = 0;
    step.next = step.width;
    for (const f of step.flights.values()) this.stopFlight(f, message);
    this.releaseIdle(step);
    this.markDirty(step);
    if (jobs.length > 0) {
      void this.writer.write({ jobs, events }).catch((err) => this.fault(err));
    }
    this.pump();
  }

  private stopFlight(f: Flight, reason: string): void {
    if (f.cancelled !== undefined) return;
    f.cancelled = reason;
    f.abort.abort();
    this.svc.tasks.cancel(f.job.attemptTaskId, reason).catch((err: unknown) => {
      this.log.warn({ err, taskId: f.job.attemptTaskId }, "could not cancel a task");
    });
  }

  /** Stops the whole run: nothing more launches, running tasks are stopped. */
  private stopAll(final: "failed" | "cancelled", message: string): void {
    if (this.stopping || this.done) return;
    this.stopping = { final, message };
    if (this.deadline) clearTimeout(this.deadline);
    for (const step of this.steps.values()) {
      if (step.isActive) this.stopStep(step, "cancelled", message);
    }
    this.pump();
  }

  private close(step: StepRun): void {
    step.busy = true;
    void this.closing(step)
      .catch((err) => this.fault(err))
      .finally(() => {
        step.busy = false;
        this.pump();
      });
  }

  private async closing(step: StepRun): Promise<void> {
    const d = step.def;
    const c = step.record.counts;
    const status: StepStatus =
      step.stopped?.status ??
      stepEnd(
        d.kind,
        {
          width: step.width,
          succeeded: c.succeeded,
          failed: c.failed,
          skipped: c.skipped,
          cancelled: c.cancelled,
        },
        this.def.settings.failure,
      );
    let message = step.stopped?.message ?? "";
    if (step.stopped === undefined && status !== "succeeded") {
      const failed = c.failed + c.cancelled;
      message =
        d.kind === "task" || d.kind === "reduce"
          ? step.firstFailure
          : `${failed} of ${step.width} tasks failed; first: ${step.firstFailure}`;
    }
    let output: JsonValue = null;
    let omitted = false;
    if (status === "succeeded" || status === "partially_succeeded") {
      if (d.kind === "task" || d.kind === "reduce") output = step.singleResult ?? null;
      else {
        // Built only up to the output limit: a wider step's output stays in its jobs.
        const entries = await outputWithin(this.taskEndsOf(step), this.svc.settings.maxOutputBytes);
        if (entries === undefined) omitted = true;
        else output = entries;
      }
    }
    if (this.done) return;
    const now = this.svc.now();
    step.record.status = advance.step(`step ${d.id}`, step.status, status);
    step.record.statusMessage = message;
    step.record.endMs = now;
    step.record.output = output;
    if (omitted) step.record.outputOmitted = true;
    if (step.timer) clearTimeout(step.timer);
    this.releaseIdle(step);
    this.dirty.delete(step);
    await this.writer.write({
      steps: [step.record],
      events: [
        workflowEvents.stepFinished(this.workflowId, now, step.record),
        workflowEvents.progress(this.workflowId, now, [step.record], this.totalCounts()),
      ],
    });
    if (status === "failed" && this.def.settings.failure.mode === "fail_fast") {
      this.stopAll("failed", `step ${d.id}: ${message}`);
    }
  }

  /** Every task of a started step as it ended, in index order, read back a page at a time. */
  private async *taskEndsOf(step: StepRun): AsyncGenerator<TaskEnd[], void, undefined> {
    await this.writer.flush();
    yield* taskEndPages(step.width, (from, limit) =>
      this.svc.store.jobs(this.workflowId, step.def.id, from, limit),
    );
  }

  private async finish(): Promise<void> {
    if (this.finishing || this.done) return;
    this.finishing = true;
    const from = this.record.status;
    const statuses = [...this.steps.values()].map((s) => s.status);
    let to: WorkflowStatus;
    let message = "";
    if (this.stopping?.final === "cancelled") {
      to = "cancelled";
      message = this.record.statusMessage || this.stopping.message;
    } else if (this.stopping) {
      to = "failed";
      message = this.stopping.message;
    } else {
      to = workflowEnd(statuses);
      if (to === "failed") {
        const bad = [...this.steps.values()].find((s) => s.status === "failed");
        message = bad ? `step ${bad.def.id}: ${bad.record.statusMessage}` : "";
      }
    }
    to = advance.workflow(`workflow "${this.workflowId}"`, from, to);
    let result: JsonValue | undefined;
    const omitted = this.def.graph.sinks.some((id) => this.steps.get(id)?.record.outputOmitted);
    if ((to === "succeeded" || to === "partially_succeeded") && !omitted) {
      const outputs = new Map<string, JsonValue>();
      for (const [id, s] of this.steps) outputs.set(id, s.record.output ?? null);
      result = workflowResult(this.def.graph.sinks, outputs);
    }
    const now = this.svc.now();
    this.clearTimers();
    this.record.status = to;
    this.record.statusMessage = message;
    this.record.endMs = now;
    this.record.result = result;
    const resultOmitted = (to === "succeeded" || to === "partially_succeeded") && omitted;
    if (resultOmitted) this.record.resultOmitted = true;
    const dirty = [...this.dirty];
    this.dirty.clear();
    await this.writer.write({
      workflow: {
        status: to,
        statusMessage: message,
        endMs: now,
        ...(result === undefined ? {} : { result }),
        ...(resultOmitted ? { resultOmitted } : {}),
      },
      events: [
        ...(dirty.length > 0
          ? [
              workflowEvents.progress(
                this.workflowId,
                now,
                dirty.map((s) => s.record),
                this.totalCounts(),
              ),
            ]
          : []),
        workflowEvents.statusChanged(
          this.workflowId,
          now,
          to,
          from,
          message,
          this.totalCounts(),
          result,
        ),
      ],
    });
    this.done = true;
    await this.cleanUp();
    this.onEnd(this);
  }

  /** After the end: inline pools go, the state's expiry is scheduled. Failures are logged only. */
  private async cleanUp(): Promise<void> {
    const work: Array<Promise<void>> = [];
    for (const step of this.steps.values()) {
      if (step.def.pool.kind === "inline") {
        work.push(this.svc.pools.deletePool(step.record.poolId));
      }
    }
    if (this.def.settings.stateTtlMs > 0) {
      work.push(this.svc.state.expire(this.workflowId, this.def.settings.stateTtlMs));
    }
    for (const r of await Promise.allSettled(work)) {
      if (r.status === "rejected")
        this.log.warn({ err: r.reason }, "clean-up after the run failed");
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Tasks

  private launch(step: StepRun, index: number): void {
    const retry = step.retrying.get(index);
    step.retrying.delete(index);
    const from = retry ? "retrying" : "pending";
    const prev = retry?.job;
    const attempt = (prev?.attempt ?? 0) + 1;
    const now = this.svc.now();
    const job: JobRecord = {
      stepId: step.def.id,
      index,
      status: "running",
      attempt,
      attemptTaskId: attemptTaskId(this.workflowId, step.def.id, index, attempt),
      agentId: "",
      containerId: "",
      containerName: "",
      poolId: step.record.poolId,
      leaseId: "",
      attemptStatus: undefined,
      createMs: prev?.createMs ?? step.record.startMs ?? now,
      startMs: now,
      endMs: undefined,
      exitCode: undefined,
      error: prev?.error ?? "",
      nextAttemptMs: undefined,
      result: undefined,
    };
    step.move(index, from, "running");
    const flight: Flight = { job, abort: new AbortController(), startedMs: now };
    step.flights.set(index, flight);
    this.markDirty(step);
    // A per-item `when` decides an item once, before its first attempt (a retry is the same
    // item). An attempt whose `when` could not be evaluated stores no attempt task id (see fly),
    // so the store alone says which items are still undecided, also after a resume.
    const decide = prev === undefined || prev.attemptTaskId === "";
    void this.fly(step, flight, decide).catch((err) => this.fault(err));
  }

  /** One attempt: its per-item `when` (if `decide`), an agent, the stored start, the run, the end. */
  private async fly(step: StepRun, flight: Flight, decide: boolean): Promise<void> {
    const d = step.def;
    const job = flight.job;
    const read = step.items?.read(job.index);
    const item = read instanceof Promise ? await read : read;
    // Against the state as the step's first evaluation read it (see itemState).
    if (decide && d.kind === "map" && d.when?.usesItem) {
      let holds: boolean;
      try {
        holds = await evaluate(d.when, this.evalContext(item ?? null, step.itemState));
      } catch (err) {
        // The attempt never became an Executor task, and the item stays undecided: its retry,
        // here or in the instance that resumes the run, decides it again.
        job.attemptTaskId = "";
        this.land(step, flight, this.failure(`when: ${(err as Error).message}`));
        return;
      }
      if (!holds) {
        this.skipItem(step, flight);
        return;
      }
    }
    if (flight.cancelled !== undefined) {
      this.land(step, flight, this.failure(flight.cancelled, "cancelled"));
      return;
    }
    const ref: AttemptRef = {
      workflowId: this.workflowId,
      stepId: d.id,
      taskId: job.attemptTaskId,
      attempt: job.attempt,
      index: job.index,
    };
    const spec = this.attemptSpec(step, job.index, item);
    if (d.pool.kind === "cold") {
      await this.writer.write({
        jobs: [job],
        events: [workflowEvents.taskStarted(this.workflowId, job.startMs ?? 0, job)],
      });
      const outcome = await this.svc.tasks
        .runCold(ref, spec)
        .catch((err: unknown) => this.failure(`executor: ${(err as Error).message}`));
      this.land(step, flight, outcome);
      return;
    }
    let lease = step.idleLeases.pop();
    if (lease === undefined) {
      try {
        const got = await this.svc.pools.acquire(
          step.record.poolId,
          this.holder,
          this.svc.settings.acquireWaitMs,
          this.svc.settings.leaseTtlMs,
          flight.abort.signal,
        );
        lease = { ...got, tasks: 0, sinceMs: this.svc.now() };
      } catch (err) {
        if (flight.cancelled !== undefined) {
          this.land(step, flight, this.failure(flight.cancelled, "cancelled"));
          return;
        }
        const message = `pool ${step.record.poolId}: ${(err as Error).message}`;
        const kind = err instanceof AgentainerError ? err.kind : undefined;
        this.land(step, flight, this.failure(message));
        if (kind === "not_found" || kind === "failed_precondition") this.stepFailed(step, message);
        return;
      }
    }
    flight.lease = lease;
    job.agentId = lease.agentId;
    job.containerId = lease.containerId;
    job.leaseId = lease.leaseId;
    if (flight.cancelled !== undefined) {
      this.giveBack(step, lease, "succeeded", false);
      this.land(step, flight, this.failure(flight.cancelled, "cancelled"));
      return;
    }
    await this.writer.write({
      jobs: [job],
      events: [workflowEvents.taskStarted(this.workflowId, job.startMs ?? 0, job)],
    });
    const outcome = await this.svc.tasks
      .runOnAgent(lease.agentId, this.agentMode(step), ref, spec)
      .catch((err: unknown) => ({
        ...this.failure(`executor: ${(err as Error).message}`),
        agentBroken: true,
      }));
    this.giveBack(step, lease, outcome.status, outcome.agentBroken);
    this.land(step, flight, outcome);
  }

  /** After a restart: waits for an attempt the store says was running. */
  private recover(step: StepRun, job: JobRecord): void {
    const flight: Flight = {
      job: { ...job },
      abort: new AbortController(),
      startedMs: job.startMs ?? this.svc.now(),
    };
    step.flights.set(job.index, flight);
    void (async () => {
      if (step.def.pool.kind === "cold") {
        const ref: AttemptRef = {
          workflowId: this.workflowId,
          stepId: step.def.id,
          taskId: job.attemptTaskId,
          attempt: job.attempt,
          index: job.index,
        };
        const item = step.items === undefined ? undefined : await step.items.get(job.index);
        if (flight.cancelled !== undefined) {
          // Stopped while its item was read: the cancel may have reached the Executor before
          // the task was looked up again, so it is sent once more, and the task's end recorded.
          await this.svc.tasks.cancel(job.attemptTaskId, flight.cancelled).catch(() => undefined);
          const ended = await this.svc.tasks.awaitExisting(job.attemptTaskId);
          this.land(step, flight, ended ?? this.failure(flight.cancelled, "cancelled"));
          return;
        }
        const outcome = await this.svc.tasks
          .runCold(ref, this.attemptSpec(step, job.index, item))
          .catch((err: unknown) => this.failure(`executor: ${(err as Error).message}`));
        this.land(step, flight, outcome);
        return;
      }
      const outcome = await this.svc.tasks.awaitExisting(job.attemptTaskId);
      if (job.leaseId !== "") {
        await this.svc.pools
          .release(
            job.leaseId,
            this.holder,
            outcome?.status === "succeeded" ? "succeeded" : "failed",
            "workflow service restarted",
          )
          .catch((err: unknown) => this.log.debug({ err }, "old lease already ended"));
      }
      if (outcome !== undefined) {
        this.land(step, flight, outcome);
        return;
      }
      // The Executor never got this attempt (or forgot it): dispatch it again, same id.
      flight.job.leaseId = "";
      flight.job.agentId = "";
      await this.fly(step, flight, false);
    })().catch((err) => this.fault(err));
  }

  private skipItem(step: StepRun, flight: Flight): void {
    const job = flight.job;
    step.flights.delete(job.index);
    step.move(job.index, "running", "skipped");
    const skipped: JobRecord = {
      ...job,
      status: "skipped",
      attempt: 0,
      attemptTaskId: "",
      startMs: undefined,
      endMs: this.svc.now(),
    };
    this.markDirty(step);
    void this.writer.write({ jobs: [skipped] }).catch((err) => this.fault(err));
    this.pump();
  }

  private failure(error: string, status: AttemptOutcome["status"] = "failed"): AttemptOutcome {
    return {
      status,
      exitCode: undefined,
      error,
      result: undefined,
      containerId: "",
      containerName: "",
      agentId: "",
      agentBroken: false,
    };
  }

  /** An attempt ended: the task succeeds, fails for good, waits for a retry, or is cancelled. */
  private land(step: StepRun, flight: Flight, o: AttemptOutcome): void {
    if (this.done) return;
    const d = step.def;
    const job = flight.job;
    const index = job.index;
    if (step.flights.get(index) !== flight) return; // already landed (a duplicate completion)
    step.flights.delete(index);
    const now = this.svc.now();
    job.attemptStatus = o.status;
    job.exitCode = o.exitCode;
    if (o.containerId) job.containerId = o.containerId;
    if (o.containerName) job.containerName = o.containerName;
    if (o.agentId) job.agentId = o.agentId;
    let durationMs = now - flight.startedMs;
    if (o.status === "succeeded") {
      job.status = "succeeded";
      job.result = o.result ?? null;
      job.endMs = now;
      step.move(index, "running", "succeeded");
      if (d.kind === "task" || d.kind === "reduce") step.singleResult = job.result;
    } else if (flight.cancelled !== undefined || o.status === "cancelled") {
      job.status = "cancelled";
      job.error = flight.cancelled ?? (o.error || "cancelled");
      job.endMs = now;
      step.move(index, "running", "cancelled");
      if (flight.cancelled === undefined) this.noteFailure(step, job);
    } else {
      job.error = describeOutcome(o);
      const canRetry =
        job.attempt < d.retry.maxAttempts && step.stopped === undefined && !this.stopping;
      if (canRetry) {
        const delay = retryDelayMs(d.retry, job.attempt, this.svc.random);
        job.status = "retrying";
        job.nextAttemptMs = now + delay;
        step.move(index, "running", "retrying");
        this.waitForRetry(step, job);
      } else {
        job.status = "failed";
        job.endMs = now;
        step.move(index, "running", "failed");
        this.noteFailure(step, job);
      }
    }
    if (durationMs < 0) durationMs = 0;
    this.markDirty(step);
    void this.writer
      .write({
        jobs: [job],
        events: [workflowEvents.taskFinished(this.workflowId, now, job, durationMs)],
      })
      .catch((err) => this.fault(err));
    this.pump();
  }

  /** A task failed for good: the failure strategy decides whether its step stops. */
  private noteFailure(step: StepRun, job: JobRecord): void {
    const text = `task ${job.stepId}-${job.index}: ${job.error}`;
    if (step.firstFailure === "") step.firstFailure = text;
    if (step.stopped !== undefined) return;
    const c = step.record.counts;
    const tally = {
      width: step.width,
      succeeded: c.succeeded,
      failed: c.failed,
      skipped: c.skipped,
      cancelled: c.cancelled,
    };
    const failure = this.def.settings.failure;
    if (!stepMustStop(step.def.kind, tally, failure)) return;
    const failed = c.failed + c.cancelled;
    const message =
      step.def.kind === "task" || step.def.kind === "reduce" || failure.mode === "fail_fast"
        ? text
        : `${failed} of ${step.width} tasks failed, past the tolerance; first: ${step.firstFailure}`;
    this.stepFailed(step, message);
  }

  private waitForRetry(step: StepRun, job: JobRecord): void {
    const entry: { job: JobRecord; timer: NodeJS.Timeout | undefined } = { job, timer: undefined };
    // Node's timers run on a monotonic clock and may fire a millisecond before the wall clock
    // reaches next_attempt_time: wait again for what is left, so no retry starts before it is due
    // (a few times at most, should the clock stand still).
    let rearmed = 0;
    const wait = () => {
      const left = (job.nextAttemptMs ?? 0) - this.svc.now();
      if (left > 0 && rearmed++ < 3) {
        entry.timer = setTimeout(wait, left);
        return;
      }
      entry.timer = undefined;
      step.ready.push(job.index);
      this.pump();
    };
    const delay = Math.max(0, (job.nextAttemptMs ?? 0) - this.svc.now());
    entry.timer = setTimeout(wait, delay);
    step.retrying.set(job.index, entry);
  }

  private agentMode(step: StepRun): "exec" | "stream" {
    return step.mode ?? "exec";
  }

  /** What an attempt of a task runs: the step's spec, its input, a timeout within the deadlines. */
  private attemptSpec(step: StepRun, index: number, item: JsonValue | undefined): AttemptSpec {
    const d = step.def;
    const now = this.svc.now();
    const limits: number[] = [];
    if (d.timeoutMs > 0) limits.push(d.timeoutMs);
    if (d.stepTimeoutMs > 0 && step.record.startMs !== undefined)
      limits.push(step.record.startMs + d.stepTimeoutMs - now);
    if (this.def.settings.timeoutMs > 0 && this.record.startMs !== undefined)
      limits.push(this.record.startMs + this.def.settings.timeoutMs - now);
    const timeoutMs = limits.length === 0 ? 0 : Math.max(1, Math.min(...limits));
    const workFrom = this.workSource(step);
    const input = taskInput({
      input: d.input ?? this.def.input,
      parents: step.parents,
      kind: d.kind,
      index,
      ...(d.kind === "map" ? { item: item ?? null } : {}),
      ...(workFrom === undefined ? {} : { workFrom }),
      ...(d.kind === "reduce" ? { fanIn: step.fanIn ?? [] } : {}),
    });
    return {
      image: d.image,
      command: d.command,
      args: d.args,
      env: d.env,
      limits: d.limits,
      network: d.network,
      keep: d.keep,
      timeoutMs,
      input,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Leases

  /** A lease after a task: kept for the step's next task, or given back to the pool. */
  private giveBack(
    step: StepRun,
    lease: HeldLease,
    status: AttemptOutcome["status"],
    broken: boolean,
  ): void {
    lease.tasks++;
    const s = this.svc.settings;
    const keep =
      status === "succeeded" &&
      !broken &&
      step.stopped === undefined &&
      !this.stopping &&
      step.waiting > step.idleLeases.length &&
      lease.tasks < s.leaseMaxTasks &&
      this.svc.now() - lease.sinceMs < s.leaseMaxAgeMs;
    if (keep) {
      step.idleLeases.push(lease);
      return;
    }
    this.release(lease, broken ? "broken" : status === "succeeded" ? "succeeded" : "failed");
  }

  private release(lease: HeldLease, outcome: "succeeded" | "failed" | "broken"): void {
    this.svc.pools
      .release(lease.leaseId, this.holder, outcome, `workflow ${this.workflowId}`)
      .catch((err: unknown) => this.log.warn({ err, leaseId: lease.leaseId }, "release failed"));
  }

  private releaseIdle(step: StepRun): void {
    const idle = step.idleLeases;
    step.idleLeases = [];
    for (const lease of idle) this.release(lease, "succeeded");
  }

  private renewLeases(): void {
    const ttl = this.svc.settings.leaseTtlMs;
    for (const step of this.steps.values()) {
      const leases = [
        ...step.idleLeases,
        ...[...step.flights.values()].flatMap((f) => (f.lease ? [f.lease] : [])),
      ];
      for (const lease of leases) {
        this.svc.pools.renew(lease.leaseId, this.holder, ttl).catch((err: unknown) => {
          this.log.warn({ err, leaseId: lease.leaseId }, "could not renew a lease");
          step.idleLeases = step.idleLeases.filter((l) => l !== lease);
        });
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Views

  /**
   * What `when` sees now. With `reads`, each state key is read once and the value kept there, so
   * every item of a MAP step is decided against the same state (not against what earlier items
   * wrote in the meantime).
   */
  private evalContext(item?: Json, reads?: Map<string, Promise<Json>>): EvalContext {
    const steps: Record<string, StepView> = {};
    for (const [id, s] of this.steps) {
      steps[id] = {
        output: (s.record.output ?? null) as Json,
        status: s.status,
        succeeded: s.record.counts.succeeded,
        failed: s.record.counts.failed,
      };
    }
    const read = async (key: string) =>
      ((await this.svc.state.get(this.workflowId, key)) ?? null) as Json;
    return {
      state: (key) => {
        if (reads === undefined) return read(key);
        let value = reads.get(key);
        if (value === undefined) {
          value = read(key);
          reads.set(key, value);
          // A failed read is not kept: the next item reads again.
          value.catch(() => reads.delete(key));
        }
        return value;
      },
      input: this.def.input as Json,
      ...(item === undefined ? {} : { item }),
      steps,
    };
  }

  totalCounts() {
    return sumCounts([...this.steps.values()].map((s) => s.record.counts));
  }

  private markDirty(step: StepRun): void {
    this.dirty.add(step);
    if (this.progressTimer !== undefined || this.done) return;
    this.progressTimer = setTimeout(() => {
      this.progressTimer = undefined;
      if (this.done || this.dirty.size === 0) return;
      const records = [...this.dirty].map((s) => s.record);
      this.dirty.clear();
      void this.writer
        .write({
          steps: records,
          events: [
            workflowEvents.progress(this.workflowId, this.svc.now(), records, this.totalCounts()),
          ],
        })
        .catch((err) => this.fault(err));
    }, this.svc.settings.progressIntervalMs);
  }
}
