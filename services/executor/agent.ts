import type { Mailbox } from "./mailbox.js";
import type { Limits, Network, RuntimeContainer } from "./runtime/runtime.js";
import type { StreamSession } from "./stream-session.js";
import type { AgentStateName } from "./task.js";

export type AgentMode = "exec" | "stream";

/** What an agent container is; fixed for its life (validated). */
export interface AgentSpec {
  image: string;
  command: string[];
  args: string[];
  env: Record<string, string>;
  workingDir: string;
  limits: Limits;
  network: Network;
  mode: AgentMode;
  labels: Record<string, string>;
}

/** A long-running agent container as the Executor keeps it. */
export interface AgentRecord {
  readonly agentId: string;
  readonly poolId: string;
  readonly spec: AgentSpec;
  readonly nodeId: string;
  readonly createMs: number;
  state: AgentStateName;
  container: RuntimeContainer | undefined;
  readyMs: number | undefined;
  lastUsedMs: number | undefined;
  uses: number;
  currentTaskId: string;
  /** Why it is UNHEALTHY or EXITED. */
  error: string;
  exitCode: number | undefined;
  /** Exec agents: the mailbox their tasks use (one task at a time). */
  mailbox: Mailbox | undefined;
  /** Exec agents: where the mailbox appears inside the container. */
  mailboxDir: string;
  /** Stream agents: the protocol conversation. */
  session: StreamSession | undefined;
  /** The last lines the agent wrote to stderr, for errors about it. */
  stderrTail: string[];
}
