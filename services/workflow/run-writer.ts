import type { WorkflowEvent } from "../../gen/agentainer/workflow/v1/events_pb.js";
import { AgentainerError } from "../../lib/errors.js";
import { encodeEvent } from "./events.js";
import type { ItemPage, JobRecord, RunChange, RunStore, StepRecord } from "./run-store.js";

/** A change as the engine makes it: events as messages, numbered once stored. */
export interface Change {
  workflow?: RunChange["workflow"];
  steps?: StepRecord[];
  jobs?: JobRecord[];
  events?: WorkflowEvent[];
  itemPages?: ItemPage[];
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

const jobKey = (j: JobRecord) => `${j.stepId}:${j.index}`;

/**
 * Writes one run's changes to its store, coalescing those made while a write is in flight into
 * the next one (later records of a step or job replace earlier ones; events keep their order).
 * A thousand task completions a second become a few dozen store writes, each one atomic. Events
 * are announced (`onStored`, with their sequence numbers) only after the write that holds them
 * has succeeded: stored before announced.
 */
export class RunWriter {
  private pending: {
    workflow: NonNullable<RunChange["workflow"]>;
    steps: Map<string, StepRecord>;
    jobs: Map<string, JobRecord>;
    events: WorkflowEvent[];
    itemPages: ItemPage[];
    waiters: Waiter[];
  } = RunWriter.empty();
  private writing: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly store: RunStore,
    private readonly workflowId: string,
    private readonly token: number,
    private readonly onStored: (events: WorkflowEvent[]) => void,
    private readonly now: () => number,
  ) {}

  private static empty() {
    return {
      workflow: {},
      steps: new Map<string, StepRecord>(),
      jobs: new Map<string, JobRecord>(),
      events: [] as WorkflowEvent[],
      itemPages: [] as ItemPage[],
      waiters: [] as Waiter[],
    };
  }

  /** The error that stopped this writer (the run was taken over, or the store failed), if any. */
  get failed(): unknown {
    return this.failure;
  }

  /** Queues a change; resolves once it is stored. Records are copied when queued. */
  write(change: Change): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const p = this.pending;
    if (change.workflow) Object.assign(p.workflow, change.workflow);
    for (const s of change.steps ?? []) p.steps.set(s.stepId, { ...s, counts: { ...s.counts } });
    for (const j of change.jobs ?? []) p.jobs.set(jobKey(j), { ...j });
    if (change.events) p.events.push(...change.events);
    if (change.itemPages) p.itemPages.push(...change.itemPages);
    const done = new Promise<void>((resolve, reject) => p.waiters.push({ resolve, reject }));
    this.kick();
    return done;
  }

  /** Resolves once everything queued so far is stored. */
  flush(): Promise<void> {
    return this.write({});
  }

  private kick(): void {
    if (this.writing !== undefined) return;
    this.writing = this.drain().finally(() => {
      this.writing = undefined;
      if (this.pending.waiters.length > 0 && this.failure === undefined) this.kick();
    });
  }

  private async drain(): Promise<void> {
    // Let the current burst of changes (one tick of completions) join this write.
    await new Promise<void>((r) => setImmediate(r));
    while (this.pending.waiters.length > 0 && this.failure === undefined) {
      const batch = this.pending;
      this.pending = RunWriter.empty();
      try {
        const time = this.now();
        const { lastSequence } = await this.applyWithRetry({
          ...(Object.keys(batch.workflow).length > 0 ? { workflow: batch.workflow } : {}),
          steps: [...batch.steps.values()],
          jobs: [...batch.jobs.values()],
          events: batch.events.map((e) => ({
            timeMs: e.time ? Number(e.time.seconds) * 1000 + e.time.nanos / 1e6 : time,
            data: encodeEvent(e),
          })),
          ...(batch.itemPages.length > 0 ? { itemPages: batch.itemPages } : {}),
        });
        const first = lastSequence - batch.events.length + 1;
        batch.events.forEach((e, i) => {
          e.sequence = BigInt(first + i);
        });
        for (const w of batch.waiters) w.resolve();
        if (batch.events.length > 0) this.onStored(batch.events);
      } catch (err) {
        this.failure = err;
        for (const w of [...batch.waiters, ...this.pending.waiters]) w.reject(err);
        this.pending = RunWriter.empty();
      }
    }
  }

  /** Transient store errors (a Redis reconnect) are retried a few times; a lost claim is not. */
  private async applyWithRetry(change: RunChange): Promise<{ lastSequence: number }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.apply(this.workflowId, this.token, change);
      } catch (err) {
        const final = err instanceof AgentainerError || attempt >= 5;
        if (final) throw err;
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
  }
}
