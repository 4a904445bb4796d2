import type { Template } from "./template.js";

/** How the Executor sees an agent, as far as the Pool cares. */
export type BackendAgentState = "ready" | "busy" | "unhealthy" | "exited" | "gone";

export interface CheckResult {
  healthy: boolean;
  /** What failed, for last_error and events. */
  detail: string;
  state: BackendAgentState;
}

/**
 * What the Pool asks of the Executor (the Pool decides, the Executor acts). The production
 * implementation is executor-backend.ts over ExecutorService; tests may use a fake.
 */
export interface AgentBackend {
  /** Creates an agent and resolves once it is READY; rejects with the Executor's error. */
  create(poolId: string, agentId: string, template: Template): Promise<{ containerId: string }>;
  /** Runs `command` in the agent (or its default check when empty); never rejects. */
  check(agentId: string, command: readonly string[], timeoutMs: number): Promise<CheckResult>;
  /** Destroys an agent (force: even while it runs a task). Never rejects for a gone agent. */
  destroy(agentId: string, force: boolean, reason: string): Promise<void>;
  /** Every agent the Executor has of any pool (adoption after a restart). */
  listPooled(): Promise<
    Array<{ agentId: string; poolId: string; containerId: string; state: BackendAgentState }>
  >;
  /** Calls `listener` when an agent's container exits without being asked to. */
  onExited(listener: (agentId: string) => void): () => void;
}
