import type { JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { Channel } from "../../lib/channel.js";
import { fromConnectError } from "../../lib/error-interceptor.js";
import { jsonToValue, responseValueToJson } from "../../lib/json-value.js";
import type { Logger } from "../../lib/logger.js";
import { msToDuration } from "../../lib/time.js";
import {
  AgentMode,
  AgentState,
  TaskStatus,
  type DispatchTasksRequestSchema,
  type DispatchTasksResponse,
  type ExecutorService,
  type RunTaskOnAgentRequestSchema,
  type TaskResult,
} from "../../gen/agentainer/executor/v1/executor_pb.js";
import { PoolStatus, TaskOutcome, type PoolService } from "../../gen/agentainer/pool/v1/pool_pb.js";
import type { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { keepToProto, networkToProto } from "../executor/convert.js";
import { policyToProto } from "../pool/policy.js";
import type {
  AgentPools,
  AttemptOutcome,
  AttemptRef,
  AttemptSpec,
  AttemptStatus,
  TaskRunner,
  WorkflowState,
} from "./ports.js";

/** The engine's ports over the Executor, Pool and State services' Connect clients. */

const statuses: Partial<Record<TaskStatus, AttemptStatus>> = {
  [TaskStatus.SUCCEEDED]: "succeeded",
  [TaskStatus.FAILED]: "failed",
  [TaskStatus.TIMED_OUT]: "timed_out",
  [TaskStatus.CANCELLED]: "cancelled",
  [TaskStatus.OOM_KILLED]: "oom_killed",
};

function outcomeOf(r: TaskResult | undefined): AttemptOutcome {
  if (r === undefined) {
    return {
      status: "failed",
      exitCode: undefined,
      error: "the executor returned no result",
      result: undefined,
      containerId: "",
      containerName: "",
      agentId: "",
      agentBroken: false,
    };
  }
  return {
    status: statuses[r.status] ?? "failed",
    exitCode: r.exitCode,
    error: r.error,
    result: r.result === undefined ? undefined : responseValueToJson(r.result, "result"),
    containerId: r.containerId,
    containerName: r.containerName,
    agentId: r.agentId,
    agentBroken: r.agentState === AgentState.UNHEALTHY || r.agentState === AgentState.EXITED,
  };
}

function limits(l: AttemptSpec["limits"]) {
  return {
    cpuMillis: BigInt(l.cpuMillis),
    memoryBytes: BigInt(l.memoryBytes),
    pids: BigInt(l.pids),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs attempts on the Executor: cold ones with RunTask, warm ones over one shared DispatchTasks
 * stream (a message per task instead of a call). When the stream breaks, the attempts it carried
 * are looked up by their ids (GetTask with wait), so none is lost or run twice.
 */
export class ExecutorTaskRunner implements TaskRunner {
  private stream: Channel<MessageInitShape<typeof DispatchTasksRequestSchema>> | undefined;
  private readonly calls = new Map<
    string,
    { resolve: (o: AttemptOutcome) => void; reject: (e: unknown) => void }
  >();
  private nextCall = 0;
  private closed = false;

  constructor(
    private readonly executor: Client<typeof ExecutorService>,
    private readonly logger: Logger,
  ) {}

  async runCold(ref: AttemptRef, spec: AttemptSpec): Promise<AttemptOutcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await this.executor.runTask({
          ref,
          spec: {
            image: spec.image,
            command: spec.command,
            args: spec.args,
            env: spec.env,
            limits: limits(spec.limits),
            network: networkToProto[spec.network],
            keep: keepToProto[spec.keep],
            ...(spec.timeoutMs > 0 ? { timeout: msToDuration(spec.timeoutMs) } : {}),
            input: jsonToValue(spec.input),
          },
        });
        return outcomeOf(r.result);
      } catch (err) {
        // RunTask is idempotent by task id: calling again after a broken connection rejoins it.
        if (ConnectError.from(err).code !== Code.Unavailable || attempt >= 5) {
          throw fromConnectError(err, "executor");
        }
        await sleep(200 * attempt);
      }
    }
  }

  runOnAgent(
    agentId: string,
    mode: "exec" | "stream",
    ref: AttemptRef,
    spec: AttemptSpec,
  ): Promise<AttemptOutcome> {
    const task: MessageInitShape<typeof RunTaskOnAgentRequestSchema> = {
      agentId,
      ref,
      ...(mode === "exec" ? { command: [...spec.command, ...spec.args] } : {}),
      env: spec.env,
      input: jsonToValue(spec.input),
      ...(spec.timeoutMs > 0 ? { timeout: msToDuration(spec.timeoutMs) } : {}),
    };
    const callId = `c${this.nextCall++}`;
    return new Promise<AttemptOutcome>((resolve, reject) => {
      this.calls.set(callId, { resolve, reject });
      this.channel().push({ callId, task });
    }).catch(async (err: unknown) => {
      if (!(err instanceof StreamBroken)) throw err;
      // The stream broke with this attempt on it: ask for it by id instead.
      const found = await this.awaitExisting(ref.taskId);
      if (found !== undefined) return found;
      const r = await this.executor.runTaskOnAgent(task).catch((e: unknown) => {
        throw fromConnectError(e, "executor");
      });
      return outcomeOf(r.result);
    });
  }

  private channel(): Channel<MessageInitShape<typeof DispatchTasksRequestSchema>> {
    if (this.stream !== undefined) return this.stream;
    const requests = new Channel<MessageInitShape<typeof DispatchTasksRequestSchema>>();
    this.stream = requests;
    void (async () => {
      let failure: unknown;
      try {
        for await (const res of this.executor.dispatchTasks(requests)) this.answer(res);
      } catch (err) {
        failure = err;
      }
      if (this.stream === requests) this.stream = undefined;
      if (this.calls.size > 0) {
        if (!this.closed) this.logger.warn({ err: failure }, "executor dispatch stream ended");
        const calls = [...this.calls.values()];
        this.calls.clear();
        for (const c of calls) c.reject(new StreamBroken(failure));
      }
    })();
    return requests;
  }

  private answer(res: DispatchTasksResponse): void {
    const call = this.calls.get(res.callId);
    if (call === undefined) return;
    this.calls.delete(res.callId);
    if (res.outcome.case === "result") call.resolve(outcomeOf(res.outcome.value));
    else if (res.outcome.case === "error") {
      const e = res.outcome.value;
      call.reject(fromConnectError(new ConnectError(e.message, e.code as Code), "executor"));
    } else call.reject(fromConnectError(new Error("empty dispatch response"), "executor"));
  }

  async awaitExisting(taskId: string): Promise<AttemptOutcome | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await this.executor.getTask({ taskId, wait: true });
        return outcomeOf(r.task?.result);
      } catch (err) {
        const code = ConnectError.from(err).code;
        if (code === Code.NotFound) return undefined;
        if (attempt >= 10) throw fromConnectError(err, "executor");
        await sleep(Math.min(5000, 200 * attempt));
      }
    }
  }

  async cancel(taskId: string, reason: string): Promise<void> {
    try {
      await this.executor.cancelTask({ taskId, reason });
    } catch (err) {
      if (ConnectError.from(err).code !== Code.NotFound) throw fromConnectError(err, "executor");
    }
  }

  /** Ends the dispatch stream (tasks in flight keep running on the Executor). */
  close(): void {
    this.closed = true;
    this.stream?.close();
    this.stream = undefined;
  }
}

class StreamBroken extends Error {
  constructor(cause: unknown) {
    super("executor dispatch stream broke", { cause });
  }
}

const outcomes = {
  succeeded: TaskOutcome.SUCCEEDED,
  failed: TaskOutcome.FAILED,
  broken: TaskOutcome.AGENT_BROKEN,
} as const;

/** Leases agents through the Pool service. */
export function poolClientPort(pool: Client<typeof PoolService>): AgentPools {
  const wrap = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      throw fromConnectError(err, what);
    }
  };
  return {
    async ensurePool(p) {
      await wrap("pool service", () =>
        pool.createPool({
          poolId: p.poolId,
          template: {
            image: p.image,
            command: p.command,
            args: p.args,
            limits: limits(p.limits),
            network: networkToProto[p.network],
            mode: p.mode === "stream" ? AgentMode.STREAM : AgentMode.EXEC,
          },
          policy: policyToProto(p.policy),
        }),
      );
    },
    async describePool(poolId) {
      const r = await wrap("pool service", () => pool.getPool({ poolId }));
      const p = r.pool;
      return {
        image: p?.template?.image ?? "",
        mode: p?.template?.mode === AgentMode.STREAM ? "stream" : "exec",
        maxSize: p?.policy?.maxSize ?? 0,
        active: p?.status === PoolStatus.ACTIVE,
      };
    },
    async acquire(poolId, holder, waitMs, leaseTtlMs, signal) {
      const r = await wrap("pool service", () =>
        pool.acquire(
          {
            poolId,
            holder,
            waitTimeout: msToDuration(waitMs),
            leaseTtl: msToDuration(leaseTtlMs),
          },
          signal === undefined ? {} : { signal },
        ),
      );
      const l = r.lease;
      return {
        leaseId: l?.leaseId ?? "",
        poolId,
        agentId: l?.agentId ?? "",
        containerId: l?.containerId ?? "",
      };
    },
    async renew(leaseId, holder, ttlMs) {
      await wrap("pool service", () =>
        pool.renewLease({ leaseId, holder, ttl: msToDuration(ttlMs) }),
      );
    },
    async release(leaseId, holder, outcome, reason) {
      try {
        await pool.release({ leaseId, holder, outcome: outcomes[outcome], reason });
      } catch (err) {
        const code = ConnectError.from(err).code;
        if (code === Code.FailedPrecondition || code === Code.NotFound) return;
        throw fromConnectError(err, "pool service");
      }
    },
    async deletePool(poolId) {
      await wrap("pool service", () => pool.deletePool({ poolId, force: true }));
    },
  };
}

/** The workflow's state through the State service. */
export function stateClientPort(state: Client<typeof StateService>): WorkflowState {
  return {
    async create(workflowId, l) {
      try {
        await state.createWorkflowState({
          workflowId,
          limits: {
            maxWorkflowBytes: BigInt(l.maxWorkflowBytes),
            maxValueBytes: BigInt(l.maxValueBytes),
          },
        });
      } catch (err) {
        throw fromConnectError(err, "state service");
      }
    },
    async get(workflowId, key) {
      try {
        const r = await state.get({ workflowId, key });
        return r.value === undefined ? null : responseValueToJson(r.value, key);
      } catch (err) {
        if (ConnectError.from(err).code === Code.NotFound) return undefined;
        throw fromConnectError(err, "state service");
      }
    },
    async expire(workflowId, ttlMs) {
      try {
        await state.expireWorkflowState({ workflowId, ttl: msToDuration(ttlMs) });
      } catch (err) {
        if (ConnectError.from(err).code !== Code.NotFound)
          throw fromConnectError(err, "state service");
      }
    },
    async remove(workflowId) {
      try {
        await state.deleteWorkflowState({ workflowId });
      } catch (err) {
        if (ConnectError.from(err).code !== Code.NotFound)
          throw fromConnectError(err, "state service");
      }
    },
  };
}

/** GetWorkflowState / PutWorkflowState: proxies to the State service's GetAll and PutAll. */
export function stateFacade(state: Client<typeof StateService>) {
  return {
    async getAll(workflowId: string, keys: string[]) {
      try {
        const r = await state.getAll({ workflowId });
        const all: Record<string, JsonValue> = r.values ?? {};
        const values =
          keys.length === 0
            ? all
            : Object.fromEntries(keys.filter((k) => k in all).map((k) => [k, all[k] as JsonValue]));
        return { values, version: r.version };
      } catch (err) {
        throw fromConnectError(err, "state service");
      }
    },
    async putAll(workflowId: string, values: Record<string, JsonValue>) {
      try {
        const r = await state.putAll({ workflowId, values });
        return { version: r.version };
      } catch (err) {
        throw fromConnectError(err, "state service");
      }
    },
  };
}
