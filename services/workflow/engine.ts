import { randomBytes } from "node:crypto";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AgentainerError,
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
} from "../../lib/errors.js";
import type { EventBus } from "../../lib/events/event-bus.js";
import type { Logger } from "../../lib/logger.js";
import type { WorkflowEvent } from "../../gen/agentainer/workflow/v1/events_pb.js";
import {
  CreateWorkflowRequestSchema,
  type CreateWorkflowRequest,
} from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import {
  definitionFromProto,
  type DefinitionLimits,
  type WorkflowDefinition,
} from "./definition.js";
import { emptyCounts } from "./counts.js";
import { encodeEvent, publishWorkflowEvent, workflowEvents } from "./events.js";
import { advance, isTerminalWorkflow } from "./lifecycle.js";
import { inlinePoolOf } from "./pools.js";
import type { AgentPools, TaskRunner, WorkflowState } from "./ports.js";
import { Run, type EngineSettings } from "./run.js";
import type { RunStore, StepRecord, WorkflowRecord } from "./run-store.js";

export interface EngineOptions {
  store: RunStore;
  tasks: TaskRunner;
  pools: AgentPools;
  state: WorkflowState;
  bus: EventBus;
  logger: Logger;
  /** Checks that an image is present where tasks run (NOT_FOUND naming it otherwise). */
  checkImage: (image: string) => Promise<void>;
  limits: DefinitionLimits;
  settings: EngineSettings;
  /** This instance's name in run claims (unique per process). */
  owner: string;
  /** How long a claim lasts without renewal: a crashed instance's runs are resumed after it. */
  claimTtlMs: number;
  now?: () => number;
  random?: () => number;
  /** How often ended workflows past their retention are deleted (default 60 s). */
  sweepIntervalMs?: number;
}

/** A workflow as read: its record, definition and where its steps stand. */
export interface WorkflowSnapshot {
  record: WorkflowRecord;
  request: CreateWorkflowRequest;
  definition: WorkflowDefinition;
  /** In definition order; steps without a record yet are PENDING. */
  steps: StepRecord[];
  lastSequence: number;
}

/** Decoded requests up to this size are kept with their definitions. */
const maxCachedRequestBytes = 64 * 1024;

const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz";

/** `wf_` and 26 random characters. */
function newWorkflowId(): string {
  const bytes = randomBytes(26);
  let id = "wf_";
  for (const b of bytes) id += idAlphabet[b % 32];
  return id;
}

/**
 * The Workflow service's domain: validates and stores definitions, starts, cancels and deletes
 * runs, reads them back, and keeps every running workflow driven: it claims runs (renewing the
 * claims), resumes runs whose owner is gone (after a crash, its own included), and removes
 * workflows past their retention. Transport-free: service.ts maps it to gRPC.
 */
export class WorkflowEngine {
  private readonly runs = new Map<string, Run>();
  private readonly starting = new Set<string>();
  private readonly listeners = new Map<string, Set<() => void>>();
  /**
   * Definitions of recent and running workflows, with their decoded requests when small (a
   * request with 100,000 inline items is decoded when read, not kept as 100,000 objects).
   */
  private readonly definitions = new Map<
    string,
    { request: CreateWorkflowRequest | undefined; definition: WorkflowDefinition }
  >();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly now: () => number;
  private readonly random: () => number;
  private closed = false;

  constructor(private readonly o: EngineOptions) {
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
  }

  /** Resumes the runs nobody drives and starts the background loops (claims, resume, expiry). */
  async start(): Promise<void> {
    await this.resumeOrphans();
    const every = (ms: number, fn: () => Promise<void>) => {
      const t = setInterval(() => {
        fn().catch((err: unknown) => this.o.logger.warn({ err }, "background pass failed"));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(Math.max(100, Math.floor(this.o.claimTtlMs / 3)), () => this.renewClaims());
    every(this.o.claimTtlMs, () => this.resumeOrphans());
    every(this.o.sweepIntervalMs ?? 60_000, () => this.expire());
  }

  /** Stops driving runs (their tasks go on; a restarted service resumes them). */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const run of [...this.runs.values()]) {
      await run.flush().catch(() => {});
      run.abandon();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Commands

  /** Validates and stores a workflow (and starts it with `start`). Returns its id. */
  async create(req: CreateWorkflowRequest, paths?: (field: string) => string): Promise<string> {
    const definition = definitionFromProto(req, this.o.limits);
    await this.checkOutside(req, definition, paths ?? ((f) => f));
    const workflowId = req.workflowId || newWorkflowId();
    // A shallow copy (the request is not changed afterwards): a deep clone of a request with
    // 100,000 inline items would be 100,000 more objects.
    const stored: CreateWorkflowRequest = { ...req, workflowId, start: false };
    await this.o.state.create(workflowId, definition.settings.stateLimits);
    const now = this.now();
    const record: WorkflowRecord = {
      workflowId,
      name: req.name,
      labels: { ...req.labels },
      request: toBinary(CreateWorkflowRequestSchema, stored),
      status: "pending",
      statusMessage: "",
      createMs: now,
      startMs: undefined,
      endMs: undefined,
      result: undefined,
    };
    const created = workflowEvents.statusChanged(
      workflowId,
      now,
      "pending",
      undefined,
      "",
      emptyCounts(),
    );
    try {
      await this.o.store.create(record, [{ timeMs: now, data: encodeEvent(created) }]);
    } catch (err) {
      await this.o.state.remove(workflowId).catch(() => undefined);
      throw err;
    }
    created.sequence = 1n;
    this.announce([created]);
    this.definitions.set(workflowId, {
      request: record.request.byteLength <= maxCachedRequestBytes ? stored : undefined,
      definition,
    });
    if (req.start) {
      try {
        await this.startRun(workflowId);
      } catch (err) {
        // A create-and-start that cannot start stores nothing: the caller sees the reason and can
        // send the same request again once it is fixed.
        const current = await this.o.store.get(workflowId).catch(() => undefined);
        if (current?.status === "pending") {
          await this.delete(workflowId, false).catch((cleanupErr: unknown) =>
            this.o.logger.warn({ err: cleanupErr, workflowId }, "undoing a failed create"),
          );
        }
        throw err;
      }
    }
    return workflowId;
  }

  /** PENDING -> RUNNING. */
  async startRun(workflowId: string): Promise<void> {
    if (this.starting.has(workflowId) || this.runs.has(workflowId)) {
      throw new FailedPreconditionError(`workflow "${workflowId}" is already started`);
    }
    this.starting.add(workflowId);
    try {
      const record = await this.o.store.get(workflowId);
      advance.workflow(`workflow "${workflowId}"`, record.status, "running");
      const { definition } = this.definitionOf(record);
      const token = await this.claim(workflowId);
      await Promise.all(
        definition.steps.flatMap((s) => {
          const pool = inlinePoolOf(workflowId, s);
          return pool === undefined ? [] : [this.o.pools.ensurePool(pool)];
        }),
      );
      const run = this.newRun(record, definition, token, []);
      await run.begin();
    } finally {
      this.starting.delete(workflowId);
    }
  }

  /** Cancels a run (see CancelWorkflow). */
  async cancel(workflowId: string, reason: string): Promise<void> {
    if (reason.length > 1024) {
      throw new InvalidArgumentError("reason must be at most 1024 characters", { field: "reason" });
    }
    const run = this.runs.get(workflowId);
    if (run !== undefined && !run.ended) {
      await run.cancel(reason);
      return;
    }
    const record = await this.o.store.get(workflowId);
    if (record.status === "cancelled" || record.status === "cancelling") return;
    if (record.status !== "pending") {
      advance.workflow(`workflow "${workflowId}"`, record.status, "cancelling");
      throw new UnavailableError(
        `workflow "${workflowId}" is driven by another instance of the Workflow service; retry`,
      );
    }
    const token = await this.claim(workflowId);
    const message = reason === "" ? "cancelled" : `cancelled: ${reason}`;
    const now = this.now();
    const event = workflowEvents.statusChanged(
      workflowId,
      now,
      "cancelled",
      "pending",
      message,
      emptyCounts(),
    );
    const { lastSequence } = await this.o.store.apply(workflowId, token, {
      workflow: { status: "cancelled", statusMessage: message, endMs: now },
      events: [{ timeMs: now, data: encodeEvent(event) }],
    });
    event.sequence = BigInt(lastSequence);
    this.announce([event]);
  }

  /** Deletes a workflow with everything of it (see DeleteWorkflow). */
  async delete(workflowId: string, force: boolean): Promise<void> {
    const record = await this.o.store.get(workflowId);
    if (!isTerminalWorkflow(record.status) && record.status !== "pending") {
      if (!force) {
        throw new FailedPreconditionError(
          `workflow "${workflowId}" is ${record.status.toUpperCase()}; cancel it first or delete with force`,
        );
      }
      await this.cancel(workflowId, "deleted");
      await this.waitForEnd(workflowId);
    }
    const { definition } = this.definitionOf(record);
    const last = await this.o.store.lastSequence(workflowId).catch(() => 0);
    await this.o.store.delete(workflowId);
    this.definitions.delete(workflowId);
    const cleanup = [
      this.o.state.remove(workflowId),
      ...definition.steps.flatMap((s) => {
        const pool = inlinePoolOf(workflowId, s);
        return pool === undefined ? [] : [this.o.pools.deletePool(pool.poolId)];
      }),
    ];
    for (const r of await Promise.allSettled(cleanup)) {
      if (r.status === "rejected") {
        this.o.logger.warn({ err: r.reason, workflowId }, "clean-up of a deleted workflow failed");
      }
    }
    const deleted = workflowEvents.deleted(workflowId, this.now());
    deleted.sequence = BigInt(last + 1);
    this.announce([deleted]);
  }

  private async waitForEnd(workflowId: string): Promise<void> {
    for (;;) {
      const run = this.runs.get(workflowId);
      if (run === undefined || run.ended) return;
      await new Promise<void>((resolve) => {
        const off = this.subscribe(workflowId, () => {
          off();
          resolve();
        });
        setTimeout(() => {
          off();
          resolve();
        }, 200).unref();
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Queries

  async get(workflowId: string): Promise<WorkflowSnapshot> {
    const run = this.runs.get(workflowId);
    const record =
      run !== undefined && !run.ended ? run.record : await this.o.store.get(workflowId);
    const known = this.definitionOf(record);
    const definition = known.definition;
    const request = known.request ?? fromBinary(CreateWorkflowRequestSchema, record.request);
    let steps: StepRecord[];
    if (run !== undefined && !run.ended) {
      steps = definition.steps.map((s) => run.steps.get(s.id)?.record as StepRecord);
    } else {
      const stored = new Map((await this.o.store.steps(workflowId)).map((s) => [s.stepId, s]));
      steps = definition.steps.map(
        (s) =>
          stored.get(s.id) ?? {
            stepId: s.id,
            status: "pending",
            statusMessage: "",
            width: 0,
            poolId: "",
            counts: emptyCounts(),
            startMs: undefined,
            endMs: undefined,
            output: undefined,
          },
      );
    }
    const lastSequence = await this.o.store.lastSequence(workflowId);
    return { record: { ...record }, request, definition, steps, lastSequence };
  }

  list(): Promise<WorkflowRecord[]> {
    return this.o.store.list();
  }

  get store(): RunStore {
    return this.o.store;
  }

  /** Calls `listener` whenever events of the workflow are stored by this instance. */
  subscribe(workflowId: string, listener: () => void): () => void {
    let set = this.listeners.get(workflowId);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(workflowId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(workflowId);
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Runs

  /** The run's definition, and its decoded request when that is at hand (cached, or just decoded). */
  private definitionOf(record: WorkflowRecord): {
    definition: WorkflowDefinition;
    request: CreateWorkflowRequest | undefined;
  } {
    const cached = this.definitions.get(record.workflowId);
    if (cached !== undefined) return cached;
    const request = fromBinary(CreateWorkflowRequestSchema, record.request);
    const definition = definitionFromProto(request, this.o.limits);
    if (this.definitions.size >= 256) {
      const oldest = this.definitions.keys().next().value as string;
      if (!this.runs.has(oldest)) this.definitions.delete(oldest);
    }
    const small = record.request.byteLength <= maxCachedRequestBytes;
    this.definitions.set(record.workflowId, { request: small ? request : undefined, definition });
    return { definition, request };
  }

  private async claim(workflowId: string): Promise<number> {
    const token = await this.o.store.claim(workflowId, this.o.owner, this.o.claimTtlMs, this.now());
    if (token === undefined) {
      throw new UnavailableError(
        `workflow "${workflowId}" is driven by another instance of the Workflow service; retry`,
      );
    }
    return token;
  }

  private newRun(
    record: WorkflowRecord,
    definition: WorkflowDefinition,
    token: number,
    steps: StepRecord[],
  ): Run {
    const run = new Run(
      {
        store: this.o.store,
        tasks: this.o.tasks,
        pools: this.o.pools,
        state: this.o.state,
        announce: (events) => this.announce(events),
        logger: this.o.logger,
        now: this.now,
        random: this.random,
        settings: this.o.settings,
      },
      { ...record },
      definition,
      token,
      steps,
      (ended) => {
        if (this.runs.get(ended.workflowId) === ended) this.runs.delete(ended.workflowId);
        this.notify(ended.workflowId);
      },
    );
    this.runs.set(record.workflowId, run);
    return run;
  }

  private announce(events: WorkflowEvent[]): void {
    const ids = new Set<string>();
    for (const e of events) {
      publishWorkflowEvent(this.o.bus, e);
      ids.add(e.workflowId);
    }
    for (const id of ids) this.notify(id);
  }

  private notify(workflowId: string): void {
    for (const l of [...(this.listeners.get(workflowId) ?? [])]) l();
  }

  private async renewClaims(): Promise<void> {
    for (const run of [...this.runs.values()]) {
      const token = await this.o.store
        .claim(run.workflowId, this.o.owner, this.o.claimTtlMs, this.now())
        .catch((err: unknown) => {
          this.o.logger.warn({ err, workflowId: run.workflowId }, "could not renew a run's claim");
          return null;
        });
      if (token === undefined) {
        this.o.logger.error({ workflowId: run.workflowId }, "run claimed by another instance");
        run.abandon();
      }
    }
  }

  /** Takes over RUNNING and CANCELLING runs that no live instance drives. */
  private async resumeOrphans(): Promise<void> {
    if (this.closed) return;
    const records = await this.o.store.list();
    for (const record of records) {
      if (record.status !== "running" && record.status !== "cancelling") continue;
      if (this.runs.has(record.workflowId) || this.starting.has(record.workflowId)) continue;
      const token = await this.o.store
        .claim(record.workflowId, this.o.owner, this.o.claimTtlMs, this.now())
        .catch(() => undefined);
      if (token === undefined) continue;
      try {
        const fresh = await this.o.store.get(record.workflowId);
        if (fresh.status !== "running" && fresh.status !== "cancelling") continue;
        const { definition } = this.definitionOf(fresh);
        const steps = await this.o.store.steps(record.workflowId);
        const run = this.newRun(fresh, definition, token, steps);
        this.o.logger.info({ workflowId: record.workflowId }, "resuming a run");
        await run.resume();
      } catch (err) {
        this.runs.get(record.workflowId)?.abandon();
        this.o.logger.error({ err, workflowId: record.workflowId }, "could not resume a run");
      }
    }
  }

  /** Deletes ended workflows past their retention. */
  private async expire(): Promise<void> {
    const now = this.now();
    for (const record of await this.o.store.list()) {
      if (!isTerminalWorkflow(record.status) || record.endMs === undefined) continue;
      let retentionMs: number;
      try {
        retentionMs = this.definitionOf(record).definition.settings.retentionMs;
      } catch {
        continue;
      }
      if (retentionMs > 0 && record.endMs + retentionMs <= now) {
        await this.delete(record.workflowId, false).catch((err: unknown) => {
          this.o.logger.warn({ err, workflowId: record.workflowId }, "could not expire a workflow");
        });
      }
    }
  }

  /** Checks what needs other services: images present, existing pools there and matching. */
  private async checkOutside(
    req: CreateWorkflowRequest,
    definition: WorkflowDefinition,
    paths: (field: string) => string,
  ): Promise<void> {
    const images = new Map<string, string>();
    for (const [i, s] of definition.steps.entries()) {
      const f = `steps[${i}]`;
      if (s.pool.kind === "existing") {
        let pool;
        try {
          pool = await this.o.pools.describePool(s.pool.poolId);
        } catch (err) {
          if (err instanceof AgentainerError && err.kind === "not_found") {
            const field = paths(`${f}.pool_id`);
            throw new InvalidArgumentError(`${field}: no pool "${s.pool.poolId}"`, { field });
          }
          throw err;
        }
        if (s.image !== "" && s.image !== pool.image) {
          const field = paths(`${f}.image`);
          throw new InvalidArgumentError(
            `${field}: "${s.image}" differs from pool ${s.pool.poolId}'s image "${pool.image}"`,
            { field },
          );
        }
        if (s.pool.agentMode !== undefined && s.pool.agentMode !== pool.mode) {
          const field = paths(`${f}.agent_mode`);
          throw new InvalidArgumentError(
            `${field}: pool ${s.pool.poolId} runs ${pool.mode.toUpperCase()} agents`,
            { field },
          );
        }
      } else if (!images.has(s.image)) {
        images.set(s.image, paths(`${f}.image`));
      }
    }
    void req;
    for (const [image, field] of images) {
      try {
        await this.o.checkImage(image);
      } catch (err) {
        if (err instanceof AgentainerError && err.kind === "not_found") {
          throw new InvalidArgumentError(`${field}: ${err.message}`, { field });
        }
        throw err;
      }
    }
  }
}
