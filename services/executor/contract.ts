/**
 * The agent contract's names, in one place (docs/agent-protocol.md is their documentation).
 * Changing any of these breaks agents in the field.
 */

/** Environment variables every task sees. */
export const contractEnv = {
  workflowId: "AGENTAINER_WORKFLOW_ID",
  stepId: "AGENTAINER_STEP_ID",
  taskId: "AGENTAINER_TASK_ID",
  attempt: "AGENTAINER_ATTEMPT",
  index: "AGENTAINER_INDEX",
  /** The input as JSON text, when it is at most `inlineInputBytes` long. */
  input: "AGENTAINER_INPUT",
  /** Path of a file holding the input as JSON (always set). */
  inputFile: "AGENTAINER_INPUT_FILE",
  /** Path where the agent may write its result as JSON. */
  resultFile: "AGENTAINER_RESULT_FILE",
  /** Path where the agent may write the error text the user should see. */
  errorFile: "AGENTAINER_ERROR_FILE",
  /** Path of the pipe to write one state request (one line of JSON) to. */
  stateRequest: "AGENTAINER_STATE_REQUEST",
  /** Path of the pipe to read the reply (one line of JSON) from. */
  stateResponse: "AGENTAINER_STATE_RESPONSE",
} as const;

/** Inputs up to this many bytes of JSON also travel in AGENTAINER_INPUT. */
export const inlineInputBytes = 32 * 1024;

/** Where the task's mailbox directory appears inside a container. */
export const mailboxMountPoint = "/agentainer";

/** File names inside a mailbox directory. */
export const mailboxFiles = {
  input: "input.json",
  result: "result.json",
  error: "error.txt",
  stateRequest: "state.req",
  stateResponse: "state.res",
} as const;

/** Most bytes read back from a result or error file. */
export const maxResultBytes = 4 * 1024 * 1024;

/** Reserved prefixes: callers cannot set these env names or label keys. */
export const reservedEnvPrefix = "AGENTAINER_";
export const reservedLabelPrefix = "agentainer.";

/** Labels of every container the Executor makes. */
export const labels = {
  managed: "agentainer.managed",
  kind: "agentainer.kind",
  nodeId: "agentainer.node_id",
  workflowId: "agentainer.workflow_id",
  stepId: "agentainer.step_id",
  taskId: "agentainer.task_id",
  attempt: "agentainer.attempt",
  agentId: "agentainer.agent_id",
  poolId: "agentainer.pool_id",
  kept: "agentainer.kept",
  /** Agents: their AgentSpec as JSON, so a restarted Executor can adopt them exactly. */
  agentSpec: "agentainer.agent_spec",
  /**
   * Cold tasks and exec agents: their mailbox directory's name (under EXECUTOR_WORK_DIR/tasks or
   * /agents), to adopt an agent, and to remove what a run that crashed left.
   */
  mailbox: "agentainer.mailbox",
} as const;
