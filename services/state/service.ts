import { create, type JsonObject } from "@bufbuild/protobuf";
import type { Logger } from "../../lib/logger.js";
import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { NotFoundError } from "../../lib/errors.js";
import { checkJson, jsonToValue, valueToJson } from "../../lib/json-value.js";
import { durationToMs, msToTimestamp } from "../../lib/time.js";
import {
  StateLimitsSchema,
  StateService,
  WorkflowStateInfoSchema,
  type WorkflowStateInfo,
} from "../../gen/agentainer/state/v1/state_pb.js";
import { runBatch } from "./batch.js";
import { toStateChanged } from "./events.js";
import type { StateManager } from "./state.js";
import type { StateMeta } from "./store.js";

export interface StateServiceDeps {
  state: StateManager;
  /** Where Batch reports an operation's unexpected (internal) error. */
  logger: Logger;
  /** Aborted when the server shuts down: open Watch streams end. */
  shutdownSignal: AbortSignal;
}

function toInfo(meta: StateMeta): WorkflowStateInfo {
  return create(WorkflowStateInfoSchema, {
    workflowId: meta.workflowId,
    version: BigInt(meta.version),
    keyCount: BigInt(meta.keyCount),
    usedBytes: BigInt(meta.usedBytes),
    limits: create(StateLimitsSchema, {
      maxWorkflowBytes: BigInt(meta.limits.maxWorkflowBytes),
      maxValueBytes: BigInt(meta.limits.maxValueBytes),
    }),
    createTime: msToTimestamp(meta.createTimeMs),
    expireTime: meta.expireTimeMs === undefined ? undefined : msToTimestamp(meta.expireTimeMs),
  });
}

/** StateService handlers: request → domain call → response. Errors map in lib/error-interceptor.ts. */
export function createStateService(deps: StateServiceDeps): ServiceImpl<typeof StateService> {
  const { state } = deps;
  const impl: ServiceImpl<typeof StateService> = {
    async createWorkflowState(req) {
      const r = await state.createWorkflowState(req.workflowId, {
        maxWorkflowBytes: Number(req.limits?.maxWorkflowBytes ?? 0n),
        maxValueBytes: Number(req.limits?.maxValueBytes ?? 0n),
      });
      return { info: toInfo(r.meta), created: r.created };
    },
    async describeWorkflowState(req) {
      return { info: toInfo(await state.describeWorkflowState(req.workflowId)) };
    },
    async expireWorkflowState(req) {
      return {
        info: toInfo(await state.expireWorkflowState(req.workflowId, durationToMs(req.ttl, "ttl"))),
      };
    },
    async deleteWorkflowState(req) {
      return { existed: await state.deleteWorkflowState(req.workflowId) };
    },
    async get(req) {
      const r = await state.get(req.workflowId, req.key);
      if (r.value === undefined) {
        throw new NotFoundError(`key "${req.key}" is not set in workflow "${req.workflowId}"`, {
          field: "key",
        });
      }
      return { value: jsonToValue(r.value), version: BigInt(r.version) };
    },
    async set(req) {
      return {
        version: BigInt(await state.set(req.workflowId, req.key, valueToJson(req.value, "value"))),
      };
    },
    async delete(req) {
      const r = await state.delete(req.workflowId, req.key);
      return { version: BigInt(r.version), existed: r.existed };
    },
    async getAll(req) {
      const r = await state.getAll(req.workflowId);
      return { values: r.values, version: BigInt(r.version) };
    },
    async putAll(req) {
      const values = (req.values ?? {}) as JsonObject;
      // Each value is checked as its own field: it is stored, and nests, on its own.
      for (const [k, v] of Object.entries(values)) checkJson(v, `values.${k}`);
      return { version: BigInt(await state.putAll(req.workflowId, values)) };
    },
    async deleteAll(req) {
      const r = await state.deleteAll(req.workflowId);
      return { version: BigInt(r.version), deletedCount: BigInt(r.deletedCount) };
    },
    async increment(req) {
      const r = await state.increment(req.workflowId, req.key, req.delta ?? 1);
      return { value: r.value, version: BigInt(r.version) };
    },
    async appendToList(req) {
      const values = req.values.map((v, i) => valueToJson(v, `values[${i}]`));
      const r = await state.appendToList(req.workflowId, req.key, values);
      return { length: BigInt(r.length), version: BigInt(r.version) };
    },
    async addToSet(req) {
      const r = await state.addToSet(req.workflowId, req.key, valueToJson(req.member, "member"));
      return { added: r.added, size: BigInt(r.size), version: BigInt(r.version) };
    },
    async compareAndSwap(req) {
      const expected =
        req.expected === undefined ? undefined : valueToJson(req.expected, "expected");
      const r = await state.compareAndSwap(
        req.workflowId,
        req.key,
        expected,
        valueToJson(req.newValue, "new_value"),
      );
      return {
        swapped: r.swapped,
        current: r.current === undefined ? undefined : jsonToValue(r.current),
        version: BigInt(r.version),
      };
    },
    async *watch(req, context: HandlerContext) {
      const signal = AbortSignal.any([context.signal, deps.shutdownSignal]);
      for await (const change of state.watch(req.workflowId, {
        keys: req.keys,
        sendInitial: req.sendInitial,
        signal,
      })) {
        yield { change: toStateChanged(change) };
      }
    },
    batch: (req, context) => runBatch(impl, req, context, deps.logger),
  };
  return impl;
}

/** Registers the StateService on a router. */
export function stateRoutes(deps: StateServiceDeps) {
  return (router: ConnectRouter) => router.service(StateService, createStateService(deps));
}
