import { createHash } from "node:crypto";
import { fromBinary, type JsonValue } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AgentainerError, InvalidArgumentError } from "../../lib/errors.js";
import { checkKey, checkWorkflowId } from "../state/validate.js";
import {
  WorkflowEventSchema,
  WorkflowSnapshotSchema,
  type WorkflowEvent,
} from "../../gen/agentainer/workflow/v1/events_pb.js";
import { WorkflowStatus as ProtoWorkflowStatus } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { WorkflowService } from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { create } from "@bufbuild/protobuf";
import { msToTimestamp } from "../../lib/time.js";
import {
  countsToProto,
  jobStatusFromProto,
  jobToProto,
  stepProgressToProto,
  workflowStatusFromProto,
  workflowStatusToProto,
  workflowToProto,
} from "./convert.js";
import { sumCounts } from "./counts.js";
import type { DefinitionLimits } from "./definition.js";
import type { WorkflowEngine, WorkflowSnapshot } from "./engine.js";
import { workflowEvents } from "./events.js";
import { mapReduceWorkflow, renamed } from "./mapreduce.js";
import { fillJobs, pageSize, readToken, writeToken } from "./paging.js";

/** GetWorkflowState / PutWorkflowState go to the State service (clients.ts). */
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

const terminal = new Set<ProtoWorkflowStatus>([
  ProtoWorkflowStatus.SUCCEEDED,
  ProtoWorkflowStatus.PARTIALLY_SUCCEEDED,
  ProtoWorkflowStatus.FAILED,
  ProtoWorkflowStatus.CANCELLED,
]);

/** Whether a watch ends after this event (the run ended, or the workflow was deleted). */
function isLast(e: WorkflowEvent): boolean {
  const p = e.payload;
  return (
    p.case === "workflowDeleted" ||
    (p.case === "workflowStatusChanged" && terminal.has(p.value.status))
  );
}

function view(s: WorkflowSnapshot) {
  return {
    record: s.record,
    request: s.request,
    steps: s.steps,
    lastSequence: s.lastSequence,
    stateTtlMs: s.definition.settings.stateTtlMs,
    retentionMs: s.definition.settings.retentionMs,
  };
}

/** A filter's fingerprint, so a page token is only accepted with the filters it was made for. */
function fingerprint(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 16);
}

/** WorkflowService handlers: request → validation → engine → response. */
export function createWorkflowService(
  deps: WorkflowServiceDeps,
  shutdownSignal: AbortSignal,
): ServiceImpl<typeof WorkflowService> {
  const { engine } = deps;
  const get = async (workflowId: string, withOutputs = false) => {
    checkWorkflowId(workflowId);
    return workflowToProto(view(await engine.get(workflowId)), {
      summary: false,
      withOutputs,
    });
  };
  return {
    async createWorkflow(req) {
      const id = await engine.create(req);
      return { workflow: await get(id) };
    },

    async listWorkflows(req) {
      const size = pageSize(req.pageSize, 50, "page_size");
      const statuses = req.statuses.map((s, i) => workflowStatusFromProto(s, `statuses[${i}]`));
      const filter = fingerprint({ statuses, labels: Object.entries(req.labels).sort() });
      const offset = readToken(req.pageToken, filter);
      const records = (await engine.list())
        .filter((r) => statuses.length === 0 || statuses.includes(r.status))
        .filter((r) => Object.entries(req.labels).every(([k, v]) => r.labels[k] === v))
        .sort((a, b) => b.createMs - a.createMs || a.workflowId.localeCompare(b.workflowId));
      const page = records.slice(offset, offset + size);
      const workflows = [];
      for (const r of page) {
        try {
          workflows.push(
            workflowToProto(view(await engine.get(r.workflowId)), {
              summary: true,
              withOutputs: false,
            }),
          );
        } catch (err) {
          // Deleted between the list and the read: leave it out.
          if (!(err instanceof AgentainerError && err.kind === "not_found")) throw err;
        }
      }
      const next = offset + size < records.length ? writeToken(filter, offset + size) : "";
      return { workflows, nextPageToken: next };
    },

    async getWorkflow(req) {
      return { workflow: await get(req.workflowId, req.includeStepOutputs) };
    },

    async startWorkflow(req) {
      checkWorkflowId(req.workflowId);
      await engine.startRun(req.workflowId);
      return { workflow: await get(req.workflowId) };
    },

    async cancelWorkflow(req) {
      checkWorkflowId(req.workflowId);
      await engine.cancel(req.workflowId, req.reason);
      return { workflow: await get(req.workflowId) };
    },

    async deleteWorkflow(req) {
      checkWorkflowId(req.workflowId);
      await engine.delete(req.workflowId, req.force);
      return {};
    },

    async listJobs(req) {
      checkWorkflowId(req.workflowId);
      const size = pageSize(req.pageSize, 100, "page_size");
      const snapshot = await engine.get(req.workflowId);
      const defs = snapshot.definition.steps;
      if (req.stepId !== "" && !defs.some((s) => s.id === req.stepId)) {
        throw new InvalidArgumentError(
          `step_id: workflow "${req.workflowId}" has no step "${req.stepId}"`,
          { field: "step_id" },
        );
      }
      const statuses = req.statuses.map((s, i) => jobStatusFromProto(s, `statuses[${i}]`));
      const filter = fingerprint({ id: req.workflowId, step: req.stepId, statuses });
      const offset = readToken(req.pageToken, filter);
      // Positions run over every task of every listed step, in order; a page reads only the
      // stored jobs it needs, a thousand at a time.
      const jobs = [];
      let position = 0;
      let more = false;
      for (const [i, def] of defs.entries()) {
        if (req.stepId !== "" && def.id !== req.stepId) continue;
        const step = snapshot.steps[i]!;
        if (step.status === "pending") continue;
        for (let from = 0; from < step.width; from += 1000) {
          const limit = Math.min(1000, step.width - from);
          const stored = await engine.store.jobs(req.workflowId, def.id, from, limit);
          for (const j of fillJobs(step, stored, from, limit)) {
            if (statuses.length > 0 && !statuses.includes(j.status)) continue;
            if (position++ < offset) continue;
            if (jobs.length === size) {
              more = true;
              break;
            }
            jobs.push(jobToProto(req.workflowId, j, def.retry.maxAttempts, req.includeResults));
          }
          if (more) break;
        }
        if (more) break;
      }
      return { jobs, nextPageToken: more ? writeToken(filter, offset + size) : "" };
    },

    async getWorkflowState(req) {
      checkWorkflowId(req.workflowId);
      req.keys.forEach((k, i) => checkKey(k, `keys[${i}]`));
      await engine.get(req.workflowId);
      const r = await deps.state.getAll(req.workflowId, req.keys);
      return { values: r.values as never, version: r.version };
    },

    async putWorkflowState(req) {
      checkWorkflowId(req.workflowId);
      const values = (req.values ?? {}) as Record<string, JsonValue>;
      const keys = Object.keys(values);
      if (keys.length === 0) {
        throw new InvalidArgumentError("values: give at least one key", { field: "values" });
      }
      for (const k of keys) checkKey(k, `values.${k}`);
      await engine.get(req.workflowId);
      const r = await deps.state.putAll(req.workflowId, values);
      return { version: r.version };
    },

    async createMapReduce(req) {
      const { request } = mapReduceWorkflow(req, deps.limits);
      const id = await engine.create(request, renamed);
      return { workflow: await get(id) };
    },

    async *watchWorkflow(req, context: HandlerContext) {
      checkWorkflowId(req.workflowId);
      const id = req.workflowId;
      const first = await engine.get(id);
      let after: number;
      if (req.afterSequence !== undefined) {
        after = Number(req.afterSequence);
        if (after > first.lastSequence) {
          throw new InvalidArgumentError(
            `after_sequence: ${after} is past the last event, ${first.lastSequence}`,
            { field: "after_sequence" },
          );
        }
      } else {
        after = first.lastSequence;
        yield { event: snapshotEvent(first) };
        if (terminal.has(workflowStatusToProto[first.record.status])) return;
      }
      let wake: (() => void) | undefined;
      const off = engine.subscribe(id, () => wake?.());
      const stop = () => wake?.();
      context.signal.addEventListener("abort", stop);
      shutdownSignal.addEventListener("abort", stop);
      try {
        for (;;) {
          if (context.signal.aborted || shutdownSignal.aborted) return;
          let stored;
          try {
            stored = await engine.store.events(id, after, 500);
          } catch (err) {
            if (err instanceof AgentainerError && err.kind === "not_found") {
              const deleted = workflowEvents.deleted(id, Date.now());
              deleted.sequence = BigInt(after + 1);
              yield { event: deleted };
              return;
            }
            throw err;
          }
          for (const s of stored) {
            after = s.sequence;
            const event = fromBinary(WorkflowEventSchema, s.data);
            event.sequence = BigInt(s.sequence);
            const last = isLast(event);
            const task =
              event.payload.case === "taskStarted" || event.payload.case === "taskFinished";
            if (!(req.excludeTaskEvents && task)) yield { event };
            if (last) return;
          }
          if (stored.length === 500) continue;
          // Woken by this instance's events, or every 500 ms (another instance may drive the run).
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 500);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
      } finally {
        off();
        context.signal.removeEventListener("abort", stop);
        shutdownSignal.removeEventListener("abort", stop);
      }
    },
  };
}

function snapshotEvent(s: WorkflowSnapshot): WorkflowEvent {
  return create(WorkflowEventSchema, {
    sequence: BigInt(s.lastSequence),
    workflowId: s.record.workflowId,
    time: msToTimestamp(Date.now()),
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

/** Registers the WorkflowService on a router. */
export function workflowRoutes(deps: WorkflowServiceDeps) {
  return (router: ConnectRouter, ctx: { shutdownSignal: AbortSignal }): void => {
    router.service(WorkflowService, createWorkflowService(deps, ctx.shutdownSignal));
  };
}
