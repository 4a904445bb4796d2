/**
 * Every NATS subject of the suite, built in one place: `agentainer.<domain>.<entity>.<event>`,
 * with the workflow id as a last token where consumers filter by workflow. Workflow ids are
 * restricted to [A-Za-z0-9_-] so they are always a single, literal token.
 */
export const subjects = {
  state: {
    /** A workflow's state changed (payload agentainer.state.v1.StateChanged). */
    workflowChanged: (workflowId: string) => `agentainer.state.workflow.changed.${workflowId}`,
    /** Every state change of every workflow. */
    anyWorkflowChanged: "agentainer.state.workflow.changed.>",
  },
  executor: {
    /** A task event (payload agentainer.executor.v1.TaskEvent); `event` is created, started,
     * succeeded, failed, timed_out, cancelled or oom_killed. */
    task: (event: string, workflowId: string) => `agentainer.executor.task.${event}.${workflowId}`,
    /** Every task event of every workflow. */
    anyTask: "agentainer.executor.task.>",
    /** An agent event (payload agentainer.executor.v1.AgentEvent); `event` is created, ready,
     * unhealthy, exited or destroyed. */
    agent: (event: string) => `agentainer.executor.agent.${event}`,
    /** Every agent event. */
    anyAgent: "agentainer.executor.agent.*",
  },
  workflow: {
    /** A workflow run's event (payload agentainer.workflow.v1.WorkflowEvent); `entity.event` is
     * workflow.created|started|cancelling|completed|deleted, step.starting|finished|progress, or
     * task.started|finished. */
    event: (entity: string, event: string, workflowId: string) =>
      `agentainer.workflow.${entity}.${event}.${workflowId}`,
    /** Every workflow event. */
    any: "agentainer.workflow.>",
  },
  pool: {
    /** A pool agent's lifecycle event (payload agentainer.pool.v1.AgentLifecycleEvent). */
    agent: (event: string, poolId: string) => `agentainer.pool.agent.${event}.${poolId}`,
    /** A pool's own event (payload agentainer.pool.v1.PoolEvent). */
    pool: (event: string, poolId: string) => `agentainer.pool.pool.${event}.${poolId}`,
  },
} as const;
