import type { JsonValue } from "@bufbuild/protobuf";
import type { Network } from "../executor/runtime/runtime.js";
import type { Keep } from "../executor/cold.js";
import type { Policy } from "../pool/policy.js";

/**
 * What the workflow engine needs from the other services, in its own terms. The engine never
 * sees a transport or a generated client: clients.ts implements these ports over the Executor,
 * Pool and State services' Connect clients, and tests may implement them in memory.
 */

/** How the Executor saw an attempt end. */
export type AttemptStatus = "succeeded" | "failed" | "timed_out" | "cancelled" | "oom_killed";

/** Who an attempt is (the Executor's TaskRef). */
export interface AttemptRef {
  workflowId: string;
  stepId: string;
  /** The Executor's task id of this attempt (deterministic, see task-input.ts). */
  taskId: string;
  attempt: number;
  index: number;
}

/** What every attempt of a step runs with, cold or warm. */
export interface AttemptSpec {
  image: string;
  command: string[];
  args: string[];
  env: Record<string, string>;
  limits: { cpuMillis: number; memoryBytes: number; pids: number };
  network: Network;
  keep: Keep;
  /** 0: the Executor's default. */
  timeoutMs: number;
  input: JsonValue;
}

/** How an attempt ended. */
export interface AttemptOutcome {
  status: AttemptStatus;
  exitCode: number | undefined;
  /** The agent's error or the Executor's reason; empty on success. */
  error: string;
  result: JsonValue | undefined;
  containerId: string;
  containerName: string;
  agentId: string;
  /** The agent was left unusable (exited or unhealthy): its lease goes back as broken. */
  agentBroken: boolean;
}

/** Runs attempts on the Executor. */
export interface TaskRunner {
  /** Runs an attempt in a fresh container; idempotent by ref.taskId. */
  runCold(ref: AttemptRef, spec: AttemptSpec): Promise<AttemptOutcome>;
  /**
   * Runs an attempt on a leased agent (exec: `command`+`args` is exec'd; stream: they are
   * ignored); idempotent by ref.taskId.
   */
  runOnAgent(
    agentId: string,
    mode: "exec" | "stream",
    ref: AttemptRef,
    spec: AttemptSpec,
  ): Promise<AttemptOutcome>;
  /**
   * Waits for an attempt the Executor already knows (after a restart of this service); undefined
   * when the Executor does not know it (never dispatched, or the Executor restarted).
   */
  awaitExisting(taskId: string): Promise<AttemptOutcome | undefined>;
  /** Stops an attempt; unknown or ended attempts are ignored. */
  cancel(taskId: string, reason: string): Promise<void>;
}

/** A lease on a warm agent. */
export interface AgentLease {
  leaseId: string;
  poolId: string;
  agentId: string;
  containerId: string;
}

/** What a pool is, as far as a step needs to know. */
export interface PoolInfo {
  image: string;
  mode: "exec" | "stream";
  maxSize: number;
  active: boolean;
}

/** The inline pool of a step: the agent template and the policy. */
export interface InlinePool {
  poolId: string;
  image: string;
  /** The agents' main process (STREAM: the step's command; EXEC: agent_command). */
  command: string[];
  args: string[];
  limits: { cpuMillis: number; memoryBytes: number; pids: number };
  network: Network;
  mode: "exec" | "stream";
  policy: Policy;
}

/** Leases agents from the Pool service. */
export interface AgentPools {
  /** Creates (or finds, idempotently) a workflow's inline pool. */
  ensurePool(pool: InlinePool): Promise<void>;
  /** NOT_FOUND when the pool does not exist. */
  describePool(poolId: string): Promise<PoolInfo>;
  acquire(
    poolId: string,
    holder: string,
    waitMs: number,
    leaseTtlMs: number,
    signal?: AbortSignal,
  ): Promise<AgentLease>;
  renew(leaseId: string, holder: string, ttlMs: number): Promise<void>;
  /** Gives an agent back; a lease that already ended is ignored. */
  release(
    leaseId: string,
    holder: string,
    outcome: "succeeded" | "failed" | "broken",
    reason: string,
  ): Promise<void>;
  /** Deletes a pool and its agents (an unknown one is ignored). */
  deletePool(poolId: string): Promise<void>;
}

/** The workflow's state in the State service. */
export interface WorkflowState {
  /** Creates the (empty) state with its limits; an existing one is kept. */
  create(
    workflowId: string,
    limits: { maxWorkflowBytes: number; maxValueBytes: number },
  ): Promise<void>;
  /** One key; undefined when absent. */
  get(workflowId: string, key: string): Promise<JsonValue | undefined>;
  /** Schedules the state's removal after ttlMs. */
  expire(workflowId: string, ttlMs: number): Promise<void>;
  /** Removes the state entirely. */
  remove(workflowId: string): Promise<void>;
}
