import { create, fromBinary, type JsonValue } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AgentainerError, InvalidArgumentError } from "../../lib/errors.js";
import { checkJson } from "../../lib/json-value.js";
import { msToTimestamp } from "../../lib/time.js";
import { WorkflowStatus as ProtoWorkflowStatus } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import {
  WorkflowEventSchema,
  WorkflowSnapshotSchema,
  type WorkflowEvent,
} from "../../gen/agentainer/workflow/v1/events_pb.js";
import { WorkflowService, type Workflow } from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { checkKey, checkWorkflowId } from "../state/validate.js";
import {
  countsToProto,
  jobStatusFromProto,
  jobToProto,
  stepProgressToProto,
  workflowStatusFromProto,
  workflowStatusToProto,
  workflowToProto,
  type WorkflowView,
} from "./convert.js";
import { sumCounts } from "./counts.js";
import type { DefinitionLimits } from "./definition.js";
import type { WorkflowEngine, WorkflowSnapshot } from "./engine.js";
import { workflowEvents } from "./events.js";
import { isTerminalWorkflow } from "./lifecycle.js";
import { mapReduceWorkflow, renamed } from "./mapreduce.js";
import {
  isJobCursor,
  isWorkflowCursor,
  jobFilterKey,
  pageOfJobs,
  pageOfWorkflows,
  pageSize,
  readCursor,
  workflowFilterKey,
  writeToken,
  type WorkflowFilter,
} from "./paging.js";
import type { StoredEvent } from "./run-store.js";

/**
 * GetWorkflowState / PutWorkflowState go to the State service (main.ts implements this over its
 * client). NOT_FOUND for an expired state passes through as is.
 */
export interface StateFacade {
  getAll(
    workflowId: string,
    keys: string[],
  ): Promise<{ values: Record<string, JsonValue>; version: bigint }>;
  putAll(workflowId: string, values: Record<string, JsonValue>): Promise<{ version: bigint }>;
}

export interface WorkflowServiceDeps {
  engine: WorkflowEngine;
  state: StateFacade;
  limits: DefinitionLimits;
}

/** Events a watch reads from the store at once. */
export const watchPageSize = 500;
/** How often a watch looks at the store without being woken (another instance may drive the run). */
export const watchPollMs = 500;

const terminalProto = new Set<ProtoWorkflowStatus>([
  ProtoWorkflowStatus.SUCCEEDED,
  ProtoWorkflowStatus.PARTIALLY_SUCCEEDED,
  ProtoWorkflowStatus.FAILED,
  ProtoWorkflowStatus.CANCELLED,
]);

/** Whether a watch ends after this event: the run ended, or the workflow was deleted. */
export function endsWatch(e: WorkflowEvent): boolean {
  const p = e.payload;
  return (
    p.case === "workflowDeleted" ||
    (p.case === "workflowStatusChanged" && terminalProto.has(p.value.status))
  );
}

/** Whether exclude_task_events leaves the event out. */
export function isTaskEvent(e: WorkflowEvent): boolean {
  return e.payload.case === "taskStarted" || e.payload.case === "taskFinished";
}

/** A stored event as sent: decoded, with its sequence filled in. */
export function decodeStoredEvent(s: StoredEvent): WorkflowEvent {
  const event = fromBinary(WorkflowEventSchema, s.data);
  event.sequence = BigInt(s.sequence);
  return event;
}

/** The snapshot a watch without after_sequence starts with, standing for the run at `sequence`. */
export function snapshotEvent(s: WorkflowSnapshot, sequence: number, nowMs: number): WorkflowEvent {
  return create(WorkflowEventSchema, {
    sequence: BigInt(sequence),
    workflowId: s.record.workflowId,
    time: msToTimestamp(nowMs),
    payload: {
      case: "snapshot",
      value: create(WorkflowSnapshotSchema, {
        status: workflowStatusToProto[s.record.status],
        statusMessage: s.record.statusMessage,
        steps: s.steps.map((step) => stepProgressToProto(step, false)),
        counts: countsToProto(sumCounts(s.steps.map((step) => step.counts))),
      }),
    },
  });
}

/**
 * Wakes a waiting watch. A notification that comes while nobody waits is kept, so the next wait
 * returns at once: nothing stored between a read and the wait is left unread for a whole period.
 */
export class Wakeup {
  private fired = false;
  private release: (() => void) | undefined;

  fire(): void {
    this.fired = true;
    this.release?.();
  }

  /** Resolves on the next (or a pending) notification, or after `ms`. */
  wait(ms: number): Promise<void> {
    if (this.fired) {
      this.fired = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.release = undefined;
        this.fired = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.release = done;
    });
  }
}

function view(s: WorkflowSnapshot): WorkflowView {
  return {
    record: s.record,
    request: s.request,
    steps: s.steps,
    lastSequence: s.lastSequence,
    stateTtlMs: s.definition.settings.stateTtlMs,
    retentionMs: s.definition.settings.retentionMs,
  };
}

const isNotFound = (err: unknown) => err instanceof AgentainerError && err.kind === "not_found";

/** WorkflowService handlers: request → validation → engine → response. */
export function createWorkflowService(
  deps: WorkflowServiceDeps,
  shutdownSignal: AbortSignal,
): ServiceImpl<typeof WorkflowService> {
  const { engine } = deps;
  const read = async (workflowId: string, withOutputs = false): Promise<Workflow> => {
    checkWorkflowId(workflowId);
    return workflowToProto(view(await engine.get(workflowId)), { summary: false, withOutputs });
  };

  /**
   * The events after `after`, and where the watch stands then: `more` (read again at once),
   * `live` (caught up with a run that goes on: wait), `ended` (caught up with an ended run), or
   * `deleted` when the workflow is gone.
   */
  const poll = async (
    workflowId: string,
    after: number,
  ): Promise<{ events: StoredEvent[]; next: "more" | "live" | "ended" } | "deleted"> => {
    const store = engine.store;
    try {
      const events = await store.events(workflowId, after, watchPageSize);
      if (events.length === watchPageSize) return { events, next: "more" };
      // Caught up. Has the run ended, or the workflow gone (a store may list no events for an
      // unknown workflow instead of NOT_FOUND)?
      const record = await store.get(workflowId);
      if (!isTerminalWorkflow(record.status)) return { events, next: "live" };
      // Ended: its last events may have been stored between the two reads.
      const seen = events.at(-1)?.sequence ?? after;
      return { events, next: (await store.lastSequence(workflowId)) > seen ? "more" : "ended" };
    } catch (err) {
      if (isNotFound(err)) return "deleted";
      throw err;
    }
  };

  return {
    async createWorkflow(req) {
      const id = await engine.create(req);
      return { workflow: await read(id) };
    },

    async listWorkflows(req) {
      const size = pageSize(req.pageSize, 50);
      const filter: WorkflowFilter = {
        statuses: req.statuses.map((s, i) => workflowStatusFromProto(s, `statuses[${i}]`)),
        labels: { ...req.labels },
      };
      const key = workflowFilterKey(filter);
      const after = readCursor(req.pageToken, key, isWorkflowCursor);
      const { page, next } = pageOfWorkflows(await engine.list(), filter, after, size);
      const workflows = await Promise.all(
        page.map(async (r) => {
          try {
            const summary = workflowToProto(view(await engine.get(r.workflowId)), {
              summary: true,
              withOutputs: false,
            });
            return [summary];
          } catch (err) {
            // Deleted between the list and the read: left out.
            if (isNotFound(err)) return [];
            throw err;
          }
        }),
      );
      return {
        workflows: workflows.flat(),
        nextPageToken: next === undefined ? "" : writeToken(key, next),
      };
    },

    async getWorkflow(req) {
      return { workflow: await read(req.workflowId, req.includeStepOutputs) };
    },

    async startWorkflow(req) {
      checkWorkflowId(req.workflowId);
      await engine.startRun(req.workflowId);
      return { workflow: await read(req.workflowId) };
    },

    async cancelWorkflow(req) {
      checkWorkflowId(req.workflowId);
      await engine.cancel(req.workflowId, req.reason);
      return { workflow: await read(req.workflowId) };
    },

    async deleteWorkflow(req) {
      checkWorkflowId(req.workflowId);
      await engine.delete(req.workflowId, req.force);
      return {};
    },

    async listJobs(req) {
      const workflowId = req.workflowId;
      checkWorkflowId(workflowId);
      const size = pageSize(req.pageSize, 100);
      const statuses = req.statuses.map((s, i) => jobStatusFromProto(s, `statuses[${i}]`));
      const key = jobFilterKey(workflowId, req.stepId, statuses);
      const after = readCursor(req.pageToken, key, isJobCursor);
      const snapshot = await engine.get(workflowId);
      const defs = snapshot.definition.steps;
      if (req.stepId !== "" && !defs.some((d) => d.id === req.stepId)) {
        throw new InvalidArgumentError(
          `step_id: workflow "${workflowId}" has no step "${req.stepId}"`,
          { field: "step_id" },
        );
      }
      const steps = snapshot.steps.map((s, i) =>
        req.stepId === "" || defs[i]!.id === req.stepId ? s : undefined,
      );
      const { jobs, next } = await pageOfJobs(
        steps,
        (stepId, from, limit) => engine.store.jobs(workflowId, stepId, from, limit),
        { statuses, after, size },
      );
      return {
        jobs: jobs.map(({ step, job }) =>
          jobToProto(workflowId, job, defs[step]!.retry.maxAttempts, req.includeResults),
        ),
        nextPageToken: next === undefined ? "" : writeToken(key, next),
      };
    },

    async getWorkflowState(req) {
      checkWorkflowId(req.workflowId);
      req.keys.forEach((k, i) => checkKey(k, `keys[${i}]`));
      await engine.get(req.workflowId);
      const r = await deps.state.getAll(req.workflowId, req.keys);
      return { values: r.values, version: r.version };
    },

    async putWorkflowState(req) {
      checkWorkflowId(req.workflowId);
      const values = req.values ?? {};
      const keys = Object.keys(values);
      if (keys.length === 0) {
        throw new InvalidArgumentError("values: give at least one key to write", {
          field: "values",
        });
      }
      for (const k of keys) {
        checkKey(k, `values.${k}`);
        checkJson(values[k]!, `values.${k}`);
      }
      await engine.get(req.workflowId);
      const r = await deps.state.putAll(req.workflowId, values);
      return { version: r.version };
    },

    async createMapReduce(req) {
      const { request } = mapReduceWorkflow(req, deps.limits);
      const id = await engine.create(request, renamed);
      return { workflow: await read(id) };
    },

    async *watchWorkflow(req, context: HandlerContext) {
      const workflowId = req.workflowId;
      checkWorkflowId(workflowId);
      const signal = AbortSignal.any([context.signal, shutdownSignal]);
      // Listening before the first read: nothing this instance stores after it goes unnoticed.
      const wakeup = new Wakeup();
      const off = engine.subscribe(workflowId, () => wakeup.fire());
      const onAbort = () => wakeup.fire();
      signal.addEventListener("abort", onAbort);
      try {
        let after: number;
        if (req.afterSequence === undefined) {
          // The sequence is read before the run: the snapshot reflects at least every event up to
          // it (an event replayed after it may repeat a change, never miss one).
          const sequence = await engine.store.lastSequence(workflowId);
          const snapshot = await engine.get(workflowId);
          yield { event: snapshotEvent(snapshot, sequence, Date.now()) };
          if (isTerminalWorkflow(snapshot.record.status)) return;
          after = sequence;
        } else {
          const last = await engine.store.lastSequence(workflowId);
          if (req.afterSequence > BigInt(last)) {
            throw new InvalidArgumentError(
              `after_sequence: ${req.afterSequence} is past the workflow's last event, ${last}`,
              { field: "after_sequence" },
            );
          }
          after = Number(req.afterSequence);
        }
        for (;;) {
          if (signal.aborted) return;
          const polled = await poll(workflowId, after);
          if (polled === "deleted") {
            const deleted = workflowEvents.deleted(workflowId, Date.now());
            deleted.sequence = BigInt(after + 1);
            yield { event: deleted };
            return;
          }
          for (const stored of polled.events) {
            after = stored.sequence;
            const event = decodeStoredEvent(stored);
            if (!(req.excludeTaskEvents && isTaskEvent(event))) yield { event };
            if (endsWatch(event)) return;
            if (signal.aborted) return;
          }
          if (polled.next === "ended") return;
          if (polled.next === "live") await wakeup.wait(watchPollMs);
        }
      } finally {
        off();
        signal.removeEventListener("abort", onAbort);
      }
    },
  };
}

/** Registers the WorkflowService on a router. */
export function workflowRoutes(deps: WorkflowServiceDeps) {
  return (router: ConnectRouter, ctx: { shutdownSignal: AbortSignal }): void => {
    router.service(WorkflowService, createWorkflowService(deps, ctx.shutdownSignal));
  };
}
