import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../../lib/errors.js";
import type {
  JobRecord,
  RunChange,
  RunStore,
  StepRecord,
  StoredEvent,
  WorkflowRecord,
} from "./run-store.js";

interface Run {
  workflow: WorkflowRecord;
  steps: Map<string, StepRecord>;
  /** Per step, jobs by index. */
  jobs: Map<string, Map<number, JobRecord>>;
  events: StoredEvent[];
  /** MAP item pages by `<step>:<page>`. */
  itemPages: Map<string, string>;
  owner: string;
  token: number;
  claimUntilMs: number;
}

/** Deep copy through JSON-compatible structure (Uint8Array kept), so callers never share state. */
function copy<T>(value: T): T {
  return structuredClone(value);
}

/** Workflow runs in this process (the one-process mode): lost when it exits. */
export class InMemoryRunStore implements RunStore {
  private readonly runs = new Map<string, Run>();

  private run(workflowId: string): Run {
    const run = this.runs.get(workflowId);
    if (run === undefined) {
      throw new NotFoundError(`no workflow "${workflowId}"`, { field: "workflow_id" });
    }
    return run;
  }

  create(
    record: WorkflowRecord,
    events: ReadonlyArray<{ timeMs: number; data: Uint8Array }> = [],
  ): Promise<void> {
    if (this.runs.has(record.workflowId)) {
      return Promise.reject(
        new AlreadyExistsError(`workflow "${record.workflowId}" already exists`, {
          field: "workflow_id",
        }),
      );
    }
    this.runs.set(record.workflowId, {
      workflow: copy(record),
      steps: new Map(),
      jobs: new Map(),
      events: events.map((e, i) => ({ sequence: i + 1, timeMs: e.timeMs, data: copy(e.data) })),
      itemPages: new Map(),
      owner: "",
      token: 0,
      claimUntilMs: 0,
    });
    return Promise.resolve();
  }

  get(workflowId: string): Promise<WorkflowRecord> {
    try {
      return Promise.resolve(copy(this.run(workflowId).workflow));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  list(): Promise<WorkflowRecord[]> {
    return Promise.resolve([...this.runs.values()].map((r) => copy(r.workflow)));
  }

  async steps(workflowId: string): Promise<StepRecord[]> {
    return copy([...this.run(workflowId).steps.values()]);
  }

  async jobs(
    workflowId: string,
    stepId: string,
    fromIndex: number,
    limit: number,
  ): Promise<JobRecord[]> {
    const byIndex = this.run(workflowId).jobs.get(stepId);
    if (byIndex === undefined) return [];
    const found: JobRecord[] = [];
    for (let i = fromIndex; i < fromIndex + limit; i++) {
      const j = byIndex.get(i);
      if (j !== undefined) found.push(copy(j));
    }
    return found;
  }

  async itemPage(workflowId: string, stepId: string, page: number): Promise<string | undefined> {
    return this.runs.get(workflowId)?.itemPages.get(`${stepId}:${page}`);
  }

  async events(workflowId: string, afterSequence: number, limit: number): Promise<StoredEvent[]> {
    const events = this.run(workflowId).events;
    return copy(events.slice(Math.max(0, afterSequence), Math.max(0, afterSequence) + limit));
  }

  async lastSequence(workflowId: string): Promise<number> {
    return this.run(workflowId).events.length;
  }

  async claim(
    workflowId: string,
    owner: string,
    ttlMs: number,
    nowMs: number,
  ): Promise<number | undefined> {
    const run = this.run(workflowId);
    if (run.owner !== owner) {
      if (run.owner !== "" && run.claimUntilMs > nowMs) return undefined;
      run.owner = owner;
      run.token++;
    }
    run.claimUntilMs = nowMs + ttlMs;
    return run.token;
  }

  async apply(
    workflowId: string,
    token: number,
    change: RunChange,
  ): Promise<{ applied: boolean; lastSequence: number }> {
    const run = this.run(workflowId);
    if (token !== run.token) {
      throw new FailedPreconditionError(
        `workflow "${workflowId}" is driven by another owner now (token ${run.token}, not ${token})`,
      );
    }
    for (const e of change.expect ?? []) {
      const job = run.jobs.get(e.stepId)?.get(e.index);
      if (job === undefined || job.attempt !== e.attempt || job.status !== e.status) {
        return { applied: false, lastSequence: run.events.length };
      }
    }
    if (change.workflow) Object.assign(run.workflow, copy(change.workflow));
    for (const s of change.steps ?? []) run.steps.set(s.stepId, copy(s));
    for (const j of change.jobs ?? []) {
      let byIndex = run.jobs.get(j.stepId);
      if (byIndex === undefined) {
        byIndex = new Map();
        run.jobs.set(j.stepId, byIndex);
      }
      byIndex.set(j.index, copy(j));
    }
    for (const p of change.itemPages ?? []) run.itemPages.set(`${p.stepId}:${p.page}`, p.items);
    for (const e of change.events ?? []) {
      run.events.push({ sequence: run.events.length + 1, timeMs: e.timeMs, data: copy(e.data) });
    }
    return { applied: true, lastSequence: run.events.length };
  }

  async delete(workflowId: string): Promise<boolean> {
    return this.runs.delete(workflowId);
  }
}
